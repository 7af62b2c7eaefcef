//! Byte-vector tests for every decode error path: each asserts the exact NOTIFICATION code/subcode
//! (RFC 4271 §6) or the RFC 7606 outcome (treat-as-withdraw / attribute discard) with its RFC 4271 reason.

use ferrolb_bgp::wire::notification::{code, header, open, update};
use ferrolb_bgp::wire::{DecodeContext, Message, Notification, Update};

/// A whole message: marker, length, type, body.
fn msg(mtype: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(mtype);
    m.extend_from_slice(body);
    m
}

fn decode(bytes: &[u8], cx: &DecodeContext) -> Result<Message, Notification> {
    Message::decode(bytes, cx)
}

fn err(bytes: &[u8], cx: &DecodeContext) -> (u8, u8) {
    let n = decode(bytes, cx).expect_err("must be rejected");
    (n.code, n.subcode)
}

const EBGP: DecodeContext = DecodeContext {
    four_octet_as: true,
    ebgp_peer_as: Some(64500),
};
const IBGP: DecodeContext = DecodeContext {
    four_octet_as: true,
    ebgp_peer_as: None,
};

// ---------- Message header (RFC 4271 §6.1) ----------

#[test]
fn bad_marker_is_connection_not_synchronized() {
    let mut m = msg(4, &[]);
    m[3] = 0xfe;
    assert_eq!(
        err(&m, &EBGP),
        (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED)
    );
}

#[test]
fn length_below_header_is_bad_length_with_the_length_as_data() {
    let mut m = msg(4, &[]);
    m[16..18].copy_from_slice(&18u16.to_be_bytes());
    let n = decode(&m, &EBGP).unwrap_err();
    assert_eq!(
        (n.code, n.subcode),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
    assert_eq!(&n.data[..], &[0, 18]);
}

#[test]
fn length_above_4096_is_bad_length() {
    let mut m = msg(2, &[0; 4]);
    m[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        err(&m, &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
}

#[test]
fn length_field_disagreeing_with_the_frame_is_bad_length() {
    let mut m = msg(2, &[0, 0, 0, 0]);
    m.push(0);
    assert_eq!(
        err(&m, &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
}

#[test]
fn unknown_type_is_bad_message_type_with_the_type_as_data() {
    let n = decode(&msg(6, &[]), &EBGP).unwrap_err();
    assert_eq!(
        (n.code, n.subcode),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE)
    );
    assert_eq!(&n.data[..], &[6]);
    assert_eq!(
        err(&msg(0, &[]), &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE)
    );
}

#[test]
fn per_type_minimum_lengths() {
    // KEEPALIVE must be exactly 19 octets; OPEN ≥ 29; UPDATE ≥ 23; NOTIFICATION ≥ 21.
    assert_eq!(
        err(&msg(4, &[0]), &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
    assert_eq!(
        err(&msg(1, &[0; 9]), &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
    assert_eq!(
        err(&msg(2, &[0; 3]), &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
    assert_eq!(
        err(&msg(3, &[6]), &EBGP),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH)
    );
}

#[test]
fn route_refresh_of_wrong_length_is_rfc7313_invalid_length() {
    assert_eq!(
        err(&msg(5, &[0, 1, 0, 1, 0]), &EBGP),
        (code::ROUTE_REFRESH, 1)
    );
    assert_eq!(err(&msg(5, &[0, 1, 0]), &EBGP), (code::ROUTE_REFRESH, 1));
}

// ---------- OPEN (RFC 4271 §6.2, RFC 5492) ----------

/// OPEN body: version 4, AS 64500, hold 90, id 198.51.100.2, then the given optional parameters.
fn open_body(version: u8, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&64500u16.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    b
}
const ID: [u8; 4] = [198, 51, 100, 2];

#[test]
fn open_unsupported_version_names_version_4() {
    let n = decode(&msg(1, &open_body(3, 90, ID, &[])), &EBGP).unwrap_err();
    assert_eq!((n.code, n.subcode), (code::OPEN, open::UNSUPPORTED_VERSION));
    assert_eq!(&n.data[..], &[0, 4]);
}

#[test]
fn open_hold_time_of_one_or_two_seconds_is_unacceptable() {
    for hold in [1, 2] {
        assert_eq!(
            err(&msg(1, &open_body(4, hold, ID, &[])), &EBGP),
            (code::OPEN, open::UNACCEPTABLE_HOLD_TIME)
        );
    }
    // 0 and 3 are fine.
    for hold in [0, 3] {
        assert!(decode(&msg(1, &open_body(4, hold, ID, &[])), &EBGP).is_ok());
    }
}

#[test]
fn open_zero_identifier_is_bad_bgp_identifier() {
    assert_eq!(
        err(&msg(1, &open_body(4, 90, [0; 4], &[])), &EBGP),
        (code::OPEN, open::BAD_BGP_IDENTIFIER)
    );
}

#[test]
fn open_unknown_optional_parameter_is_unsupported() {
    // Parameter type 1 (the deprecated Authentication parameter).
    let n = decode(&msg(1, &open_body(4, 90, ID, &[1, 1, 0])), &EBGP).unwrap_err();
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER)
    );
}

#[test]
fn open_parameter_overrunning_its_length_is_unspecific() {
    assert_eq!(
        err(&msg(1, &open_body(4, 90, ID, &[2, 6, 65, 4, 0, 0])), &EBGP),
        (code::OPEN, open::UNSPECIFIC)
    );
    // Optional Parameters Length larger than what follows.
    let mut b = open_body(4, 90, ID, &[]);
    b[9] = 4;
    assert_eq!(err(&msg(1, &b), &EBGP), (code::OPEN, open::UNSPECIFIC));
}

#[test]
fn open_malformed_known_capabilities_are_unspecific() {
    // Multiprotocol with 3 octets, 4-octet AS with 2, truncated capability header, GR with odd length.
    for caps in [
        &[1u8, 3, 0, 1, 0][..],
        &[65, 2, 0, 1],
        &[65],
        &[64, 3, 0, 120, 0],
    ] {
        let mut p = vec![2, caps.len() as u8];
        p.extend_from_slice(caps);
        assert_eq!(
            err(&msg(1, &open_body(4, 90, ID, &p)), &EBGP),
            (code::OPEN, open::UNSPECIFIC),
            "{caps:?}"
        );
    }
}

#[test]
fn open_unknown_capabilities_are_accepted() {
    // FQDN (73) as FRR sends it, and ADD-PATH (69).
    let caps = [73, 3, 1, b'r', 0, 69, 4, 0, 1, 1, 1];
    let mut params = vec![2, caps.len() as u8];
    params.extend_from_slice(&caps);
    let Message::Open(o) = decode(&msg(1, &open_body(4, 90, ID, &params)), &EBGP).unwrap() else {
        panic!()
    };
    assert_eq!(o.capabilities.len(), 2);
}

#[test]
fn open_extended_optional_parameters_rfc9072() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, 2-octet length, then one Capabilities parameter with a
    // 2-octet length holding the 4-octet-AS capability.
    let mut b = open_body(4, 90, ID, &[]);
    b.pop();
    b.extend_from_slice(&[255, 255, 0, 9, 2, 0, 6, 65, 4, 0, 0, 0xfb, 0xf4]);
    let Message::Open(o) = decode(&msg(1, &b), &EBGP).unwrap() else {
        panic!()
    };
    assert_eq!(o.asn(), 64500);
}

// ---------- UPDATE (RFC 4271 §6.3, RFC 7606) ----------

fn attr(flags: u8, t: u8, v: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, t, v.len() as u8];
    a.extend_from_slice(v);
    a
}
fn origin() -> Vec<u8> {
    attr(0x40, 1, &[0])
}
fn as_path(asn: u32) -> Vec<u8> {
    let mut v = vec![2, 1];
    v.extend_from_slice(&asn.to_be_bytes());
    attr(0x40, 2, &v)
}
fn next_hop(a: [u8; 4]) -> Vec<u8> {
    attr(0x40, 3, &a)
}
fn local_pref() -> Vec<u8> {
    attr(0x40, 5, &100u32.to_be_bytes())
}
/// UPDATE body with no withdrawals, the attributes concatenated, and NLRI 203.0.113.1/32.
fn update_body(attrs: &[Vec<u8>]) -> Vec<u8> {
    let a: Vec<u8> = attrs.concat();
    let mut b = vec![0, 0];
    b.extend_from_slice(&(a.len() as u16).to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(&[32, 203, 0, 113, 1]);
    b
}
fn good_attrs() -> Vec<Vec<u8>> {
    vec![origin(), as_path(64500), next_hop([198, 51, 100, 2])]
}
fn decode_update(body: &[u8], cx: &DecodeContext) -> Result<Update, Notification> {
    match decode(&msg(2, body), cx)? {
        Message::Update(u) => Ok(u),
        other => panic!("not an update: {other:?}"),
    }
}
/// The treat-as-withdraw reason: (code, subcode, attribute type).
fn withdrawn_because(body: &[u8], cx: &DecodeContext) -> (u8, u8, u8) {
    let u = decode_update(body, cx).expect("session survives");
    let e = u.treat_as_withdraw.expect("routes treated as withdrawn");
    (e.error.code, e.error.subcode, e.type_code)
}

#[test]
fn a_well_formed_update_is_accepted_untouched() {
    let u = decode_update(&update_body(&good_attrs()), &EBGP).unwrap();
    assert!(u.treat_as_withdraw.is_none() && u.discarded.is_empty());
    assert_eq!(u.nlri.len(), 1);
}

#[test]
fn withdrawn_length_overrunning_the_message_is_malformed_attribute_list() {
    assert_eq!(
        err(&msg(2, &[0, 9, 0, 0]), &EBGP),
        (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST)
    );
}

#[test]
fn attribute_length_overrunning_the_message_is_malformed_attribute_list() {
    assert_eq!(
        err(&msg(2, &[0, 0, 0, 9, 0x40, 1, 1, 0]), &EBGP),
        (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST)
    );
}

#[test]
fn bad_nlri_is_invalid_network_field() {
    // Prefix length 33 in the NLRI.
    let mut b = update_body(&good_attrs());
    let n = b.len();
    b[n - 5] = 33;
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (code::UPDATE, update::INVALID_NETWORK_FIELD)
    );
    // A /24 announced with only two octets.
    let mut b = update_body(&good_attrs());
    b.truncate(b.len() - 5);
    b.extend_from_slice(&[24, 203, 0]);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (code::UPDATE, update::INVALID_NETWORK_FIELD)
    );
    // A withdrawn route whose octets run past the withdrawn field.
    assert_eq!(
        err(&msg(2, &[0, 2, 32, 203, 0, 0]), &EBGP),
        (code::UPDATE, update::INVALID_NETWORK_FIELD)
    );
}

#[test]
fn origin_errors_are_treat_as_withdraw() {
    let bad_value = vec![
        attr(0x40, 1, &[3]),
        as_path(64500),
        next_hop([198, 51, 100, 2]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&bad_value), &EBGP),
        (3, update::INVALID_ORIGIN_ATTRIBUTE, 1)
    );
    let bad_len = vec![
        attr(0x40, 1, &[0, 0]),
        as_path(64500),
        next_hop([198, 51, 100, 2]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&bad_len), &EBGP),
        (3, update::ATTRIBUTE_LENGTH_ERROR, 1)
    );
}

#[test]
fn attribute_flags_conflicting_with_the_type_are_flags_errors() {
    // ORIGIN marked optional.
    let a = vec![
        attr(0xc0, 1, &[0]),
        as_path(64500),
        next_hop([198, 51, 100, 2]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_FLAGS_ERROR, 1)
    );
    // COMMUNITIES marked well-known.
    let mut a = good_attrs();
    a.push(attr(0x40, 8, &[0, 1, 0, 1]));
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_FLAGS_ERROR, 8)
    );
    // MP_REACH_NLRI with wrong flags cannot be withdrawn reliably: session reset.
    let mp = attr(
        0x40,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ],
    );
    assert_eq!(
        err(
            &msg(2, &update_body(&[mp, origin(), as_path(64500)])),
            &EBGP
        ),
        (3, update::ATTRIBUTE_FLAGS_ERROR)
    );
}

#[test]
fn as_path_errors_are_malformed_as_path_treat_as_withdraw() {
    // Segment type 5 does not exist.
    let a = vec![
        origin(),
        attr(0x40, 2, &[5, 1, 0, 0, 0xfb, 0xf4]),
        next_hop([198, 51, 100, 2]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::MALFORMED_AS_PATH, 2)
    );
    // A segment announcing more ASNs than it carries.
    let a = vec![
        origin(),
        attr(0x40, 2, &[2, 2, 0, 0, 0xfb, 0xf4]),
        next_hop([198, 51, 100, 2]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::MALFORMED_AS_PATH, 2)
    );
    // An external peer whose path does not start with its own AS.
    let a = vec![origin(), as_path(65000), next_hop([198, 51, 100, 2])];
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::MALFORMED_AS_PATH, 2)
    );
    // 2-octet session: the path is decoded with 2-octet ASNs.
    let two = DecodeContext {
        four_octet_as: false,
        ebgp_peer_as: Some(64500),
    };
    let a = vec![
        origin(),
        attr(0x40, 2, &[2, 1, 0xfb, 0xf4]),
        next_hop([198, 51, 100, 2]),
    ];
    assert!(decode_update(&update_body(&a), &two)
        .unwrap()
        .treat_as_withdraw
        .is_none());
}

#[test]
fn next_hop_errors() {
    for bad in [[0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255]] {
        let a = vec![origin(), as_path(64500), next_hop(bad)];
        assert_eq!(
            withdrawn_because(&update_body(&a), &EBGP),
            (3, update::INVALID_NEXT_HOP_ATTRIBUTE, 3),
            "{bad:?}"
        );
    }
    let a = vec![
        origin(),
        as_path(64500),
        attr(0x40, 3, &[198, 51, 100, 2, 0]),
    ];
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_LENGTH_ERROR, 3)
    );
}

#[test]
fn missing_well_known_attributes_name_the_missing_type() {
    let cases = [
        (vec![as_path(64500), next_hop([198, 51, 100, 2])], 1u8),
        (vec![origin(), next_hop([198, 51, 100, 2])], 2),
        (vec![origin(), as_path(64500)], 3),
    ];
    for (attrs, missing) in cases {
        let u = decode_update(&update_body(&attrs), &EBGP).unwrap();
        let e = u.treat_as_withdraw.unwrap();
        assert_eq!(
            (e.error.code, e.error.subcode),
            (3, update::MISSING_WELL_KNOWN_ATTRIBUTE)
        );
        assert_eq!(&e.error.data[..], &[missing]);
    }
    // LOCAL_PREF is mandatory from an internal peer only.
    let ibgp = vec![origin(), attr(0x40, 2, &[]), next_hop([198, 51, 100, 2])];
    assert_eq!(
        withdrawn_because(&update_body(&ibgp), &IBGP),
        (3, update::MISSING_WELL_KNOWN_ATTRIBUTE, 5)
    );
    let mut with_lp = ibgp.clone();
    with_lp.push(local_pref());
    assert!(decode_update(&update_body(&with_lp), &IBGP)
        .unwrap()
        .treat_as_withdraw
        .is_none());
}

#[test]
fn an_update_with_only_withdrawals_needs_no_attributes() {
    let u = decode_update(&[0, 5, 32, 203, 0, 113, 1, 0, 0], &EBGP).unwrap();
    assert!(u.treat_as_withdraw.is_none());
    assert_eq!(u.withdrawn.len(), 1);
}

#[test]
fn unrecognized_well_known_attribute_resets_the_session() {
    let mut a = good_attrs();
    a.push(attr(0x40, 99, &[1]));
    let n = decode(&msg(2, &update_body(&a)), &EBGP).unwrap_err();
    assert_eq!(
        (n.code, n.subcode),
        (3, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE)
    );
    assert_eq!(&n.data[..], &[0x40, 99, 1, 1]);
}

#[test]
fn unknown_optional_attributes_are_kept() {
    let mut a = good_attrs();
    a.push(attr(0xc0, 99, &[1, 2]));
    let u = decode_update(&update_body(&a), &EBGP).unwrap();
    assert!(u.treat_as_withdraw.is_none());
    assert!(u.attribute(99).is_some());
}

#[test]
fn repeated_attributes_keep_the_first_but_repeated_mp_attributes_reset() {
    let mut a = good_attrs();
    a.push(attr(0x40, 1, &[2]));
    let u = decode_update(&update_body(&a), &EBGP).unwrap();
    assert_eq!(u.discarded.len(), 1);
    assert!(u.treat_as_withdraw.is_none());
    let unreach = attr(0x80, 15, &[0, 2, 1]);
    let b = update_body(&[unreach.clone(), unreach]);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (3, update::MALFORMED_ATTRIBUTE_LIST)
    );
}

#[test]
fn malformed_mp_reach_resets_with_optional_attribute_error() {
    // Next-hop length 15.
    let mut v = vec![0, 2, 1, 15];
    v.extend_from_slice(&[0; 15]);
    v.push(0);
    let b = update_body(&[attr(0x80, 14, &v), origin(), as_path(64500)]);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (3, update::OPTIONAL_ATTRIBUTE_ERROR)
    );
    // An IPv6 prefix length of 129.
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[
        0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 129,
    ]);
    v.extend_from_slice(&[0; 17]);
    let b = update_body(&[attr(0x80, 14, &v), origin(), as_path(64500)]);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (3, update::OPTIONAL_ATTRIBUTE_ERROR)
    );
    // MP_UNREACH shorter than AFI+SAFI.
    let b = update_body(&[attr(0x80, 15, &[0, 2])]);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (3, update::OPTIONAL_ATTRIBUTE_ERROR)
    );
}

#[test]
fn community_length_errors_are_treat_as_withdraw() {
    let mut a = good_attrs();
    a.push(attr(0xc0, 8, &[0, 1, 0]));
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_LENGTH_ERROR, 8)
    );
    let mut a = good_attrs();
    a.push(attr(0xc0, 32, &[0; 11]));
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_LENGTH_ERROR, 32)
    );
    let mut a = good_attrs();
    a.push(attr(0x80, 4, &[0; 3]));
    assert_eq!(
        withdrawn_because(&update_body(&a), &EBGP),
        (3, update::ATTRIBUTE_LENGTH_ERROR, 4)
    );
}

#[test]
fn aggregator_atomic_aggregate_and_as4_errors_discard_the_attribute() {
    for bad in [
        attr(0xc0, 7, &[0; 7]),
        attr(0x40, 6, &[1]),
        attr(0xc0, 17, &[2, 3, 0, 0]),
        attr(0xc0, 18, &[0; 6]),
    ] {
        let t = bad[1];
        let mut a = good_attrs();
        a.push(bad);
        let u = decode_update(&update_body(&a), &EBGP).unwrap();
        assert!(u.treat_as_withdraw.is_none(), "type {t}");
        assert_eq!(u.discarded.len(), 1, "type {t}");
        assert_eq!(u.discarded[0].type_code, t);
    }
}

#[test]
fn local_pref_from_an_external_peer_is_ignored() {
    let mut a = good_attrs();
    a.push(local_pref());
    let u = decode_update(&update_body(&a), &EBGP).unwrap();
    assert!(u.attribute(5).is_none() && u.treat_as_withdraw.is_none());
}

#[test]
fn an_attribute_overrunning_the_attribute_list_is_treat_as_withdraw_or_reset_after_mp() {
    // ORIGIN claims 5 octets inside a 4-octet attribute list: no MP attribute, so treat-as-withdraw.
    let b = [0, 0, 0, 4, 0x40, 1, 5, 0, 32, 203, 0, 113, 1];
    let u = decode_update(&b, &EBGP).unwrap();
    let e = u.treat_as_withdraw.unwrap();
    assert_eq!(
        (e.error.code, e.error.subcode),
        (3, update::MALFORMED_ATTRIBUTE_LIST)
    );
    // The same after an MP_UNREACH: its routes cannot be trusted, so the session resets.
    let mut a = attr(0x80, 15, &[0, 2, 1]);
    a.extend_from_slice(&[0x40, 1, 5, 0]);
    let mut b = vec![0, 0, 0, a.len() as u8];
    b.extend_from_slice(&a);
    assert_eq!(
        err(&msg(2, &b), &EBGP),
        (3, update::MALFORMED_ATTRIBUTE_LIST)
    );
}

#[test]
fn end_of_rib_markers_are_recognised() {
    let Message::Update(v4) = decode(&msg(2, &[0, 0, 0, 0]), &EBGP).unwrap() else {
        panic!()
    };
    assert!(v4.end_of_rib().is_some());
    let Message::Update(v6) = decode(&msg(2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]), &EBGP).unwrap()
    else {
        panic!()
    };
    assert_eq!(v6.end_of_rib().map(|(a, _)| a.0), Some(2));
}
