//! Arbitrary bytes as a sealed record opened with a real AES-GCM session: must never
//! panic, and must never open (a forgery would mean the fuzzer found a valid tag).
#![no_main]

use espial_core::cipher::{Cipher, Role, SessionKeys};
use espial_core::wire::{split_header, Kind, SealedHeader, SEALED_HEADER_LEN};
use espial_crypto::AesGcmCipher;
use libfuzzer_sys::fuzz_target;

fn session() -> SessionKeys {
    let mut a = AesGcmCipher::seeded(1, false);
    let mut b = AesGcmCipher::seeded(2, false);
    let (x, y) = (a.start_exchange(), b.start_exchange());
    let ys = y.public_share().to_vec();
    x.complete(&ys, b"fuzz transcript", Role::Responder)
        .expect("seeded exchange completes")
}

thread_local! {
    static KEYS: SessionKeys = session();
}

fuzz_target!(|data: &[u8]| KEYS.with(|keys| check(keys, data)));

fn check(keys: &SessionKeys, data: &[u8]) {
    if let Ok((Kind::Sealed, body)) = split_header(data, usize::MAX) {
        if let Ok((header, ct)) = SealedHeader::parse(body) {
            let mut buf = ct.to_vec();
            let opened = keys
                .recv
                .open(header.counter, &data[..SEALED_HEADER_LEN], &mut buf);
            assert!(opened.is_err(), "forged record opened");
        }
    }
    let mut buf = data.to_vec();
    assert!(
        keys.recv.open(0, b"", &mut buf).is_err(),
        "forged record opened"
    );
}
