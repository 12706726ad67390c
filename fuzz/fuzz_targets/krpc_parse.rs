//! KRPC parsing on arbitrary bytes: never panics; a parsed message re-encodes to something that
//! parses again to the same encoding (canonical form is a fixed point).
#![no_main]

use dhtkit_proto::bencode::{Decoder, Limits};
use dhtkit_proto::krpc::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(Limits::default());
    let Ok(v) = d.decode(data) else { return };
    let Ok(m) = Message::parse(v) else { return };
    let canonical = m.to_bytes();
    let mut d2 = Decoder::new(Limits::default());
    let v2 = d2.decode(&canonical).expect("canonical encoding decodes");
    let m2 = Message::parse(v2).expect("canonical encoding parses");
    assert_eq!(m2.to_bytes(), canonical);
});
