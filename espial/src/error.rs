//! The one error type of the facade. Every message says what to do about it.

use std::net::SocketAddr;

/// Everything that can go wrong in the facade. Messages are meant for the person
/// configuring or operating the node: each says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The UDP socket could not be opened.
    #[error("cannot bind UDP {addr}: {source}; choose a free port or an address of this host with .bind(..)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Multicast discovery could not start.
    #[error("multicast discovery unavailable: {0}; where multicast is blocked use static peers (.peers([..]))")]
    Multicast(#[source] std::io::Error),
    /// The node bound an unspecified address and no advertised address could be found.
    #[error("cannot tell which address other nodes should use to reach this node (bound {0}); call .advertise(\"ip:port\")")]
    NoAdvertise(SocketAddr),
    /// The encryption settings are unusable (e.g. a pre-shared key that is too short).
    #[error("encryption settings: {0}")]
    Crypto(String),
    /// A send or request was refused; nothing was queued.
    #[error(transparent)]
    Send(#[from] espial_core::SendError),
    /// A subscription change was refused.
    #[error(transparent)]
    Subscribe(#[from] espial_core::SubscribeError),
    /// `promote()` was refused.
    #[error(transparent)]
    Promote(#[from] espial_core::PromoteError),
    /// A metadata update was refused; the previous metadata stays in force.
    #[error(transparent)]
    Metadata(#[from] espial_core::MetadataError),
    /// A custom event name cannot be used.
    #[error(transparent)]
    EventName(#[from] espial_core::event::EventNameError),
    /// The node was shut down (or crashed); handles to it no longer work.
    #[error("this node has shut down; start a new one with Espial::builder()")]
    Shutdown,
    /// A wait (e.g. [`crate::Espial::wait_for_cluster`]) ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A payload did not (de)serialize as JSON.
    #[error("payload is not valid JSON for the expected type: {0}")]
    Json(#[from] serde_json::Error),
    /// Another I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<espial_core::metadata::MetadataTooLarge> for Error {
    fn from(e: espial_core::metadata::MetadataTooLarge) -> Self {
        Error::Metadata(espial_core::MetadataError::TooLarge(e))
    }
}

impl From<espial_crypto::CryptoConfigError> for Error {
    fn from(e: espial_crypto::CryptoConfigError) -> Self {
        Error::Crypto(e.message().to_string())
    }
}

impl From<espial_core::ConfigError> for Error {
    fn from(e: espial_core::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
