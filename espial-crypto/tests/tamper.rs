//! Tampering: flipping any single bit of a sealed record (clear header = associated data,
//! ciphertext or tag) makes `open` fail.

use espial_core::cipher::{Cipher, Role, SessionKeys};
use espial_core::wire::{SealedHeader, SEALED_HEADER_LEN};
use espial_core::NodeId;
use espial_crypto::AesGcmCipher;
use proptest::prelude::*;

fn session(aes256: bool, psk: bool) -> (SessionKeys, SessionKeys) {
    let make = || {
        let c = if aes256 {
            AesGcmCipher::new().aes256()
        } else {
            AesGcmCipher::new()
        };
        if psk {
            c.with_psk(b"tamper test cluster key").unwrap()
        } else {
            c
        }
    };
    let (mut a, mut b) = (make(), make());
    let (x, y) = (a.start_exchange(), b.start_exchange());
    let (xs, ys) = (x.public_share().to_vec(), y.public_share().to_vec());
    let t = [xs.as_slice(), &ys].concat();
    (
        x.complete(&ys, &t, Role::Initiator).unwrap(),
        y.complete(&xs, &t, Role::Responder).unwrap(),
    )
}

/// Seals like the core: the 32-byte clear header is the associated data.
fn seal_datagram(keys: &SessionKeys, counter: u64, payload: &[u8]) -> Vec<u8> {
    let mut dgram = Vec::new();
    SealedHeader {
        sender: NodeId(0xfeed),
        epoch: 3,
        counter,
    }
    .write(&mut dgram);
    let mut body = payload.to_vec();
    keys.send.seal(counter, &dgram, &mut body).unwrap();
    dgram.extend_from_slice(&body);
    dgram
}

/// Opens like the core: parse the header, open the rest with the header as AAD.
fn open_datagram(keys: &SessionKeys, dgram: &[u8]) -> Option<Vec<u8>> {
    let (header, ct) = SealedHeader::parse(dgram.get(4..)?).ok()?;
    let mut body = ct.to_vec();
    keys.recv
        .open(header.counter, &dgram[..SEALED_HEADER_LEN], &mut body)
        .ok()?;
    Some(body)
}

proptest! {
    #[test]
    fn any_single_bit_flip_is_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        counter in any::<u64>(),
        aes256 in any::<bool>(),
        psk in any::<bool>(),
        bit_seed in any::<u64>(),
    ) {
        let (a, b) = session(aes256, psk);
        let dgram = seal_datagram(&a, counter, &payload);
        prop_assert_eq!(dgram.len(), SEALED_HEADER_LEN + payload.len() + 16);
        prop_assert_eq!(open_datagram(&b, &dgram), Some(payload.clone()));
        let bit = (bit_seed % (dgram.len() as u64 * 8)) as usize;
        let mut bad = dgram.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(open_datagram(&b, &bad), None, "bit {} of {}", bit, dgram.len() * 8);
    }

    #[test]
    fn truncation_and_extension_are_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        cut in 1usize..40,
        extra in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let (a, b) = session(false, true);
        let dgram = seal_datagram(&a, 1, &payload);
        let cut = cut.min(dgram.len());
        prop_assert_eq!(open_datagram(&b, &dgram[..dgram.len() - cut]), None);
        let longer = [dgram.as_slice(), &extra].concat();
        prop_assert_eq!(open_datagram(&b, &longer), None);
    }
}

/// Exhaustive over every bit of one small record, both suites (deterministic backstop).
#[test]
fn every_bit_of_a_small_record() {
    for aes256 in [false, true] {
        let (a, b) = session(aes256, true);
        let dgram = seal_datagram(&a, 42, b"sixteen byte msg");
        assert!(open_datagram(&b, &dgram).is_some());
        for bit in 0..dgram.len() * 8 {
            let mut bad = dgram.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(open_datagram(&b, &bad), None, "bit {bit}");
        }
    }
}
