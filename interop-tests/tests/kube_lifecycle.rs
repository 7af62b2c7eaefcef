//! The controller and the speaker as an operator runs them, against a real Kubernetes API server: the
//! shipped CRDs and `both` overlay, processes holding only their ServiceAccount tokens, two controller
//! replicas. Measures what the operator waits for: time to an IP, the leader's exit on SIGTERM and the
//! Lease handover, the takeover after kill -9, and how long a killed speaker looks healthy.
//!
//! Needs `KUBE_APISERVER`, like `kube_e2e.rs` (otherwise `SKIPPED: no KUBE_APISERVER`), and the `ferrolb`
//! binary built next to the test (`cargo test --workspace` builds it; alone: `cargo build -p
//! ferrolb-speaker --bin ferrolb` first). No BGP peer and no layer-2 advertisement are configured: nothing
//! is sent on the machine's network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_interop_tests::apiserver::ApiServer;
use ferrolb_interop_tests::frr::{Frr, FrrConfig, FrrNeighbor};
use ferrolb_interop_tests::netns::Netns;
use ferrolb_interop_tests::process::sibling_binary;
use ferrolb_interop_tests::{apiserver_guard, interop_guard};

const NS: &str = "ferrolb-system";

fn deploy(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn ferrolb() -> PathBuf {
    let bin = sibling_binary("ferrolb", None);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p ferrolb-speaker --bin ferrolb`",
        bin.display()
    );
    bin
}

/// One ferrolb process with a ServiceAccount kubeconfig; its output goes to a log file.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, kubeconfig: &Path, args: &[&str]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(ferrolb())
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", NS)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit; returns how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most `limit`; returns the value and the time taken.
fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kubectl step that must succeed (the failure carries both daemons' logs).
fn must(api: &ApiServer, args: &[&str]) -> String {
    api.kubectl_ok(args)
        .unwrap_or_else(|e| panic!("{e}\n{}", api.log_tails()))
}

/// `kubectl apply -f -` of `yaml`, which must succeed.
fn apply(api: &ApiServer, yaml: &str) {
    let out = api.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(out.success(), "{out}");
}

/// The product as shipped: the CRDs (established), then the `both` overlay.
fn install(api: &ApiServer) {
    must(api, &["apply", "-k", &deploy("crds")]);
    must(
        api,
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
    );
    must(api, &["apply", "-k", &deploy("overlays/both")]);
}

fn get(api: &ApiServer, args: &[&str]) -> String {
    let out = api.kubectl(args);
    if out.success() {
        out.stdout.trim().to_owned()
    } else {
        String::new()
    }
}

fn holder(api: &ApiServer) -> String {
    get(
        api,
        &[
            "get",
            "lease",
            "ferrolb-controller",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
}

fn create_service(api: &ApiServer, name: &str) -> Instant {
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    );
    apply(api, &yaml);
    Instant::now()
}

fn ingress(api: &ApiServer, name: &str) -> Option<String> {
    let ip = get(
        api,
        &[
            "get",
            "service",
            name,
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
    );
    (!ip.is_empty()).then_some(ip)
}

fn ready(api: &ApiServer, node: &str) -> (String, String) {
    let q = |path: &str| {
        get(
            api,
            &[
                "get",
                "speakerstate",
                node,
                "-n",
                NS,
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
    };
    (
        q("{.status.conditions[?(@.type==\"Ready\")].status}"),
        q("{.status.conditions[?(@.type==\"Ready\")].reason}"),
    )
}

#[test]
fn controller_and_speaker_lifecycle_on_a_real_apiserver() {
    let bin = apiserver_guard!();
    let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    install(&api);
    let pool = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
                metadata: {name: e2e, namespace: ferrolb-system}\nspec: {addresses: [203.0.113.0/28]}\n";
    apply(&api, pool);
    must(&api, &["create", "namespace", "shop"]);
    let controller_config = api
        .kubeconfig_for_service_account(NS, "ferrolb-controller")
        .unwrap();
    let speaker_config = api
        .kubeconfig_for_service_account(NS, "ferrolb-speaker")
        .unwrap();
    let dir = api.dir().to_owned();
    let controller = |name: &str| {
        Proc::start(
            &dir,
            name,
            &controller_config,
            &[
                "controller",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
        )
    };
    let mut replicas = vec![controller("controller-a"), controller("controller-b")];

    // 1. A new Service gets its IP; the annotation written with the status is kept by the API server.
    let (first, _) = until("a Lease holder", Duration::from_secs(30), || {
        Some(holder(&api)).filter(|h| !h.is_empty())
    });
    let created = create_service(&api, "web");
    let (ip, _) = until("web's IP", Duration::from_secs(30), || ingress(&api, "web"));
    let to_ip = created.elapsed();
    let annotation = get(
        &api,
        &[
            "get",
            "service",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.annotations.ferrolb\\.io/ip-allocated-from-pool}",
        ],
    );
    assert_eq!(
        annotation, "e2e",
        "the annotation goes with the status write"
    );
    eprintln!("first leader {first}; web got {ip} {to_ip:?} after creation");

    // 2. SIGTERM of the leader: it exits, releasing the Lease, and the standby leads.
    let leader_index = replicas.iter().position(|p| p.name == first).unwrap();
    let mut leader = replicas.remove(leader_index);
    let stop = Instant::now();
    leader.signal(libc::SIGTERM);
    let exit = leader.wait_exit(Duration::from_secs(10));
    let (second, _) = until("the standby leads", Duration::from_secs(30), || {
        Some(holder(&api)).filter(|h| !h.is_empty() && *h != first)
    });
    let handover = stop.elapsed();
    eprintln!("SIGTERM: {first} exited in {exit:?}; {second} holds the Lease {handover:?} after the signal");
    assert!(
        leader.log().contains("released the Lease"),
        "{}",
        leader.log()
    );
    let created = create_service(&api, "web2");
    until("web2's IP", Duration::from_secs(30), || {
        ingress(&api, "web2")
    });
    eprintln!(
        "web2 got its IP {:?} after creation, under {second}",
        created.elapsed()
    );

    // 3. kill -9 of the new leader (the stopped replica back as standby): takeover once the Lease expires.
    replicas.push(controller(&first));
    std::thread::sleep(Duration::from_secs(2));
    let new_index = replicas.iter().position(|p| p.name == second).unwrap();
    let mut killed = replicas.remove(new_index);
    let kill = Instant::now();
    killed.signal(libc::SIGKILL);
    killed.wait_exit(Duration::from_secs(5));
    let (third, takeover) = until("takeover after kill -9", Duration::from_secs(40), || {
        Some(holder(&api)).filter(|h| *h == first)
    });
    let _ = kill;
    eprintln!("kill -9 of {second}: {third} leads {takeover:?} later (Lease 15 s, retry 1 s)");
    let created = create_service(&api, "web3");
    until("web3's IP", Duration::from_secs(30), || {
        ingress(&api, "web3")
    });
    eprintln!("web3 got its IP {:?} after creation", created.elapsed());

    // 4. A speaker: Ready while it runs, Stopped on SIGTERM, HeartbeatStale after kill -9.
    let speaker = || {
        Proc::start(
            &dir,
            "speaker-node-a",
            &speaker_config,
            &[
                "speaker",
                "--node-name",
                "node-a",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
        )
    };
    let mut s = speaker();
    until("the speaker reports Ready", Duration::from_secs(30), || {
        (ready(&api, "node-a").0 == "True").then_some(())
    });
    let term = Instant::now();
    s.signal(libc::SIGTERM);
    s.wait_exit(Duration::from_secs(10));
    until("Stopped", Duration::from_secs(10), || {
        (ready(&api, "node-a") == ("False".into(), "Stopped".into())).then_some(())
    });
    eprintln!(
        "speaker SIGTERM: Ready=False (Stopped) {:?} after the signal",
        term.elapsed()
    );
    let mut s = speaker();
    until(
        "the speaker reports Ready again",
        Duration::from_secs(30),
        || (ready(&api, "node-a").0 == "True").then_some(()),
    );
    let kill = Instant::now();
    s.signal(libc::SIGKILL);
    s.wait_exit(Duration::from_secs(5));
    let (_, stale) = until("HeartbeatStale", Duration::from_secs(90), || {
        (ready(&api, "node-a") == ("False".into(), "HeartbeatStale".into())).then_some(())
    });
    let _ = kill;
    eprintln!("speaker kill -9: Ready=False (HeartbeatStale) {stale:?} after the kill");

    // 5. Least privilege held: nothing was forbidden, and nothing was warned about.
    let mut logs = String::new();
    for p in replicas.iter().chain([&leader, &killed, &s]) {
        logs.push_str(&p.log());
    }
    let forbidden: Vec<&str> = logs
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("forbidden") || l.contains("(403)") || l.contains("code: 403")
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden requests:\n{}",
        forbidden.join("\n")
    );
    let warnings = get(
        &api,
        &[
            "get",
            "events",
            "-n",
            "shop",
            "--field-selector",
            "type=Warning",
            "-o",
            "name",
        ],
    );
    assert!(
        warnings.is_empty(),
        "warning events on the Services: {warnings}"
    );
    let allocated = get(
        &api,
        &[
            "get",
            "events",
            "-n",
            "shop",
            "--field-selector",
            "reason=IPAllocated",
            "-o",
            "name",
        ],
    );
    eprintln!(
        "IPAllocated events for 3 Services across two leader changes: {}",
        allocated.lines().count()
    );
}

/// Two controllers, one for Services without a class and one for class `internal`, share one pool of four
/// addresses on a real API server: Services of both classes, created in quick succession, get four
/// different IPs; each controller holds its own Lease; only the classless one writes the pool status,
/// counting both classes.
#[test]
fn two_classes_never_hand_out_one_ip_twice_on_a_real_apiserver() {
    let bin = apiserver_guard!();
    let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    install(&api);
    // The class controller's Lease, granted as deploy/README.md says.
    apply(
        &api, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
         metadata: {name: ferrolb-controller-internal, namespace: ferrolb-system}\n\
         rules: [{apiGroups: [coordination.k8s.io], resources: [leases], \
         resourceNames: [ferrolb-controller-internal], verbs: [get, update]}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {name: ferrolb-controller-internal, namespace: ferrolb-system}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ferrolb-controller-internal}\n\
         subjects: [{kind: ServiceAccount, name: ferrolb-controller, namespace: ferrolb-system}]\n",
    );
    apply(
        &api,
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
         metadata: {name: small, namespace: ferrolb-system}\nspec: {addresses: [203.0.113.0/30]}\n",
    );
    must(&api, &["create", "namespace", "shop"]);
    let config = api
        .kubeconfig_for_service_account(NS, "ferrolb-controller")
        .unwrap();
    let dir = api.dir().to_owned();
    let common = [
        "controller",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    let default = Proc::start(&dir, "controller-default", &config, &common);
    let mut with_class = common.to_vec();
    with_class.extend(["--class", "internal"]);
    let internal = Proc::start(&dir, "controller-internal", &config, &with_class);
    for lease in ["ferrolb-controller", "ferrolb-controller-internal"] {
        until(lease, Duration::from_secs(30), || {
            let h = get(
                &api,
                &[
                    "get",
                    "lease",
                    lease,
                    "-n",
                    NS,
                    "-o",
                    "jsonpath={.spec.holderIdentity}",
                ],
            );
            (!h.is_empty()).then_some(())
        });
    }
    // Four Services, alternating classes, in one apply: both controllers allocate at the same time.
    let mut yaml = String::new();
    for (i, class) in ["", "internal", "", "internal"].iter().enumerate() {
        let class = if class.is_empty() {
            String::new()
        } else {
            format!(", loadBalancerClass: {class}")
        };
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: shop}}\n\
             spec: {{type: LoadBalancer, ports: [{{port: 80}}]{class}}}\n---\n"
        ));
    }
    apply(&api, &yaml);
    let (_, took) = until("four IPs", Duration::from_secs(30), || {
        let ips: Vec<String> = (0..4)
            .filter_map(|i| ingress(&api, &format!("svc-{i}")))
            .collect();
        (ips.len() == 4).then_some(ips)
    });
    // Let any contest settle, then read again.
    std::thread::sleep(Duration::from_secs(2));
    let ips: Vec<String> = (0..4)
        .map(|i| ingress(&api, &format!("svc-{i}")).unwrap_or_default())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ips.iter().collect();
    eprintln!("two classes: {ips:?} within {took:?}");
    assert_eq!(distinct.len(), 4, "one IP handed out twice: {ips:?}");
    let (assigned, _) = until(
        "pool status counting both classes",
        Duration::from_secs(10),
        || {
            let a = get(
                &api,
                &[
                    "get",
                    "ipaddresspool",
                    "small",
                    "-n",
                    NS,
                    "-o",
                    "jsonpath={.status.assignedIPv4}",
                ],
            );
            (a == "4").then_some(a)
        },
    );
    assert_eq!(assigned, "4");
    let managers = get(
        &api,
        &[
            "get",
            "ipaddresspool",
            "small",
            "-n",
            NS,
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    eprintln!("pool status managers: {managers}");
    for p in [&default, &internal] {
        let log = p.log().to_lowercase();
        assert!(!log.contains("forbidden"), "{}:\n{log}", p.name);
    }
}

/// A veth from this machine's own namespace to a test namespace, removed on drop. The speaker runs next to
/// the API server (on 127.0.0.1), so its router is reached over this link; its addresses exist only on the
/// two ends.
struct HostLink(&'static str);

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

const HOST_IF: &str = "flbk8s0";
const HOST_V4: &str = "198.51.100.206";
const TOR_V4: &str = "198.51.100.205";

/// A Service of `shop` and an EndpointSlice with one ready endpoint on node-a.
fn create_service_with_endpoint(api: &ApiServer, name: &str) -> Instant {
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\n\
         endpoints: [{{addresses: [10.244.0.5], nodeName: node-a, conditions: {{ready: true}}}}]\n\
         ports: [{{port: 80, protocol: TCP}}]\n"
    );
    apply(api, &yaml);
    Instant::now()
}

/// Routes stay while the API server is down for 15 s; a Service created after it returns gets its IP,
/// and the router its route, within seconds: watches reconnect and relist at once instead of backing off.
#[test]
fn after_an_api_server_outage_a_new_service_gets_its_ip_and_route_at_once() {
    interop_guard!("/usr/lib/frr/bgpd");
    let bin = apiserver_guard!();
    // The router, in its own namespace, linked to this one.
    let tor = Netns::new().unwrap();
    let link = HostLink(HOST_IF);
    let status = Command::new("ip")
        .args([
            "link",
            "add",
            HOST_IF,
            "type",
            "veth",
            "peer",
            "name",
            "host",
            "netns",
            tor.name(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let ok_ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    ok_ip(&["addr", "add", &format!("{HOST_V4}/30"), "dev", HOST_IF]);
    ok_ip(&["link", "set", HOST_IF, "up"]);
    tor.add_addr("host", &format!("{TOR_V4}/30")).unwrap();
    tor.set_link("host", true).unwrap();
    tor.wait_ping(HOST_V4, None, Duration::from_secs(5))
        .unwrap();
    let frr = Frr::start(
        &tor,
        &FrrConfig::new(64500, TOR_V4).neighbor(
            FrrNeighbor::new(HOST_V4, 64512)
                .ipv4()
                .connect_retry(Some(1)),
        ),
    )
    .expect("FRR starts");

    let mut api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    install(&api);
    let config = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
         metadata: {{name: e2e, namespace: ferrolb-system}}\nspec: {{addresses: [203.0.113.0/28]}}\n---\n\
         apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\n\
         metadata: {{name: tor, namespace: ferrolb-system}}\n\
         spec: {{myASN: 64512, peerASN: 64500, peerAddress: {TOR_V4}, holdTime: 9s, connectTime: 1s}}\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\n\
         metadata: {{name: all, namespace: ferrolb-system}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: node-a}}\n"
    );
    apply(&api, &config);
    must(&api, &["create", "namespace", "shop"]);
    let dir = api.dir().to_owned();
    let controller_config = api
        .kubeconfig_for_service_account(NS, "ferrolb-controller")
        .unwrap();
    let speaker_config = api
        .kubeconfig_for_service_account(NS, "ferrolb-speaker")
        .unwrap();
    let controller = Proc::start(
        &dir,
        "controller",
        &controller_config,
        &[
            "controller",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
    );
    let speaker = Proc::start(
        &dir,
        "speaker",
        &speaker_config,
        &[
            "speaker",
            "--node-name",
            "node-a",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
    );

    create_service_with_endpoint(&api, "web");
    let (ip, _) = until("web's IP", Duration::from_secs(30), || ingress(&api, "web"));
    frr.wait_route(&format!("{ip}/32"), true, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));

    // Least privilege: nothing forbidden before the outage. (Right after it, a restarted API server answers
    // 403 until its RBAC caches are filled; the watches retry those quickly.)
    for p in [&controller, &speaker] {
        let log = p.log().to_lowercase();
        assert!(!log.contains("forbidden"), "{}:\n{log}", p.name);
    }
    // 15 s without an API server: the route stays.
    let back = api
        .restart_apiserver(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !frr.route(&format!("{ip}/32")).unwrap().is_empty(),
        "the route was withdrawn during the outage"
    );
    eprintln!("API server back {:?} ago", back.elapsed());
    let created = create_service_with_endpoint(&api, "web2");
    let (ip2, _) = until("web2's IP", Duration::from_secs(60), || {
        ingress(&api, "web2")
    });
    let to_ip = created.elapsed();
    frr.wait_route(&format!("{ip2}/32"), true, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    let to_route = created.elapsed();
    eprintln!(
        "after a 15 s API server outage: web2 got {ip2} {to_ip:?} after creation, its route at FRR {to_route:?} after creation"
    );
    if std::env::var_os("FERROLB_E2E_LOGS").is_some() {
        eprintln!(
            "--- controller\n{}\n--- speaker\n{}",
            controller.log(),
            speaker.log()
        );
    }
    drop((controller, speaker, frr, link));
}

/// `GET path` on 127.0.0.1 `addr`, the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A kind whose CRD is missing stalls nothing: without the Community CRD the controller still allocates,
/// `/readyz` says which kind is missing and why, and the metric shows it.
#[test]
fn a_missing_crd_degrades_one_kind_not_the_controller() {
    let bin = apiserver_guard!();
    let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    install(&api);
    must(&api, &["delete", "crd", "communities.ferrolb.io"]);
    // The API server stops serving the kind a moment after the CRD is gone: wait until it answers 404
    // several times in a row.
    let mut gone_in_a_row = 0;
    until(
        "communities no longer served",
        Duration::from_secs(30),
        || {
            let out = api.kubectl(&[
                "get",
                "--raw",
                "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/communities",
            ]);
            gone_in_a_row = if out.success() { 0 } else { gone_in_a_row + 1 };
            (gone_in_a_row >= 5).then_some(())
        },
    );
    let pool = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
                metadata: {name: e2e, namespace: ferrolb-system}\nspec: {addresses: [203.0.113.0/28]}\n";
    apply(&api, pool);
    must(&api, &["create", "namespace", "shop"]);
    let config = api
        .kubeconfig_for_service_account(NS, "ferrolb-controller")
        .unwrap();
    let controller = Proc::start(
        api.dir(),
        "controller",
        &config,
        &[
            "controller",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--no-leader-election",
        ],
    );
    let created = create_service(&api, "web");
    until(
        "web's IP without the Community CRD",
        Duration::from_secs(30),
        || ingress(&api, "web"),
    );
    eprintln!(
        "without the Community CRD: web got its IP {:?} after creation",
        created.elapsed()
    );
    let (addr, _) = until(
        "the metrics address in the log",
        Duration::from_secs(10),
        || {
            controller.log().lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some(v.get("metrics_addr")?.as_str()?.to_owned())
            })
        },
    );
    let readyz = http_get(&addr, "/readyz");
    eprintln!("{readyz}");
    assert!(
        readyz.starts_with("HTTP/1.0 200") || readyz.starts_with("HTTP/1.1 200"),
        "{readyz}"
    );
    assert!(
        readyz.contains("degraded: Community unavailable: not found (404)"),
        "{readyz}"
    );
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("ferrolb_watch_unavailable{kind=\"Community\"} 1"),
        "{metrics}"
    );
    let warnings = controller
        .log()
        .lines()
        .filter(|l| l.contains("cannot list this kind"))
        .count();
    assert_eq!(
        warnings,
        1,
        "logged once, not once a second:\n{}",
        controller.log()
    );
}
