//! Thin wrappers over the aws-lc-rs primitives this crate uses.
//!
//! They are public so that known-answer tests (RFC 7748, RFC 5869, the GCM specification)
//! exercise exactly the code paths the cipher runs: [`crate::GcmAead`] seals and opens
//! through [`seal_in_place`] / [`open_in_place`], the key schedule derives through
//! [`hkdf_sha256_into`], and key exchanges agree through the same X25519 function as
//! [`x25519`].

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::{constant_time, digest, hkdf, hmac};
use espial_core::cipher::CryptoError;
use zeroize::Zeroizing;

/// Length of X25519 private keys, public keys and shared secrets.
pub const X25519_LEN: usize = 32;
/// AES-GCM authentication tag length.
pub const GCM_TAG_LEN: usize = 16;
/// AES-GCM nonce length.
pub const GCM_NONCE_LEN: usize = 12;

/// Computes `X25519(private, peer_public)` (RFC 7748).
///
/// Fails with [`CryptoError::BadKeyShare`] when `peer_public` is not 32 bytes or when the
/// result is all zeros (a low-order peer point contributes nothing to the secret).
pub fn x25519(
    private: &[u8; X25519_LEN],
    peer_public: &[u8],
) -> Result<[u8; X25519_LEN], CryptoError> {
    let key = x25519_private_key(private)?;
    x25519_agree(&key, peer_public).map(|s| *s)
}

/// Computes the X25519 public key `X25519(private, 9)`.
pub fn x25519_public_key(private: &[u8; X25519_LEN]) -> Result<[u8; X25519_LEN], CryptoError> {
    let key = x25519_private_key(private)?;
    x25519_public_of(&key)
}

pub(crate) fn x25519_private_key(private: &[u8; X25519_LEN]) -> Result<PrivateKey, CryptoError> {
    PrivateKey::from_private_key(&X25519, private).map_err(|_| CryptoError::Internal)
}

pub(crate) fn x25519_public_of(key: &PrivateKey) -> Result<[u8; X25519_LEN], CryptoError> {
    let public = key
        .compute_public_key()
        .map_err(|_| CryptoError::Internal)?;
    public
        .as_ref()
        .try_into()
        .map_err(|_| CryptoError::Internal)
}

/// The agreement the key exchange runs; rejects bad lengths and all-zero secrets.
pub(crate) fn x25519_agree(
    key: &PrivateKey,
    peer_public: &[u8],
) -> Result<Zeroizing<[u8; X25519_LEN]>, CryptoError> {
    if peer_public.len() != X25519_LEN {
        return Err(CryptoError::BadKeyShare);
    }
    let secret = agreement::agree(
        key,
        UnparsedPublicKey::new(&X25519, peer_public),
        CryptoError::BadKeyShare,
        |material| {
            let mut out = Zeroizing::new([0u8; X25519_LEN]);
            if material.len() != X25519_LEN {
                return Err(CryptoError::Internal);
            }
            out.copy_from_slice(material);
            Ok(out)
        },
    )?;
    // Constant-time all-zero check (RFC 7748 section 6.1).
    if constant_time::verify_slices_are_equal(&secret[..], &[0u8; X25519_LEN]).is_ok() {
        return Err(CryptoError::BadKeyShare);
    }
    Ok(secret)
}

/// An HKDF output length (aws-lc-rs asks for a `KeyType`).
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 (RFC 5869): extract with `salt` from `ikm`, expand with the concatenation of
/// the `info` parts into `out` (at most 255 × 32 bytes).
pub fn hkdf_sha256_into(
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError::Malformed)
}

/// HKDF-SHA256 (RFC 5869) returning `len` bytes of output keying material.
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; len];
    hkdf_sha256_into(salt, ikm, &[info], &mut out)?;
    Ok(out)
}

/// HMAC-SHA256 of `data` under `key` (also HKDF-Extract with `key` as the salt).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The 96-bit AES-GCM nonce for a record counter: 4 zero bytes, then the counter big-endian.
#[inline]
pub fn gcm_nonce(counter: u64) -> [u8; GCM_NONCE_LEN] {
    let mut n = [0u8; GCM_NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Builds an AES-GCM key: 16 bytes select AES-128-GCM, 32 bytes AES-256-GCM.
pub fn gcm_key(key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let alg = match key.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        _ => return Err(CryptoError::Malformed),
    };
    UnboundKey::new(alg, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Internal)
}

/// Encrypts `in_out` in place and appends the 16-byte tag (one reserve, no other copy).
#[inline]
pub fn seal_in_place(
    key: &LessSafeKey,
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    in_out.reserve(GCM_TAG_LEN);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            in_out.as_mut_slice(),
        )
        .map_err(|_| CryptoError::Internal)?;
    in_out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Verifies and decrypts `in_out` (ciphertext followed by the tag) in place and removes the
/// tag. On failure the content of `in_out` is unspecified and must be discarded.
#[inline]
pub fn open_in_place(
    key: &LessSafeKey,
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    if in_out.len() < GCM_TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            in_out.as_mut_slice(),
        )
        .map_err(|_| CryptoError::BadTag)?
        .len();
    in_out.truncate(plain_len);
    Ok(())
}

/// AES-GCM encryption of `plaintext` (returns ciphertext followed by the tag).
pub fn aes_gcm_seal(
    key: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = gcm_key(key)?;
    let mut buf = Vec::with_capacity(plaintext.len() + GCM_TAG_LEN);
    buf.extend_from_slice(plaintext);
    seal_in_place(&key, *nonce, aad, &mut buf)?;
    Ok(buf)
}

/// AES-GCM decryption of `ciphertext_and_tag`.
pub fn aes_gcm_open(
    key: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = gcm_key(key)?;
    let mut buf = ciphertext_and_tag.to_vec();
    open_in_place(&key, *nonce, aad, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layout() {
        assert_eq!(
            gcm_nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn bad_key_lengths_are_rejected() {
        assert_eq!(gcm_key(&[0u8; 24]).err(), Some(CryptoError::Malformed));
        assert!(gcm_key(&[0u8; 16]).is_ok());
        assert!(gcm_key(&[0u8; 32]).is_ok());
    }

    #[test]
    fn short_ciphertext_is_malformed() {
        let key = gcm_key(&[7u8; 16]).unwrap();
        let mut v = vec![0u8; GCM_TAG_LEN - 1];
        assert_eq!(
            open_in_place(&key, gcm_nonce(0), b"", &mut v),
            Err(CryptoError::Malformed)
        );
    }
}
