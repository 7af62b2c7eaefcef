//! Layer-2 failover driven by speaker liveness: three node namespaces on a bridge segment with a
//! client, each running `speaker-standalone` (the code of `ferrolb standalone`) with the SWIM memberlist
//! on (`--memberlist-bind`, a shared secret file, peers from the Node manifests' InternalIPs):
//!
//! ```text
//!   client (br0 198.51.100.1) ── node1 (eth0 .11)   node2 (eth0 .12)   node3 (eth0 .13)
//! ```
//!
//! One Service (externalTrafficPolicy Cluster, endpoints on every node) gets 198.51.100.200 from an L2
//! pool; exactly one live node answers ARP for it. The client's neighbour table shows which one. The
//! test kills a non-owner (the VIP must not move), restarts it (it rejoins, the VIP still stays), then
//! SIGKILLs the owner a few times (the VIP must move to a live node and answer pings again; the time
//! from the kill to the client's neighbour entry change is printed, never asserted), and finally
//! stops the owner with SIGTERM (it leaves the memberlist, so the others take over at once).
//!
//! Node namespaces are prepared like kube-proxy IPVS nodes with `strictARP` (see `l2.rs`): the VIP is
//! on each node's `lo` and the kernel never answers ARP for it, so whoever resolves it is a speaker.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ferrolb_interop_tests::l2::Segment;
use ferrolb_interop_tests::manifests::TestService;
use ferrolb_interop_tests::{interop_guard, wait_until};

const VIP: &str = "198.51.100.200";
const NODES: usize = 3;
const PORT: u16 = 7946;
const SETTLE: Duration = Duration::from_secs(20);

struct Lab {
    seg: Segment,
    dir: tempfile::TempDir,
    speakers: Vec<Option<Child>>,
    logs: Vec<PathBuf>,
    runs: usize,
    macs: Vec<String>,
}

fn name(i: usize) -> String {
    format!("node{}", i + 1)
}

impl Lab {
    fn new() -> Lab {
        let seg = Segment::new(NODES).unwrap();
        for i in 0..NODES {
            seg.serve_vips(i, &[VIP]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        std::fs::write(manifests.join("config.yaml"), manifests_yaml()).unwrap();
        std::fs::write(
            dir.path().join("secret"),
            "an example shared secret, 32+ bytes long\n",
        )
        .unwrap();
        let macs = (0..NODES).map(|i| seg.node_mac(i).unwrap()).collect();
        Lab {
            seg,
            dir,
            speakers: (0..NODES).map(|_| None).collect(),
            logs: vec![PathBuf::new(); NODES],
            runs: 0,
            macs,
        }
    }

    fn start(&mut self, i: usize) {
        self.runs += 1;
        let log = self
            .dir
            .path()
            .join(format!("{}.run{}.log", name(i), self.runs));
        let file = std::fs::File::create(&log).unwrap();
        let bind = format!("{}:{PORT}", Segment::node_v4(i));
        let mut cmd = self.seg.nodes[i].exec([
            env!("CARGO_BIN_EXE_speaker-standalone"),
            "--node-name",
            &name(i),
            "--manifests",
            self.dir.path().join("manifests").to_str().unwrap(),
            "--poll-ms",
            "100",
            "--memberlist-bind",
            &bind,
            "--memberlist-secret-file",
            self.dir.path().join("secret").to_str().unwrap(),
        ]);
        cmd.env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        self.speakers[i] = Some(cmd.spawn().unwrap());
        self.logs[i] = log;
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    fn all_logs(&self) -> String {
        (0..NODES)
            .map(|i| format!("--- {} ({:?}) ---\n{}", name(i), self.logs[i], self.log(i)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many speakers node `i` currently sees alive (its last "live speakers changed" line).
    fn live_count(&self, i: usize) -> Option<usize> {
        let log = self.log(i);
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("live speakers changed"))?;
        let at = line.find(" live=")? + " live=".len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// The running speakers whose latest plan announces the VIP (from their logs).
    fn announcers(&self) -> Vec<usize> {
        (0..NODES)
            .filter(|i| self.speakers[*i].is_some())
            .filter(|i| {
                self.log(*i)
                    .lines()
                    .rev()
                    .find(|l| l.contains("announcing service=shop/web"))
                    .is_some_and(|l| !l.contains("not announcing"))
            })
            .collect()
    }

    /// Waits until every running speaker sees exactly the running speakers, and exactly one of them
    /// announces the VIP.
    fn wait_converged(&self) {
        let running: Vec<usize> = (0..NODES).filter(|i| self.speakers[*i].is_some()).collect();
        let r = wait_until(
            &format!("speakers {running:?} to see each other"),
            SETTLE,
            Duration::from_millis(20),
            || {
                (running
                    .iter()
                    .all(|i| self.live_count(*i) == Some(running.len()))
                    && self.announcers().len() == 1)
                    .then_some(())
            },
        );
        if let Err(e) = r {
            panic!("{e}\n{}", self.all_logs());
        }
    }

    fn client_mac(&self) -> Option<String> {
        self.seg.client_mac_for(VIP)
    }

    fn node_of_mac(&self, mac: &str) -> Option<usize> {
        self.macs.iter().position(|m| m == mac)
    }

    /// Pings the VIP until it answers; returns the node whose MAC the client resolved it to.
    fn wait_owner(&self) -> usize {
        if let Err(e) = self.seg.client.wait_ping(VIP, None, SETTLE) {
            panic!("{e}\n{}", self.all_logs());
        }
        let mac = self.client_mac().expect("a neighbour entry after a ping");
        let owner = self
            .node_of_mac(&mac)
            .unwrap_or_else(|| panic!("{VIP} resolved to {mac}, no node's MAC {:?}", self.macs));
        assert_eq!(
            self.announcers(),
            [owner],
            "the node answering is the one that announces\n{}",
            self.all_logs()
        );
        owner
    }

    /// Samples the client's neighbour entry for `period`: it must keep `mac` throughout.
    fn assert_stays(&self, mac: &str, period: Duration, what: &str) {
        let start = Instant::now();
        let mut samples = 0;
        while start.elapsed() < period {
            let now = self.client_mac();
            assert_eq!(
                now.as_deref(),
                Some(mac),
                "{what}: the VIP moved after {:?}\n{}",
                start.elapsed(),
                self.all_logs()
            );
            samples += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("{what}: {VIP} stayed at {mac} for {period:?} ({samples} samples)");
    }

    /// Waits for the client's entry to leave `mac`; returns the time since `since` and the new node.
    fn wait_moved(&self, mac: &str, since: Instant, what: &str) -> (Duration, usize) {
        let r = wait_until(what, SETTLE, Duration::from_millis(5), || {
            self.client_mac().filter(|m| m != mac)
        });
        let elapsed = since.elapsed();
        let new_mac = r.unwrap_or_else(|e| panic!("{e}\n{}", self.all_logs()));
        let node = self
            .node_of_mac(&new_mac)
            .unwrap_or_else(|| panic!("{VIP} moved to {new_mac}, no node's MAC {:?}", self.macs));
        (elapsed, node)
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.speakers[i].take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.speakers.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn manifests_yaml() -> String {
    let mut out = String::from(
        r#"apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: segment, namespace: ferrolb-system}
spec:
  addresses: ["198.51.100.200/32"]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: segment, namespace: ferrolb-system}
spec: {ipAddressPools: [segment], interfaces: [eth0]}
"#,
    );
    let nodes: Vec<String> = (0..NODES).map(name).collect();
    let on: Vec<&str> = nodes.iter().map(String::as_str).collect();
    out.push_str("---\n");
    out.push_str(
        &TestService {
            created: Some("2026-01-01T00:00:01Z"),
            endpoints_on: &on,
            ..TestService::new("shop", "web", "10.96.0.10")
        }
        .yaml(),
    );
    for i in 0..NODES {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {node}, labels: {{kubernetes.io/hostname: {node}}}}}\nstatus:\n  addresses:\n  - {{type: InternalIP, address: \"{ip}\"}}\n  - {{type: Hostname, address: {node}}}\n",
            node = name(i),
            ip = Segment::node_v4(i)
        ));
    }
    out
}

#[test]
fn layer2_vip_follows_the_live_speakers() {
    interop_guard!();
    let mut lab = Lab::new();
    for i in 0..NODES {
        lab.start(i);
    }
    lab.wait_converged();
    // Let any start-up gratuitous ARP rounds of a node that briefly believed itself alone pass.
    std::thread::sleep(Duration::from_secs(1));
    let owner = lab.wait_owner();
    println!("{VIP} is answered by {} ({})", name(owner), lab.macs[owner]);

    // A non-owner dies: the others drop it from their live set, the VIP does not move.
    let victim = (owner + 1) % NODES;
    let mac = lab.macs[owner].clone();
    lab.kill(victim);
    let t0 = Instant::now();
    let mut seen_gone = None;
    while t0.elapsed() < Duration::from_secs(3) || seen_gone.is_none() {
        assert!(t0.elapsed() < SETTLE, "{}", lab.all_logs());
        assert_eq!(
            lab.client_mac().as_deref(),
            Some(mac.as_str()),
            "{} SIGKILLed: the VIP moved after {:?}\n{}",
            name(victim),
            t0.elapsed(),
            lab.all_logs()
        );
        if seen_gone.is_none() && lab.live_count(owner) == Some(NODES - 1) {
            seen_gone = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "{} SIGKILLed: {} saw it gone after {:.3} s; {VIP} stayed at {} for {:.1} s",
        name(victim),
        name(owner),
        seen_gone.unwrap_or_default().as_secs_f64(),
        name(owner),
        t0.elapsed().as_secs_f64()
    );
    lab.wait_converged();
    assert!(lab.seg.client.ping(VIP));
    // It comes back (a new incarnation at the same address): it rejoins, and as it does not sort
    // first for this VIP, nothing moves.
    lab.start(victim);
    lab.wait_converged();
    lab.assert_stays(
        &lab.macs[owner].clone(),
        Duration::from_secs(2),
        &format!("{} restarted", name(victim)),
    );

    // The owner is SIGKILLed: another node takes the VIP over. Then it comes back and, sorting first,
    // takes the VIP back. A few rounds, for the numbers.
    let mut times = Vec::new();
    for round in 1..=3 {
        let owner = lab.wait_owner();
        let mac = lab.macs[owner].clone();
        // A fresh entry (REACHABLE) on the client, as with live traffic.
        assert!(lab.seg.client.ping(VIP));
        let t0 = Instant::now();
        lab.kill(owner);
        let (elapsed, new_owner) = lab.wait_moved(&mac, t0, "the VIP to move off the killed owner");
        assert_ne!(new_owner, owner);
        lab.wait_converged();
        assert_eq!(lab.wait_owner(), new_owner);
        if let Err(e) = lab.seg.client.wait_ping(VIP, None, SETTLE) {
            panic!("{e}\n{}", lab.all_logs());
        }
        println!(
            "round {round}: SIGKILL {} -> {VIP} at {} after {:.3} s (target <= 2 s)",
            name(owner),
            name(new_owner),
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
        lab.start(owner);
        let t1 = Instant::now();
        let new_mac = lab.macs[new_owner].clone();
        let (back, node) = lab.wait_moved(&new_mac, t1, "the VIP to return to the restarted owner");
        assert_eq!(node, owner, "the restarted owner sorts first again");
        println!(
            "round {round}: {} restarted -> {VIP} back after {:.3} s",
            name(owner),
            back.as_secs_f64()
        );
        lab.wait_converged();
    }

    // SIGTERM: the owner leaves the memberlist before withdrawing, so the others take over at once.
    let owner = lab.wait_owner();
    let mac = lab.macs[owner].clone();
    assert!(lab.seg.client.ping(VIP));
    let mut child = lab.speakers[owner].take().unwrap();
    let t0 = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (elapsed, new_owner) = lab.wait_moved(&mac, t0, "the VIP to move off the stopped owner");
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(lab.log(owner).contains("leaving the memberlist"));
    if let Err(e) = lab.seg.client.wait_ping(VIP, None, SETTLE) {
        panic!("{e}\n{}", lab.all_logs());
    }
    if elapsed > Duration::from_millis(500) {
        println!(
            "slower than a goodbye should be; the logs:\n{}",
            lab.all_logs()
        );
    }
    println!(
        "SIGTERM {} -> {VIP} at {} after {:.3} s",
        name(owner),
        name(new_owner),
        elapsed.as_secs_f64()
    );
    println!(
        "failover after SIGKILL (s): {}",
        times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
