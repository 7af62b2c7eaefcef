//! The layer-2 announcer (ARP and NDP responders) against real Linux neighbour tables: node namespaces
//! run `l2-harness` on a bridge segment shared with a client namespace, whose kernel resolves the VIPs.
//!
//! The client keeps the kernel defaults `arp_accept=0` and `accept_untracked_na=0` (checked below): a
//! gratuitous ARP or unsolicited NA never *creates* a neighbour entry there, so the first resolution is
//! always a real request/answer; but both *update* an existing entry (`arp_process` computes `is_garp` when
//! the entry exists and then overrides the address; an NA with O=1 overrides too), which is what moves a
//! VIP between nodes. Routers that MetalLB users rely on behave the same; no sysctl is needed.

use ferrolb_interop_tests::l2::{flush_neighbour, neighbour, L2Node, Segment};
use ferrolb_interop_tests::{interop_guard, wait_until};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const VIP4: &str = "198.51.100.200";
const VIP6: &str = "2001:db8:100::200";
const BR: &str = Segment::BRIDGE;

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_l2-harness"))
}

fn check_client_defaults(seg: &Segment) {
    assert_eq!(
        seg.client
            .sysctl_get(&format!("net.ipv4.conf.{BR}.arp_accept"))
            .unwrap(),
        "0"
    );
    // Absent before Linux 5.18 (then unsolicited NAs never create entries either).
    if let Ok(v) = seg
        .client
        .sysctl_get(&format!("net.ipv6.conf.{BR}.accept_untracked_na"))
    {
        assert_eq!(v, "0");
    }
}

/// A node answers ARP and NDP for its VIPs with its MAC, reports item errors without disturbing the
/// rest, and goes silent when the VIPs are withdrawn; SIGTERM shuts it down cleanly.
#[test]
fn node_answers_arp_and_ndp_then_goes_silent() {
    interop_guard!();
    let seg = Segment::new(1).unwrap();
    check_client_defaults(&seg);
    seg.serve_vips(0, &[VIP4, VIP6]).unwrap();
    let node_mac = seg.node_mac(0).unwrap();
    let mut node = L2Node::start(&seg.nodes[0], &harness(), &json!({})).unwrap();

    // The kernel alone (strict ARP, VIPs on lo) does not answer for them.
    assert!(!seg.client.ping(VIP4), "VIP answered before any apply");
    assert!(!seg.client.ping(VIP6), "VIP answered before any apply");
    flush_neighbour(&seg.client, BR, VIP4).unwrap();
    flush_neighbour(&seg.client, BR, VIP6).unwrap();

    let r = node
        .apply_ok(&json!({ VIP4: ["eth0"], VIP6: ["eth0"] }))
        .unwrap();
    assert_eq!(r["applied"], json!({ VIP4: ["eth0"], VIP6: ["eth0"] }));
    let t = Duration::from_secs(5);
    seg.client.wait_ping(VIP4, None, t).unwrap();
    seg.client.wait_ping(VIP6, None, t).unwrap();
    assert_eq!(seg.client_mac_for(VIP4), Some(node_mac.clone()), "ARP");
    assert_eq!(seg.client_mac_for(VIP6), Some(node_mac.clone()), "NDP");
    let stats = node.stats().unwrap();
    println!("stats after resolution: {stats}");
    for vip in [VIP4, VIP6] {
        let s = &stats[vip];
        assert!(s["requests_received"].as_u64().unwrap() >= 1, "{vip}: {s}");
        assert!(s["responses_sent"].as_u64().unwrap() >= 1, "{vip}: {s}");
        assert!(s["gratuitous_sent"].as_u64().unwrap() >= 1, "{vip}: {s}");
    }
    // A gratuitous ARP round is a request and a reply.
    assert!(stats[VIP4]["gratuitous_sent"].as_u64().unwrap() >= 2);

    // One bad item is reported and changes nothing else; `all` means eth0 here (lo is excluded).
    let r = node
        .apply(&json!({ VIP4: "all", VIP6: ["eth0"], "198.51.100.201": ["nope0", "lo"] }))
        .unwrap();
    assert_eq!(
        r["applied"],
        json!({ VIP4: ["eth0"], VIP6: ["eth0"] }),
        "{r}"
    );
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{r}");
    let e = errors[0].as_str().unwrap();
    assert!(
        e.starts_with("ip 198.51.100.201: ")
            && e.contains("nope0 (no such interface)")
            && e.contains("lo (excluded by ^lo$)"),
        "{e}"
    );
    assert!(seg.client.ping(VIP4));
    assert!(seg.client.ping(VIP6));

    // Withdrawn: no answers any more (no goodbye either: nothing tells the client).
    let r = node.apply_ok(&json!({})).unwrap();
    assert_eq!(r["applied"], json!({}));
    for vip in [VIP4, VIP6] {
        flush_neighbour(&seg.client, BR, vip).unwrap();
        assert!(
            !seg.client.ping(vip),
            "{vip} still answered after withdrawal"
        );
        let n = neighbour(&seg.client, BR, vip).unwrap();
        assert!(
            n.as_ref().is_none_or(|n| n.lladdr.is_none()),
            "{vip}: {n:?}"
        );
    }
    assert_eq!(node.stats().unwrap(), json!({}));
    node.terminate().unwrap();
}

/// The VIP moves from node A to node B (apply on B, empty apply on A): the client's existing neighbour
/// entries switch to B's MAC because of B's gratuitous ARP / unsolicited NA alone — B has not been asked.
#[test]
fn gratuitous_announcements_move_the_vip_to_the_new_node() {
    interop_guard!();
    let seg = Segment::new(2).unwrap();
    check_client_defaults(&seg);
    seg.serve_vips(0, &[VIP4, VIP6]).unwrap();
    seg.serve_vips(1, &[VIP4, VIP6]).unwrap();
    let (mac_a, mac_b) = (seg.node_mac(0).unwrap(), seg.node_mac(1).unwrap());
    assert_ne!(mac_a, mac_b);
    let mut a = L2Node::start(&seg.nodes[0], &harness(), &json!({})).unwrap();
    let mut b = L2Node::start(&seg.nodes[1], &harness(), &json!({})).unwrap();
    let both = json!({ VIP4: ["eth0"], VIP6: ["eth0"] });

    a.apply_ok(&both).unwrap();
    let t = Duration::from_secs(5);
    seg.client.wait_ping(VIP4, None, t).unwrap();
    seg.client.wait_ping(VIP6, None, t).unwrap();
    assert_eq!(seg.client_mac_for(VIP4), Some(mac_a.clone()));
    assert_eq!(seg.client_mac_for(VIP6), Some(mac_a.clone()));

    let t0 = Instant::now();
    b.apply_ok(&both).unwrap();
    a.apply_ok(&json!({})).unwrap();
    let moved = |vip: &str| {
        wait_until(
            &format!("the client's entry for {vip} to move to B ({mac_b})"),
            Duration::from_secs(10),
            Duration::from_millis(2),
            || (seg.client_mac_for(vip).as_deref() == Some(mac_b.as_str())).then(|| t0.elapsed()),
        )
        .unwrap()
    };
    let (t4, t6) = (moved(VIP4), moved(VIP6));
    println!(
        "takeover: client's IPv4 entry moved to B after {:.1} ms (gratuitous ARP), IPv6 after {:.1} ms \
         (unsolicited NA), measured from B's apply",
        t4.as_secs_f64() * 1e3,
        t6.as_secs_f64() * 1e3
    );
    // Only the announcements can have done it: the client has not asked B anything.
    let stats = b.stats().unwrap();
    println!("B's stats at takeover: {stats}");
    for vip in [VIP4, VIP6] {
        assert_eq!(stats[vip]["requests_received"], 0, "{vip}: {stats}");
        assert!(stats[vip]["gratuitous_sent"].as_u64().unwrap() >= 1);
    }
    assert_eq!(seg.client_mac_for(VIP4), Some(mac_b.clone()));
    assert_eq!(seg.client_mac_for(VIP6), Some(mac_b.clone()));
    // Traffic now reaches B, and A answers nothing.
    seg.client.wait_ping(VIP4, None, t).unwrap();
    seg.client.wait_ping(VIP6, None, t).unwrap();
    assert_eq!(a.stats().unwrap(), json!({}));
    a.close().unwrap();
    b.close().unwrap();
}

/// Interfaces are rescanned periodically: an IP that had no eligible interface (link down) is answered
/// once the link comes up, without another apply.
#[test]
fn rescan_picks_up_an_interface_that_comes_up() {
    interop_guard!();
    let seg = Segment::new(1).unwrap();
    seg.serve_vips(0, &[VIP4]).unwrap();
    let node_mac = seg.node_mac(0).unwrap();
    let mut node = L2Node::start(&seg.nodes[0], &harness(), &json!({ "rescan_ms": 300 })).unwrap();
    seg.nodes[0].set_link(Segment::NODE_IF, false).unwrap();
    let r = node.apply(&json!({ VIP4: "all" })).unwrap();
    assert_eq!(r["applied"], json!({}), "{r}");
    assert_eq!(
        r["errors"],
        json!([format!("ip {VIP4}: no eligible interface on this node")])
    );
    seg.nodes[0].set_link(Segment::NODE_IF, true).unwrap();
    flush_neighbour(&seg.client, BR, VIP4).unwrap();
    seg.client
        .wait_ping(VIP4, None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(seg.client_mac_for(VIP4), Some(node_mac));
    node.close().unwrap();
}
