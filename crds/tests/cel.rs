//! Every CEL rule of the CRD schemas, evaluated client-side with the `validate_cel` functions kube
//! derives (the same rules the API server enforces), and checked against the code validation: whatever
//! CEL rejects, `validate()` rejects too.

use ferrolb_crds::manifest::Objects;
use ferrolb_crds::{
    validate, BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, BGPPeer,
    BGPPeerSpec, CommunitySpec, IPAddressPool, IPAddressPoolSpec, L2AdvertisementSpec,
};
use serde_json::{json, Value};

type CelResult = Result<(), kube::core::cel::ValidationErrors>;

/// The messages of the failed rules.
fn messages(r: CelResult) -> Vec<String> {
    match r {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

/// Assert a CEL outcome: `None` passes, `Some(text)` fails with a message containing `text`.
fn expect(what: &str, r: CelResult, want: Option<&str>) {
    let msgs = messages(r);
    match want {
        None => assert!(msgs.is_empty(), "{what}: expected to pass, got {msgs:?}"),
        Some(text) => assert!(
            msgs.iter().any(|m| m.contains(text)),
            "{what}: expected a failure containing {text:?}, got {msgs:?}"
        ),
    }
}

fn merge(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            out.as_object_mut().unwrap().remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

fn peer_base() -> Value {
    json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "198.51.100.1"})
}

/// Validate a peer spec with `validate()` (one BGPPeer, nothing else).
fn code_accepts_peer(spec: &Value) -> bool {
    let spec: BGPPeerSpec = serde_json::from_value(spec.clone()).unwrap();
    let mut objects = Objects::default();
    let mut peer = BGPPeer::new("p", spec);
    peer.metadata.namespace = Some("ferrolb-system".into());
    objects.push(peer, None);
    validate(&objects).is_ok()
}

#[test]
fn bgppeer_rules() {
    let base = peer_base();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("minimal eBGP peer", json!({}), None),
        ("myASN 0", json!({"myASN": 0}), Some("myASN must not be 0")),
        (
            "peerASN 0",
            json!({"peerASN": 0}),
            Some("peerASN must not be 0"),
        ),
        (
            "localASN 0",
            json!({"localASN": 0}),
            Some("localASN must not be 0"),
        ),
        ("localASN", json!({"localASN": 65001}), None),
        // exactly one of peerASN / dynamicASN
        (
            "peerASN and dynamicASN",
            json!({"dynamicASN": "external"}),
            Some("exactly one of peerASN and dynamicASN"),
        ),
        (
            "neither peerASN nor dynamicASN",
            json!({"peerASN": null}),
            Some("exactly one of peerASN and dynamicASN"),
        ),
        (
            "dynamicASN only",
            json!({"peerASN": null, "dynamicASN": "internal"}),
            None,
        ),
        // exactly one of peerAddress / interface
        (
            "peerAddress and interface",
            json!({"interface": "eth1"}),
            Some("exactly one of peerAddress and interface"),
        ),
        (
            "neither peerAddress nor interface",
            json!({"peerAddress": null}),
            Some("exactly one of peerAddress and interface"),
        ),
        (
            "interface only",
            json!({"peerAddress": null, "interface": "eth1"}),
            None,
        ),
        (
            "peerAddress not an IP",
            json!({"peerAddress": "router1"}),
            Some("peerAddress must be an IPv4 or IPv6 address"),
        ),
        (
            "IPv6 peer",
            json!({"peerAddress": "2001:db8::1", "sourceAddress": "2001:db8::2"}),
            None,
        ),
        (
            "sourceAddress not an IP",
            json!({"sourceAddress": "eth0"}),
            Some("sourceAddress must be an IPv4 or IPv6 address"),
        ),
        (
            "source family differs",
            json!({"sourceAddress": "2001:db8::2"}),
            Some("same IP family"),
        ),
        ("routerID IPv4", json!({"routerID": "203.0.113.1"}), None),
        (
            "routerID IPv6",
            json!({"routerID": "2001:db8::1"}),
            Some("routerID must be an IPv4 address"),
        ),
        // peerPort 1..16384
        (
            "peerPort 0",
            json!({"peerPort": 0}),
            Some("peerPort must be between 1 and 16384"),
        ),
        ("peerPort 1", json!({"peerPort": 1}), None),
        ("peerPort 16384", json!({"peerPort": 16384}), None),
        (
            "peerPort 16385",
            json!({"peerPort": 16385}),
            Some("peerPort must be between 1 and 16384"),
        ),
        // password xor passwordSecret
        ("password", json!({"password": "s3cret"}), None),
        (
            "passwordSecret",
            json!({"passwordSecret": {"name": "bgp-auth"}}),
            None,
        ),
        (
            "password and passwordSecret",
            json!({"password": "s3cret", "passwordSecret": {"name": "bgp-auth"}}),
            Some("either password or passwordSecret"),
        ),
        (
            "password and empty passwordSecret (Go clients write {})",
            json!({"password": "s3cret", "passwordSecret": {}}),
            None,
        ),
        (
            "passwordSecret without name",
            json!({"passwordSecret": {"namespace": "ferrolb-system"}}),
            Some("passwordSecret.name is required"),
        ),
        // holdTime 0 or 3s..65535s, whole seconds
        ("holdTime 90s", json!({"holdTime": "90s"}), None),
        ("holdTime 1m30s", json!({"holdTime": "1m30s"}), None),
        ("holdTime 0s", json!({"holdTime": "0s"}), None),
        ("holdTime 3s", json!({"holdTime": "3s"}), None),
        (
            "holdTime 2s",
            json!({"holdTime": "2s"}),
            Some("holdTime must be 0 or between 3s and 65535s"),
        ),
        (
            "holdTime 65536s",
            json!({"holdTime": "65536s"}),
            Some("holdTime must be 0 or between 3s and 65535s"),
        ),
        (
            "holdTime 3500ms",
            json!({"holdTime": "3500ms"}),
            Some("holdTime must be a whole number of seconds"),
        ),
        // keepaliveTime <= holdTime
        (
            "keepalive 30s hold 90s",
            json!({"holdTime": "90s", "keepaliveTime": "30s"}),
            None,
        ),
        (
            "keepalive = hold",
            json!({"holdTime": "9s", "keepaliveTime": "9s"}),
            None,
        ),
        ("keepalive only", json!({"keepaliveTime": "20s"}), None),
        (
            "keepalive > hold",
            json!({"holdTime": "30s", "keepaliveTime": "1m"}),
            Some("keepaliveTime must not be longer than holdTime"),
        ),
        (
            "keepalive 0 with hold",
            json!({"holdTime": "90s", "keepaliveTime": "0s"}),
            Some("keepaliveTime 0"),
        ),
        (
            "keepalive 0 and hold 0",
            json!({"holdTime": "0s", "keepaliveTime": "0s"}),
            None,
        ),
        (
            "keepalive negative",
            json!({"keepaliveTime": "-1s"}),
            Some("keepaliveTime must not be negative"),
        ),
        (
            "keepalive fractional",
            json!({"keepaliveTime": "1.5s"}),
            Some("keepaliveTime must be a whole number of seconds"),
        ),
        // connectTime 1..65535 s, whole seconds (MetalLB's rules and messages)
        ("connectTime 10s", json!({"connectTime": "10s"}), None),
        (
            "connectTime 0s",
            json!({"connectTime": "0s"}),
            Some("connect time should be between 1 seconds to 65535"),
        ),
        (
            "connectTime 65536s",
            json!({"connectTime": "65536s"}),
            Some("connect time should be between 1 seconds to 65535"),
        ),
        (
            "connectTime 1500ms",
            json!({"connectTime": "1500ms"}),
            Some("connect time should contain a whole number of seconds"),
        ),
        // ebgpMultiHop only for eBGP
        ("multihop eBGP", json!({"ebgpMultiHop": true}), None),
        (
            "multihop iBGP",
            json!({"ebgpMultiHop": true, "peerASN": 64512}),
            Some("ebgpMultiHop applies to eBGP sessions only"),
        ),
        (
            "multihop dynamic internal",
            json!({"ebgpMultiHop": true, "peerASN": null, "dynamicASN": "internal"}),
            Some("ebgpMultiHop applies to eBGP sessions only"),
        ),
        (
            "multihop dynamic external",
            json!({"ebgpMultiHop": true, "peerASN": null, "dynamicASN": "external"}),
            None,
        ),
        (
            "multihop iBGP through localASN",
            json!({"ebgpMultiHop": true, "localASN": 64513}),
            Some("ebgpMultiHop applies to eBGP sessions only"),
        ),
        (
            "iBGP without multihop",
            json!({"peerASN": 64512, "ebgpMultiHop": false}),
            None,
        ),
    ];
    for (what, patch, want) in &cases {
        let spec = merge(&base, patch);
        expect(what, BGPPeerSpec::validate_cel(&spec, None), *want);
        // The code validation rejects everything CEL rejects, and accepts what it accepts.
        assert_eq!(
            code_accepts_peer(&spec),
            want.is_none(),
            "validate() disagrees with CEL on {what}: {spec}"
        );
    }
}

/// A string that is not a duration draws the one format message per field, naming the accepted form; no
/// rule that converts it with `duration()` fails with a type conversion error (an API server reports those
/// as "type conversion error from 'string' to 'google.protobuf.Duration'").
#[test]
fn bad_durations_draw_one_plain_message_each() {
    let form = format!(
        "must be a duration: {}",
        ferrolb_crds::duration::DURATION_FORM
    );
    for (what, patch, fields) in [
        ("holdTime 3x", json!({"holdTime": "3x"}), 1),
        ("keepaliveTime 1h2", json!({"keepaliveTime": "1h2"}), 1),
        ("connectTime abc", json!({"connectTime": "abc"}), 1),
        (
            "all three",
            json!({"holdTime": "3x", "keepaliveTime": "90", "connectTime": "1 m"}),
            3,
        ),
        (
            "bad keepalive, good hold",
            json!({"holdTime": "90s", "keepaliveTime": "1d"}),
            1,
        ),
    ] {
        let spec = merge(&peer_base(), &patch);
        let msgs = messages(BGPPeerSpec::validate_cel(&spec, None));
        assert_eq!(msgs, vec![form.clone(); fields], "{what}");
        assert!(!code_accepts_peer(&spec), "validate() accepts {what}");
    }
}

#[test]
fn graceful_restart_is_immutable() {
    let off = merge(&peer_base(), &json!({"enableGracefulRestart": false}));
    let on = merge(&peer_base(), &json!({"enableGracefulRestart": true}));
    let unset = peer_base();
    expect("create with GR", BGPPeerSpec::validate_cel(&on, None), None);
    expect("unchanged", BGPPeerSpec::validate_cel(&on, Some(&on)), None);
    expect(
        "off to on",
        BGPPeerSpec::validate_cel(&on, Some(&off)),
        Some("enableGracefulRestart cannot be changed"),
    );
    expect(
        "on to off",
        BGPPeerSpec::validate_cel(&off, Some(&on)),
        Some("enableGracefulRestart cannot be changed"),
    );
    // Dropping the field from the manifest is a change too (it defaults to false).
    expect(
        "on to unset",
        BGPPeerSpec::validate_cel(&unset, Some(&on)),
        Some("enableGracefulRestart cannot be changed"),
    );
    expect(
        "unset to off",
        BGPPeerSpec::validate_cel(&off, Some(&unset)),
        None,
    );
    // Other fields may change.
    let moved = merge(&on, &json!({"holdTime": "30s"}));
    expect(
        "other change",
        BGPPeerSpec::validate_cel(&moved, Some(&on)),
        None,
    );

    // The same through the generated resource methods.
    let spec = |v: &Value| serde_json::from_value::<BGPPeerSpec>(v.clone()).unwrap();
    let old = BGPPeer::new("tor", spec(&on));
    let new = BGPPeer::new("tor", spec(&off));
    assert!(new.validate_cel().is_ok(), "creation rules pass");
    let err = new.validate_cel_update(&old).unwrap_err();
    assert!(
        err.iter().any(|e| e.message.contains("cannot be changed")),
        "{err}"
    );
    assert!(old.validate_cel_update(&old).is_ok());
}

#[test]
fn resource_level_validation() {
    let bad = BGPPeer::new(
        "tor",
        serde_json::from_value(json!({"myASN": 64512, "peerASN": 64512, "peerAddress": "198.51.100.1", "ebgpMultiHop": true, "peerPort": 0}))
            .unwrap(),
    );
    let errs = bad.validate_cel().unwrap_err();
    assert_eq!(errs.len(), 2, "{errs}");
    let pool = IPAddressPool::new(
        "empty",
        IPAddressPoolSpec {
            addresses: vec![],
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        },
    );
    assert!(pool
        .validate_cel()
        .unwrap_err()
        .iter()
        .any(|e| e.message.contains("at least one address range")));
    let ad = BGPAdvertisement::new(
        "ad",
        serde_json::from_value(json!({"aggregationLength": 0})).unwrap(),
    );
    assert!(ad.validate_cel().is_err());
    assert!(BFDProfile::new("bfd", BFDProfileSpec::default())
        .validate_cel()
        .is_ok());
}

#[test]
fn bgpadvertisement_rules() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("defaults", json!({}), None),
        (
            "aggregationLength 24",
            json!({"aggregationLength": 24}),
            None,
        ),
        ("aggregationLength 1", json!({"aggregationLength": 1}), None),
        (
            "aggregationLength 0",
            json!({"aggregationLength": 0}),
            Some("aggregationLength must be between 1 and 32"),
        ),
        (
            "aggregationLength 33",
            json!({"aggregationLength": 33}),
            Some("aggregationLength must be between 1 and 32"),
        ),
        (
            "aggregationLengthV6 64",
            json!({"aggregationLengthV6": 64}),
            None,
        ),
        (
            "aggregationLengthV6 0",
            json!({"aggregationLengthV6": 0}),
            Some("aggregationLengthV6 must be between 1 and 128"),
        ),
        (
            "aggregationLengthV6 129",
            json!({"aggregationLengthV6": 129}),
            Some("aggregationLengthV6 must be between 1 and 128"),
        ),
        (
            "serviceSelectors with defaults",
            json!({"serviceSelectors": [{"matchLabels": {"app": "web"}}]}),
            None,
        ),
        (
            "serviceSelectors explicitly default",
            json!({"serviceSelectors": [{"matchLabels": {"app": "web"}}], "aggregationLength": 32, "aggregationLengthV6": 128}),
            None,
        ),
        (
            "serviceSelectors with aggregation",
            json!({"serviceSelectors": [{"matchLabels": {"app": "web"}}], "aggregationLength": 24}),
            Some("serviceSelectors can only be used with the default aggregation lengths"),
        ),
        (
            "serviceSelectors with v6 aggregation",
            json!({"serviceSelectors": [{"matchLabels": {"app": "web"}}], "aggregationLengthV6": 64}),
            Some("serviceSelectors can only be used with the default aggregation lengths"),
        ),
    ];
    for (what, spec, want) in &cases {
        expect(what, BGPAdvertisementSpec::validate_cel(spec, None), *want);
        let parsed: BGPAdvertisementSpec = serde_json::from_value(spec.clone()).unwrap();
        let mut objects = Objects::default();
        objects.push(BGPAdvertisement::new("ad", parsed), None);
        assert_eq!(
            validate(&objects).is_ok(),
            want.is_none(),
            "validate() disagrees with CEL on {what}"
        );
    }
}

#[test]
fn bfdprofile_rules() {
    let ranges: [(&str, i64, i64); 5] = [
        ("receiveInterval", 10, 60000),
        ("transmitInterval", 10, 60000),
        ("detectMultiplier", 2, 255),
        ("echoInterval", 10, 60000),
        ("minimumTtl", 1, 254),
    ];
    expect(
        "defaults",
        BFDProfileSpec::validate_cel(&json!({}), None),
        None,
    );
    for (field, lo, hi) in ranges {
        for (value, ok) in [(lo - 1, false), (lo, true), (hi, true), (hi + 1, false)] {
            let spec = json!({ field: value });
            let want = (!ok).then(|| format!("{field} must be between {lo} and {hi}"));
            expect(
                &format!("{field} = {value}"),
                BFDProfileSpec::validate_cel(&spec, None),
                want.as_deref(),
            );
            let parsed: BFDProfileSpec = serde_json::from_value(spec).unwrap();
            let mut objects = Objects::default();
            objects.push(BFDProfile::new("bfd", parsed), None);
            assert_eq!(
                validate(&objects).is_ok(),
                ok,
                "validate() disagrees with CEL on {field} = {value}"
            );
        }
    }
}

#[test]
fn ipaddresspool_l2_and_community_rules() {
    expect(
        "addresses",
        IPAddressPoolSpec::validate_cel(&json!({"addresses": ["198.51.100.0/24"]}), None),
        None,
    );
    expect(
        "no addresses",
        IPAddressPoolSpec::validate_cel(&json!({"addresses": []}), None),
        Some("at least one address range is required"),
    );

    let pref = |w: i64| json!({"preferredNodeSelectors": [{"weight": w, "preference": {"matchLabels": {"zone": "a"}}}]});
    expect(
        "weight 1",
        L2AdvertisementSpec::validate_cel(&pref(1), None),
        None,
    );
    expect(
        "weight 100",
        L2AdvertisementSpec::validate_cel(&pref(100), None),
        None,
    );
    expect(
        "weight 0",
        L2AdvertisementSpec::validate_cel(&pref(0), None),
        Some("weight must be between 1 and 100"),
    );
    expect(
        "weight 101",
        L2AdvertisementSpec::validate_cel(&pref(101), None),
        Some("weight must be between 1 and 100"),
    );

    let alias = |v: &str| json!({"communities": [{"name": "no-advertise", "value": v}]});
    expect(
        "standard",
        CommunitySpec::validate_cel(&alias("65535:65282"), None),
        None,
    );
    expect(
        "large",
        CommunitySpec::validate_cel(&alias("large:64512:1:2"), None),
        None,
    );
    expect(
        "garbage",
        CommunitySpec::validate_cel(&alias("no-advertise"), None),
        Some("value must be AA:NN or large:A:B:C"),
    );
    expect(
        "three parts",
        CommunitySpec::validate_cel(&alias("1:2:3"), None),
        Some("value must be AA:NN or large:A:B:C"),
    );
    expect(
        "empty name",
        CommunitySpec::validate_cel(
            &json!({"communities": [{"name": "", "value": "1:2"}]}),
            None,
        ),
        Some("alias name must not be empty"),
    );
}
