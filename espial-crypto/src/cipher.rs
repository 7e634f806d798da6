//! [`AesGcmCipher`]: the production implementation of [`espial_core::Cipher`].

use crate::error::CryptoConfigError;
use crate::exchange::X25519Exchange;
use crate::identity::{node_id_from_public_key, verify_identity, IdentityKey};
use crate::primitives::{sha256, X25519_LEN};
use crate::schedule::KeySchedule;
use crate::MIN_PSK_LEN;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use espial_core::cipher::{Cipher, CryptoError, KeyExchange};
use espial_core::NodeId;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where ephemeral private keys come from.
enum KeySource {
    /// OS randomness through aws-lc-rs `SystemRandom` (production).
    System(SystemRandom),
    /// SIMULATION ONLY: keys derived from a seed and a counter.
    Seeded { seed: u64, counter: u64 },
}

/// X25519 + HKDF-SHA256 + AES-GCM, an Ed25519 identity key (generated when none is given)
/// and an optional cluster pre-shared key.
///
/// ```
/// use espial_crypto::{AesGcmCipher, IdentityKey};
/// use espial_core::Cipher;
///
/// let cipher = AesGcmCipher::new()                 // AES-128-GCM, like the original
///     .aes256()                                    // or AES-256-GCM
///     .with_psk(b"correct horse battery staple")?  // authenticate handshakes and beacons
///     .with_identity(IdentityKey::generate()?);    // a stable identity (else a fresh one)
/// assert_eq!(cipher.suite(), "aes256gcm");
/// assert_eq!(cipher.node_id(), cipher.identity().node_id());
/// # Ok::<(), espial_crypto::CryptoConfigError>(())
/// ```
pub struct AesGcmCipher {
    schedule: Arc<KeySchedule>,
    identity: IdentityKey,
    source: KeySource,
}

impl Default for AesGcmCipher {
    fn default() -> Self {
        Self::new()
    }
}

impl AesGcmCipher {
    /// AES-128-GCM, ephemeral X25519 keys from OS randomness, no PSK, a fresh random
    /// identity key (so a fresh node id; see [`AesGcmCipher::with_identity`]).
    ///
    /// # Panics
    /// When the operating system's random generator fails (no key can be made safely);
    /// [`AesGcmCipher::try_new`] returns that as an error instead.
    pub fn new() -> Self {
        Self::try_new().expect("system randomness unavailable: cannot generate an identity key")
    }

    /// Like [`AesGcmCipher::new`], with a failure of the system random generator as an error.
    pub fn try_new() -> Result<Self, CryptoConfigError> {
        Ok(AesGcmCipher {
            schedule: Arc::new(KeySchedule::new()),
            identity: IdentityKey::generate()?,
            source: KeySource::System(SystemRandom::new()),
        })
    }

    /// Uses AES-256-GCM record keys instead of AES-128-GCM. Every node of a cluster must
    /// choose the same suite: mismatched nodes derive different keys and cannot talk.
    pub fn aes256(mut self) -> Self {
        Arc::make_mut(&mut self.schedule).aes256 = true;
        self
    }

    /// Sets the cluster pre-shared key (at least [`MIN_PSK_LEN`] bytes; use random bytes or
    /// a long passphrase). It is mixed into every session key derivation, so a node or relay
    /// without it cannot complete a handshake, and it authenticates discovery beacons.
    pub fn with_psk(mut self, psk: &[u8]) -> Result<Self, CryptoConfigError> {
        if psk.len() < MIN_PSK_LEN {
            return Err(CryptoConfigError::new(format!(
                "the cluster pre-shared key is {} bytes; it must be at least {MIN_PSK_LEN} bytes \
                 (use e.g. 32 random bytes or a long passphrase, the same on every node)",
                psk.len()
            )));
        }
        Arc::make_mut(&mut self.schedule).set_psk(psk);
        Ok(self)
    }

    /// Uses this static Ed25519 identity key (a stable node id across restarts) instead of
    /// the fresh one made by `new`. Handshakes prove it; statements are signed with it.
    pub fn with_identity(mut self, key: IdentityKey) -> Self {
        self.identity = key;
        self
    }

    /// **SIMULATION ONLY — NEVER USE IN PRODUCTION.** Ephemeral X25519 private keys are
    /// derived deterministically from `seed` and a counter (SHA-256), so a simulator run
    /// repeats exactly. Anyone who knows or guesses the seed can recompute every session
    /// key: this provides no secrecy at all. `aes256` selects AES-256-GCM.
    pub fn seeded(seed: u64, aes256: bool) -> Self {
        let mut schedule = KeySchedule::new();
        schedule.aes256 = aes256;
        let mut identity_seed = [0u8; 32];
        identity_seed.copy_from_slice(&sha256(
            &[&b"espial sim identity v1"[..], &seed.to_be_bytes()].concat(),
        ));
        AesGcmCipher {
            schedule: Arc::new(schedule),
            identity: IdentityKey::from_seed(&identity_seed)
                .expect("a 32-byte seed is a valid Ed25519 seed"),
            source: KeySource::Seeded { seed, counter: 0 },
        }
    }

    /// Whether a cluster pre-shared key is configured.
    pub fn has_psk(&self) -> bool {
        self.schedule.has_psk()
    }

    /// The identity key.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    fn next_private_key(&mut self) -> Option<Zeroizing<[u8; X25519_LEN]>> {
        let mut private = Zeroizing::new([0u8; X25519_LEN]);
        match &mut self.source {
            KeySource::System(rng) => rng.fill(&mut private[..]).ok()?,
            KeySource::Seeded { seed, counter } => {
                *counter += 1;
                let mut input = Zeroizing::new([0u8; 40]);
                input[..24].copy_from_slice(b"espial sim x25519 seed v");
                input[24..32].copy_from_slice(&seed.to_be_bytes());
                input[32..].copy_from_slice(&counter.to_be_bytes());
                private.copy_from_slice(&sha256(&input[..]));
            }
        }
        Some(private)
    }
}

impl Cipher for AesGcmCipher {
    fn suite(&self) -> &'static str {
        self.schedule.suite()
    }

    fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
        let schedule = Arc::clone(&self.schedule);
        match self.next_private_key() {
            Some(private) => Box::new(X25519Exchange::from_private(&private, schedule)),
            None => Box::new(X25519Exchange::failed(schedule)),
        }
    }

    fn identity_public_key(&self) -> Vec<u8> {
        self.identity.public_key()
    }

    fn node_id_for(&self, public_key: &[u8]) -> Option<NodeId> {
        (public_key.len() == 32).then(|| node_id_from_public_key(public_key))
    }

    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        self.identity.sign(domain, msg)
    }

    fn verify(
        &self,
        public_key: &[u8],
        domain: &[u8],
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        verify_identity(public_key, domain, msg, signature)
    }

    fn beacon_mac(&self, beacon: &[u8]) -> Option<[u8; 16]> {
        self.schedule.beacon_mac(beacon)
    }

    fn verify_beacon(&self, beacon: &[u8], mac: Option<&[u8; 16]>) -> bool {
        self.schedule.verify_beacon(beacon, mac)
    }
}

impl fmt::Debug for AesGcmCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source {
            KeySource::System(_) => "os-random",
            KeySource::Seeded { .. } => "SEEDED (simulation only, insecure)",
        };
        f.debug_struct("AesGcmCipher")
            .field("suite", &self.suite())
            .field("psk", &if self.has_psk() { "<redacted>" } else { "none" })
            .field("identity", &self.identity)
            .field("keys", &source)
            .finish()
    }
}
