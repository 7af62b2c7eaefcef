//! The decision engine, rule by rule (`shared/reference/metallb-semantics.md` §4, §5): which node announces
//! which Service IP, to which peers, with which attributes, and on layer 2 which node owns it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ferrolb_allocator::ServiceKey;
use ferrolb_crds::config::Config;
use ferrolb_speaker::announce::l2::Interfaces;
use ferrolb_speaker::decide::{decide, Desired, Endpoint, Inputs, NodeInfo, ServiceInfo, Via};

const POOLS: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: ferrolb-system}
spec: {addresses: ["203.0.113.0/24", "2001:db8:1::/64"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.0/24"]}
"#;

fn config(extra: &str) -> Config {
    let text = format!("{POOLS}\n---\n{extra}");
    let (objects, errors) = ferrolb_crds::load_str(&text, Path::new("test.yaml"));
    assert!(errors.is_empty(), "{errors:?}");
    ferrolb_crds::validate(&objects).unwrap_or_else(|e| panic!("{e:?}"))
}

fn peer(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}, namespace: ferrolb-system}}\nspec: {{myASN: 64512, peerASN: 64500, peerAddress: {addr}{extra}}}\n---\n"
    )
}

fn bgp_ad(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}, namespace: ferrolb-system}}\nspec: {spec}\n---\n"
    )
}

fn l2_ad(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {name}, namespace: ferrolb-system}}\nspec: {spec}\n---\n"
    )
}

fn ep(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: Some(true),
        serving: Some(true),
        terminating: Some(false),
    }
}

fn terminating(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: Some(false),
        serving: Some(true),
        terminating: Some(true),
    }
}

fn svc(name: &str, ips: &[&str], local: bool, endpoints: Vec<Endpoint>) -> ServiceInfo {
    ServiceInfo {
        key: ServiceKey::new("shop", name),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        local,
        labels: BTreeMap::new(),
        endpoints,
    }
}

fn nodes(names: &[&str]) -> BTreeMap<String, NodeInfo> {
    names
        .iter()
        .map(|n| {
            let mut labels = BTreeMap::new();
            labels.insert("kubernetes.io/hostname".to_owned(), n.to_string());
            (
                n.to_string(),
                NodeInfo {
                    labels,
                    network_unavailable: false,
                },
            )
        })
        .collect()
}

fn run(
    node: &str,
    config: &Config,
    services: &[ServiceInfo],
    nodes: &BTreeMap<String, NodeInfo>,
) -> Desired {
    decide(&Inputs {
        node,
        config,
        services,
        nodes,
        live: None,
    })
}

/// The prefixes a peer gets.
fn prefixes(d: &Desired, peer: &str) -> Vec<String> {
    d.bgp
        .get(peer)
        .map(|r| r.keys().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn reason(d: &Desired, ip: &str) -> String {
    let ip: IpAddr = ip.parse().unwrap();
    d.not_announced
        .iter()
        .find(|n| n.ip == ip)
        .map(|n| n.reason.clone())
        .unwrap_or_else(|| panic!("{ip} is announced: {d:#?}"))
}

fn net(s: &str) -> ipnetwork::IpNetwork {
    s.parse().unwrap()
}

fn simple_bgp() -> Config {
    config(&format!(
        "{}{}",
        peer("tor", "203.0.113.254", ""),
        bgp_ad("bgp-only", "{ipAddressPools: [bgp]}")
    ))
}

#[test]
fn cluster_policy_announces_from_every_node_when_any_endpoint_serves() {
    let c = simple_bgp();
    let n = nodes(&["a", "b"]);
    let s = [svc("web", &["203.0.113.10"], false, vec![ep("a")])];
    assert_eq!(prefixes(&run("a", &c, &s, &n), "tor"), ["203.0.113.10/32"]);
    assert_eq!(prefixes(&run("b", &c, &s, &n), "tor"), ["203.0.113.10/32"]);
}

#[test]
fn nothing_is_announced_without_a_serving_endpoint() {
    let c = simple_bgp();
    let n = nodes(&["a"]);
    let not_ready = Endpoint {
        ready: Some(false),
        serving: Some(false),
        ..ep("a")
    };
    for endpoints in [vec![], vec![not_ready]] {
        let d = run(
            "a",
            &c,
            &[svc("web", &["203.0.113.10"], false, endpoints)],
            &n,
        );
        assert_eq!(prefixes(&d, "tor"), Vec::<String>::new());
        assert_eq!(
            reason(&d, "203.0.113.10"),
            "the Service has no serving endpoint"
        );
    }
    // `ready` unset counts as ready; `serving` alone counts too (MetalLB).
    let unset = Endpoint {
        ready: None,
        serving: None,
        terminating: None,
        node: Some("a".into()),
    };
    let d = run(
        "a",
        &c,
        &[svc("web", &["203.0.113.10"], false, vec![unset])],
        &n,
    );
    assert_eq!(prefixes(&d, "tor"), ["203.0.113.10/32"]);
}

#[test]
fn local_policy_announces_only_where_an_endpoint_runs() {
    let c = simple_bgp();
    let n = nodes(&["a", "b"]);
    let s = [svc("web", &["203.0.113.10"], true, vec![ep("a")])];
    assert_eq!(prefixes(&run("a", &c, &s, &n), "tor"), ["203.0.113.10/32"]);
    let d = run("b", &c, &s, &n);
    assert!(prefixes(&d, "tor").is_empty());
    assert!(reason(&d, "203.0.113.10").contains("no serving endpoint on this node"));
}

#[test]
fn local_policy_withdraws_a_node_whose_endpoints_are_all_terminating_unless_none_are_live() {
    let c = simple_bgp();
    let n = nodes(&["a", "b"]);
    // a drains while b has a live endpoint: a withdraws at once.
    let s = [svc(
        "web",
        &["203.0.113.10"],
        true,
        vec![terminating("a"), ep("b")],
    )];
    let d = run("a", &c, &s, &n);
    assert!(prefixes(&d, "tor").is_empty());
    assert!(reason(&d, "203.0.113.10").contains("terminating"));
    assert_eq!(prefixes(&run("b", &c, &s, &n), "tor"), ["203.0.113.10/32"]);
    // Only draining endpoints anywhere: keep announcing rather than blackhole.
    let s = [svc("web", &["203.0.113.10"], true, vec![terminating("a")])];
    assert_eq!(prefixes(&run("a", &c, &s, &n), "tor"), ["203.0.113.10/32"]);
}

#[test]
fn excluded_and_network_unavailable_nodes_announce_nothing() {
    let c = simple_bgp();
    let s = [svc("web", &["203.0.113.10"], false, vec![ep("a")])];
    let mut n = nodes(&["a"]);
    n.get_mut("a").unwrap().labels.insert(
        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
        String::new(),
    );
    let d = run("a", &c, &s, &n);
    assert!(prefixes(&d, "tor").is_empty());
    assert!(reason(&d, "203.0.113.10").contains("exclude-from-external-load-balancers"));

    let mut n = nodes(&["a"]);
    n.get_mut("a").unwrap().network_unavailable = true;
    let d = run("a", &c, &s, &n);
    assert!(prefixes(&d, "tor").is_empty());
    assert!(reason(&d, "203.0.113.10").contains("NetworkUnavailable"));
}

#[test]
fn node_selectors_of_advertisements_and_peers_pick_the_announcing_nodes() {
    let c = config(&format!(
        "{}{}{}",
        peer(
            "tor-a",
            "203.0.113.253",
            ", nodeSelectors: [{matchLabels: {kubernetes.io/hostname: a}}]"
        ),
        peer("tor-all", "203.0.113.254", ""),
        bgp_ad(
            "only-b",
            "{nodeSelectors: [{matchLabels: {kubernetes.io/hostname: b}}]}"
        ),
    ));
    let n = nodes(&["a", "b"]);
    let s = [svc("web", &["203.0.113.10"], false, vec![ep("a")])];
    let a = run("a", &c, &s, &n);
    assert_eq!(
        a.bgp.keys().collect::<Vec<_>>(),
        ["tor-a", "tor-all"],
        "a runs both sessions"
    );
    assert!(prefixes(&a, "tor-all").is_empty());
    assert!(
        reason(&a, "203.0.113.10").contains("BGPAdvertisement only-b does not select this node")
    );
    let b = run("b", &c, &s, &n);
    assert_eq!(
        b.bgp.keys().collect::<Vec<_>>(),
        ["tor-all"],
        "tor-a does not select b"
    );
    assert_eq!(prefixes(&b, "tor-all"), ["203.0.113.10/32"]);
}

#[test]
fn per_peer_advertisements_carry_their_own_attributes() {
    let c = config(&format!(
        "{}{}{}{}",
        peer("tor-a", "203.0.113.253", ""),
        peer("tor-b", "203.0.113.254", ""),
        bgp_ad(
            "to-a",
            "{peers: [tor-a], communities: [\"64512:100\"], localPref: 200}"
        ),
        bgp_ad(
            "to-b",
            "{peers: [tor-b], communities: [\"large:64512:1:2\"]}"
        ),
    ));
    let n = nodes(&["a"]);
    let d = run(
        "a",
        &c,
        &[svc("web", &["203.0.113.10"], false, vec![ep("a")])],
        &n,
    );
    let to_a = &d.bgp["tor-a"][&net("203.0.113.10/32")];
    assert_eq!(to_a.communities, [64512 << 16 | 100]);
    assert_eq!(to_a.local_pref, Some(200));
    assert!(to_a.large_communities.is_empty());
    let to_b = &d.bgp["tor-b"][&net("203.0.113.10/32")];
    assert!(to_b.communities.is_empty());
    assert_eq!(to_b.large_communities.len(), 1);
    assert_eq!(to_b.local_pref, None);
    let via: Vec<&Via> = d.announced.iter().map(|a| &a.via).collect();
    assert_eq!(via.len(), 2, "one entry per advertisement");
}

#[test]
fn aggregation_merges_services_into_one_prefix_with_merged_communities() {
    let c = config(&format!(
        "{}{}{}{}",
        peer("tor", "203.0.113.254", ""),
        peer("tor6", "2001:db8:ffff::1", ""),
        bgp_ad(
            "agg",
            "{aggregationLength: 24, aggregationLengthV6: 64, communities: [\"64512:2\"]}"
        ),
        bgp_ad("host", "{communities: [\"64512:1\"]}"),
    ));
    let n = nodes(&["a"]);
    let s = [
        svc(
            "web",
            &["203.0.113.10", "2001:db8:1::10"],
            false,
            vec![ep("a")],
        ),
        svc("db", &["203.0.113.20"], false, vec![ep("a")]),
    ];
    let d = run("a", &c, &s, &n);
    // Each session carries its own family.
    assert_eq!(
        prefixes(&d, "tor"),
        ["203.0.113.0/24", "203.0.113.10/32", "203.0.113.20/32"]
    );
    assert_eq!(
        prefixes(&d, "tor6"),
        ["2001:db8:1::/64", "2001:db8:1::10/128"]
    );
    assert_eq!(
        d.bgp["tor"][&net("203.0.113.0/24")].communities,
        [64512 << 16 | 2]
    );
    assert_eq!(
        d.bgp["tor"][&net("203.0.113.10/32")].communities,
        [64512 << 16 | 1]
    );
}

#[test]
fn ips_outside_every_pool_or_without_advertisement_are_explained() {
    let c = simple_bgp();
    let n = nodes(&["a"]);
    let d = run(
        "a",
        &c,
        &[svc(
            "web",
            &["100.64.0.1", "198.51.100.7"],
            false,
            vec![ep("a")],
        )],
        &n,
    );
    assert!(d.bgp["tor"].is_empty());
    assert_eq!(reason(&d, "100.64.0.1"), "the IP is in no pool");
    assert_eq!(
        reason(&d, "198.51.100.7"),
        "no BGPAdvertisement applies to pool l2"
    );
}

fn l2_owner(
    c: &Config,
    s: &ServiceInfo,
    n: &BTreeMap<String, NodeInfo>,
    live: Option<&BTreeSet<String>>,
) -> Vec<String> {
    n.keys()
        .filter(|node| {
            let d = decide(&Inputs {
                node,
                config: c,
                services: std::slice::from_ref(s),
                nodes: n,
                live,
            });
            !d.l2.is_empty()
        })
        .cloned()
        .collect()
}

#[test]
fn layer2_exactly_one_node_owns_each_ip_and_every_node_agrees() {
    let c = config(&l2_ad("l2", "{ipAddressPools: [l2]}"));
    let n = nodes(&["a", "b", "c", "d"]);
    let mut owners = BTreeSet::new();
    for i in 1..40 {
        let s = svc("web", &[&format!("198.51.100.{i}")], false, vec![ep("a")]);
        let o = l2_owner(&c, &s, &n, None);
        assert_eq!(o.len(), 1, "{o:?}");
        owners.insert(o[0].clone());
    }
    assert_eq!(
        owners.len(),
        4,
        "ownership spreads over the nodes: {owners:?}"
    );
}

#[test]
fn layer2_owner_stays_when_a_non_owner_leaves_and_moves_only_when_it_dies() {
    let c = config(&l2_ad("l2", "{}"));
    let n = nodes(&["a", "b", "c"]);
    let s = svc("web", &["198.51.100.10"], false, vec![ep("a")]);
    let all: BTreeSet<String> = n.keys().cloned().collect();
    let owner = l2_owner(&c, &s, &n, Some(&all)).remove(0);
    for gone in n.keys().filter(|k| **k != owner) {
        let mut live = all.clone();
        live.remove(gone);
        assert_eq!(
            l2_owner(&c, &s, &n, Some(&live)),
            std::slice::from_ref(&owner),
            "{gone} left"
        );
    }
    let mut live = all.clone();
    live.remove(&owner);
    let next = l2_owner(&c, &s, &n, Some(&live));
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], owner);
    // And back: the same owner as before (the order is a pure function of names and IP).
    assert_eq!(l2_owner(&c, &s, &n, Some(&all)), [owner]);
}

#[test]
fn layer2_local_policy_elects_among_nodes_with_live_endpoints_and_honours_selectors() {
    let c = config(&l2_ad(
        "l2",
        "{nodeSelectors: [{matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [c]}]}], interfaces: [eth1]}",
    ));
    let n = nodes(&["a", "b", "c"]);
    let s = svc(
        "web",
        &["198.51.100.10"],
        true,
        vec![ep("b"), ep("c"), terminating("a")],
    );
    assert_eq!(
        l2_owner(&c, &s, &n, None),
        ["b"],
        "a drains, c is not selected"
    );
    let d = decide(&Inputs {
        node: "b",
        config: &c,
        services: std::slice::from_ref(&s),
        nodes: &n,
        live: None,
    });
    assert_eq!(
        d.l2[&"198.51.100.10".parse::<IpAddr>().unwrap()].interfaces,
        Interfaces::Only(["eth1".to_owned()].into())
    );
}

#[test]
fn layer2_preferred_nodes_win_the_election() {
    let c = config(&l2_ad(
        "l2",
        "{preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {kubernetes.io/hostname: c}}}]}",
    ));
    let n = nodes(&["a", "b", "c"]);
    for i in 1..10 {
        let s = svc("web", &[&format!("198.51.100.{i}")], false, vec![ep("a")]);
        assert_eq!(l2_owner(&c, &s, &n, None), ["c"]);
    }
}

#[test]
fn a_pool_with_both_advertisements_is_announced_both_ways() {
    let c = config(&format!(
        "{}{}{}",
        peer("tor", "203.0.113.254", ""),
        bgp_ad("all", "{}"),
        l2_ad("l2", "{}")
    ));
    let n = nodes(&["a"]);
    let d = run(
        "a",
        &c,
        &[svc("web", &["203.0.113.10"], false, vec![ep("a")])],
        &n,
    );
    assert_eq!(prefixes(&d, "tor"), ["203.0.113.10/32"]);
    assert_eq!(d.l2.len(), 1);
    assert!(matches!(
        d.l2.values().next().unwrap().interfaces,
        Interfaces::All
    ));
}
