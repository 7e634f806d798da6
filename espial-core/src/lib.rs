//! # espial-core
//!
//! The sans-IO heart of espial: membership (SWIM with suspicion, push-pull and piggybacked
//! gossip), master election (terms, ranked back-off, sticky master, optional quorum), event
//! routing, the per-pair session layer and the wire codec, as pure state machines.
//!
//! The core never reads the clock, opens a socket or draws OS randomness. Drive it like
//! str0m or quinn-proto: feed inputs with the current time, drain outputs, sleep until the
//! single deadline it reports.
//!
//! ```
//! use espial_core::{Config, Node, NodeId, NodeInfo, Output, PlaintextTestCipher};
//! use std::time::{Duration, Instant};
//!
//! let now = Instant::now();
//! let me = NodeInfo::new(NodeId(1), "a", "127.0.0.1:27272".parse().unwrap());
//! let cipher = Box::new(PlaintextTestCipher::for_node(NodeId(1)));
//! let mut node = Node::new(Config::lan(), me, cipher, 42, now).unwrap();
//! let mut events = vec![];
//! while let Some(out) = node.poll_output() {
//!     if let Output::Event(e) = out { events.push(e.name()); }
//! }
//! assert_eq!(events, ["listening"]);
//! // Alone and eligible: after the election timeout it promotes itself.
//! let later = now + Duration::from_secs(2);
//! node.handle_timeout(later);
//! assert!(node.is_master());
//! assert!(node.poll_timeout().is_some());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cipher;
pub mod config;
pub mod delivery;
pub mod discovery;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod membership;
pub mod metadata;
pub mod node;
pub mod node_info;
pub mod output;
pub mod rng;
pub mod session;
pub mod stats;
pub mod testkit;
pub mod transport;
pub mod wire;

pub use cipher::{Cipher, PlaintextTestCipher};
pub use config::{Config, ConfigError};
pub use discovery::Discovery;
pub use error::{MetadataError, PromoteError, SendError, SubscribeError};
pub use event::{CustomEvent, Event, RemovalReason, RequestId, SendId, SendOutcome};
pub use id::NodeId;
pub use metadata::Metadata;
pub use node::{Node, Target, MASTER_WATCHERS};
pub use node_info::NodeInfo;
pub use output::{Admission, AdmissionId, AdmissionRequest, Output, Transmit};
pub use stats::Stats;
pub use transport::Transport;
