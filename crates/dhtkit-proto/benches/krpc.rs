//! KRPC decode and encode, dhtkit against `serde_bencode` and `bendy` on the same messages.
//!
//! Run: `cargo bench -p dhtkit-proto --bench krpc`
//!
//! Each library is used the way its users would: dhtkit decodes into a borrowed, typed message;
//! serde_bencode deserialises into a typed struct (owned buffers); bendy decodes into its generic
//! value tree (its typed route needs a hand-written `FromBencode` per struct) — and every library
//! also decodes into its generic value tree, the like-for-like comparison.

use std::hint::black_box;
use std::net::SocketAddr;

use bendy::decoding::FromBencode;
use bendy::encoding::ToBencode;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dhtkit_proto::bencode::{Decoder, Limits};
use dhtkit_proto::compact;
use dhtkit_proto::krpc::{Body, Message, Response, Values};
use dhtkit_proto::Id;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

#[derive(Serialize, Deserialize)]
struct SArgs {
    id: ByteBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    implied_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    info_hash: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct SResp {
    id: ByteBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<ByteBuf>>,
}

#[derive(Serialize, Deserialize)]
struct SMsg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<SArgs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<SResp>,
    t: ByteBuf,
    y: String,
}

fn nodes_blob() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..8u8 {
        let addr = SocketAddr::from(([127, 0, 1, i], 6881));
        compact::encode_node(&Id([i; 20]), &addr, &mut out);
    }
    out
}

fn values_blob(n: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        compact::encode_peer(
            &SocketAddr::from(([127, 1, (i >> 8) as u8, i as u8], 5000 + i)),
            &mut out,
        );
    }
    out
}

/// The messages: (name, bytes).
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let nodes = nodes_blob();
    let values = values_blob(50);
    let id = Id(*b"abcdefghij0123456789");
    let find_node_resp = Message {
        tid: b"aaaa",
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response {
            id,
            nodes: Some(&nodes),
            ..Response::default()
        }),
    }
    .to_bytes();
    let get_peers_resp = Message {
        tid: b"aaaa",
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response {
            id,
            nodes: Some(&nodes),
            token: Some(b"aoeusnth"),
            values: Some(Values::Compact {
                bytes: &values,
                stride: 6,
            }),
            ..Response::default()
        }),
    }
    .to_bytes();
    vec![
        ("ping_query", b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t4:aaaa1:y1:qe".to_vec()),
        ("get_peers_query", b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t4:aaaa1:y1:qe".to_vec()),
        ("announce_peer_query", b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t4:aaaa1:y1:qe".to_vec()),
        ("find_node_response_8_nodes", find_node_resp),
        ("get_peers_response_50_values", get_peers_resp),
    ]
}

fn decode(c: &mut Criterion) {
    for (name, msg) in messages() {
        let mut g = c.benchmark_group(format!("decode/{name}"));
        g.throughput(Throughput::Bytes(msg.len() as u64));
        let mut dec = Decoder::new(Limits::default());
        g.bench_function("dhtkit_typed", |b| {
            b.iter(|| {
                let v = dec.decode(black_box(&msg)).unwrap();
                let m = Message::parse(v).unwrap();
                black_box(m.tid.len());
            })
        });
        g.bench_function("dhtkit_value", |b| {
            b.iter(|| {
                let v = dec.decode(black_box(&msg)).unwrap();
                black_box(v.raw().len());
            })
        });
        g.bench_function("serde_bencode_typed", |b| {
            b.iter(|| {
                let m: SMsg = serde_bencode::from_bytes(black_box(&msg)).unwrap();
                black_box(m.t.len());
            })
        });
        g.bench_function("serde_bencode_value", |b| {
            b.iter(|| {
                let v: serde_bencode::value::Value =
                    serde_bencode::from_bytes(black_box(&msg)).unwrap();
                black_box(v);
            })
        });
        g.bench_function("bendy_value", |b| {
            b.iter(|| {
                let v = bendy::value::Value::from_bencode(black_box(&msg)).unwrap();
                black_box(v);
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for (name, msg) in messages() {
        let mut dec = Decoder::new(Limits::default());
        let typed = Message::parse(dec.decode(&msg).unwrap()).unwrap();
        let smsg: SMsg = serde_bencode::from_bytes(&msg).unwrap();
        let bvalue = bendy::value::Value::from_bencode(&msg).unwrap();
        // Sanity: all three produce the same canonical bytes.
        assert_eq!(typed.to_bytes(), msg);
        assert_eq!(serde_bencode::to_bytes(&smsg).unwrap(), msg);
        assert_eq!(bvalue.to_bencode().unwrap(), msg);
        let mut g = c.benchmark_group(format!("encode/{name}"));
        g.throughput(Throughput::Bytes(msg.len() as u64));
        let mut buf = Vec::with_capacity(2048);
        g.bench_function("dhtkit_typed", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&typed).encode(&mut buf);
                black_box(buf.len());
            })
        });
        g.bench_function("serde_bencode_typed", |b| {
            b.iter(|| black_box(serde_bencode::to_bytes(black_box(&smsg)).unwrap()))
        });
        g.bench_function("bendy_value", |b| {
            b.iter(|| black_box(black_box(&bvalue).to_bencode().unwrap()))
        });
        g.finish();
    }
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
