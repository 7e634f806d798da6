//! The key schedule: PSK-derived salt, HKDF over the transcript, beacon MAC key.
//!
//! ```text
//! salt      = HMAC-SHA256(psk, "espial psk v1")         with a PSK
//!           = "espial v1 no-psk"                         without
//! prk       = HKDF-Extract(salt, X25519 shared secret)
//! key_i2r   = HKDF-Expand(prk, "espial v1 " || suite || " i2r " || transcript, key_len)
//! key_r2i   = HKDF-Expand(prk, "espial v1 " || suite || " r2i " || transcript, key_len)
//! beacon_k  = HMAC-SHA256(psk, "espial beacon v1")      (PSK only)
//! beacon_mac= HMAC-SHA256(beacon_k, beacon)[..16]
//! ```
//! `suite` is `aes128gcm` or `aes256gcm` (same length, so the info encoding is unambiguous;
//! the transcript is the last field).

use crate::aead::GcmAead;
use crate::primitives::{hkdf_sha256_into, hmac_sha256, X25519_LEN};
use aws_lc_rs::{constant_time, hmac};
use espial_core::cipher::{CryptoError, Role, SessionKeys};
use std::fmt;
use zeroize::Zeroizing;

const PSK_SALT_LABEL: &[u8] = b"espial psk v1";
const NO_PSK_SALT: &[u8] = b"espial v1 no-psk";
const BEACON_KEY_LABEL: &[u8] = b"espial beacon v1";

/// Suite names (the `Cipher::suite` strings).
pub(crate) const SUITE_128: &str = "aes128gcm";
pub(crate) const SUITE_256: &str = "aes256gcm";

/// Everything a key exchange needs besides its ephemeral key; shared by all exchanges of
/// one cipher.
#[derive(Clone)]
pub(crate) struct KeySchedule {
    /// HKDF salt (PSK-derived, or the fixed label).
    salt: Zeroizing<Vec<u8>>,
    /// Beacon MAC key (PSK only).
    beacon_key: Option<hmac::Key>,
    /// AES-256-GCM instead of AES-128-GCM.
    pub(crate) aes256: bool,
}

impl KeySchedule {
    pub(crate) fn new() -> Self {
        KeySchedule {
            salt: Zeroizing::new(NO_PSK_SALT.to_vec()),
            beacon_key: None,
            aes256: false,
        }
    }

    pub(crate) fn set_psk(&mut self, psk: &[u8]) {
        self.salt = Zeroizing::new(hmac_sha256(psk, PSK_SALT_LABEL).to_vec());
        let beacon = Zeroizing::new(hmac_sha256(psk, BEACON_KEY_LABEL));
        self.beacon_key = Some(hmac::Key::new(hmac::HMAC_SHA256, &beacon[..]));
    }

    pub(crate) fn has_psk(&self) -> bool {
        self.beacon_key.is_some()
    }

    pub(crate) fn suite(&self) -> &'static str {
        if self.aes256 {
            SUITE_256
        } else {
            SUITE_128
        }
    }

    fn key_len(&self) -> usize {
        if self.aes256 {
            32
        } else {
            16
        }
    }

    /// Derives both directional record ciphers and hands out send/recv by role.
    pub(crate) fn derive(
        &self,
        shared: &[u8; X25519_LEN],
        transcript: &[u8],
        role: Role,
    ) -> Result<SessionKeys, CryptoError> {
        let len = self.key_len();
        let suite = self.suite().as_bytes();
        let mut i2r = Zeroizing::new([0u8; 32]);
        let mut r2i = Zeroizing::new([0u8; 32]);
        hkdf_sha256_into(
            &self.salt,
            shared,
            &[b"espial v1 ", suite, b" i2r ", transcript],
            &mut i2r[..len],
        )?;
        hkdf_sha256_into(
            &self.salt,
            shared,
            &[b"espial v1 ", suite, b" r2i ", transcript],
            &mut r2i[..len],
        )?;
        let i2r = Box::new(GcmAead::new(&i2r[..len])?);
        let r2i = Box::new(GcmAead::new(&r2i[..len])?);
        Ok(match role {
            Role::Initiator => SessionKeys {
                send: i2r,
                recv: r2i,
            },
            Role::Responder => SessionKeys {
                send: r2i,
                recv: i2r,
            },
        })
    }

    pub(crate) fn beacon_mac(&self, beacon: &[u8]) -> Option<[u8; 16]> {
        let key = self.beacon_key.as_ref()?;
        let tag = hmac::sign(key, beacon);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        Some(out)
    }

    pub(crate) fn verify_beacon(&self, beacon: &[u8], mac: Option<&[u8; 16]>) -> bool {
        match (self.beacon_mac(beacon), mac) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(expected), Some(got)) => {
                constant_time::verify_slices_are_equal(&expected, got).is_ok()
            }
        }
    }
}

impl fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySchedule")
            .field("suite", &self.suite())
            .field("psk", &if self.has_psk() { "<redacted>" } else { "none" })
            .finish()
    }
}
