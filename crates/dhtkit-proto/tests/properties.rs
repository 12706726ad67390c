//! Property tests: bencode round-trips, and no input panics the decoder or a node.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use dhtkit_proto::bencode::{Decoder, Limits, OwnedValue};
use dhtkit_proto::krpc::Message;
use dhtkit_proto::{Config, Instant, Node};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(OwnedValue::List),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), inner), 0..8)
                .prop_map(|kv| OwnedValue::Dict(kv.into_iter().collect::<BTreeMap<_, _>>())),
        ]
    })
}

/// Valid KRPC messages, to mutate.
const SEEDS: &[&[u8]] = &[
    b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
    b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
    b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    b"d1:rd2:id20:abcdefghij01234567895:nodes26:aaaaaaaaaaaaaaaaaaaa\x7f\x00\x00\x01\x1a\xe15:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t4:\x00\x00\x00\x011:y1:re",
    b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
];

fn node() -> Node {
    let mut cfg = Config::default();
    cfg.seed = 9;
    cfg.allow_local_addrs = true;
    Node::new(cfg, Instant::ZERO)
}

fn drain(n: &mut Node) {
    while n.poll_transmit().is_some() {}
    while n.poll_event().is_some() {}
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn bencode_roundtrips(v in value()) {
        let bytes = v.to_bytes();
        let back = OwnedValue::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    /// `raw` is a value's exact encoding, at the top and inside lists and dictionaries (a
    /// BEP 44 `v` of any type is kept as it came).
    #[test]
    fn raw_is_the_exact_encoding(v in value()) {
        let bytes = v.to_bytes();
        let mut d = Decoder::new(Limits::default());
        let top = d.decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(top.raw(), &bytes[..]);
        let inner: Vec<(Vec<u8>, Vec<u8>)> = match &v {
            OwnedValue::List(l) => l
                .iter()
                .zip(top.as_list().expect("a list").iter())
                .map(|(o, x)| (o.to_bytes(), x.raw().to_vec()))
                .collect(),
            OwnedValue::Dict(m) => m
                .values()
                .zip(top.as_dict().expect("a dict").iter())
                .map(|(o, (_, x))| (o.to_bytes(), x.raw().to_vec()))
                .collect(),
            _ => Vec::new(),
        };
        for (want, got) in inner {
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut d = Decoder::new(Limits::default());
        if let Ok(v) = d.decode(&bytes) {
            // Whatever decodes re-encodes to exactly the input when it was canonical, and
            // parsing as KRPC never panics either.
            let owned = v.to_owned_value();
            let _ = Message::parse(v);
            let _ = owned.to_bytes();
        }
    }

    #[test]
    fn node_never_panics_on_arbitrary_bytes(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut n = node();
        let from: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        for d in datagrams {
            n.handle_datagram(Instant::ZERO, from, &d);
            drain(&mut n);
        }
    }

    #[test]
    fn node_never_panics_on_mutated_messages(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut n = node();
        let mut msg = SEEDS[seed].to_vec();
        for (idx, byte, op) in edits {
            if msg.is_empty() { break; }
            let i = idx.index(msg.len());
            match op {
                0 => msg[i] = byte,
                1 => { msg.remove(i); }
                _ => msg.insert(i, byte),
            }
        }
        let from: SocketAddr = "127.0.0.3:6881".parse().unwrap();
        n.handle_datagram(Instant::ZERO, from, &msg);
        drain(&mut n);
    }
}

#[test]
fn decoder_limits_are_enforced() {
    let mut d = Decoder::new(Limits {
        max_depth: 4,
        max_tokens: 10,
        max_string_len: 5,
    });
    assert_eq!(
        d.decode(b"llllli1eeeeee").unwrap_err().kind,
        dhtkit_proto::bencode::ErrorKind::TooDeep
    );
    assert!(d.decode(b"lllli1eeeee").is_ok());
    assert!(
        d.decode(b"li1ei2ei3ei4ei5ei6ei7ei8ei9ei10ee").is_err(),
        "too many values"
    );
    assert!(d.decode(b"6:abcdef").is_err(), "string too long");
    assert!(
        d.decode(b"i99999999999999999999e").is_err(),
        "integer overflow"
    );
    for bad in [
        &b"i-0e"[..],
        b"i01e",
        b"ie",
        b"03:abc",
        b"d1:ae",
        b"di1ei2ee",
        b"le",
        b"i1ei2e",
    ] {
        if bad == b"le" {
            assert!(d.decode(bad).is_ok());
            continue;
        }
        let e = d.decode(bad).unwrap_err();
        assert!(e.offset <= bad.len(), "{e}");
    }
}
