//! The lab: ferrolb working end to end on one Linux box, in network namespaces.
//!
//! ```text
//!                    ┌──────── tor (FRR, AS 64500, ECMP) ────────┐
//!   client ── cl ────┤ n1 ─ node1   n2 ─ node2   n3 ─ node3  (BGP)│
//!   198.51.100.66-73 │ br0 203.0.113.1/24 ─ lan of every node (L2)│
//!                    └────────────────────────────────────────────┘
//! ```
//!
//! Each node runs `ferrolb standalone` on the same manifests (two pools: `bgp` announced over BGP,
//! `lan` answered on layer 2; the speakers track each other with the memberlist) and a small HTTP
//! backend saying which node it is. The lab shows the BGP sessions, the router's ECMP route, requests
//! answered by several nodes, then kills one node's speaker (the layer-2 owner) and times how long the
//! router takes to drop its BGP next hop and to see the layer-2 VIP at another node's MAC.
//!
//! Everything lives in namespaces this process creates and removes; nothing outside them is touched.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::frr::{Frr, FrrConfig, FrrNeighbor};
use crate::l2::{mac_of, neighbour_mac};
use crate::manifests::TestService;
use crate::netns::{veth, Netns};
use crate::util::{wait_until, Error, Result};

pub const NODES: usize = 3;
pub const BGP_VIP: &str = "198.51.100.200";
pub const L2_VIP: &str = "203.0.113.200";
const CLIENT_SOURCES: u8 = 8;
const SETTLE: Duration = Duration::from_secs(60);

/// Node `i`'s (0-based) addresses: BGP link, router side of it, and LAN.
fn node_addrs(i: usize) -> (String, String, String) {
    let base = 4 * i as u8;
    (
        format!("198.51.100.{}", base + 2),
        format!("198.51.100.{}", base + 1),
        format!("203.0.113.{}", 11 + i),
    )
}

fn node_name(i: usize) -> String {
    format!("node{}", i + 1)
}

/// What the lab measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub ecmp_next_hops: Vec<String>,
    pub backends: BTreeSet<String>,
    pub l2_owner: String,
    pub killed: String,
    pub bgp_converged: Duration,
    pub l2_moved_to: String,
    pub l2_moved: Duration,
}

pub struct Lab {
    tor: Netns,
    client: Netns,
    nodes: Vec<Netns>,
    frr: Frr,
    dir: tempfile::TempDir,
    speakers: Vec<Option<Child>>,
    backends: Vec<Child>,
    lab_bin: PathBuf,
    speaker_bin: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self
            .speakers
            .iter_mut()
            .flatten()
            .chain(self.backends.iter_mut())
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = (&self.tor, &self.client);
    }
}

/// Prints a step and flushes (the lab is read as it runs).
pub fn say(text: &str) {
    println!("{text}");
    let _ = std::io::stdout().flush();
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

impl Lab {
    /// Builds the topology and starts FRR, the backends and the speakers. `speaker_bin` runs as
    /// `<bin> --node-name … --manifests …` (`ferrolb standalone`'s arguments, or `speaker-standalone`).
    pub fn up(lab_bin: &Path, speaker_bin: &Path, speaker_prefix: &[&str]) -> Result<Lab> {
        let tor = Netns::new()?;
        let client = Netns::new()?;
        tor.enable_forwarding()?;
        tor.sysctl(&[
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ])?;
        tor.ip(&["link", "add", "br0", "type", "bridge"])?;
        tor.add_addr("br0", "203.0.113.1/24")?;
        tor.set_link("br0", true)?;
        let mut frr_cfg = FrrConfig::new(64500, "198.51.100.1")
            .with_zebra()
            .maximum_paths(8);
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let node = Netns::new()?;
            let (v4, r4, lan) = node_addrs(i);
            veth(
                &tor,
                &format!("n{}", i + 1),
                &[&format!("{r4}/30")],
                &node,
                "tor",
                &[&format!("{v4}/30")],
            )?;
            veth(
                &tor,
                &format!("lan{}", i + 1),
                &[],
                &node,
                "lan",
                &[&format!("{lan}/24")],
            )?;
            tor.ip(&["link", "set", &format!("lan{}", i + 1), "master", "br0"])?;
            node.ip(&["route", "add", "default", "via", &r4])?;
            // As kube-proxy makes a node accept traffic for a LoadBalancer IP; with strictARP-like
            // settings only ferrolb answers ARP for the layer-2 VIP.
            node.add_addr("lo", &format!("{BGP_VIP}/32"))?;
            node.add_addr("lo", &format!("{L2_VIP}/32"))?;
            node.sysctl(&[
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.all.rp_filter", "0"),
            ])?;
            frr_cfg = frr_cfg.neighbor(
                FrrNeighbor::new(&v4, 64512)
                    .ipv4()
                    .connect_retry(Some(1))
                    .timers(1, 3),
            );
            nodes.push(node);
        }
        let sources: Vec<String> = (0..CLIENT_SOURCES)
            .map(|k| format!("198.51.100.{}/26", 66 + k))
            .collect();
        let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        veth(&tor, "cl", &["198.51.100.65/26"], &client, "tor", &refs)?;
        client.ip(&["route", "add", "default", "via", "198.51.100.65"])?;
        let frr = Frr::start(&tor, &frr_cfg)?;

        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("manifests"))?;
        std::fs::write(dir.path().join("manifests/lab.yaml"), manifests())?;
        std::fs::write(dir.path().join("memberlist-secret"), "ferrolb-lab-secret\n")?;
        let mut lab = Lab {
            tor,
            client,
            nodes,
            frr,
            dir,
            speakers: Vec::new(),
            backends: Vec::new(),
            lab_bin: lab_bin.to_owned(),
            speaker_bin: speaker_bin.to_owned(),
        };
        for i in 0..NODES {
            let log = lab.dir.path().join(format!("backend{}.log", i + 1));
            let child = lab.nodes[i].spawn_logged(
                [
                    lab.lab_bin.to_str().unwrap_or_default(),
                    "serve-http",
                    &node_name(i),
                ],
                &log,
            )?;
            lab.backends.push(child);
        }
        for i in 0..NODES {
            let child = lab.start_speaker(i, speaker_prefix)?;
            lab.speakers.push(Some(child));
        }
        Ok(lab)
    }

    fn start_speaker(&self, i: usize, prefix: &[&str]) -> Result<Child> {
        let (_, _, lan) = node_addrs(i);
        let log = self.dir.path().join(format!("{}.log", node_name(i)));
        let manifests = self.dir.path().join("manifests");
        let secret = self.dir.path().join("memberlist-secret");
        let mut args: Vec<String> = vec![self.speaker_bin.to_string_lossy().into_owned()];
        args.extend(prefix.iter().map(|s| s.to_string()));
        args.extend(
            [
                "--node-name",
                &node_name(i),
                "--manifests",
                manifests.to_str().unwrap_or_default(),
                "--memberlist-bind",
                &format!("{lan}:7946"),
                "--memberlist-secret-file",
                secret.to_str().unwrap_or_default(),
            ]
            .map(str::to_owned),
        );
        self.nodes[i].spawn_logged(&args, &log)
    }

    /// A speaker's log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", node_name(i))))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        (0..NODES)
            .map(|i| {
                format!(
                    "--- {} ---\n{}",
                    node_name(i),
                    crate::util::tail_lines(&self.log(i), 20)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn ecmp(&self) -> Vec<String> {
        let mut hops = self
            .tor
            .kernel_route(&format!("{BGP_VIP}/32"))
            .ok()
            .flatten()
            .map(|r| r.gateways)
            .unwrap_or_default();
        hops.sort();
        hops
    }

    /// `GET /` on `ip`:80 from the client, from `source`; the backend's answer.
    fn get(&self, ip: &str, source: &str) -> Result<String> {
        let out = self.client.run([
            self.lab_bin.to_str().unwrap_or_default(),
            "http-get",
            source,
            ip,
        ])?;
        Ok(out.trim().to_owned())
    }

    fn node_of_mac(&self, mac: &str) -> Option<String> {
        (0..NODES)
            .find(|i| mac_of(&self.nodes[*i], "lan").ok().as_deref() == Some(mac))
            .map(node_name)
    }

    /// Runs the demonstration, printing each step; returns the figures.
    pub fn run(&mut self) -> Result<Report> {
        say("\n== 1. BGP sessions: every node's speaker peers with the router");
        let started = Instant::now();
        for i in 0..NODES {
            let (v4, _, _) = node_addrs(i);
            self.frr
                .wait_established(&v4, SETTLE)
                .map_err(|e| e.context(self.logs()))?;
        }
        say(&format!(
            "   all {NODES} sessions Established after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        say(&indent(&self.frr.vtysh("show bgp ipv4 unicast summary")?));

        say(&format!(
            "== 2. The router's table: {BGP_VIP}/32 with one next hop per node (ECMP)"
        ));
        let want = NODES;
        wait_until("the ECMP route", SETTLE, Duration::from_millis(50), || {
            (self.ecmp().len() == want).then_some(())
        })
        .map_err(|e| e.context(self.logs()))?;
        let ecmp = self.ecmp();
        say(&indent(&self.tor.ip(&[
            "route",
            "show",
            &format!("{BGP_VIP}/32"),
        ])?));
        say(&format!("   ECMP next hops: {}", ecmp.join(", ")));

        say(&format!(
            "\n== 3. Requests from the client to http://{BGP_VIP}/ (one per source address)"
        ));
        let mut backends = BTreeSet::new();
        for k in 0..CLIENT_SOURCES {
            let src = format!("198.51.100.{}", 66 + k);
            let answer = wait_until(
                "an answer",
                Duration::from_secs(10),
                Duration::from_millis(100),
                || self.get(BGP_VIP, &src).ok(),
            )?;
            say(&format!("   from {src}: {answer}"));
            if let Some(node) = answer.strip_prefix("hello from ") {
                backends.insert(node.to_owned());
            }
        }
        say(&format!(
            "   backends answering: {}",
            backends.iter().cloned().collect::<Vec<_>>().join(", ")
        ));

        say(&format!(
            "\n== 4. Layer 2: http://{L2_VIP}/ is answered by the node that owns it"
        ));
        let answer = wait_until(
            "the layer-2 VIP to answer",
            SETTLE,
            Duration::from_millis(100),
            || self.get(L2_VIP, "198.51.100.66").ok(),
        )
        .map_err(|e| e.context(self.logs()))?;
        let mac = neighbour_mac(&self.tor, "br0", L2_VIP)
            .ok_or_else(|| Error::msg("the router has no neighbour entry for the layer-2 VIP"))?;
        let owner = self
            .node_of_mac(&mac)
            .ok_or_else(|| Error::msg(format!("{mac} is no node's MAC")))?;
        say(&format!("   {answer}"));
        say(&format!(
            "   router: {L2_VIP} is at {mac} = {owner}'s lan interface"
        ));

        let victim = (0..NODES).find(|i| node_name(*i) == owner).unwrap_or(0);
        let (victim_hop, _, _) = node_addrs(victim);
        say(&format!(
            "\n== 5. Failure: {owner}'s speaker is killed (SIGKILL, no goodbye)"
        ));
        let mut child = self.speakers[victim]
            .take()
            .ok_or_else(|| Error::msg("speaker already stopped"))?;
        let killed_at = Instant::now();
        let _ = child.kill();
        let _ = child.wait();
        let mut bgp_converged = None;
        let mut l2_moved = None;
        let mut moved_to = String::new();
        wait_until("the failover", SETTLE, Duration::from_millis(10), || {
            if bgp_converged.is_none()
                && !self.ecmp().contains(&victim_hop)
                && !self.ecmp().is_empty()
            {
                bgp_converged = Some(killed_at.elapsed());
            }
            if l2_moved.is_none() {
                if let Some(mac) = neighbour_mac(&self.tor, "br0", L2_VIP) {
                    if let Some(node) = self.node_of_mac(&mac) {
                        if node != owner {
                            moved_to = node;
                            l2_moved = Some(killed_at.elapsed());
                        }
                    }
                }
            }
            (bgp_converged.is_some() && l2_moved.is_some()).then_some(())
        })
        .map_err(|e| e.context(self.logs()))?;
        let bgp_converged = bgp_converged.unwrap_or_default();
        let l2_moved = l2_moved.unwrap_or_default();
        say(&format!(
            "   BGP: the router dropped next hop {victim_hop} after {:.2} s (the dead process's TCP session was closed by its kernel; a dead node would take at most the 3 s hold time)",
            bgp_converged.as_secs_f64()
        ));
        say(&indent(&self.tor.ip(&[
            "route",
            "show",
            &format!("{BGP_VIP}/32"),
        ])?));
        say(&format!(
            "   layer 2: {L2_VIP} moved from {owner} to {moved_to} after {:.2} s (memberlist + gratuitous ARP)",
            l2_moved.as_secs_f64()
        ));
        let after = self.get(L2_VIP, "198.51.100.66")?;
        say(&format!("   http://{L2_VIP}/ now: {after}"));
        let bgp_after = self.get(BGP_VIP, "198.51.100.67")?;
        say(&format!("   http://{BGP_VIP}/ now: {bgp_after}"));

        say("\n== Summary");
        say(&format!(
            "   ECMP next hops at the router: {}",
            ecmp.join(", ")
        ));
        say(&format!(
            "   backends answering the BGP VIP: {}",
            backends.len()
        ));
        say(&format!(
            "   failover: BGP converged in {:.2} s",
            bgp_converged.as_secs_f64()
        ));
        say(&format!(
            "   failover: layer-2 VIP moved from {owner} to {moved_to} in {:.2} s",
            l2_moved.as_secs_f64()
        ));
        Ok(Report {
            ecmp_next_hops: ecmp,
            backends,
            l2_owner: owner,
            killed: node_name(victim),
            bgp_converged,
            l2_moved_to: moved_to,
            l2_moved,
        })
    }
}

/// The lab's manifests: two pools, their advertisements, one BGPPeer per node, the Nodes, and two
/// Services with endpoints on every node.
pub fn manifests() -> String {
    let mut out = String::from(
        r#"apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.200-198.51.100.209"]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: ferrolb-system}
spec: {ipAddressPools: [bgp]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: ["203.0.113.200-203.0.113.209"]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan], interfaces: [lan]}
"#,
    );
    for i in 0..NODES {
        let (_, r4, lan) = node_addrs(i);
        let n = node_name(i);
        out.push_str(&format!(
            r#"---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor-{n}, namespace: ferrolb-system}}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: "{r4}"
  holdTime: 3s
  keepaliveTime: 1s
  connectTime: 1s
  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: {n}}}}}]
---
apiVersion: v1
kind: Node
metadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}
status: {{addresses: [{{type: InternalIP, address: "{lan}"}}]}}
"#
        ));
    }
    let nodes: Vec<String> = (0..NODES).map(node_name).collect();
    let on: Vec<&str> = nodes.iter().map(String::as_str).collect();
    for (name, pool, ip, created, cluster_ip) in [
        ("web", "bgp", BGP_VIP, "2026-01-01T00:00:01Z", "10.96.0.10"),
        (
            "web-l2",
            "lan",
            L2_VIP,
            "2026-01-01T00:00:02Z",
            "10.96.0.11",
        ),
    ] {
        out.push_str("---\n");
        out.push_str(
            &TestService {
                created: Some(created),
                annotations: &[
                    ("ferrolb.io/address-pool", pool),
                    ("ferrolb.io/loadBalancerIPs", ip),
                ],
                endpoints_on: &on,
                ..TestService::new("demo", name, cluster_ip)
            }
            .yaml(),
        );
    }
    out
}

/// `ferrolb-lab serve-http TEXT`: answers every HTTP request on port 80 with `hello from TEXT`.
pub fn serve_http(text: &str) -> Result<()> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("0.0.0.0:80")?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // Read the whole request head first: closing with unread data would reset the connection.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = format!("hello from {text}\n");
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
    Ok(())
}

/// `ferrolb-lab http-get SOURCE IP`: `GET /` on `IP:80` from `SOURCE`; prints the body.
pub fn http_get(source: &str, ip: &str) -> Result<String> {
    use std::io::Read;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let src: std::net::SocketAddr = format!("{source}:0")
        .parse()
        .map_err(|e| Error::msg(format!("{source}: {e}")))?;
    socket.bind(&src.into())?;
    let dst: std::net::SocketAddr = format!("{ip}:80")
        .parse()
        .map_err(|e| Error::msg(format!("{ip}: {e}")))?;
    socket.connect_timeout(&dst.into(), Duration::from_secs(2))?;
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Whether this machine can run the lab; the reasons if not.
pub fn preflight() -> std::result::Result<(), Vec<String>> {
    let mut missing = Vec::new();
    if let Err(e) = crate::netns::require_root_and_netns() {
        missing.push(e);
    }
    for bin in [crate::frr::BGPD, crate::frr::ZEBRA] {
        if let Err(e) = crate::netns::require_binary(bin) {
            missing.push(format!("{e} (install FRR: apt-get install frr)"));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        missing.push("`ip` (iproute2) is not installed".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}
