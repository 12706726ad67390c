//! Compact node and peer decoding on arbitrary bytes: never panics, and what decodes
//! re-encodes to the same bytes.
#![no_main]

use dhtkit_proto::compact;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for v6 in [false, true] {
        let stride = if v6 {
            compact::NODE_V6_LEN
        } else {
            compact::NODE_V4_LEN
        };
        let mut out = Vec::new();
        for (id, addr) in compact::nodes(data, v6) {
            compact::encode_node(&id, &addr, &mut out);
        }
        assert_eq!(out, data[..data.len() / stride * stride]);
    }
    if let Some(p) = compact::decode_peer(data) {
        let mut out = Vec::new();
        compact::encode_peer(&p, &mut out);
        assert_eq!(out, data);
    }
});
