//! BEP 44 and BEP 33 on arbitrary messages, past the token check a node would make first: a
//! `put` becomes an item only if it checks out, and a bounded store stays bounded; a `get`
//! reply's item is accepted only for its own target; scrape filters of any content give a
//! finite estimate.
#![no_main]

use dhtkit_proto::bencode::{Decoder, Limits};
use dhtkit_proto::items::{Item, ItemConfig, ItemStore};
use dhtkit_proto::krpc::{Body, Message, Method};
use dhtkit_proto::scrape::Bloom;
use dhtkit_proto::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(Limits::default());
    let Ok(v) = d.decode(data) else { return };
    let Ok(m) = Message::parse(v) else { return };
    match m.body {
        Body::Query(q) => {
            if let Method::Put {
                v,
                k,
                sig,
                salt,
                seq,
                cas,
                ..
            } = q.method
            {
                let Ok(item) = Item::from_put(v, k, sig, salt, seq) else {
                    return;
                };
                assert!(item.check().is_ok(), "from_put returned an item that fails check");
                let mut store = ItemStore::new(ItemConfig::default());
                let _ = store.put(Instant::ZERO, item.clone(), cas);
                assert!(store.len() <= 1);
                assert_eq!(store.peek(&item.target()).is_some(), store.len() == 1);
            }
        }
        Body::Response(r) => {
            if let Some(v) = r.v {
                // Taken for the target it claims to be (immutable: its hash; mutable: its key
                // and an empty salt) it may pass; for any other target it must not.
                let as_claimed = Item::from_reply(&r.id, b"", v, r.k, r.sig, r.seq);
                if let Some(item) = as_claimed {
                    assert_eq!(item.target(), r.id);
                }
            }
            for f in [r.bf_seeds, r.bf_peers].into_iter().flatten() {
                if let Some(b) = Bloom::from_wire(f) {
                    let _ = b.estimate();
                }
            }
        }
        _ => {}
    }
});
