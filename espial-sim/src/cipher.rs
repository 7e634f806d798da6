//! Which `Cipher` the simulated nodes use.

use espial_core::{Cipher, NodeId, PlaintextTestCipher};

/// The cipher suite of every simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CipherKind {
    /// `PlaintextTestCipher`: fast, transparent, for simulation only.
    #[default]
    Test,
    /// `espial_crypto::AesGcmCipher` (X25519 + HKDF + AES-128-GCM), seeded per node.
    Aes128Gcm,
}

impl std::str::FromStr for CipherKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "test" | "plaintext" => Ok(CipherKind::Test),
            "aes128gcm" => Ok(CipherKind::Aes128Gcm),
            _ => Err(format!("unknown cipher {s:?}; use test or aes128gcm")),
        }
    }
}

impl CipherKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            CipherKind::Test => "test",
            CipherKind::Aes128Gcm => "aes128gcm",
        }
    }

    /// Checks that the suite can be built (fails with a clear message when it cannot).
    pub fn check(self) -> Result<(), String> {
        self.make(0, NodeId(1)).map(|_| ())
    }

    /// A cipher for one node, seeded deterministically with `seed`. The test cipher's
    /// identity is `test_id`; the real cipher's identity key comes from `seed`, so the
    /// node's id is then `cipher.node_id()` (not `test_id`).
    pub fn make(self, seed: u64, test_id: NodeId) -> Result<Box<dyn Cipher>, String> {
        match self {
            CipherKind::Test => Ok(Box::new(PlaintextTestCipher::for_node(test_id))),
            CipherKind::Aes128Gcm => aes(seed),
        }
    }
}

fn aes(seed: u64) -> Result<Box<dyn Cipher>, String> {
    Ok(Box::new(espial_crypto::AesGcmCipher::seeded(seed, false)))
}
