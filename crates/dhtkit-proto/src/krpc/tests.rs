use super::*;
use crate::bencode::{Decoder, Limits};

/// Every example message from BEP 5, as bytes.
const BEP5_EXAMPLES: &[&[u8]] = &[
    b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
    b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
    b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
    b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
];

fn parse(buf: &[u8]) -> Vec<u8> {
    let mut d = Decoder::new(Limits::default());
    let v = d.decode(buf).expect("decodes");
    let m = Message::parse(v).expect("parses");
    m.to_bytes()
}

#[test]
fn bep5_examples_roundtrip_byte_for_byte() {
    for ex in BEP5_EXAMPLES {
        assert_eq!(parse(ex), ex.to_vec(), "{}", String::from_utf8_lossy(ex));
    }
}

#[test]
fn bep5_examples_have_expected_fields() {
    let mut d = Decoder::new(Limits::default());
    let m = Message::parse(d.decode(BEP5_EXAMPLES[7]).unwrap()).unwrap();
    let Body::Query(q) = m.body else { panic!() };
    assert_eq!(q.id.0, *b"abcdefghij0123456789");
    match q.method {
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            assert_eq!(&info_hash.0, b"mnopqrstuvwxyz123456");
            assert_eq!(port, 6881);
            assert!(implied_port);
            assert_eq!(token, b"aoeusnth");
            assert!(!seed);
        }
        other => panic!("{other:?}"),
    }
    let m = Message::parse(d.decode(BEP5_EXAMPLES[5]).unwrap()).unwrap();
    let Body::Response(r) = m.body else { panic!() };
    let vals: Vec<&[u8]> = r.values.unwrap().raw().collect();
    assert_eq!(vals, vec![&b"axje.u"[..], b"idhtnm"]);
    assert_eq!(r.token, Some(&b"aoeusnth"[..]));
    let m = Message::parse(d.decode(BEP5_EXAMPLES[8]).unwrap()).unwrap();
    let Body::Error(e) = m.body else { panic!() };
    assert_eq!(e.code, 201);
    assert_eq!(e.message, b"A Generic Error Ocurred");
}

#[test]
fn extensions_roundtrip() {
    let cases: &[&[u8]] = &[
        // BEP 43 read-only flag and a version string, 4-byte transaction id.
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t4:abcd1:v4:DK\x00\x011:y1:qe",
        // BEP 32 want, BEP 42 ip in a response with nodes6.
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t1:x1:y1:qe",
        b"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:0123456789abcdefghij6:nodes60:e1:t0:1:y1:re",
        // BEP 51 response.
        b"d1:rd2:id20:0123456789abcdefghij8:intervali21600e3:numi1e7:samples20:aaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re",
        // BEP 33 get_peers flags.
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe",
    ];
    for c in cases {
        assert_eq!(parse(c), c.to_vec(), "{}", String::from_utf8_lossy(c));
    }
}

fn parse_err(buf: &[u8]) -> (Option<Vec<u8>>, bool, i64) {
    let mut d = Decoder::new(Limits::default());
    let v = d.decode(buf).expect("decodes");
    let e = Message::parse(v).expect_err("must not parse");
    (e.tid.map(<[u8]>::to_vec), e.is_query, e.code)
}

#[test]
fn malformed_queries_are_protocol_errors_with_tid() {
    let (tid, q, code) = parse_err(b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
    assert_eq!((tid.as_deref(), q, code), (Some(&b"xy"[..]), true, 203));
    let (_, q, code) = parse_err(b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe");
    assert_eq!((q, code), (true, 203));
    let (_, q, _) = parse_err(b"d1:rd2:id1:xe1:t2:xy1:y1:re");
    assert!(!q, "responses are never answered");
    let (tid, _, _) = parse_err(b"d1:y1:qe");
    assert_eq!(tid, None);
}

#[test]
fn unknown_method_keeps_target_and_info_hash() {
    let m = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q6:vote_x1:t2:aa1:y1:qe";
    let mut d = Decoder::new(Limits::default());
    let msg = Message::parse(d.decode(m).unwrap()).unwrap();
    let Body::Query(q) = &msg.body else { panic!() };
    assert_eq!(
        q.method,
        Method::Other {
            name: &b"vote_x"[..],
            target: None,
            info_hash: Some(Id(*b"mnopqrstuvwxyz123456"))
        }
    );
    assert_eq!(msg.to_bytes(), m.to_vec());
}
