//! Round trips of every KRPC message with every optional field present and non-empty:
//! encode, decode, parse, and every field comes back as it went (a round trip that only ever
//! carried empty samples, as anacrolix/dht's did until 2026, would hide a bug in them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dhtkit_proto::bencode::{Decoder, Limits, OwnedValue};
use dhtkit_proto::krpc::{Body, ErrorBody, Message, Method, Query, Response, Values, Want};
use dhtkit_proto::Id;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id)
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), min..max)
}

/// `n` fixed-size entries laid end to end (compact nodes, peers, samples), at least one.
fn entries(size: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    (1..max).prop_flat_map(move |n| bytes(n * size, n * size + 1))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), 1..u16::MAX)
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<[u8; 16]>(), 1..u16::MAX)
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

/// A bencoded value for BEP 44's `v`: a byte string, an integer or a small list.
fn bencoded() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(1, 200).prop_map(OwnedValue::Bytes),
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(bytes(1, 20).prop_map(OwnedValue::Bytes), 1..5)
            .prop_map(OwnedValue::List),
    ]
    .prop_map(|v| v.to_bytes())
}

/// Every query method, each with all of its optional arguments set.
fn method() -> impl Strategy<Value = Method<Vec<u8>>> {
    prop_oneof![
        Just(Method::Ping),
        id().prop_map(|target| Method::FindNode { target }),
        id().prop_map(|info_hash| Method::GetPeers {
            info_hash,
            noseed: true,
            scrape: true,
        }),
        (id(), 1..u16::MAX, bytes(1, 40)).prop_map(|(info_hash, port, token)| {
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port: true,
                token,
                seed: true,
            }
        }),
        id().prop_map(|target| Method::SampleInfohashes { target }),
        (id(), any::<i64>()).prop_map(|(target, seq)| Method::Get {
            target,
            seq: Some(seq),
        }),
        (
            bytes(1, 40),
            bencoded(),
            bytes(32, 33),
            bytes(64, 65),
            bytes(1, 65),
            any::<i64>(),
            any::<i64>()
        )
            .prop_map(|(token, v, k, sig, salt, seq, cas)| Method::Put {
                token,
                v,
                k: Some(k),
                sig: Some(sig),
                salt: Some(salt),
                seq: Some(seq),
                cas: Some(cas),
            }),
    ]
}

fn borrow(m: &Method<Vec<u8>>) -> Method<&[u8]> {
    m.view()
}

/// Encodes `m`, decodes and parses it, and hands the result to `check`.
fn round_trip(m: &Message<'_>, check: impl FnOnce(&Message<'_>)) {
    let mut wire = Vec::new();
    m.encode(&mut wire);
    let mut d = Decoder::new(Limits::default());
    let v = d.decode(&wire).expect("our encoding decodes");
    let back = Message::parse(v).expect("our encoding parses");
    assert_eq!(back.tid, m.tid);
    assert_eq!(back.version, m.version);
    assert_eq!(back.ip, m.ip);
    check(&back);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn queries_round_trip_with_every_field(
        tid in bytes(1, 8),
        version in bytes(1, 8),
        ip in addr(),
        querier in id(),
        m in method(),
    ) {
        let msg = Message {
            tid: &tid,
            version: Some(&version),
            read_only: true,
            ip: Some(ip),
            body: Body::Query(Query {
                id: querier,
                method: borrow(&m),
                want: Want { v4: true, v6: true },
            }),
        };
        round_trip(&msg, |back| {
            assert!(back.read_only);
            let Body::Query(q) = &back.body else { panic!("not a query: {back:?}") };
            assert_eq!(q.id, querier);
            assert_eq!(q.want, Want { v4: true, v6: true });
            assert_eq!(q.method, borrow(&m));
        });
    }

    #[test]
    fn responses_round_trip_with_every_field(
        tid in bytes(1, 8),
        version in bytes(1, 8),
        ip in addr(),
        responder in id(),
        nodes in entries(26, 9),
        nodes6 in entries(38, 9),
        token in bytes(1, 40),
        peers in entries(6, 20),
        peers6 in entries(18, 10),
        v6_peers in any::<bool>(),
        interval in 0..i64::MAX,
        num in 0..i64::MAX,
        samples in entries(20, 51),
        v in bencoded(),
        k in bytes(32, 33),
        sig in bytes(64, 65),
        seq in any::<i64>(),
        bf_seeds in bytes(256, 257),
        bf_peers in bytes(256, 257),
    ) {
        let (values, stride) = if v6_peers { (&peers6, 18) } else { (&peers, 6) };
        let r = Response {
            id: responder,
            nodes: Some(&nodes),
            nodes6: Some(&nodes6),
            token: Some(&token),
            values: Some(Values::Compact { bytes: values, stride }),
            interval: Some(interval),
            num: Some(num),
            samples: Some(&samples),
            v: Some(&v),
            k: Some(&k),
            sig: Some(&sig),
            seq: Some(seq),
            bf_seeds: Some(&bf_seeds),
            bf_peers: Some(&bf_peers),
        };
        let msg = Message {
            tid: &tid,
            version: Some(&version),
            read_only: false,
            ip: Some(ip),
            body: Body::Response(r),
        };
        round_trip(&msg, |back| {
            let Body::Response(b) = &back.body else { panic!("not a response: {back:?}") };
            assert_eq!(b.id, responder);
            assert_eq!(b.nodes, Some(&nodes[..]));
            assert_eq!(b.nodes6, Some(&nodes6[..]));
            assert_eq!(b.token, Some(&token[..]));
            let got: Vec<&[u8]> = b.values.as_ref().expect("values").raw().collect();
            let want: Vec<&[u8]> = values.chunks(stride).collect();
            assert_eq!(got, want);
            assert_eq!(b.interval, Some(interval));
            assert_eq!(b.num, Some(num));
            assert_eq!(b.samples, Some(&samples[..]));
            assert_eq!(b.v, Some(&v[..]));
            assert_eq!(b.k, Some(&k[..]));
            assert_eq!(b.sig, Some(&sig[..]));
            assert_eq!(b.seq, Some(seq));
            assert_eq!(b.bf_seeds, Some(&bf_seeds[..]));
            assert_eq!(b.bf_peers, Some(&bf_peers[..]));
        });
    }

    #[test]
    fn errors_round_trip(tid in bytes(1, 8), code in 201..305i64, text in bytes(1, 100)) {
        let msg = Message {
            tid: &tid,
            version: None,
            read_only: false,
            ip: None,
            body: Body::Error(ErrorBody { code, message: &text }),
        };
        round_trip(&msg, |back| {
            let Body::Error(e) = &back.body else { panic!("not an error: {back:?}") };
            assert_eq!((e.code, e.message), (code, &text[..]));
        });
    }
}
