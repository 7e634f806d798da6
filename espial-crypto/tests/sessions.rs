//! Key exchange, key schedule, PSK, man in the middle, beacons, identity, Debug redaction.

use espial_core::cipher::{Cipher, CryptoError, Role, SessionKeys};
use espial_crypto::{node_id_from_public_key, AesGcmCipher, IdentityKey};

const PSK: &[u8] = b"sixteen+ byte cluster key";
const OTHER_PSK: &[u8] = b"another cluster key, 16+";

/// A transcript like the core's: version, both ids, both shares.
fn transcript(i_share: &[u8], r_share: &[u8]) -> Vec<u8> {
    [b"\x01".as_slice(), &[1u8; 16], &[2u8; 16], i_share, r_share].concat()
}

/// Runs one exchange between `init` and `resp` (with an optional transcript tweak on the
/// responder side) and returns both sides' keys.
fn handshake(
    init: &mut AesGcmCipher,
    resp: &mut AesGcmCipher,
    resp_transcript_suffix: &[u8],
) -> (SessionKeys, SessionKeys) {
    let (a, b) = (init.start_exchange(), resp.start_exchange());
    let (a_share, b_share) = (a.public_share().to_vec(), b.public_share().to_vec());
    assert_eq!(a_share.len(), 32);
    let t = transcript(&a_share, &b_share);
    let t_resp = [t.as_slice(), resp_transcript_suffix].concat();
    let ka = a.complete(&b_share, &t, Role::Initiator).unwrap();
    let kb = b.complete(&a_share, &t_resp, Role::Responder).unwrap();
    (ka, kb)
}

fn works(from: &SessionKeys, to: &SessionKeys) -> bool {
    let mut rec = b"payload".to_vec();
    from.send.seal(7, b"aad", &mut rec).unwrap();
    to.recv.open(7, b"aad", &mut rec).is_ok() && rec == b"payload"
}

fn psk() -> AesGcmCipher {
    AesGcmCipher::new().with_psk(PSK).unwrap()
}

#[test]
fn both_roles_derive_matching_directional_keys() {
    for (mut a, mut b) in [
        (AesGcmCipher::new(), AesGcmCipher::new()),
        (psk(), psk()),
        (AesGcmCipher::new().aes256(), AesGcmCipher::new().aes256()),
        (psk().aes256(), psk().aes256()),
    ] {
        let (ka, kb) = handshake(&mut a, &mut b, b"");
        assert!(works(&ka, &kb), "initiator -> responder");
        assert!(works(&kb, &ka), "responder -> initiator");
        // The two directions use different keys: a reflected record does not open.
        assert!(!works(&ka, &ka), "reflection must fail");
        assert!(!works(&kb, &kb), "reflection must fail");
    }
}

#[test]
fn suites_are_named() {
    assert_eq!(AesGcmCipher::new().suite(), "aes128gcm");
    assert_eq!(AesGcmCipher::new().aes256().suite(), "aes256gcm");
    assert_eq!(AesGcmCipher::seeded(1, true).suite(), "aes256gcm");
    assert_eq!(AesGcmCipher::seeded(1, false).suite(), "aes128gcm");
}

#[test]
fn different_transcripts_give_keys_that_fail() {
    let (ka, kb) = handshake(&mut psk(), &mut psk(), b"x");
    assert!(!works(&ka, &kb));
    assert!(!works(&kb, &ka));
    let (ka, kb) = handshake(&mut AesGcmCipher::new(), &mut AesGcmCipher::new(), b"x");
    assert!(!works(&ka, &kb));
}

#[test]
fn psk_mismatches_give_keys_that_fail() {
    let other = || AesGcmCipher::new().with_psk(OTHER_PSK).unwrap();
    let cases: Vec<(&str, AesGcmCipher, AesGcmCipher)> = vec![
        ("different psks", psk(), other()),
        ("psk on initiator only", psk(), AesGcmCipher::new()),
        ("psk on responder only", AesGcmCipher::new(), psk()),
        ("suite mismatch", psk(), psk().aes256()),
    ];
    for (name, mut a, mut b) in cases {
        let (ka, kb) = handshake(&mut a, &mut b, b"");
        assert!(!works(&ka, &kb), "{name}");
        assert!(!works(&kb, &ka), "{name}");
    }
}

#[test]
fn short_psk_is_refused_with_a_clear_error() {
    let err = AesGcmCipher::new().with_psk(b"too short").unwrap_err();
    assert!(err.to_string().contains("at least 16 bytes"), "{err}");
    assert!(AesGcmCipher::new().with_psk(&[7u8; 16]).is_ok());
}

#[test]
fn bad_key_shares_are_rejected() {
    let mut c = AesGcmCipher::new();
    let mut order8 = [0u8; 32];
    // A low-order point (all-zero shared secret).
    order8.copy_from_slice(&[
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ]);
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![9; 31],
        vec![9; 33],
        vec![0; 32],
        order8.to_vec(),
    ];
    for share in bad {
        let ex = c.start_exchange();
        assert_eq!(
            ex.complete(&share, b"t", Role::Initiator).err(),
            Some(CryptoError::BadKeyShare),
            "share {share:?}"
        );
    }
}

#[test]
fn exchanges_use_fresh_keys() {
    let mut c = AesGcmCipher::new();
    let a = c.start_exchange().public_share().to_vec();
    let b = c.start_exchange().public_share().to_vec();
    assert_ne!(a, b);
    let mut c2 = AesGcmCipher::new();
    assert_ne!(a, c2.start_exchange().public_share());
}

#[test]
fn seeded_ciphers_repeat_and_differ_by_seed() {
    let shares = |seed| {
        let mut c = AesGcmCipher::seeded(seed, false);
        (0..3)
            .map(|_| c.start_exchange().public_share().to_vec())
            .collect::<Vec<_>>()
    };
    let (s1, s1b, s2) = (shares(1), shares(1), shares(2));
    assert_eq!(s1, s1b);
    assert_ne!(s1, s2);
    assert_ne!(s1[0], s1[1]);
    // And they interoperate with OS-random ciphers.
    let (ka, kb) = handshake(
        &mut AesGcmCipher::seeded(3, false),
        &mut AesGcmCipher::new(),
        b"",
    );
    assert!(works(&ka, &kb) && works(&kb, &ka));
}

/// A relay M sits between A (initiator) and B (responder), answers A's share with its own,
/// and opens its own exchange with B. It sees everything on the wire, so it computes the
/// transcripts exactly as A and B do.
fn mitm(mut a: AesGcmCipher, mut b: AesGcmCipher, mut m: AesGcmCipher) -> (bool, bool) {
    let a_ex = a.start_exchange();
    let m_to_a = m.start_exchange(); // M plays responder towards A
    let m_to_b = m.start_exchange(); // M plays initiator towards B
    let b_ex = b.start_exchange();
    let (a_s, ma_s, mb_s, b_s) = (
        a_ex.public_share().to_vec(),
        m_to_a.public_share().to_vec(),
        m_to_b.public_share().to_vec(),
        b_ex.public_share().to_vec(),
    );
    let t_a = transcript(&a_s, &ma_s);
    let t_b = transcript(&mb_s, &b_s);
    let ka = a_ex.complete(&ma_s, &t_a, Role::Initiator).unwrap();
    let kma = m_to_a.complete(&a_s, &t_a, Role::Responder).unwrap();
    let kmb = m_to_b.complete(&b_s, &t_b, Role::Initiator).unwrap();
    let kb = b_ex.complete(&mb_s, &t_b, Role::Responder).unwrap();
    let a_leg = works(&ka, &kma) && works(&kma, &ka);
    let b_leg = works(&kmb, &kb) && works(&kb, &kmb);
    (a_leg, b_leg)
}

#[test]
fn mitm_relay_without_the_psk_matches_neither_side() {
    assert_eq!(mitm(psk(), psk(), AesGcmCipher::new()), (false, false));
    let wrong = AesGcmCipher::new().with_psk(OTHER_PSK).unwrap();
    assert_eq!(mitm(psk(), psk(), wrong), (false, false));
}

/// The documented limitation: without a PSK (and without identity keys checked by the
/// admission filter) the exchange is unauthenticated and a relay gets both sessions.
#[test]
fn mitm_relay_succeeds_when_no_psk_is_configured() {
    assert_eq!(
        mitm(
            AesGcmCipher::new(),
            AesGcmCipher::new(),
            AesGcmCipher::new()
        ),
        (true, true)
    );
    // The test relay really is checked: a relay that knows the PSK also succeeds.
    assert_eq!(mitm(psk(), psk(), psk()), (true, true));
}

#[test]
fn beacon_macs() {
    let (a, b) = (psk(), psk());
    let other = AesGcmCipher::new().with_psk(OTHER_PSK).unwrap();
    let plain = AesGcmCipher::new();
    let beacon = b"cluster=x id=1 addr=127.0.0.1:1".to_vec();
    let mac = a.beacon_mac(&beacon).expect("a PSK cipher MACs beacons");
    assert!(b.verify_beacon(&beacon, Some(&mac)));
    assert!(!b.verify_beacon(&beacon, None), "missing MAC rejected");
    assert!(
        !other.verify_beacon(&beacon, Some(&mac)),
        "other cluster rejected"
    );
    assert_ne!(other.beacon_mac(&beacon), Some(mac));
    for i in 0..beacon.len() * 8 {
        let mut t = beacon.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert!(!b.verify_beacon(&t, Some(&mac)), "flipped beacon bit {i}");
    }
    for i in 0..128 {
        let mut m = mac;
        m[i / 8] ^= 1 << (i % 8);
        assert!(!b.verify_beacon(&beacon, Some(&m)), "flipped mac bit {i}");
    }
    // Without a PSK: no MAC, every beacon accepted.
    assert_eq!(plain.beacon_mac(&beacon), None);
    assert!(plain.verify_beacon(&beacon, None));
    assert!(plain.verify_beacon(&beacon, Some(&mac)));
}

#[test]
fn identity_signatures() {
    const D: &[u8] = espial_core::cipher::DOMAIN_HANDSHAKE;
    let key = IdentityKey::generate().unwrap();
    let other = IdentityKey::generate().unwrap();
    let c = AesGcmCipher::new().with_identity(key.clone());
    let c_other = AesGcmCipher::new().with_identity(other.clone());
    let plain = AesGcmCipher::new();
    // Every cipher has an identity; a fresh one unless configured.
    assert_ne!(plain.identity_public_key(), c.identity_public_key());
    assert_eq!(plain.node_id(), plain.identity().node_id());
    let pk = c.identity_public_key();
    assert_eq!(pk, key.public_key());
    assert_eq!(pk.len(), 32);
    assert_eq!(c.node_id_for(&pk), Some(key.node_id()));
    assert_eq!(c.node_id_for(&pk[..31]), None);

    let t = b"transcript: v2, ids, shares".to_vec();
    let sig = c.sign(D, &t);
    assert_eq!(sig.len(), 64);
    // Any cipher can verify.
    assert_eq!(plain.verify(&pk, D, &t, &sig), Ok(()));
    assert_eq!(c_other.verify(&pk, D, &t, &sig), Ok(()));
    // Another key's signature, someone else's public key, a modified transcript, another
    // purpose (domain): rejected.
    let sig_other = c_other.sign(D, &t);
    let bad = Err(CryptoError::BadSignature);
    assert_eq!(plain.verify(&pk, D, &t, &sig_other), bad);
    assert_eq!(plain.verify(&other.public_key(), D, &t, &sig), bad);
    let other_domain = espial_core::cipher::DOMAIN_ALIVE;
    assert_eq!(plain.verify(&pk, other_domain, &t, &sig), bad);
    let mut t2 = t.clone();
    t2[0] ^= 1;
    assert_eq!(plain.verify(&pk, D, &t2, &sig), bad);
    let mut sig2 = sig.clone();
    sig2[10] ^= 0x40;
    assert_eq!(plain.verify(&pk, D, &t, &sig2), bad);
    assert_eq!(plain.verify(&pk, D, &t, &sig[..63]), bad);
    assert_eq!(plain.verify(&pk[..31], D, &t, &sig), bad);
    assert_eq!(plain.verify(b"", D, b"", b""), bad);
}

#[test]
fn identity_keys_round_trip_and_give_node_ids() {
    let key = IdentityKey::generate().unwrap();
    let der = key.to_pkcs8();
    let back = IdentityKey::from_pkcs8(&der).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    assert_eq!(back.node_id(), key.node_id());
    assert_eq!(key.node_id(), node_id_from_public_key(&key.public_key()));
    assert_ne!(key.node_id(), IdentityKey::generate().unwrap().node_id());
    let err = IdentityKey::from_pkcs8(b"not a key").unwrap_err();
    assert!(err.to_string().contains("PKCS#8"), "{err}");
    // Seeds are deterministic.
    let s1 = IdentityKey::from_seed(&[3u8; 32]).unwrap();
    let s2 = IdentityKey::from_seed(&[3u8; 32]).unwrap();
    assert_eq!(s1.public_key(), s2.public_key());
}

#[test]
fn node_id_is_first_16_bytes_of_sha256() {
    // SHA-256("") = e3b0c44298fc1c149afbf4c8996fb924 27ae41e4649b934ca495991b7852b855
    assert_eq!(
        node_id_from_public_key(b"").0,
        0xe3b0c44298fc1c149afbf4c8996fb924u128
    );
}

fn contains_bytes_in_any_form(text: &str, secret: &[u8]) -> bool {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let hex_up = hex.to_uppercase();
    let dec = format!("{:?}", secret); // "[1, 2, 3]"
    let dec_inner = dec
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let ascii = String::from_utf8_lossy(secret).to_string();
    text.contains(&hex)
        || text.contains(&hex_up)
        || text.contains(&dec_inner)
        || (secret.is_ascii() && text.contains(&ascii))
}

#[test]
fn debug_output_contains_no_secrets() {
    let psk_bytes = b"PSK-SECRET-0123456789";
    let key = IdentityKey::from_seed(&[0x5a; 32]).unwrap();
    let mut cipher = AesGcmCipher::new()
        .with_psk(psk_bytes)
        .unwrap()
        .with_identity(key.clone());
    let ex = cipher.start_exchange();
    let peer = AesGcmCipher::new().start_exchange();
    let keys = ex
        .complete(peer.public_share(), b"t", Role::Initiator)
        .unwrap();
    let texts = [
        format!("{cipher:?}"),
        format!("{:?}", AesGcmCipher::seeded(0x1234_5678_9abc_def0, true)),
        format!("{key:?}"),
        format!("{keys:?}"),
        format!("{:?}", espial_crypto::GcmAead::new(&[0x5a; 16]).unwrap()),
    ];
    for t in &texts {
        assert!(!contains_bytes_in_any_form(t, psk_bytes), "psk in {t}");
        // [0x5a; 16] is the AEAD key and a prefix of the identity seed [0x5a; 32].
        assert!(
            !contains_bytes_in_any_form(t, &[0x5a; 16]),
            "key bytes in {t}"
        );
        assert!(
            !t.contains("123456789abcdef0") && !t.contains("1311768467463790320"),
            "seed in {t}"
        );
    }
    assert!(texts[0].contains("redacted"), "{}", texts[0]);
    assert!(texts[1].contains("SEEDED"), "{}", texts[1]);
}
