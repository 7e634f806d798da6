//! Configuration errors.

/// A cipher could not be configured. The message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CryptoConfigError(String);

impl CryptoConfigError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        CryptoConfigError(msg.into())
    }

    /// The human-readable explanation.
    pub fn message(&self) -> &str {
        &self.0
    }
}
