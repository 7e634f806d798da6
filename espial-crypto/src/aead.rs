//! One direction's AES-GCM record cipher.

use crate::primitives::{gcm_key, gcm_nonce, open_in_place, seal_in_place, GCM_TAG_LEN};
use aws_lc_rs::aead::LessSafeKey;
use espial_core::cipher::{Aead, CryptoError};
use std::fmt;

/// AES-GCM (128- or 256-bit key) with the core's 64-bit record counter as nonce:
/// `nonce = 0u32 || counter (big-endian)`. The core guarantees a counter is never reused
/// for a key. Seal and open work in place on the caller's `Vec` (no extra copy).
pub struct GcmAead {
    key: LessSafeKey,
}

impl GcmAead {
    /// A record cipher from a 16-byte (AES-128-GCM) or 32-byte (AES-256-GCM) key.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        Ok(GcmAead { key: gcm_key(key)? })
    }
}

impl Aead for GcmAead {
    #[inline]
    fn seal(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError> {
        seal_in_place(&self.key, gcm_nonce(nonce), aad, in_out)
    }

    #[inline]
    fn open(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError> {
        open_in_place(&self.key, gcm_nonce(nonce), aad, in_out)
    }

    fn tag_len(&self) -> usize {
        GCM_TAG_LEN
    }
}

impl fmt::Debug for GcmAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.key.algorithm().key_len() * 8;
        write!(f, "GcmAead(aes{bits}gcm, key: <redacted>)")
    }
}
