//! Known-answer tests through our own wrappers (the functions the cipher itself calls).

use espial_core::cipher::{Aead, CryptoError};
use espial_crypto::primitives::{
    aes_gcm_open, aes_gcm_seal, gcm_nonce, hkdf_sha256, hmac_sha256, x25519, x25519_public_key,
};
use espial_crypto::GcmAead;

fn h(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().expect("32 bytes")
}

fn h12(s: &str) -> [u8; 12] {
    h(s).try_into().expect("12 bytes")
}

// ---------------------------------------------------------------- RFC 7748 X25519

#[test]
fn rfc7748_5_2_vector_1() {
    let k = h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    let out = h32("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    assert_eq!(x25519(&k, &u).unwrap(), out);
}

#[test]
fn rfc7748_5_2_vector_2() {
    let k = h32("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d");
    let u = h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
    let out = h32("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
    assert_eq!(x25519(&k, &u).unwrap(), out);
}

#[test]
fn rfc7748_5_2_iterated_1_and_1000() {
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for i in 1..=1000 {
        let next = x25519(&k, &u).unwrap();
        u = k;
        k = next;
        if i == 1 {
            assert_eq!(
                k,
                h32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
            );
        }
    }
    assert_eq!(
        k,
        h32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

#[test]
fn rfc7748_6_1_diffie_hellman() {
    let a = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let a_pub = h32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let b = h32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let b_pub = h32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let k = h32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(x25519_public_key(&a).unwrap(), a_pub);
    assert_eq!(x25519_public_key(&b).unwrap(), b_pub);
    assert_eq!(x25519(&a, &b_pub).unwrap(), k);
    assert_eq!(x25519(&b, &a_pub).unwrap(), k);
}

#[test]
fn x25519_rejects_bad_shares() {
    let a = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    for len in [0usize, 1, 31, 33, 64] {
        assert_eq!(
            x25519(&a, &vec![9u8; len]),
            Err(CryptoError::BadKeyShare),
            "len {len}"
        );
    }
    // Low-order points give an all-zero shared secret: u = 0 and u = 1.
    assert_eq!(x25519(&a, &[0u8; 32]), Err(CryptoError::BadKeyShare));
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(x25519(&a, &one), Err(CryptoError::BadKeyShare));
    // A point of order 8 (from the libsodium/Curve25519 blocklist).
    let order8 = h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    assert_eq!(x25519(&a, &order8), Err(CryptoError::BadKeyShare));
}

// ---------------------------------------------------------------- RFC 5869 HKDF-SHA256

#[test]
fn rfc5869_case_1() {
    let ikm = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    let salt = h("000102030405060708090a0b0c");
    let info = h("f0f1f2f3f4f5f6f7f8f9");
    // PRK = HKDF-Extract = HMAC(salt, ikm): checks our HMAC wrapper too.
    assert_eq!(
        hmac_sha256(&salt, &ikm).to_vec(),
        h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    );
    assert_eq!(
        hkdf_sha256(&salt, &ikm, &info, 42).unwrap(),
        h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    );
}

#[test]
fn rfc5869_case_2() {
    let ikm: Vec<u8> = (0x00..=0x4f).collect();
    let salt: Vec<u8> = (0x60..=0xaf).collect();
    let info: Vec<u8> = (0xb0..=0xff).collect();
    assert_eq!(
        hmac_sha256(&salt, &ikm).to_vec(),
        h("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244")
    );
    assert_eq!(
        hkdf_sha256(&salt, &ikm, &info, 82).unwrap(),
        h(concat!(
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c",
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71",
            "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ))
    );
}

#[test]
fn rfc5869_case_3_empty_salt_and_info() {
    let ikm = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    assert_eq!(
        hmac_sha256(&[], &ikm).to_vec(),
        h("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04")
    );
    assert_eq!(
        hkdf_sha256(&[], &ikm, &[], 42).unwrap(),
        h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    );
}

#[test]
fn hkdf_refuses_oversized_output() {
    assert!(hkdf_sha256(b"s", b"k", b"i", 255 * 32).is_ok());
    assert!(hkdf_sha256(b"s", b"k", b"i", 255 * 32 + 1).is_err());
}

// ---------------------------------------------------------------- AES-GCM (GCM spec test cases)

struct GcmCase {
    name: &'static str,
    key: &'static str,
    iv: &'static str,
    pt: &'static str,
    aad: &'static str,
    ct: &'static str,
    tag: &'static str,
}

const P64: &str = concat!(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
);
const P60: &str = concat!(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
);
const AAD20: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const K128: &str = "feffe9928665731c6d6a8f9467308308";
const K256: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";

const GCM_CASES: &[GcmCase] = &[
    GcmCase {
        name: "TC1 AES-128 empty",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        pt: "",
        aad: "",
        ct: "",
        tag: "58e2fccefa7e3061367f1d57a4e7455a",
    },
    GcmCase {
        name: "TC2 AES-128 zero block",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        pt: "00000000000000000000000000000000",
        aad: "",
        ct: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    GcmCase {
        name: "TC3 AES-128 64 bytes",
        key: K128,
        iv: "cafebabefacedbaddecaf888",
        pt: P64,
        aad: "",
        ct: concat!(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e",
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
        ),
        tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    },
    GcmCase {
        name: "TC4 AES-128 60 bytes with AAD",
        key: K128,
        iv: "cafebabefacedbaddecaf888",
        pt: P60,
        aad: AAD20,
        ct: concat!(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e",
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        ),
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    GcmCase {
        name: "TC13 AES-256 empty",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        pt: "",
        aad: "",
        ct: "",
        tag: "530f8afbc74536b9a963b4f1c4cb738b",
    },
    GcmCase {
        name: "TC14 AES-256 zero block",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        pt: "00000000000000000000000000000000",
        aad: "",
        ct: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919",
    },
    GcmCase {
        name: "TC15 AES-256 64 bytes",
        key: K256,
        iv: "cafebabefacedbaddecaf888",
        pt: P64,
        aad: "",
        ct: concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
        ),
        tag: "b094dac5d93471bdec1a502270e3cc6c",
    },
    GcmCase {
        name: "TC16 AES-256 60 bytes with AAD",
        key: K256,
        iv: "cafebabefacedbaddecaf888",
        pt: P60,
        aad: AAD20,
        ct: concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ),
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

#[test]
fn gcm_spec_vectors_seal_and_open() {
    for c in GCM_CASES {
        let (key, iv, pt, aad) = (h(c.key), h12(c.iv), h(c.pt), h(c.aad));
        let expected = [h(c.ct), h(c.tag)].concat();
        let sealed = aes_gcm_seal(&key, &iv, &aad, &pt).unwrap();
        assert_eq!(sealed, expected, "{} seal", c.name);
        assert_eq!(
            aes_gcm_open(&key, &iv, &aad, &expected).unwrap(),
            pt,
            "{} open",
            c.name
        );
        // Wrong tag, wrong AAD: rejected.
        let mut bad = expected.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            aes_gcm_open(&key, &iv, &aad, &bad),
            Err(CryptoError::BadTag),
            "{}",
            c.name
        );
        assert_eq!(
            aes_gcm_open(&key, &iv, b"other aad", &expected),
            Err(CryptoError::BadTag),
            "{}",
            c.name
        );
    }
}

/// The record cipher (`GcmAead`, what sessions use) with the counter nonce layout
/// `0u32 || counter_be`, checked against an independent vector: TC2's key and nonce
/// (all zero) is counter 0, and a vector with a non-zero counter is checked through
/// the primitive with the explicit nonce.
#[test]
fn gcm_aead_counter_nonce_matches_primitive() {
    let key = h(K128);
    let aead = GcmAead::new(&key).unwrap();
    for counter in [0u64, 1, 0x0102_0304_0506_0708, u64::MAX] {
        let mut rec = b"counter nonce record".to_vec();
        aead.seal(counter, b"hdr", &mut rec).unwrap();
        let expected =
            aes_gcm_seal(&key, &gcm_nonce(counter), b"hdr", b"counter nonce record").unwrap();
        assert_eq!(rec, expected, "counter {counter}");
        aead.open(counter, b"hdr", &mut rec).unwrap();
        assert_eq!(rec, b"counter nonce record");
    }
    // TC2 through the record cipher: zero key, counter 0 = all-zero nonce.
    let aead = GcmAead::new(&[0u8; 16]).unwrap();
    let mut rec = vec![0u8; 16];
    aead.seal(0, b"", &mut rec).unwrap();
    assert_eq!(
        rec,
        h("0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf")
    );
    assert_eq!(aead.tag_len(), 16);
}
