//! A real Kubernetes API server for end-to-end tests: etcd and kube-apiserver on 127.0.0.1, free ports,
//! a temp directory, an admin kubeconfig, and kubeconfigs holding only a ServiceAccount's token, so the
//! product's processes can run with exactly the permissions its RBAC manifests grant.
//!
//! Prerequisites ([`guard`], or the [`crate::apiserver_guard!`] macro):
//! - `KUBE_APISERVER`: path of a kube-apiserver binary. None can be installed from the package registries
//!   this project uses, so when it is unset (or names no executable file) the test prints
//!   `SKIPPED: no KUBE_APISERVER` and passes, even with `FERROLB_REQUIRE_INTEROP=1`.
//! - etcd (`/usr/bin/etcd`, Debian `etcd-server`) and kubectl (`/usr/bin/kubectl`, or `FERROLB_KUBECTL`):
//!   with a kube-apiserver given, a missing one skips the test, or fails it when
//!   `FERROLB_REQUIRE_INTEROP=1`.
//!
//! No root is needed and nothing but loopback sockets is used. Everything started runs in its own process
//! group and is killed, and the temp directory removed, when the [`ApiServer`] is dropped (also when the
//! test panics).
//!
//! What this cluster is: the API server alone. There is no kube-controller-manager, scheduler or kubelet,
//! so nothing that a controller would do happens:
//! - no EndpointSlices for Services (tests create them), no `default` ServiceAccount in new namespaces,
//!   no token Secrets, no garbage collection, no namespace finalization (a deleted namespace stays
//!   `Terminating`), no Pods from Deployments or DaemonSets;
//! - the `ServiceAccount` admission plugin is disabled: it rejects Pods whose ServiceAccount does not
//!   exist, and without the controller not even `default` exists;
//! - the API server does assign Service cluster IPs (from 10.96.0.0/16 and fd00:10:96::/112, configuration
//!   values only: no packet ever uses them) and NodePorts itself; `kube-system`, `default`,
//!   `kube-public` and `kube-node-lease` exist once it is ready, and so do the bootstrap RBAC roles;
//! - no endpoint reconciler: the `kubernetes` Service exists but has no endpoints (its only address would
//!   be 127.0.0.1, which Endpoints validation refuses).
//!
//! ```no_run
//! use ferrolb_interop_tests::apiserver::ApiServer;
//!
//! fn my_test() {
//!     let bin = ferrolb_interop_tests::apiserver_guard!();
//!     let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
//!     let out = api.kubectl(&["create", "namespace", "demo"]);
//!     assert!(out.success(), "{out}");
//! }
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::netns::{require_binary, REQUIRE_ENV};
use crate::util::{self, describe, tail_file, Error, Result};

/// Env var naming the kube-apiserver binary.
pub const APISERVER_ENV: &str = "KUBE_APISERVER";
/// etcd from Debian's `etcd-server`.
pub const ETCD: &str = "/usr/bin/etcd";
/// Env var naming another kubectl (as in the deploy tests); default [`KUBECTL`].
pub const KUBECTL_ENV: &str = "FERROLB_KUBECTL";
/// kubectl from Debian's `kubernetes-client`.
pub const KUBECTL: &str = "/usr/bin/kubectl";
/// The ServiceAccount token issuer and the API audience.
pub const ISSUER: &str = "https://kubernetes.default.svc";
/// Service cluster IP ranges (dual stack, so `PreferDualStack` Services get both families).
pub const SERVICE_CIDRS: &str = "10.96.0.0/16,fd00:10:96::/112";
/// The admin's user name (in group `system:masters`, which RBAC lets do anything).
pub const ADMIN_USER: &str = "ferrolb-test-admin";

/// How long [`ApiServer::start`] waits for etcd to be healthy.
const ETCD_READY: Duration = Duration::from_secs(30);
/// How long [`ApiServer::start`] waits for `/readyz` (the machine may be busy: it builds in parallel).
const APISERVER_READY: Duration = Duration::from_secs(120);
/// Default bound on one kubectl run.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of each log quoted in an error.
const LOG_TAIL: usize = 40;

/// Checks the prerequisites of an API-server test. Returns the kube-apiserver binary when the test can
/// run. Otherwise prints `SKIPPED: <reason>` to stderr and returns `None`; with
/// `FERROLB_REQUIRE_INTEROP=1` a missing etcd or kubectl panics instead (a missing kube-apiserver never
/// does: none can be installed here).
pub fn guard() -> Option<PathBuf> {
    let require = util::env_flag(REQUIRE_ENV);
    let apiserver = match std::env::var(APISERVER_ENV) {
        Ok(p) if !p.is_empty() => p,
        _ => {
            skipped(&format!(
                "no {APISERVER_ENV} (set it to a kube-apiserver binary to run this test; \
                 {REQUIRE_ENV} does not make this fatal)"
            ));
            return None;
        }
    };
    if let Err(e) = require_binary(&apiserver) {
        skipped(&format!("no {APISERVER_ENV}: {e}"));
        return None;
    }
    for bin in [ETCD.to_string(), kubectl_path()] {
        if let Err(reason) = require_binary(&bin) {
            if require {
                panic!("API-server test prerequisite missing ({REQUIRE_ENV}=1): {reason}");
            }
            skipped(&format!(
                "{reason} (set {REQUIRE_ENV}=1 to make this fatal)"
            ));
            return None;
        }
    }
    Some(PathBuf::from(apiserver))
}

fn skipped(reason: &str) {
    eprintln!("\n********** SKIPPED: {reason} **********\n");
}

/// Evaluates to the kube-apiserver binary ([`guard`]), or returns from the calling test when it cannot
/// run.
#[macro_export]
macro_rules! apiserver_guard {
    () => {
        match $crate::apiserver::guard() {
            Some(bin) => bin,
            None => return,
        }
    };
}

/// The kubectl to run: `FERROLB_KUBECTL` or `/usr/bin/kubectl`.
pub fn kubectl_path() -> String {
    std::env::var(KUBECTL_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| KUBECTL.to_string())
}

/// What a kubectl run returned.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// The command line, for messages.
    pub command: String,
    /// `None` when it was killed for running past its deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl KubectlOutput {
    /// Exited 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stderr lines starting with `Warning:` (the API server's warnings, deprecations).
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("Warning:"))
            .collect()
    }

    /// stdout, or an error with the command line, status, stderr and stdout.
    pub fn checked(self) -> Result<String> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(Error::msg(self.to_string()))
        }
    }
}

impl fmt::Display for KubectlOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed: deadline passed".to_string(),
        };
        write!(
            f,
            "`{}` ({status}, {:.1}s)\n--- stderr:\n{}\n--- stdout:\n{}",
            self.command,
            self.elapsed.as_secs_f64(),
            self.stderr.trim_end(),
            util::truncate(self.stdout.trim_end(), 4000)
        )
    }
}

/// Runs `kubectl --kubeconfig KUBECONFIG args...` with a deadline (killed past it).
pub fn kubectl_with(kubeconfig: &Path, args: &[&str], timeout: Duration) -> KubectlOutput {
    run_with_deadline(&mut kubectl_command(kubeconfig, args), None, timeout)
}

fn kubectl_command(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig").arg(kubeconfig);
    // Discovery and HTTP caches go next to the kubeconfig, not into ~/.kube.
    if let Some(dir) = kubeconfig.parent() {
        cmd.arg("--cache-dir").arg(dir.join("kubectl-cache"));
    }
    cmd.args(args).env_remove("KUBECONFIG");
    cmd
}

/// Runs `cmd` to completion or `timeout` (then kills it), feeding `stdin` if given.
fn run_with_deadline(cmd: &mut Command, stdin: Option<&str>, timeout: Duration) -> KubectlOutput {
    let command = describe(cmd);
    let start = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return KubectlOutput {
                command,
                status: None,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                elapsed: start.elapsed(),
            }
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let reader = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    KubectlOutput {
        command,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// One daemon in its own process group, its output in a log file. Stopped on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Reaped: its pid, and so its group id, may belong to someone else now.
    stopped: bool,
}

impl Daemon {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Result<Daemon> {
        let (out, err) = util::log_stdio(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {name} `{}`: {e}", describe(cmd))))?;
        Ok(Daemon {
            name,
            child,
            log,
            stopped: false,
        })
    }

    /// `Some(how)` once it has exited. Does not reap it: while the leader is a zombie its pid, and so
    /// the process group id [`Daemon::stop`] signals, cannot be taken by an unrelated process.
    fn exited(&self) -> Option<String> {
        // SAFETY: waitid only writes into `info`, which is a valid, zeroed siginfo_t.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 || info.si_pid() == 0 {
                return None;
            }
            Some(match info.si_code {
                libc::CLD_EXITED => format!("exit status {}", info.si_status()),
                _ => format!("killed by signal {}", info.si_status()),
            })
        }
    }

    fn log_tail(&self) -> String {
        format!(
            "--- {} log ({}), last {LOG_TAIL} lines:\n{}",
            self.name,
            self.log.display(),
            tail_file(&self.log, LOG_TAIL)
        )
    }

    /// SIGTERM to the group, `grace` to exit, then SIGKILL to the group (the leader is still unreaped, so
    /// the group id is still ours); reaps the leader last.
    fn stop(&mut self, grace: Duration) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let pgid = self.child.id() as libc::pid_t;
        let group = |sig| {
            // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names our own group.
            unsafe { libc::kill(-pgid, sig) };
        };
        if self.exited().is_none() {
            group(libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while self.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Also whatever the leader left behind in its group.
        group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn spawn_apiserver(bin: &Path, args: &[String], log: &Path) -> Result<Daemon> {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_remove("KUBECONFIG");
    Daemon::spawn("kube-apiserver", &mut cmd, log.to_owned())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// A running etcd + kube-apiserver pair on 127.0.0.1. Stopped, and its directory removed, on drop.
pub struct ApiServer {
    // `Drop` stops the daemons; the temp dir is removed after, when the fields drop.
    apiserver: Daemon,
    etcd: Daemon,
    port: u16,
    etcd_port: u16,
    admin_kubeconfig: PathBuf,
    /// What the API server was started with, to start it again (outage tests).
    apiserver_bin: PathBuf,
    api_args: Vec<String>,
    admin_token: String,
    restarts: u32,
    dir: tempfile::TempDir,
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url())
            .field("etcd_port", &self.etcd_port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl ApiServer {
    /// Starts etcd and `apiserver_bin`, waits for `/readyz` (two minutes at most) and writes the admin
    /// kubeconfig. The error carries the tails of both logs.
    pub fn start(apiserver_bin: &Path) -> Result<ApiServer> {
        // Free ports are found by binding port 0 and letting go: another process may take one in
        // between. That shows as "address already in use" in a log; then try again with new ports.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(apiserver_bin) {
                Ok(api) => return Ok(api),
                Err(e) if e.message().contains("address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    fn start_once(apiserver_bin: &Path) -> Result<ApiServer> {
        let started = Instant::now();
        reap_stale();
        let dir = util::instance_dir(DIR_PREFIX)?;
        let d = dir.path();
        std::fs::write(d.join(OWNER_FILE), std::process::id().to_string())?;
        let [etcd_port, peer_port, port] = free_ports()?;

        let mut etcd_cmd = Command::new(ETCD);
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        etcd_cmd
            .arg("--name=flb")
            .arg(format!("--data-dir={}", d.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=flb={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=ferrolb-test")
            .arg("--logger=zap")
            .arg("--log-level=warn");
        // From here on, an early return drops (stops) what was started, then removes `dir`.
        let etcd = Daemon::spawn("etcd", &mut etcd_cmd, d.join("etcd.log"))?;
        wait_etcd(&etcd, etcd_port).map_err(|e| Error::msg(format!("{e}\n{}", etcd.log_tail())))?;

        write_service_account_key(d)?;
        let admin_token = random_token()?;
        write_private(
            &d.join("tokens.csv"),
            format!("{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n").as_bytes(),
        )?;
        let certs = d.join("certs");
        let api_args: Vec<String> = vec![
            format!("--etcd-servers={client_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", certs.display()),
            format!("--token-auth-file={}", d.join("tokens.csv").display()),
            "--authorization-mode=Node,RBAC".into(),
            format!("--service-account-issuer={ISSUER}"),
            format!("--api-audiences={ISSUER}"),
            format!("--service-account-key-file={}", d.join("sa.pub").display()),
            format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ),
            format!("--service-cluster-ip-range={SERVICE_CIDRS}"),
            "--disable-admission-plugins=ServiceAccount".into(),
            "--enable-priority-and-fairness=false".into(),
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ];
        let apiserver = spawn_apiserver(apiserver_bin, &api_args, &d.join("apiserver.log"))?;
        let api = ApiServer {
            admin_kubeconfig: d.join("admin.kubeconfig"),
            apiserver,
            etcd,
            port,
            etcd_port,
            apiserver_bin: apiserver_bin.to_owned(),
            api_args,
            admin_token: admin_token.clone(),
            restarts: 0,
            dir,
        };
        api.wait_ready(&admin_token, started)?;
        Ok(api)
    }

    /// Polls `kubectl get --raw /readyz` with the admin kubeconfig; writes the kubeconfig each round, as
    /// soon as the API server has written its self-signed certificate.
    fn wait_ready(&self, admin_token: &str, started: Instant) -> Result<()> {
        let cert = self.dir.path().join("certs/apiserver.crt");
        let deadline = Instant::now() + APISERVER_READY;
        let mut last = String::from("(kubectl not run yet: no certificate written)");
        loop {
            let exited = [&self.apiserver, &self.etcd]
                .into_iter()
                .find_map(|d| Some((d.name, d.exited()?)));
            if let Some((name, status)) = exited {
                return Err(self.failure(&format!(
                    "{name} exited ({status}) before the API server was ready"
                )));
            }
            if let Ok(pem) = std::fs::read(&cert) {
                if String::from_utf8_lossy(&pem).contains("-----END CERTIFICATE-----") {
                    self.write_kubeconfig(&self.admin_kubeconfig, ADMIN_USER, admin_token, None)?;
                    let out = kubectl_with(
                        &self.admin_kubeconfig,
                        &["get", "--raw", "/readyz", "--request-timeout=5s"],
                        Duration::from_secs(15),
                    );
                    if out.success() {
                        eprintln!(
                            "kube-apiserver ready at {} after {:.1}s",
                            self.url(),
                            started.elapsed().as_secs_f64()
                        );
                        return Ok(());
                    }
                    last = out.to_string();
                }
            }
            if Instant::now() >= deadline {
                let verbose = kubectl_with(
                    &self.admin_kubeconfig,
                    &["get", "--raw", "/readyz?verbose", "--request-timeout=5s"],
                    Duration::from_secs(15),
                );
                return Err(self.failure(&format!(
                    "kube-apiserver not ready after {:.0}s; last check: {last}\n/readyz?verbose: {verbose}",
                    APISERVER_READY.as_secs_f64()
                )));
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops the API server (etcd keeps running, so nothing is lost), keeps it down for `down`, starts it
    /// again on the same port with the same arguments and waits until it is ready. Returns when it is
    /// ready again.
    pub fn restart_apiserver(&mut self, down: Duration) -> Result<Instant> {
        self.apiserver.stop(Duration::from_secs(5));
        thread::sleep(down);
        self.restarts += 1;
        let log = self
            .dir
            .path()
            .join(format!("apiserver-{}.log", self.restarts));
        self.apiserver = spawn_apiserver(&self.apiserver_bin, &self.api_args, &log)?;
        let token = self.admin_token.clone();
        self.wait_ready(&token, Instant::now())?;
        Ok(Instant::now())
    }

    fn failure(&self, what: &str) -> Error {
        Error::msg(format!(
            "{what}\n{}\n{}",
            self.apiserver.log_tail(),
            self.etcd.log_tail()
        ))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The secure port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp directory holding logs, certificates, kubeconfigs and etcd's data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig (group `system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The kube-apiserver log so far.
    pub fn apiserver_log(&self) -> String {
        std::fs::read_to_string(&self.apiserver.log).unwrap_or_default()
    }

    /// The etcd log so far.
    pub fn etcd_log(&self) -> String {
        std::fs::read_to_string(&self.etcd.log).unwrap_or_default()
    }

    /// Tails of both logs, for failure messages.
    pub fn log_tails(&self) -> String {
        format!("{}\n{}", self.apiserver.log_tail(), self.etcd.log_tail())
    }

    /// Runs kubectl as the admin ([`KUBECTL_TIMEOUT`] at most).
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        kubectl_with(&self.admin_kubeconfig, args, KUBECTL_TIMEOUT)
    }

    /// Runs kubectl as the admin, feeding `stdin` (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> KubectlOutput {
        let mut cmd = kubectl_command(&self.admin_kubeconfig, args);
        run_with_deadline(&mut cmd, Some(stdin), KUBECTL_TIMEOUT)
    }

    /// Like [`ApiServer::kubectl`], but an unsuccessful run is an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        self.kubectl(args).checked()
    }

    /// Creates a ServiceAccount (the namespace must exist).
    pub fn create_service_account(&self, namespace: &str, name: &str) -> Result<()> {
        self.kubectl_ok(&["create", "serviceaccount", name, "-n", namespace])
            .map(|_| ())
    }

    /// Writes a kubeconfig holding only a token of ServiceAccount `namespace/name` (which must exist),
    /// valid for an hour, obtained through the TokenRequest API, with `namespace` as its default namespace.
    /// Returns its path. A process given only this file has exactly the ServiceAccount's permissions.
    pub fn kubeconfig_for_service_account(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        self.kubeconfig_for_service_account_with(namespace, name, Duration::from_secs(3600))
    }

    /// Like [`ApiServer::kubeconfig_for_service_account`] with the token's lifetime (10 minutes at
    /// least: the API server's minimum).
    pub fn kubeconfig_for_service_account_with(
        &self,
        namespace: &str,
        name: &str,
        lifetime: Duration,
    ) -> Result<PathBuf> {
        // `kubectl create --raw` rather than `kubectl create token`: the latter needs kubectl 1.24+,
        // and Debian bookworm's kubernetes-client is 1.20.
        let request = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": { "expirationSeconds": lifetime.as_secs().max(600) },
        });
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token");
        let out = self
            .kubectl_stdin(&["create", "--raw", &path, "-f", "-"], &request.to_string())
            .checked()
            .map_err(|e| {
                e.context(format!(
                    "TokenRequest for ServiceAccount {namespace}/{name}"
                ))
            })?;
        let answer: Value = serde_json::from_str(&out)?;
        let token = answer
            .pointer("/status/token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::msg(format!("TokenRequest answer without status.token: {out}"))
            })?;
        let file = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{name}.kubeconfig"));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        self.write_kubeconfig(&file, &user, token, Some(namespace))?;
        Ok(file)
    }

    /// A kubeconfig for this server with one user holding `token`. The server's certificate is checked
    /// against the self-signed one it wrote (its file holds the serving certificate and its CA; the
    /// serving certificate names 127.0.0.1).
    fn write_kubeconfig(
        &self,
        file: &Path,
        user: &str,
        token: &str,
        namespace: Option<&str>,
    ) -> Result<()> {
        let ca = std::fs::read(self.dir.path().join("certs/apiserver.crt"))
            .map_err(|e| Error::msg(format!("API server certificate: {e}")))?;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let ns = namespace
            .map(|n| format!("    namespace: {n}\n"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: ferrolb-test\n  \
               cluster:\n    \
                 server: {url}\n    \
                 certificate-authority-data: {ca}\n\
             users:\n\
             - name: \"{user}\"\n  \
               user:\n    \
                 token: {token}\n\
             contexts:\n\
             - name: ferrolb-test\n  \
               context:\n    \
                 cluster: ferrolb-test\n    \
                 user: \"{user}\"\n\
             {ns}\
             current-context: ferrolb-test\n",
            url = self.url(),
        );
        write_private(file, text.as_bytes())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // The API server first, so that it does not log etcd errors while going down.
        self.apiserver.stop(Duration::from_secs(5));
        self.etcd.stop(Duration::from_secs(5));
        // `dir` (a TempDir) is removed after this, when the fields drop.
    }
}

/// `util::instance_dir` names: `/tmp/flb-kube-XXXXXX`.
const DIR_PREFIX: &str = "kube";
/// In the instance directory: the pid of the test process that started the daemons.
const OWNER_FILE: &str = "owner";

/// Kills the daemons of API servers whose test process died without dropping them (killed by a signal, a
/// test runner's timeout) and removes their directories. Once per process. A daemon is recognised by its
/// instance directory on its command line, so a recycled pid is never hit.
fn reap_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir("/tmp") else {
            return;
        };
        let prefix = format!("flb-{DIR_PREFIX}-");
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let dir = entry.path();
            // No owner file yet: another process is just creating it.
            let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            else {
                continue;
            };
            if util::pid_alive(owner) {
                continue;
            }
            let needle = format!("{}/", dir.to_string_lossy());
            for pid in pids_with_arg_containing(&needle) {
                util::signal(pid, libc::SIGKILL);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    });
}

/// Pids whose command line has an argument containing `needle`.
fn pids_with_arg_containing(needle: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| String::from_utf8_lossy(arg).contains(needle))
            })
        })
        .collect()
}

/// Waits for etcd's `/health` to say `"health":"true"`; the error carries the last answer.
fn wait_etcd(etcd: &Daemon, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + ETCD_READY;
    loop {
        if let Some(status) = etcd.exited() {
            return Err(Error::msg(format!(
                "etcd exited ({status}) before it was healthy"
            )));
        }
        let last = match http_get(addr, "/health") {
            Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
            Ok(body) => body,
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "etcd not healthy on {addr} after {:.0}s: {last}",
                ETCD_READY.as_secs_f64()
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A plain HTTP/1.0 GET on loopback; returns the whole answer (headers and body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Three distinct free TCP ports on 127.0.0.1 (all bound at once so they differ, then released).
fn free_ports() -> Result<[u16; 3]> {
    let listeners = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; 3];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// 32 random bytes as hex, for the admin token.
fn random_token() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::msg("no randomness for the admin token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, then the BIT STRING
/// header of a 65-byte uncompressed point).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Generates the ServiceAccount token signing key: an ECDSA P-256 key (ES256), `sa.key` as PKCS#8
/// `PRIVATE KEY` for `--service-account-signing-key-file` and `sa.pub` as `PUBLIC KEY` for
/// `--service-account-key-file`. In Rust (ring), so no openssl CLI is needed.
fn write_service_account_key(dir: &Path) -> Result<()> {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| Error::msg("cannot generate the ServiceAccount signing key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| Error::msg("cannot read back the ServiceAccount signing key"))?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    write_private(
        &dir.join("sa.key"),
        pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
    )?;
    std::fs::write(dir.join("sa.pub"), pem("PUBLIC KEY", &spki))?;
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Writes a file readable by its owner only (keys, tokens).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::msg(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_columns() {
        let p = pem("PUBLIC KEY", &[0u8; 100]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END PUBLIC KEY-----");
    }

    #[test]
    fn service_account_key_files() {
        let dir = tempfile::tempdir().unwrap();
        write_service_account_key(dir.path()).unwrap();
        let key = std::fs::read_to_string(dir.path().join("sa.key")).unwrap();
        let public = std::fs::read_to_string(dir.path().join("sa.pub")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        // 26-byte prefix + 65-byte point = 91 bytes DER.
        let b64: String = public.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(der.len(), 91);
        assert_eq!(der[26], 0x04, "uncompressed point");
    }

    #[test]
    fn kubectl_output_warnings_and_deadline() {
        let out = run_with_deadline(
            Command::new("sh").args(["-c", "echo 'Warning: x' >&2; echo ok"]),
            None,
            Duration::from_secs(10),
        );
        assert!(out.success(), "{out}");
        assert_eq!(out.warnings(), vec!["Warning: x"]);
        let slow = run_with_deadline(
            Command::new("sleep").arg("10"),
            None,
            Duration::from_millis(100),
        );
        assert!(slow.status.is_none() && !slow.success(), "{slow}");
        let fed = run_with_deadline(
            &mut Command::new("cat"),
            Some("hi"),
            Duration::from_secs(10),
        );
        assert_eq!(fed.stdout, "hi");
    }
}
