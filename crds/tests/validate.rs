//! `validate()`: the parsed configuration of a valid set, and every kind of problem, all reported at once
//! with object, field and plain words.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ferrolb_crds::config::{BgpCommunity, PeerAsn, PeerPassword, PeerTarget};
use ferrolb_crds::{load_paths, load_str, validate, Config, ConfigError, Kind};

fn config_of(text: &str) -> Result<Config, Vec<ConfigError>> {
    let (objects, errors) = load_str(text, Path::new("t.yaml"));
    assert!(
        errors.is_empty(),
        "load errors: {:?}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    validate(&objects)
}

/// The problems, as `Kind ns/name: field: problem`.
fn problems(text: &str) -> Vec<String> {
    match config_of(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_has(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem containing {needle:?} in {problems:#?}"
    );
}

fn pool(name: &str, addresses: &[&str]) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: lb}}\nspec:\n  addresses: [{}]\n",
        addresses.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
    )
}

fn peer(name: &str, spec: &str) -> String {
    format!("---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}, namespace: lb}}\nspec: {spec}\n")
}

fn bgp_ad(name: &str, spec: &str) -> String {
    format!("---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}, namespace: lb}}\nspec: {spec}\n")
}

fn l2_ad(name: &str, spec: &str) -> String {
    format!("---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {name}, namespace: lb}}\nspec: {spec}\n")
}

#[test]
fn the_valid_fixture_becomes_a_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let (objects, errors) = load_paths(&[dir]);
    assert!(errors.is_empty());
    let config = validate(&objects).expect("valid");

    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["bgp-public", "dual-stack", "l2-office"],
        "sorted by name"
    );
    let public = config.pool("bgp-public").unwrap();
    assert!(public.avoid_buggy_ips && public.auto_assign && public.service_allocation.is_none());
    assert_eq!(
        public.labels.get("exposure").map(String::as_str),
        Some("public")
    );
    let office = config.pool("l2-office").unwrap();
    assert!(!office.auto_assign);
    let cidrs: Vec<String> = office.cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(
        cidrs,
        [
            "198.51.100.10/31",
            "198.51.100.12/30",
            "198.51.100.16/28",
            "198.51.100.32/28",
            "198.51.100.48/31",
            "198.51.100.50/32"
        ]
    );
    let dual = config.pool("dual-stack").unwrap();
    assert!(dual.has_ipv4() && dual.has_ipv6());
    let alloc = dual.service_allocation.as_ref().unwrap();
    assert_eq!(alloc.priority, 10);
    assert_eq!(alloc.namespaces, ["web"]);
    assert_eq!(alloc.namespace_selectors.len(), 1);
    let svc_labels: BTreeMap<String, String> = [("app".to_string(), "api".to_string())].into();
    assert!(alloc.service_selectors[0].matches(&svc_labels));
    assert_eq!(
        config
            .pool_of("2001:db8:100::7".parse().unwrap())
            .map(|p| p.name.as_str()),
        Some("dual-stack")
    );
    assert!(config.pool_of("203.0.113.64".parse().unwrap()).is_none());

    let tor = config.peer("tor-a").unwrap();
    assert_eq!(tor.my_asn, 64512);
    assert_eq!(tor.peer_asn, PeerAsn::Fixed(64513));
    assert!(!tor.is_ibgp());
    assert_eq!(
        tor.target,
        PeerTarget::Address("100.64.0.1".parse().unwrap())
    );
    assert_eq!(
        tor.source_address,
        Some("100.64.0.10".parse::<IpAddr>().unwrap())
    );
    assert_eq!(tor.port, 179);
    assert_eq!(
        (tor.hold_time, tor.keepalive_time),
        (Duration::from_secs(90), Duration::from_secs(30))
    );
    assert_eq!(tor.router_id, Some("100.64.0.10".parse().unwrap()));
    assert_eq!(tor.bfd_profile.as_deref(), Some("fast"));
    assert_eq!(
        tor.password,
        Some(PeerPassword::Secret {
            namespace: None,
            name: "tor-a-auth".into(),
            password: Some("correct-horse-battery".into())
        })
    );
    let v6 = config.peer("tor-a-v6").unwrap();
    assert_eq!(
        (v6.hold_time, v6.keepalive_time),
        (Duration::from_secs(90), Duration::from_secs(30)),
        "1m30s, keepalive derived"
    );
    assert!(v6.password.is_none() && v6.connect_time.is_none());

    let web = config
        .bgp_advertisements
        .iter()
        .find(|a| a.name == "web")
        .unwrap();
    assert_eq!(web.pools, ["dual-stack"]);
    assert_eq!(web.local_pref, Some(100));
    assert_eq!(
        web.communities,
        [
            BgpCommunity::Standard(64512 << 16 | 100),
            BgpCommunity::Large(64512, 100, 1)
        ]
    );
    assert!(web.peers.is_empty() && web.targets_peer("tor-a-v6"));
    let public_ad = config
        .bgp_advertisements
        .iter()
        .find(|a| a.name == "public")
        .unwrap();
    assert_eq!(public_ad.pools, ["bgp-public"], "selected by label");
    assert_eq!(
        (
            public_ad.aggregation_length,
            public_ad.aggregation_length_v6
        ),
        (32, 128)
    );
    let agg = config
        .bgp_advertisements
        .iter()
        .find(|a| a.name == "public-aggregate")
        .unwrap();
    assert_eq!(
        agg.communities,
        [BgpCommunity::Standard(0xffff_ff02)],
        "alias resolved"
    );
    assert_eq!(config.bgp_advertisements_for("bgp-public").count(), 2);

    let l2 = &config.l2_advertisements[0];
    assert_eq!(
        (l2.pools.as_slice(), l2.interfaces.as_slice()),
        (&["l2-office".to_string()][..], &["eth1".to_string()][..])
    );
    assert_eq!(config.l2_advertisements_for("l2-office").count(), 1);
    assert_eq!(
        config.bfd_profiles[0].receive_interval,
        Duration::from_millis(100)
    );
    assert_eq!(
        config.bfd_profiles[0].echo_interval,
        Duration::from_millis(50),
        "default"
    );
    assert_eq!(config.community_aliases.len(), 2);
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = [
        pool(
            "a",
            &["198.51.100.0/24", "bogus", "203.0.113.9-203.0.113.1"],
        ),
        pool("b", &["198.51.100.64/26"]),
        pool("c", &[]),
        peer(
            "p",
            "{myASN: 0, peerASN: 64513, peerAddress: 100.64.0.1, peerPort: 20000}",
        ),
    ]
    .concat();
    let p = problems(&text);
    assert_eq!(p.len(), 6, "{p:#?}");
    assert_eq!(
        p[0],
        "IPAddressPool lb/a: spec.addresses[1]: \"bogus\" is neither a CIDR nor a start-end range"
    );
    assert_eq!(p[1], "IPAddressPool lb/a: spec.addresses[2]: range \"203.0.113.9-203.0.113.1\" is reversed: start 203.0.113.9 is after end 203.0.113.1");
    assert_eq!(
        p[2],
        "IPAddressPool lb/c: spec.addresses: at least one address range is required"
    );
    assert_has(&p, "IPAddressPool lb/b: spec.addresses[0]: 198.51.100.64/26 of IPAddressPool lb/b overlaps 198.51.100.0/24 of IPAddressPool lb/a in t.yaml; an address can belong to one pool only");
    assert_has(&p, "BGPPeer lb/p: spec.myASN: must not be 0");
    assert_has(
        &p,
        "BGPPeer lb/p: spec.peerPort: 20000 is out of range: must be 1 to 16384",
    );
}

/// In a cluster the pools come in no particular order: the overlap is reported on the pool created last
/// (the one whose addition causes it), and the message names it as well as the pool it collides with.
#[test]
fn an_overlap_names_the_pool_created_last() {
    let created = |name: &str, at: &str, addresses: &str| {
        format!(
            "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: lb, creationTimestamp: \"{at}\"}}\nspec:\n  addresses: [\"{addresses}\"]\n"
        )
    };
    for order in [["new", "old"], ["old", "new"]] {
        let text: String = order
            .iter()
            .map(|n| match *n {
                "new" => created("new", "2026-02-01T00:00:00Z", "198.51.100.128/25"),
                _ => created("old", "2026-01-01T00:00:00Z", "198.51.100.0/24"),
            })
            .collect();
        let p = problems(&text);
        assert_eq!(
            p,
            ["IPAddressPool lb/new: spec.addresses[0]: 198.51.100.128/25 of IPAddressPool lb/new overlaps 198.51.100.0/24 of IPAddressPool lb/old in t.yaml, which was created earlier; an address can belong to one pool only"],
            "order {order:?}"
        );
    }
}

#[test]
fn overlaps_within_one_pool_and_across_families() {
    let p = problems(&pool(
        "a",
        &[
            "203.0.113.0/25",
            "203.0.113.100-203.0.113.200",
            "2001:db8::/64",
            "2001:db8::1-2001:db8::5",
        ],
    ));
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p[0], "IPAddressPool lb/a: spec.addresses[1]: 203.0.113.100-203.0.113.200 of IPAddressPool lb/a overlaps its own spec.addresses[0] (203.0.113.0/25); an address can belong to one pool only");
    assert!(p[1].starts_with(
        "IPAddressPool lb/a: spec.addresses[3]: 2001:db8::1-2001:db8::5 of IPAddressPool lb/a overlaps its own spec.addresses[2] (2001:db8::/64)"
    ));
    // Adjacent ranges and the same numbers in the other family do not overlap.
    assert!(problems(
        &[
            pool("a", &["203.0.113.0/25"]),
            pool("b", &["203.0.113.128-203.0.113.255", "::cb00:7100/120"])
        ]
        .concat()
    )
    .is_empty());
}

#[test]
fn duplicate_names() {
    let text = [
        pool("a", &["203.0.113.0/28"]),
        pool("a", &["203.0.113.16/28"]).replace("namespace: lb", "namespace: other"),
    ]
    .concat();
    let p = problems(&text);
    assert_eq!(p, ["IPAddressPool other/a: metadata.name: duplicate name: IPAddressPool lb/a in t.yaml has the same name"]);
}

#[test]
fn peer_problems() {
    let cases = [
        ("{myASN: 1, peerAddress: 100.64.0.1}", "spec.peerASN: one of peerASN or dynamicASN is required"),
        ("{myASN: 1, peerASN: 2, dynamicASN: external, peerAddress: 100.64.0.1}", "spec.peerASN: set either peerASN or dynamicASN, not both"),
        ("{myASN: 1, peerASN: 2}", "spec.peerAddress: one of peerAddress or interface is required"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, interface: eth0}", "spec.peerAddress: set either peerAddress or interface, not both"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.300}", "spec.peerAddress: \"100.64.0.300\" is not an IP address"),
        ("{myASN: 1, peerASN: 2, interface: this-name-is-too-long}", "spec.interface: \"this-name-is-too-long\" is longer than 15 bytes"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: 3d}", "spec.holdTime: \"3d\" has the unknown unit \"d\": write numbers with units (h, m, s, ms, us, ns), such as 90s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: \"90\"}", "spec.holdTime: \"90\" has no unit: write numbers with units"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: 1 m}", "spec.holdTime: \"1 m\" has the unknown unit \" m\""),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: 100000s}", "spec.holdTime: 27h46m40s is out of range"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: -5s}", "spec.holdTime: -5s is negative"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: 4500ms}", "spec.holdTime: 4500ms is not a whole number of seconds"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, holdTime: 90s, keepaliveTime: 0s}", "spec.keepaliveTime: 0 disables keepalives"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, keepaliveTime: 8h}", "spec.keepaliveTime: 8h0m0s is too long"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, connectTime: 0s}", "spec.connectTime: 0s is out of range: must be 1s to 65535s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, routerID: \"2001:db8::1\"}", "spec.routerID: 2001:db8::1 is IPv6"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, routerID: 0.0.0.0}", "spec.routerID: 0.0.0.0 is not a usable router ID"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, sourceAddress: nope}", "spec.sourceAddress: \"nope\" is not an IP address"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, password: x, passwordSecret: {name: s}}", "spec.passwordSecret: set either password or passwordSecret, not both"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, passwordSecret: {namespace: lb}}", "spec.passwordSecret.name: the name of the Secret is required"),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, passwordSecret: {name: s, namespace: kube-system}}", "spec.passwordSecret.namespace: the Secret must be in the BGPPeer's namespace \"lb\""),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, bfdProfile: missing}", "spec.bfdProfile: there is no BFDProfile named \"missing\""),
        ("{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, nodeSelectors: [{matchExpressions: [{key: rack, operator: in, values: [a]}]}]}", "spec.nodeSelectors[0].matchExpressions[0].operator: unknown operator \"in\""),
        ("{myASN: 7, dynamicASN: internal, peerAddress: 100.64.0.1, ebgpMultiHop: true}", "spec.ebgpMultiHop: applies to eBGP only"),
    ];
    for (spec, want) in cases {
        let p = problems(&peer("p", spec));
        assert_eq!(p.len(), 1, "{spec}: {p:#?}");
        assert!(
            p[0].starts_with(&format!("BGPPeer lb/p: {want}")),
            "{spec}: {}",
            p[0]
        );
    }
    let long = "x".repeat(81);
    assert_has(
        &problems(&peer(
            "p",
            &format!("{{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, password: {long}}}"),
        )),
        "spec.password: 81 bytes long",
    );
}

#[test]
fn peer_defaults_and_derived_timers() {
    let config = config_of(
        &[
            peer("a", "{myASN: 64512, peerASN: 64512, peerAddress: 100.64.0.1}"),
            peer("b", "{myASN: 64512, peerASN: 65000, peerAddress: 100.64.0.2, keepaliveTime: 10s}"),
            peer("c", "{myASN: 64512, peerASN: 65000, peerAddress: 100.64.0.3, holdTime: 0s, connectTime: 1m}"),
            peer("d", "{myASN: 64512, dynamicASN: external, interface: eth1, localASN: 65010, vrf: red}"),
        ]
        .concat(),
    )
    .unwrap();
    let a = config.peer("a").unwrap();
    assert!(a.is_ibgp());
    assert_eq!(
        (a.hold_time, a.keepalive_time, a.port),
        (Duration::from_secs(90), Duration::from_secs(30), 179)
    );
    let b = config.peer("b").unwrap();
    assert_eq!(
        (b.hold_time, b.keepalive_time),
        (Duration::from_secs(30), Duration::from_secs(10))
    );
    let c = config.peer("c").unwrap();
    assert_eq!(
        (c.hold_time, c.keepalive_time, c.connect_time),
        (
            Duration::ZERO,
            Duration::ZERO,
            Some(Duration::from_secs(60))
        )
    );
    let d = config.peer("d").unwrap();
    assert_eq!(
        (d.peer_asn, d.local_as(), d.address()),
        (PeerAsn::External, 65010, None)
    );
    assert_eq!(
        (d.target.clone(), d.vrf.as_deref()),
        (PeerTarget::Interface("eth1".into()), Some("red"))
    );
}

#[test]
fn password_secrets() {
    let secret = |ty: &str, data: &str| {
        format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: auth, namespace: lb}}\ntype: {ty}\n{data}\n")
    };
    let p = peer(
        "p",
        "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, passwordSecret: {name: auth}}",
    );
    // Not among the objects: fine (it lives in the cluster); the speaker reads it.
    let c = config_of(&p).unwrap();
    assert_eq!(
        c.peers[0].password,
        Some(PeerPassword::Secret {
            namespace: None,
            name: "auth".into(),
            password: None
        })
    );
    let ok = config_of(
        &[
            p.clone(),
            secret("kubernetes.io/basic-auth", "data: {password: aHVudGVyMg==}"),
        ]
        .concat(),
    )
    .unwrap();
    assert!(
        matches!(&ok.peers[0].password, Some(PeerPassword::Secret { password: Some(pw), .. }) if pw == "hunter2")
    );
    assert_eq!(
        problems(&[p.clone(), secret("Opaque", "stringData: {password: x}")].concat()),
        ["BGPPeer lb/p: spec.passwordSecret: Secret \"auth\" has type \"Opaque\"; it must be of type kubernetes.io/basic-auth"]
    );
    assert_eq!(
        problems(
            &[
                p,
                secret("kubernetes.io/basic-auth", "stringData: {username: x}")
            ]
            .concat()
        ),
        ["BGPPeer lb/p: spec.passwordSecret: Secret \"auth\" has no key \"password\""]
    );
}

#[test]
fn duplicate_sessions() {
    let text = [
        peer("a", "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1}"),
        peer("b", "{myASN: 1, peerASN: 3, peerAddress: 100.64.0.1}"),
        peer("c", "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, nodeSelectors: [{matchLabels: {rack: b}}]}"),
        peer("d", "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, peerPort: 1179}"),
    ]
    .concat();
    assert_eq!(
        problems(&text),
        ["BGPPeer lb/b: spec.peerAddress: BGPPeer lb/a in t.yaml already opens this session (same address, VRF and port) from the same nodes"]
    );
}

#[test]
fn advertisement_problems() {
    let base = [
        pool("v4", &["198.51.100.0/24"]),
        pool("v6", &["2001:db8::/64"]),
        pool("range", &["203.0.113.10-203.0.113.20"]),
        peer("tor", "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1}"),
        "---\napiVersion: ferrolb.io/v1beta1\nkind: Community\nmetadata: {name: c, namespace: lb}\nspec:\n  communities:\n    - {name: no-export, value: \"65535:65281\"}\n".to_string(),
    ]
    .concat();
    assert!(problems(&base).is_empty());
    let cases = [
        ("{ipAddressPools: [v4], aggregationLength: 16}", "spec.aggregationLength: 16 is shorter than the prefix length of 198.51.100.0/24 in IPAddressPool lb/v4"),
        ("{ipAddressPools: [v4], aggregationLength: 24}", ""),
        ("{ipAddressPools: [v6], aggregationLengthV6: 48}", "spec.aggregationLengthV6: 48 is shorter than the prefix length of 2001:db8::/64"),
        ("{ipAddressPools: [range], aggregationLength: 30}", "spec.aggregationLength: 30 is shorter than the prefix length of 203.0.113.20/32"),
        ("{ipAddressPools: [v4], aggregationLength: 40}", "spec.aggregationLength: 40 is out of range: must be 1 to 32"),
        ("{aggregationLength: 24}", "spec.aggregationLength: 24 is shorter than the prefix length of 203.0.113.20/32"),
        ("{ipAddressPools: [nope]}", "spec.ipAddressPools[0]: there is no IPAddressPool named \"nope\""),
        ("{peers: [tor, other]}", "spec.peers[1]: there is no BGPPeer named \"other\""),
        ("{communities: [no-export, \"65535:65281\", \"large:1:2:3\"]}", ""),
        ("{communities: [\"65536:1\"]}", "spec.communities[0]: community \"65536:1\": \"65536\" is not a number from 0 to 65535"),
        ("{communities: [\"large:1:2\"]}", "spec.communities[0]: large community \"large:1:2\" must have the form large:A:B:C"),
        ("{communities: [no-advertise]}", "spec.communities[0]: \"no-advertise\" is neither a community value"),
        ("{ipAddressPools: [v4], serviceSelectors: [{matchLabels: {app: web}}], aggregationLength: 24}", "spec.serviceSelectors: can only be used with the default aggregation lengths"),
        ("{ipAddressPoolSelectors: [{matchExpressions: [{key: tier, operator: Exists, values: [x]}]}]}", "spec.ipAddressPoolSelectors[0].matchExpressions[0].values: operator Exists takes no values"),
    ];
    for (spec, want) in cases {
        let p = problems(&[base.clone(), bgp_ad("ad", spec)].concat());
        if want.is_empty() {
            assert!(p.is_empty(), "{spec}: {p:#?}");
        } else {
            assert_eq!(p.len(), 1, "{spec}: {p:#?}");
            assert!(
                p[0].starts_with(&format!("BGPAdvertisement lb/ad: {want}")),
                "{spec}: {}",
                p[0]
            );
        }
    }
    let dangling =
        config_of(&[base, bgp_ad("ad", "{ipAddressPools: [nope]}")].concat()).unwrap_err();
    assert!(
        dangling[0].unresolved_reference,
        "references are flagged as possibly transient"
    );
}

#[test]
fn conflicting_local_prefs() {
    let base = [
        pool("v4", &["198.51.100.0/24"]),
        peer("tor", "{myASN: 1, peerASN: 1, peerAddress: 100.64.0.1}"),
    ]
    .concat();
    let p = problems(
        &[
            base.clone(),
            bgp_ad("a", "{localPref: 100}"),
            bgp_ad("b", "{localPref: 200, peers: [tor]}"),
        ]
        .concat(),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("BGPAdvertisement lb/b: spec.localPref: 200 conflicts with localPref 100 of BGPAdvertisement lb/a"), "{}", p[0]);
    // Different aggregation or different nodes: different routes, no conflict.
    assert!(problems(
        &[
            base.clone(),
            bgp_ad("a", "{localPref: 100}"),
            bgp_ad("b", "{localPref: 200, aggregationLength: 24}")
        ]
        .concat()
    )
    .is_empty());
    assert!(problems(
        &[
            base,
            bgp_ad("a", "{localPref: 100}"),
            bgp_ad(
                "b",
                "{localPref: 200, nodeSelectors: [{matchLabels: {rack: a}}]}"
            )
        ]
        .concat()
    )
    .is_empty());
}

#[test]
fn bfd_echo_mode_limits() {
    let bfd = "---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: echo, namespace: lb}\nspec: {echoMode: true}\n";
    let base = [pool("v6", &["2001:db8::/120"]), bfd.to_string()].concat();
    let p = problems(
        &[
            base.clone(),
            peer(
                "tor",
                "{myASN: 1, peerASN: 2, peerAddress: 2001:db8:1::1, bfdProfile: echo}",
            ),
            bgp_ad("ad", "{}"),
        ]
        .concat(),
    );
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("BGPPeer lb/tor: spec.bfdProfile: BFDProfile \"echo\" enables echoMode, which is not supported for peers advertising IPv6 pools"), "{}", p[0]);
    let p = problems(&[base.clone(), peer("tor", "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, bfdProfile: echo, ebgpMultiHop: true}")].concat());
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("not supported on multi-hop sessions"));
    assert!(
        problems(
            &[
                base,
                peer(
                    "tor",
                    "{myASN: 1, peerASN: 2, peerAddress: 100.64.0.1, bfdProfile: echo}"
                )
            ]
            .concat()
        )
        .is_empty(),
        "no ad, nothing advertised"
    );
}

#[test]
fn community_alias_problems() {
    let community = |name: &str, aliases: &str| {
        format!("---\napiVersion: ferrolb.io/v1beta1\nkind: Community\nmetadata: {{name: {name}, namespace: lb}}\nspec: {{communities: {aliases}}}\n")
    };
    let p = problems(
        &[
            community("a", "[{name: x, value: \"1:1\"}, {name: x, value: \"1:2\"}, {name: \"1:3\", value: \"1:3\"}, {name: y, value: \"large:1\"}]"),
            community("b", "[{name: x, value: \"1:4\"}, {name: \"\", value: \"1:5\"}]"),
        ]
        .concat(),
    );
    assert_eq!(
        p,
        [
            "Community lb/a: spec.communities[1].name: alias \"x\" is already defined by spec.communities[0] of the same object",
            "Community lb/a: spec.communities[2].name: alias name \"1:3\" is itself a community value; choose a name",
            "Community lb/a: spec.communities[3].value: large community \"large:1\" must have the form large:A:B:C",
            "Community lb/b: spec.communities[0].name: alias \"x\" is already defined by Community lb/a in t.yaml",
            "Community lb/b: spec.communities[1].name: the alias name must not be empty",
        ]
    );
}

#[test]
fn l2_problems_and_pool_selection() {
    let base = [
        pool("a", &["198.51.100.0/28"])
            .replace("namespace: lb}", "namespace: lb, labels: {site: hq}}"),
        pool("b", &["198.51.100.16/28"]),
    ]
    .concat();
    let config = config_of(
        &[
            base.clone(),
            l2_ad("all", "{}"),
            l2_ad(
                "hq",
                "{ipAddressPoolSelectors: [{matchLabels: {site: hq}}]}",
            ),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        config.l2_advertisements[0].pools,
        ["a", "b"],
        "no names and no selectors: every pool"
    );
    assert_eq!(config.l2_advertisements[1].pools, ["a"]);
    let p = problems(
        &[base, l2_ad("bad", "{interfaces: [eth0, \"bad/name\", \"\"], preferredNodeSelectors: [{weight: 0, preference: {matchLabels: {zone: a}}}]}")].concat(),
    );
    assert_eq!(
        p,
        [
            "L2Advertisement lb/bad: spec.interfaces[1]: \"bad/name\" is not a valid interface name",
            "L2Advertisement lb/bad: spec.interfaces[2]: the interface name must not be empty",
            "L2Advertisement lb/bad: spec.preferredNodeSelectors[0].weight: 0 is out of range: must be 1 to 100",
        ]
    );
}

#[test]
fn errors_carry_their_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let (objects, _) = load_paths(&[&dir]);
    let errors = validate(&objects).unwrap_err();
    let e = errors.iter().find(|e| e.object.name == "too-wide").unwrap();
    assert_eq!(e.object.kind, Kind::BGPAdvertisement);
    assert_eq!(
        e.source.as_ref().unwrap().file,
        dir.join("bgp/advertisements.yaml")
    );
    assert_eq!(e.source.as_ref().unwrap().document, 1);
    assert!(e.line().starts_with(&format!(
        "{}: BGPAdvertisement ferrolb-system/too-wide: spec.aggregationLength: ",
        dir.join("bgp/advertisements.yaml").display()
    )));
}
