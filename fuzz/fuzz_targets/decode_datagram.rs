//! Every wire decoder on arbitrary bytes: must never panic, and whatever decodes must
//! re-encode to something that decodes to the same value.
#![no_main]

use espial_core::config::MAX_DATAGRAM;
use espial_core::wire::{
    decode_body, decode_msgs, encode_clear, encode_msgs, split_header, Beacon, Cookie, Hello, HelloAck,
    Kind, SealedHeader,
};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(kind: Kind, body: &[u8]) {
    if let Ok(v) = decode_body::<T>(body) {
        let enc = encode_clear(kind, &v);
        let (k, b) = split_header(&enc, usize::MAX).expect("own encoding has a valid header");
        assert_eq!(k, kind);
        assert_eq!(decode_body::<T>(b).expect("own encoding decodes"), v);
    }
}

fuzz_target!(|data: &[u8]| {
    // As the node sees a datagram.
    if let Ok((kind, body)) = split_header(data, MAX_DATAGRAM) {
        match kind {
            Kind::Beacon => round_trip::<Beacon>(kind, body),
            Kind::Hello => round_trip::<Hello>(kind, body),
            Kind::HelloAck => round_trip::<HelloAck>(kind, body),
            Kind::Cookie => round_trip::<Cookie>(kind, body),
            Kind::Sealed => {
                if let Ok((header, rest)) = SealedHeader::parse(body) {
                    let mut out = Vec::new();
                    header.write(&mut out);
                    assert_eq!(&out[4..], &body[..body.len() - rest.len()]);
                    let _ = decode_msgs(rest);
                }
            }
        }
    }
    // Every decoder directly on the raw bytes too (reaches the bodies without a header).
    let _ = decode_body::<Beacon>(data);
    let _ = decode_body::<Hello>(data);
    let _ = decode_body::<HelloAck>(data);
    let _ = decode_body::<Cookie>(data);
    let _ = SealedHeader::parse(data);
    if let Ok(msgs) = decode_msgs(data) {
        assert_eq!(
            decode_msgs(&encode_msgs(&msgs)).expect("own encoding decodes"),
            msgs
        );
    }
});
