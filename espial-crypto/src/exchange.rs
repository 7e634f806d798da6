//! One ephemeral X25519 exchange.

use crate::primitives::{x25519_agree, x25519_private_key, x25519_public_of, X25519_LEN};
use crate::schedule::KeySchedule;
use aws_lc_rs::agreement::PrivateKey;
use espial_core::cipher::{CryptoError, KeyExchange, Role, SessionKeys};
use std::fmt;
use std::sync::Arc;

/// An ephemeral X25519 key pair waiting for the peer's share. The private key lives only
/// here and is dropped when the exchange completes or is abandoned.
pub(crate) struct X25519Exchange {
    /// `None` when key generation failed; `complete` then fails with `Internal`.
    key: Option<PrivateKey>,
    share: Vec<u8>,
    schedule: Arc<KeySchedule>,
}

impl X25519Exchange {
    /// An exchange from 32 private-key bytes (OS-random, or seed-derived in simulation).
    pub(crate) fn from_private(private: &[u8; X25519_LEN], schedule: Arc<KeySchedule>) -> Self {
        let pair = x25519_private_key(private)
            .and_then(|k| x25519_public_of(&k).map(|public| (k, public)));
        match pair {
            Ok((key, public)) => X25519Exchange {
                key: Some(key),
                share: public.to_vec(),
                schedule,
            },
            Err(_) => Self::failed(schedule),
        }
    }

    /// An exchange that could not get a key: its share is empty (peers reject it) and
    /// `complete` fails. Never panics, so the core just counts a failed handshake.
    pub(crate) fn failed(schedule: Arc<KeySchedule>) -> Self {
        X25519Exchange {
            key: None,
            share: Vec::new(),
            schedule,
        }
    }
}

impl KeyExchange for X25519Exchange {
    fn public_share(&self) -> &[u8] {
        &self.share
    }

    fn complete(
        self: Box<Self>,
        peer_share: &[u8],
        transcript: &[u8],
        role: Role,
    ) -> Result<SessionKeys, CryptoError> {
        let key = self.key.as_ref().ok_or(CryptoError::Internal)?;
        let shared = x25519_agree(key, peer_share)?;
        self.schedule.derive(&shared, transcript, role)
    }
}

impl fmt::Debug for X25519Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519Exchange")
            .field("share_len", &self.share.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}
