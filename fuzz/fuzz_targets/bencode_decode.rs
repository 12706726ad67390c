//! The bencode decoder on arbitrary bytes: never panics; whatever decodes re-encodes, and the
//! re-encoding decodes to the same tree.
#![no_main]

use dhtkit_proto::bencode::{Decoder, Limits, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(Limits::default());
    if let Ok(v) = d.decode(data) {
        let owned = v.to_owned_value();
        let again = owned.to_bytes();
        assert_eq!(
            OwnedValue::decode(&again).expect("own encoding decodes"),
            owned
        );
    }
});
