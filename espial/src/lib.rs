//! # espial
//!
//! A secure distributed event layer that your application links in: nodes find each other
//! (multicast, static peers or your own discovery), form a cluster, elect one master, and
//! exchange application events, every pair of nodes over its own encrypted session. No
//! server to run.
//!
//! ```no_run
//! use espial::{Espial, Event};
//! use futures::StreamExt;
//!
//! # async fn f() -> espial::Result<()> {
//! let espial = Espial::builder()
//!     .name("api-1")
//!     .metadata([("role", "api")])
//!     .multicast_default() // or .peers(["10.0.0.5:27272"]) or .discovery(MyDiscovery)
//!     .connection_filter(|req| async move { req.name.ends_with("org.internal") })
//!     .start()
//!     .await?;
//! let mut events = espial.events();
//! espial.join("jobs").await?;
//! espial.send("jobs", "build #42").await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Custom(e) = &event {
//!         println!("{} from {}: {:?}", e.name, e.from, e.data);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## Events
//!
//! [`Event`] names follow the original package: `listening`, `added_node`, `removed_node`,
//! `node_accepted`, `node_rejected`, `new_master`, `promotion`, `demotion`, plus custom
//! events, metadata updates and delivery reports. Each [`Espial::events`] stream is an
//! independent listener; a slow listener never blocks the node (see [`EventStream`]).
//!
//! ## Commands and queries
//!
//! Every method of [`Espial`] that changes something (`join`, `leave`, `send*`,
//! `request`, `reply`, `promote`, `set_metadata`, `shutdown`) is `async`: it returns once
//! the node's task has applied it, with the task's error if it refused (and
//! [`Error::Shutdown`] once the node has stopped). What follows on the network (gossip of a
//! subscription, delivery of an event) is reported later by events, or awaited with
//! [`Espial::send_confirmed`] / [`Espial::wait_for_cluster`]. Queries (`nodes`, `master`,
//! `is_master`, `node_info`, `stats`) read a snapshot and are plain functions.
//!
//! A reply to [`Espial::request`] (or [`Espial::start_request`]) is delivered once, to
//! that request; [`Event::Reply`] and [`Event::RequestDone`] appear on the events streams
//! only for a request whose [`PendingRequest`] was dropped before it ended.
//!
//! ## Types that grow
//!
//! Types that will gain variants or fields are `#[non_exhaustive]`: match them with a `_`
//! arm, and build the structs with their constructors or `Default` and then set fields.
//! Enums: [`Event`], [`Error`], [`SendError`], [`SubscribeError`], [`PromoteError`],
//! [`MetadataError`], [`EventNameError`], [`RemovalReason`], [`Admission`],
//! [`MulticastInterface`]. Structs: [`Config`] (start from a profile such as
//! [`Config::lan`]), [`Stats`], [`CoreStats`], [`NodeInfo`] ([`NodeInfo::new`]),
//! [`CustomEvent`] ([`CustomEvent::new`]), [`SendOutcome`], [`RequestReplies`],
//! [`Snapshot`], [`MulticastConfig`] (`Default`, [`MulticastConfig::with_group`]),
//! [`MetadataTooLarge`]. Exhaustive on purpose: the id newtypes ([`NodeId`], [`SendId`],
//! [`RequestId`]), the message newtypes ([`ConfigError`], [`ParseNodeIdError`]) and
//! [`Claim`] (a wire type whose fields are its order; a new field is a protocol change).
//! Every type reachable from this crate's API is re-exported here: an application needs
//! no direct dependency on `espial-core`, `espial-net` or `espial-crypto`.
//!
//! ## Security
//!
//! Every pair of nodes runs an ephemeral X25519 exchange and talks over AES-GCM with keys
//! unique to the pair and to the run. Without a pre-shared key the exchange is not
//! authenticated: an active man in the middle on the path can impersonate nodes. With
//! [`Builder::psk`] the key is mixed into every session and authenticates multicast
//! beacons; with [`Builder::identity`] each node proves a static key that connection
//! filters can check. A node that is not admitted learns nothing beyond its rejection.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod error;
mod events;
mod filter;
mod handle;
pub mod jsonl;
pub mod metrics;

pub use builder::Builder;
pub use error::{Error, Result};
pub use events::EventStream;
pub use filter::{ConnectionRequest, IntoAdmission};
pub use handle::{decode_json, Espial, PendingRequest, Stats};

pub use espial_core::{
    Admission, Config, CustomEvent, Event, Metadata, NodeId, NodeInfo, RemovalReason, RequestId,
    SendError, SendId, SendOutcome,
};
// Types reachable from the facade's public API (inside `Error`, `Stats`, `Snapshot`,
// `Config`), so that applications need no direct dependency on espial-core.
pub use espial_core::event::EventNameError;
pub use espial_core::id::ParseNodeIdError;
pub use espial_core::metadata::MetadataTooLarge;
pub use espial_core::wire::Claim;
pub use espial_core::{
    ConfigError, MetadataError, PromoteError, Stats as CoreStats, SubscribeError,
};
pub use espial_crypto::{CryptoConfigError, IdentityKey};
pub use espial_net::driver::{RequestReplies, Snapshot};
pub use espial_net::{Discovery, MulticastConfig, MulticastInterface, Transport};

/// Re-exported so custom [`Discovery`] backends can use `#[espial::async_trait]`.
pub use async_trait::async_trait;
/// The payload type of events and replies ([`CustomEvent::data`]).
pub use bytes::Bytes;
