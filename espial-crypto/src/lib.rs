//! # espial-crypto
//!
//! The production [`espial_core::Cipher`]: ephemeral X25519 key agreement, HKDF-SHA256 key
//! schedule over the handshake transcript, AES-GCM records (128-bit keys by default, 256-bit
//! as an option), optional cluster pre-shared key and optional Ed25519 identity keys, all
//! implemented with [aws-lc-rs](https://docs.rs/aws-lc-rs).
//!
//! The core (`espial_core::session`) owns the protocol: transcripts, 64-bit counter nonces,
//! replay windows and rekeying. This crate only supplies the primitives behind the
//! [`espial_core::cipher`] traits.
//!
//! ```
//! use espial_core::cipher::{Cipher, Role};
//! use espial_crypto::AesGcmCipher;
//!
//! let mut alice = AesGcmCipher::new().with_psk(b"a cluster secret of 16+ bytes").unwrap();
//! let mut bob = AesGcmCipher::new().with_psk(b"a cluster secret of 16+ bytes").unwrap();
//! let (a, b) = (alice.start_exchange(), bob.start_exchange());
//! // The core builds the transcript from the protocol version, both ids and both shares.
//! let transcript = [b"v1".as_slice(), a.public_share(), b.public_share()].concat();
//! let (b_share, a_share) = (b.public_share().to_vec(), a.public_share().to_vec());
//! let a_keys = a.complete(&b_share, &transcript, Role::Initiator).unwrap();
//! let b_keys = b.complete(&a_share, &transcript, Role::Responder).unwrap();
//!
//! let mut record = b"hello".to_vec();
//! a_keys.send.seal(0, b"header", &mut record).unwrap();
//! b_keys.recv.open(0, b"header", &mut record).unwrap();
//! assert_eq!(record, b"hello");
//! ```
//!
//! ## Security properties and limits
//! - Every pair of nodes gets fresh keys per handshake (forward secrecy: ephemeral keys live
//!   only in memory and are dropped after the exchange).
//! - **Without a pre-shared key or identity keys the exchange is unauthenticated**: an active
//!   man in the middle can run one exchange with each side and relay. A cluster PSK
//!   ([`AesGcmCipher::with_psk`]) is mixed into every key derivation, so a relay without it
//!   derives keys that match neither side. Identity keys ([`AesGcmCipher::with_identity`])
//!   let the core sign transcripts so the admission filter can check who a peer is.
//! - Secrets are never printed by `Debug` and are zeroed on drop where this crate holds them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aead;
pub mod bench;
mod cipher;
mod error;
mod exchange;
mod identity;
pub mod primitives;
mod schedule;

pub use aead::GcmAead;
pub use cipher::AesGcmCipher;
pub use error::CryptoConfigError;
pub use identity::{node_id_from_public_key, IdentityKey};

/// Minimum length of a cluster pre-shared key, in bytes.
pub const MIN_PSK_LEN: usize = 16;
