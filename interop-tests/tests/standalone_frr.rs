//! The whole speaker pipeline in standalone mode — manifests → allocation → decision → BGP — on two
//! nodes peering with a real FRR top-of-rack router, in network namespaces:
//!
//! ```text
//!   node1 (198.51.100.2, 2001:db8:11::2) ──┐
//!                                          tor (FRR, AS 64500, multipath) ── client (198.51.100.66-.73)
//!   node2 (198.51.100.6, 2001:db8:12::2) ──┘
//! ```
//!
//! Each node runs `speaker-standalone` (the code of `ferrolb standalone`) on the same manifest directory;
//! a Service IP lives on each node's `lo`, as kube-proxy would make it answer.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use ferrolb_interop_tests::frr::{Frr, FrrConfig, FrrNeighbor, BGPD, ZEBRA};
use ferrolb_interop_tests::manifests::{write_atomically, TestService};
use ferrolb_interop_tests::{interop_guard, veth, Afi, Netns};

const SETTLE: Duration = Duration::from_secs(30);
const VIP: &str = "203.0.113.10";
const VIP6: &str = "2001:db8:1::10";

struct Lab {
    tor: Netns,
    nodes: Vec<Netns>,
    client: Netns,
    frr: Frr,
    manifests: tempfile::TempDir,
    logs: tempfile::TempDir,
    speakers: Vec<Option<Child>>,
}

/// The node-side addresses: IPv4 and IPv6 of node `i` (0-based) and of the router facing it.
fn link(i: usize) -> (String, String, String, String) {
    let base = 4 * i as u8;
    (
        format!("198.51.100.{}", base + 2),
        format!("2001:db8:1{}::2", i + 1),
        format!("198.51.100.{}", base + 1),
        format!("2001:db8:1{}::1", i + 1),
    )
}

const CLIENT_SOURCES: u8 = 8;

impl Lab {
    fn new() -> Lab {
        let tor = Netns::new().unwrap();
        let client = Netns::new().unwrap();
        tor.enable_forwarding().unwrap();
        let mut nodes = Vec::new();
        let mut frr_cfg = FrrConfig::new(64500, "198.51.100.1")
            .with_zebra()
            .maximum_paths(4);
        for i in 0..2 {
            let node = Netns::new().unwrap();
            let (v4, v6, r4, r6) = link(i);
            veth(
                &tor,
                &format!("n{}", i + 1),
                &[&format!("{r4}/30"), &format!("{r6}/64")],
                &node,
                "tor",
                &[&format!("{v4}/30"), &format!("{v6}/64")],
            )
            .unwrap();
            node.ip(&["route", "add", "default", "via", &r4]).unwrap();
            node.ip(&["-6", "route", "add", "default", "via", &r6])
                .unwrap();
            // What kube-proxy does for a LoadBalancer IP: the node accepts traffic to it.
            node.add_addr("lo", &format!("{VIP}/32")).unwrap();
            node.add_addr("lo", &format!("{VIP6}/128")).unwrap();
            frr_cfg = frr_cfg
                .neighbor(FrrNeighbor::new(&v4, 64512).ipv4().connect_retry(Some(1)))
                .neighbor(FrrNeighbor::new(&v6, 64512).ipv6().connect_retry(Some(1)));
            nodes.push(node);
        }
        let mut client_addrs: Vec<String> = Vec::new();
        for k in 0..CLIENT_SOURCES {
            client_addrs.push(format!("198.51.100.{}/26", 66 + k));
        }
        let refs: Vec<&str> = client_addrs.iter().map(String::as_str).collect();
        veth(&tor, "cl", &["198.51.100.65/26"], &client, "tor", &refs).unwrap();
        client
            .ip(&["route", "add", "default", "via", "198.51.100.65"])
            .unwrap();
        let frr = Frr::start(&tor, &frr_cfg).expect("FRR starts");
        let manifests = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        write(manifests.path(), "config.yaml", &config_yaml());
        write(manifests.path(), "nodes.yaml", NODES);
        Lab {
            tor,
            nodes,
            client,
            frr,
            manifests,
            logs,
            speakers: vec![None, None],
        }
    }

    fn start_speaker(&mut self, i: usize) {
        let log = self.logs.path().join(format!("node{}.log", i + 1));
        let child = self.nodes[i]
            .spawn_logged(
                [
                    env!("CARGO_BIN_EXE_speaker-standalone"),
                    "--node-name",
                    &format!("node{}", i + 1),
                    "--manifests",
                    self.manifests.path().to_str().unwrap(),
                    "--poll-ms",
                    "100",
                ],
                &log,
            )
            .unwrap();
        self.speakers[i] = Some(child);
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("node{}.log", i + 1)))
            .unwrap_or_default()
    }

    /// Next hops FRR has for `prefix` (every path), or panics with the logs after `SETTLE`.
    fn wait_next_hops(&self, prefix: &str, want: &[&str]) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let result = self
            .frr
            .wait_for(&format!("{prefix} via exactly {want:?}"), SETTLE, |f| {
                let hops: BTreeSet<String> = f
                    .route(prefix)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| p.valid)
                    .map(|p| p.next_hop)
                    .collect();
                hops == want
            });
        if let Err(e) = result {
            panic!(
                "{e}\n--- node1 ---\n{}\n--- node2 ---\n{}",
                self.log(0),
                self.log(1)
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.speakers.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = (&self.tor, &self.client);
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    write_atomically(dir, name, text).unwrap();
}

fn config_yaml() -> String {
    config_yaml_with("64512:100", None)
}

/// The configuration with the advertisement's community and, optionally, node2's IPv4 session hold time.
fn config_yaml_with(community: &str, node2_v4_hold: Option<&str>) -> String {
    let mut out = String::from(
        r#"apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: ferrolb-system}
spec:
  addresses: ["203.0.113.10-203.0.113.19", "2001:db8:1::10-2001:db8:1::1f"]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: public, namespace: ferrolb-system}
spec: {ipAddressPools: [public], communities: ["COMMUNITY"]}
"#,
    )
    .replace("COMMUNITY", community);
    for i in 0..2 {
        let (_, _, r4, r6) = link(i);
        for (family, addr) in [("v4", r4), ("v6", r6)] {
            let hold = match node2_v4_hold {
                Some(h) if i == 1 && family == "v4" => format!("  holdTime: {h}\n"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: tor-{family}-node{n}, namespace: ferrolb-system}}\nspec:\n  myASN: 64512\n  peerASN: 64500\n  peerAddress: \"{addr}\"\n  connectTime: 1s\n{hold}  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: node{n}}}}}]\n",
                n = i + 1
            ));
        }
    }
    out
}

const NODES: &str = r#"apiVersion: v1
kind: Node
metadata: {name: node1, labels: {kubernetes.io/hostname: node1}}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {kubernetes.io/hostname: node2}}
"#;

/// A LoadBalancer Service and its EndpointSlice with one endpoint on each listed node. The creation
/// time orders allocation (older first), as a cluster's history would: web, then db, then web6.
fn service_yaml(name: &str, local: bool, family: &str, cluster_ip: &str, on: &[&str]) -> String {
    let created = match name {
        "web" => "2026-01-01T00:00:01Z",
        "db" => "2026-01-01T00:00:02Z",
        _ => "2026-01-01T00:00:03Z",
    };
    TestService {
        family,
        local,
        created: Some(created),
        endpoints_on: on,
        ..TestService::new("shop", name, cluster_ip)
    }
    .yaml()
}

/// ICMP echo requests a namespace has answered so far (its own /proc/net/snmp).
fn echoes_answered(ns: &Netns) -> u64 {
    let snmp = ns.run(["cat", "/proc/net/snmp"]).unwrap();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let i = header.iter().position(|h| *h == "InEchos").unwrap();
    values[i].parse().unwrap()
}

#[test]
fn services_reach_frr_with_ecmp_follow_their_endpoints_and_survive_bad_edits() {
    interop_guard!(BGPD, ZEBRA);
    let mut lab = Lab::new();
    let (n1_v4, n1_v6, _, _) = link(0);
    let (n2_v4, n2_v6, _, _) = link(1);
    lab.start_speaker(0);
    lab.start_speaker(1);
    for addr in [&n1_v4, &n2_v4, &n1_v6, &n2_v6] {
        lab.frr.wait_established(addr, SETTLE).unwrap();
    }

    // A Service appears with endpoints on both nodes: its /32 reaches FRR from both, as ECMP.
    write(
        lab.manifests.path(),
        "web.yaml",
        &service_yaml("web", false, "IPv4", "10.96.0.10", &["node1", "node2"]),
    );
    lab.wait_next_hops("203.0.113.10/32", &[&n1_v4, &n2_v4]);
    let best = lab.frr.wait_best("203.0.113.10/32", SETTLE).unwrap();
    assert_eq!(best.communities, ["64512:100"]);
    assert_eq!(best.as_path_list, [64512]);
    lab.tor.wait_route("203.0.113.10/32", true, SETTLE).unwrap();
    let kernel = lab.tor.kernel_route("203.0.113.10/32").unwrap().unwrap();
    let gateways: BTreeSet<&str> = kernel.gateways.iter().map(String::as_str).collect();
    assert_eq!(
        gateways,
        BTreeSet::from([n1_v4.as_str(), n2_v4.as_str()]),
        "the router's kernel has both next hops: {kernel:?}"
    );

    // Traffic from the client through the router reaches both nodes (ECMP hashes the sources).
    let before = [
        echoes_answered(&lab.nodes[0]),
        echoes_answered(&lab.nodes[1]),
    ];
    for k in 0..CLIENT_SOURCES {
        let src = format!("198.51.100.{}", 66 + k);
        lab.client
            .wait_ping(VIP, Some(&src), Duration::from_secs(5))
            .unwrap();
    }
    let after = [
        echoes_answered(&lab.nodes[0]),
        echoes_answered(&lab.nodes[1]),
    ];
    println!(
        "echoes answered: node1 {} node2 {}",
        after[0] - before[0],
        after[1] - before[1]
    );
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "both nodes answered: {before:?} -> {after:?}"
    );

    // A new community re-advertises over the running sessions; no session is reset.
    let established = |addr: &str| {
        lab.frr
            .summary()
            .unwrap()
            .peer(addr)
            .unwrap()
            .connections_established
    };
    let before = (established(&n1_v4), established(&n2_v4));
    write(
        lab.manifests.path(),
        "config.yaml",
        &config_yaml_with("64512:200", None),
    );
    lab.frr
        .wait_for("the new community at FRR", SETTLE, |f| {
            f.route("203.0.113.10/32")
                .unwrap_or_default()
                .iter()
                .filter(|p| p.communities == ["64512:200"])
                .count()
                == 2
        })
        .unwrap();
    assert_eq!(
        (established(&n1_v4), established(&n2_v4)),
        before,
        "no session was reset"
    );

    // node2's IPv4 session parameters change: that session alone is reset (Cease, then a new one).
    write(
        lab.manifests.path(),
        "config.yaml",
        &config_yaml_with("64512:200", Some("30s")),
    );
    lab.frr
        .wait_for("node2's IPv4 session re-established", SETTLE, |_| {
            established(&n2_v4) > before.1
                && lab.frr.peer_state(&n2_v4).as_deref() == Some("Established")
        })
        .unwrap();
    assert_eq!(established(&n1_v4), before.0, "node1's session untouched");
    lab.wait_next_hops("203.0.113.10/32", &[&n1_v4, &n2_v4]);

    // externalTrafficPolicy Local: the route follows the endpoint from node1 to node2.
    write(
        lab.manifests.path(),
        "db.yaml",
        &service_yaml("db", true, "IPv4", "10.96.0.11", &["node1"]),
    );
    lab.wait_next_hops("203.0.113.11/32", &[&n1_v4]);
    write(
        lab.manifests.path(),
        "db.yaml",
        &service_yaml("db", true, "IPv4", "10.96.0.11", &["node2"]),
    );
    lab.wait_next_hops("203.0.113.11/32", &[&n2_v4]);

    // An IPv6 Service: a /128 over the IPv6 sessions, each node's IPv6 address as next hop.
    write(
        lab.manifests.path(),
        "web6.yaml",
        &service_yaml("web6", false, "IPv6", "fd00:96::10", &["node1", "node2"]),
    );
    lab.wait_next_hops("2001:db8:1::10/128", &[&n1_v6, &n2_v6]);
    assert_eq!(
        lab.frr.route_count(Afi::Ipv6).unwrap(),
        1,
        "IPv6 carries only the /128"
    );

    // A broken edit is reported and withdraws nothing.
    write(
        lab.manifests.path(),
        "web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    for prefix in ["203.0.113.10/32", "203.0.113.11/32", "2001:db8:1::10/128"] {
        assert!(
            !lab.frr.route(prefix).unwrap().is_empty(),
            "{prefix} withdrawn after an invalid edit"
        );
    }
    assert!(
        lab.log(0).contains("manifests invalid"),
        "the invalid edit is reported: {}",
        lab.log(0)
    );
    // Fixed again: nothing moved.
    write(
        lab.manifests.path(),
        "web.yaml",
        &service_yaml("web", false, "IPv4", "10.96.0.10", &["node1", "node2"]),
    );
    lab.wait_next_hops("203.0.113.10/32", &[&n1_v4, &n2_v4]);

    // Deleting a Service withdraws its route everywhere. (Deleting the youngest: removing an older one
    // would let a younger Service take its lower address — see the standalone notes in the README.)
    std::fs::remove_file(lab.manifests.path().join("db.yaml")).unwrap();
    lab.frr
        .wait_route("203.0.113.11/32", false, SETTLE)
        .unwrap();
    lab.wait_next_hops("203.0.113.10/32", &[&n1_v4, &n2_v4]);

    // SIGTERM: node2 withdraws everything at once (Cease), node1 keeps announcing.
    let mut child = lab.speakers[1].take().unwrap();
    let stopping = std::time::Instant::now();
    unsafe_free_sigterm(&child);
    let status = child.wait().unwrap();
    println!("SIGTERM to exit: {:?}", stopping.elapsed());
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status:?}\n{}",
        lab.log(1)
    );
    lab.wait_next_hops("2001:db8:1::10/128", &[&n1_v6]);
    assert!(lab.log(1).contains("withdrawing everything"));
}

/// `kill -TERM pid`, without unsafe code in the test.
fn unsafe_free_sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
