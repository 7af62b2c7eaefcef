//! Network namespaces as disposable test hosts, links between them, and the skip/require
//! guard that interop tests call first.
//!
//! Why namespaces: each test gets private addresses, ports and kernel routing tables, so tests
//! can use port 179 and fixed addresses without clashing, run concurrently, and never touch the
//! machine's own network. A [`Netns`] is a cheap cloneable handle; the namespace is deleted
//! (after killing every process left in it) when the last handle is dropped.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, describe, run_checked, run_checked_stdin, Error, Result};

/// Env var: when `1`, a missing interop prerequisite panics instead of skipping the test.
pub const REQUIRE_ENV: &str = "FERROLB_REQUIRE_INTEROP";

/// Name of the nftables table used by [`Netns::nft_drop_tcp_port`].
pub const NFT_TABLE: &str = "flbtest";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace owned by the test. Clones share it; the last drop tears it down.
#[derive(Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Netns({})", self.inner.name)
    }
}

/// One route from the namespace's kernel main table (`ip -j route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Normalised prefix: always with a length, IPv6 in canonical form, `default` → `0.0.0.0/0`.
    pub dst: String,
    /// `protocol` field: `kernel`, `bgp` (FRR/zebra), `bird`, `static`, `boot`, ...
    pub protocol: String,
    /// Route type when not plain unicast (`unreachable`, `blackhole`, ...).
    pub kind: Option<String>,
    /// Gateways, one per next hop (several for ECMP); empty for connected routes.
    pub gateways: Vec<String>,
    /// Output devices, one per next hop.
    pub devs: Vec<String>,
    pub metric: Option<u64>,
}

impl Netns {
    /// Creates a namespace named `flb<pid>n<counter>` (≤ 15 chars), brings `lo` up and turns
    /// off IPv6 DAD so addresses (including link-locals BGP uses as next hops) work at once.
    pub fn new() -> Result<Netns> {
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..64 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("flb{pid}n{n}");
            match run_checked(Command::new("ip").args(["netns", "add", &name])) {
                Ok(_) => {
                    let ns = Netns {
                        inner: Arc::new(Inner { name }),
                    };
                    ns.init()?;
                    return Ok(ns);
                }
                // A stale namespace from a dead process that had our pid: take the next name.
                Err(e) if e.message().contains("exists") => last_err = Some(e),
                Err(e) => return Err(e.context("creating network namespace")),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::msg("no free namespace name")))
    }

    fn init(&self) -> Result<()> {
        self.ip(&["link", "set", "lo", "up"])?;
        self.sysctl(&[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ])
    }

    /// The namespace name (as used by `ip netns`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `ip netns exec NAME args...`, not yet started. `ip netns exec` execs in place, so a
    /// spawned child's pid is the pid of the program itself.
    pub fn exec<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name()]).args(args);
        cmd
    }

    /// Runs a command in the namespace; returns stdout, or an error with the exit status,
    /// stderr and stdout.
    pub fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked(&mut self.exec(args))
    }

    /// Like [`Netns::run`], feeding `input` on stdin.
    pub fn run_stdin<I, S>(&self, args: I, input: &str) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked_stdin(&mut self.exec(args), input)
    }

    /// Starts a long-running program in the namespace with stdin/stdout/stderr on /dev/null.
    /// The caller owns the child (kill and wait it); anything left over is killed when the
    /// namespace is dropped.
    pub fn spawn<I, S>(&self, args: I) -> Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.exec(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
            .map_err(|e| Error::msg(format!("cannot start `{}`: {e}", describe(&cmd))))
    }

    /// Like [`Netns::spawn`] with stdout and stderr appended to `log`.
    pub fn spawn_logged<I, S>(&self, args: I, log: &Path) -> Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (out, err) = util::log_stdio(log)?;
        let mut cmd = self.exec(args);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.spawn()
            .map_err(|e| Error::msg(format!("cannot start `{}`: {e}", describe(&cmd))))
    }

    /// `ip -n NAME args...` (no process inside the namespace needed).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run_checked(Command::new("ip").args(["-n", self.name()]).args(args))
    }

    /// Sets sysctls inside the namespace (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/...`).
    /// Written from a thread that joined the namespace (network sysctls follow the writer's
    /// namespace), so no `sysctl` binary (procps) is needed.
    pub fn sysctl(&self, kv: &[(&str, &str)]) -> Result<()> {
        self.in_netns(|| {
            for (k, v) in kv {
                let path = Path::new("/proc/sys").join(k.replace('.', "/"));
                std::fs::write(&path, v).map_err(|e| Error::msg(format!("sysctl {k}={v}: {e}")))?;
            }
            Ok(())
        })?
    }

    /// Reads a sysctl inside the namespace (trimmed).
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        self.in_netns(|| {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|e| Error::msg(format!("sysctl {key}: {e}")))
        })?
    }

    /// Turns on IPv4 and IPv6 forwarding (off in a new namespace) for router namespaces that
    /// must pass transit traffic.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.sysctl(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ])
    }

    /// Adds an address (`198.51.100.1/24`, `2001:db8::1/64`); IPv6 gets `nodad`.
    pub fn add_addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(|_| ())
    }

    /// Deletes an address.
    pub fn del_addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "del", cidr, "dev", ifname]).map(|_| ())
    }

    /// `ip link set IF up|down`.
    pub fn set_link(&self, ifname: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", "dev", ifname, if up { "up" } else { "down" }])
            .map(|_| ())
    }

    /// Whether the interface's operstate is UP (carrier present, e.g. both veth ends up).
    pub fn link_oper_up(&self, ifname: &str) -> bool {
        self.ip(&["-j", "link", "show", "dev", ifname])
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.get(0)?.get("operstate")?.as_str().map(|s| s == "UP"))
            .unwrap_or(false)
    }

    /// Installs (or extends) the inet table `flbtest` so TCP to or from `port` is silently
    /// dropped in both directions (input and output), e.g. to make a BGP session hang until
    /// the hold timer expires. Call again to add more ports; [`Netns::nft_flush`] removes all.
    pub fn nft_drop_tcp_port(&self, port: u16) -> Result<()> {
        let t = NFT_TABLE;
        let script = format!(
            "add table inet {t}\n\
             add chain inet {t} input {{ type filter hook input priority 0 ; policy accept ; }}\n\
             add chain inet {t} output {{ type filter hook output priority 0 ; policy accept ; }}\n\
             add rule inet {t} input tcp dport {port} drop\n\
             add rule inet {t} input tcp sport {port} drop\n\
             add rule inet {t} output tcp dport {port} drop\n\
             add rule inet {t} output tcp sport {port} drop\n"
        );
        self.run_stdin(["nft", "-f", "-"], &script).map(|_| ())
    }

    /// Removes the `flbtest` table (no error when it does not exist).
    pub fn nft_flush(&self) -> Result<()> {
        let t = NFT_TABLE;
        let script = format!("add table inet {t}\ndelete table inet {t}\n");
        self.run_stdin(["nft", "-f", "-"], &script).map(|_| ())
    }

    /// IPv4 and IPv6 routes of the main table, optionally only those with `protocol == proto`
    /// (`bgp` for FRR/zebra, `bird` for BIRD).
    pub fn kernel_routes(&self, proto: Option<&str>) -> Result<Vec<KernelRoute>> {
        let mut routes = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.ip(&["-j", fam, "route", "show", "table", "main"])?;
            routes.extend(parse_ip_routes_family(&out, Some(fam == "-6"))?);
        }
        if let Some(p) = proto {
            routes.retain(|r| r.protocol == p);
        }
        Ok(routes)
    }

    /// The kernel route for exactly `prefix` (`203.0.113.7`, `203.0.113.7/32`, `2001:db8::/64`).
    pub fn kernel_route(&self, prefix: &str) -> Result<Option<KernelRoute>> {
        let want =
            normalize_prefix(prefix).ok_or_else(|| Error::msg(format!("bad prefix {prefix:?}")))?;
        let fam = if want.contains(':') { "-6" } else { "-4" };
        let out = self.ip(&["-j", fam, "route", "show", "table", "main"])?;
        Ok(parse_ip_routes_family(&out, Some(fam == "-6"))?
            .into_iter()
            .find(|r| r.dst == want))
    }

    /// Whether the main table has a route for exactly `prefix` (false on any error).
    pub fn route_present(&self, prefix: &str) -> bool {
        matches!(self.kernel_route(prefix), Ok(Some(_)))
    }

    /// Polls until `prefix` is (or, with `present = false`, is no longer) in the kernel table.
    pub fn wait_route(&self, prefix: &str, present: bool, timeout: Duration) -> Result<()> {
        util::wait_until(
            &format!(
                "kernel route {prefix} to be {} in {}",
                if present { "present" } else { "absent" },
                self.name()
            ),
            timeout,
            Duration::from_millis(100),
            || (self.route_present(prefix) == present).then_some(()),
        )
    }

    /// One ICMP echo with a 1 s timeout; true when answered.
    pub fn ping(&self, addr: &str) -> bool {
        self.ping_from(addr, None)
    }

    /// Like [`Netns::ping`] with `-I src_or_iface` (source address or interface).
    pub fn ping_from(&self, addr: &str, src_or_iface: Option<&str>) -> bool {
        let mut args = vec!["ping", "-n", "-q", "-c", "1", "-W", "1"];
        if let Some(s) = src_or_iface {
            args.extend(["-I", s]);
        }
        args.push(addr);
        self.exec(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Pings until answered or `timeout` (neighbour discovery and fresh routes can take a
    /// moment).
    pub fn wait_ping(
        &self,
        addr: &str,
        src_or_iface: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        util::wait_until(
            &format!("{addr} to answer ping from {}", self.name()),
            timeout,
            Duration::from_millis(100),
            || self.ping_from(addr, src_or_iface).then_some(()),
        )
    }

    /// Whether something listens on TCP `port` in the namespace (`ss -Hltn`).
    pub fn tcp_listening(&self, port: u16) -> bool {
        let filter = format!("sport = :{port}");
        self.run(["ss", "-Hltn", &filter])
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
    }

    /// Polls [`Netns::tcp_listening`].
    pub fn wait_tcp_listening(&self, port: u16, timeout: Duration) -> Result<()> {
        util::wait_until(
            &format!("TCP port {port} to be listening in {}", self.name()),
            timeout,
            Duration::from_millis(50),
            || self.tcp_listening(port).then_some(()),
        )
    }

    /// Runs `f` on a helper thread that has joined this namespace (`setns`), e.g. to bind or
    /// connect std sockets inside it without an external tool; sockets keep their namespace
    /// after the thread ends. Other threads of the process are unaffected.
    pub fn in_netns<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        use std::os::fd::AsRawFd;
        let path = Path::new("/run/netns").join(self.name());
        let file = std::fs::File::open(&path)
            .map_err(|e| Error::msg(format!("cannot open {}: {e}", path.display())))?;
        thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd; it only changes this helper thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::msg(format!(
                        "setns({}): {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    )));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| Error::msg("in_netns closure panicked"))?
        })
    }

    /// Pids of all processes currently in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        namespace_pids(self.name())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        teardown(&self.name);
    }
}

fn namespace_pids(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills what is left in the namespace (SIGTERM, short grace, SIGKILL), then deletes it.
fn teardown(name: &str) {
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let pids: Vec<u32> = namespace_pids(name)
            .into_iter()
            .filter(|p| util::pid_alive(*p))
            .collect();
        if pids.is_empty() {
            break;
        }
        for &p in &pids {
            util::signal(p, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && pids.iter().any(|p| util::pid_alive(*p)) {
            thread::sleep(Duration::from_millis(20));
        }
    }
    for _ in 0..10 {
        let ok = Command::new("ip")
            .args(["netns", "del", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok || !Path::new("/run/netns").join(name).exists() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("ferrolb-interop-tests: could not delete network namespace {name}");
}

/// Creates a veth pair between two namespaces (named `a_if` in `a`, `b_if` in `b`; the names
/// only need to be unique inside each namespace), adds the addresses (CIDR strings, IPv6 with
/// `nodad`), sets both ends up and waits for carrier.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addrs: &[&str],
    b: &Netns,
    b_if: &str,
    b_addrs: &[&str],
) -> Result<()> {
    run_checked(Command::new("ip").args([
        "link",
        "add",
        "name",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for cidr in addrs {
            ns.add_addr(ifname, cidr)?;
        }
        ns.set_link(ifname, true)?;
    }
    util::wait_until(
        &format!(
            "veth {}:{a_if} <-> {}:{b_if} to come up",
            a.name(),
            b.name()
        ),
        Duration::from_secs(5),
        Duration::from_millis(20),
        || (a.link_oper_up(a_if) && b.link_oper_up(b_if)).then_some(()),
    )
}

/// Two namespaces joined by one veth with fixed, documentation-range addresses:
/// `a` = 198.51.100.1/24 + 2001:db8:100::1/64 on `to_b`, `b` = .2 / ::2 on `to_a`.
/// (Fixed addresses are fine: they only exist inside these private namespaces.)
#[derive(Debug, Clone)]
pub struct LinkedPair {
    pub a: Netns,
    pub b: Netns,
    pub a_if: String,
    pub b_if: String,
    pub a_v4: String,
    pub b_v4: String,
    pub a_v6: String,
    pub b_v6: String,
}

impl LinkedPair {
    pub const A_V4: &'static str = "198.51.100.1";
    pub const B_V4: &'static str = "198.51.100.2";
    pub const A_V6: &'static str = "2001:db8:100::1";
    pub const B_V6: &'static str = "2001:db8:100::2";

    /// Creates both namespaces and the link, and waits until `a` can ping `b` over IPv4 and
    /// IPv6.
    pub fn new() -> Result<LinkedPair> {
        let a = Netns::new()?;
        let b = Netns::new()?;
        veth(
            &a,
            "to_b",
            &[&format!("{}/24", Self::A_V4), &format!("{}/64", Self::A_V6)],
            &b,
            "to_a",
            &[&format!("{}/24", Self::B_V4), &format!("{}/64", Self::B_V6)],
        )?;
        let t = Duration::from_secs(5);
        a.wait_ping(Self::B_V4, None, t)?;
        a.wait_ping(Self::B_V6, None, t)?;
        Ok(LinkedPair {
            a,
            b,
            a_if: "to_b".into(),
            b_if: "to_a".into(),
            a_v4: Self::A_V4.into(),
            b_v4: Self::B_V4.into(),
            a_v6: Self::A_V6.into(),
            b_v6: Self::B_V6.into(),
        })
    }
}

/// Normalises a prefix the way [`KernelRoute::dst`] is written: adds `/32` or `/128` to bare
/// addresses, canonicalises IPv6 text, maps `default`. `None` when unparsable.
pub fn normalize_prefix(p: &str) -> Option<String> {
    let (addr, len) = match p.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (p, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let len = len.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
    Some(format!("{ip}/{len}"))
}

/// Parses `ip -j route` output (`default` is mapped by guessing the family; use
/// [`Netns::kernel_routes`] to have it exact).
pub fn parse_ip_routes(json: &str) -> Result<Vec<KernelRoute>> {
    parse_ip_routes_family(json, None)
}

fn parse_ip_routes_family(json: &str, v6: Option<bool>) -> Result<Vec<KernelRoute>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(json)?;
    let arr = v
        .as_array()
        .ok_or_else(|| Error::msg("ip -j route: not a JSON array"))?;
    let mut out = Vec::new();
    for r in arr {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let Some(raw_dst) = s("dst") else { continue };
        let dst = if raw_dst == "default" {
            // The family is not in the object: use the caller's, else guess from the
            // gateway / the IPv6-only `pref` field.
            let is_v6 = v6.unwrap_or_else(|| {
                r.get("gateway")
                    .and_then(Value::as_str)
                    .is_some_and(|g| g.contains(':'))
                    || r.get("pref").is_some()
            });
            if is_v6 {
                "::/0".to_string()
            } else {
                "0.0.0.0/0".to_string()
            }
        } else {
            normalize_prefix(&raw_dst).unwrap_or(raw_dst)
        };
        let mut gateways = Vec::new();
        let mut devs = Vec::new();
        if let Some(nhs) = r.get("nexthops").and_then(Value::as_array) {
            for nh in nhs {
                if let Some(g) = nh.get("gateway").and_then(Value::as_str) {
                    gateways.push(g.to_string());
                }
                if let Some(d) = nh.get("dev").and_then(Value::as_str) {
                    devs.push(d.to_string());
                }
            }
        } else {
            gateways.extend(s("gateway"));
            devs.extend(s("dev"));
        }
        out.push(KernelRoute {
            dst,
            protocol: s("protocol").unwrap_or_else(|| "boot".into()),
            kind: s("type"),
            gateways,
            devs,
            metric: r.get("metric").and_then(Value::as_u64),
        });
    }
    Ok(out)
}

/// Checks that we are root and can create network namespaces (cached). Also deletes stale
/// `flb<pid>n<k>` namespaces left by dead test processes (once per process).
pub fn require_root_and_netns() -> Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("interop tests need root (network namespaces, veth, nft)".into());
            }
            // nft is only checked by tests that use it: `interop_guard!("nft")`.
            for bin in ["ip", "ping", "ss"] {
                if find_in_path(bin).is_none() {
                    return Err(format!("`{bin}` not found in PATH"));
                }
            }
            reap_stale_namespaces();
            let ns = Netns::new().map_err(|e| format!("cannot create a network namespace: {e}"))?;
            drop(ns);
            Ok(())
        })
        .clone()
}

/// Checks that an executable exists at `path` (absolute) or in PATH (bare name).
pub fn require_binary(path: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let p = if path.contains('/') {
        Some(std::path::PathBuf::from(path))
    } else {
        find_in_path(path)
    };
    match p.and_then(|p| std::fs::metadata(&p).ok()) {
        Some(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(format!(
            "required binary {path} not found or not executable"
        )),
    }
}

fn find_in_path(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Test precondition check: root + namespaces + every binary in `binaries`. Returns true when
/// the test can run. Otherwise prints `SKIPPED: <reason>` to stderr and returns false, or
/// panics when `FERROLB_REQUIRE_INTEROP=1`. See also [`crate::interop_guard!`].
pub fn guard(binaries: &[&str]) -> bool {
    let res =
        require_root_and_netns().and_then(|()| binaries.iter().try_for_each(|b| require_binary(b)));
    match res {
        Ok(()) => true,
        Err(reason) => {
            if util::env_flag(REQUIRE_ENV) {
                panic!("interop prerequisite missing ({REQUIRE_ENV}=1): {reason}");
            }
            eprintln!("\n********** SKIPPED: {reason} (set {REQUIRE_ENV}=1 to make this fatal) **********\n");
            false
        }
    }
}

/// Deletes `flb<pid>n<k>` namespaces whose creating process is gone (after killing whatever
/// still runs in them). Returns how many were removed.
pub fn reap_stale_namespaces() -> usize {
    let Ok(out) = run_checked(Command::new("ip").args(["netns", "list"])) else {
        return 0;
    };
    let mut n = 0;
    for line in out.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = stale_owner_pid(name) else {
            continue;
        };
        if !util::pid_alive(pid) {
            teardown(name);
            n += 1;
        }
    }
    n
}

/// The creator pid encoded in one of our namespace names.
fn stale_owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("flb")?;
    let (pid, k) = rest.split_once('n')?;
    if pid.is_empty() || k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_prefixes() {
        assert_eq!(normalize_prefix("203.0.113.7").unwrap(), "203.0.113.7/32");
        assert_eq!(
            normalize_prefix("2001:0db8::0001/64").unwrap(),
            "2001:db8::1/64"
        );
        assert_eq!(normalize_prefix("2001:db8::1").unwrap(), "2001:db8::1/128");
        assert!(normalize_prefix("nonsense").is_none());
    }

    #[test]
    fn parses_ip_route_json() {
        // Captured from `ip -j route` / `ip -j -6 route` with FRR (zebra) routes, plus an ECMP
        // route in the `nexthops` form.
        let v4 = r#"[{"dst":"100.64.1.0/24","nhid":7,"gateway":"198.51.100.2","dev":"vA","protocol":"bgp","metric":20,"flags":[]},{"dst":"198.51.100.0/24","dev":"vA","protocol":"kernel","scope":"link","prefsrc":"198.51.100.1","flags":[]},{"dst":"203.0.113.9","protocol":"bgp","metric":20,"flags":[],"nexthops":[{"gateway":"198.51.100.2","dev":"a","weight":1,"flags":[]},{"gateway":"198.51.100.3","dev":"b","weight":1,"flags":[]}]},{"type":"unreachable","dst":"203.0.113.128/25","protocol":"bird","metric":32,"flags":[]}]"#;
        let r = parse_ip_routes(v4).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].dst, "100.64.1.0/24");
        assert_eq!(r[0].gateways, vec!["198.51.100.2"]);
        assert_eq!(r[0].protocol, "bgp");
        assert_eq!(r[1].protocol, "kernel");
        assert!(r[1].gateways.is_empty());
        assert_eq!(r[2].dst, "203.0.113.9/32");
        assert_eq!(r[2].gateways.len(), 2);
        assert_eq!(r[2].devs, vec!["a", "b"]);
        assert_eq!(r[3].kind.as_deref(), Some("unreachable"));
        let v6 = r#"[{"dst":"2001:db8:77::/48","nhid":8,"gateway":"fe80::6c8f:60ff:fe1c:522e","dev":"vA","protocol":"bgp","metric":20,"flags":[],"pref":"medium"}]"#;
        let r = parse_ip_routes(v6).unwrap();
        assert_eq!(r[0].gateways, vec!["fe80::6c8f:60ff:fe1c:522e"]);
        assert!(parse_ip_routes("").unwrap().is_empty());
    }

    #[test]
    fn binaries_and_guard() {
        assert!(require_binary("sh").is_ok());
        assert!(require_binary("/bin/sh").is_ok());
        assert!(require_binary("/etc/passwd").is_err()); // not executable
        assert!(require_binary("/nonexistent/flb-bin").is_err());
        if !util::env_flag(REQUIRE_ENV) {
            // Prints the SKIPPED banner and tells the caller to return.
            assert!(!guard(&["/nonexistent/flb-bin"]));
        }
    }

    #[test]
    fn stale_names() {
        assert_eq!(stale_owner_pid("flb1234n0"), Some(1234));
        assert_eq!(stale_owner_pid("flbx"), None);
        assert_eq!(stale_owner_pid("flb12n"), None);
        assert_eq!(stale_owner_pid("other"), None);
    }

    #[test]
    fn namespace_lifecycle_veth_nft() {
        if !guard(&[]) {
            return;
        }
        let pair = LinkedPair::new().unwrap();
        let name_a = pair.a.name().to_string();
        // sysctls land in the namespace only (checked through a process inside it).
        let fwd = || {
            pair.a
                .run(["cat", "/proc/sys/net/ipv4/ip_forward"])
                .unwrap()
        };
        assert_eq!(fwd().trim(), "0");
        pair.a.enable_forwarding().unwrap();
        assert_eq!(fwd().trim(), "1");
        assert_eq!(
            pair.a.sysctl_get("net.ipv6.conf.all.forwarding").unwrap(),
            "1"
        );
        assert_eq!(pair.b.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");
        assert_eq!(
            pair.a.sysctl_get("net.ipv6.conf.to_b.accept_dad").unwrap(),
            "0"
        );
        assert!(pair.a.sysctl(&[("net.no.such.key", "1")]).is_err());
        assert!(name_a.len() <= 15, "{name_a}");
        assert!(pair.a.ping(&pair.b_v4));
        assert!(pair.a.ping(&pair.b_v6));
        assert!(pair.a.route_present("198.51.100.0/24"));
        assert!(pair.a.route_present("2001:db8:100::/64"));
        assert!(!pair.a.route_present("203.0.113.0/24"));
        let connected = pair.a.kernel_routes(Some("kernel")).unwrap();
        assert!(
            connected.iter().any(|r| r.dst == "198.51.100.0/24"),
            "{connected:?}"
        );

        // A listener in b; nft in b drops its port, so a cannot connect; flush restores it.
        let listener = pair
            .b
            .in_netns(|| std::net::TcpListener::bind("198.51.100.2:8179"))
            .unwrap()
            .unwrap();
        assert!(pair.b.tcp_listening(8179));
        let connect = |ns: &Netns| {
            ns.in_netns(|| {
                let addr = "198.51.100.2:8179".parse().unwrap();
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok()
            })
            .unwrap()
        };
        assert!(connect(&pair.a));
        pair.b.nft_drop_tcp_port(8179).unwrap();
        pair.b.nft_drop_tcp_port(8180).unwrap();
        assert!(!connect(&pair.a));
        pair.b.nft_flush().unwrap();
        pair.b.nft_flush().unwrap();
        assert!(connect(&pair.a));
        drop(listener);

        // Link down removes the connected route.
        pair.a.set_link("to_b", false).unwrap();
        pair.a
            .wait_route("198.51.100.0/24", false, Duration::from_secs(5))
            .unwrap();
        pair.a.set_link("to_b", true).unwrap();
        pair.a.add_addr("lo", "203.0.113.77/32").unwrap();
        pair.a.add_addr("lo", "2001:db8:77::1/128").unwrap();
        assert!(pair.a.ping("203.0.113.77"));
        assert!(pair.a.ping("2001:db8:77::1"));

        // Drop kills leftover processes (the sleeper child is ours: reap it after).
        let mut sleeper = pair.a.spawn(["sleep", "60"]).unwrap();
        let pid = sleeper.id();
        // `ip netns exec` enters the namespace after the fork: the pid shows there a moment later.
        let pids = util::wait_until(
            "the sleeper in the namespace",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || Some(pair.a.pids()).filter(|p| !p.is_empty()),
        )
        .unwrap();
        assert_eq!(pids, vec![pid]);
        let (a, b) = (pair.a.clone(), pair.b.clone());
        drop(pair);
        drop(b);
        assert!(
            Path::new("/run/netns").join(&name_a).exists(),
            "clone keeps it alive"
        );
        drop(a);
        let _ = sleeper.wait();
        assert!(!util::pid_alive(pid));
        assert!(!Path::new("/run/netns").join(&name_a).exists());
    }
}
