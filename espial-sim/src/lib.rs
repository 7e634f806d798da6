//! # espial-sim
//!
//! A deterministic simulator for espial: many `espial_core::Node`s driven by one virtual
//! clock and a seeded network model (latency and jitter, loss, duplication, reordering,
//! partitions between arbitrary groups, crash, restart, pause). The event loop jumps to the
//! next event; the same seed gives the same trace. Invariants are checked continuously
//! (terms never decrease, promotion/demotion alternate) and at settle points (one master per
//! connected component, exact membership with the latest metadata, exactly-once in-order
//! custom events).
//!
//! ```
//! use espial_sim::{Sim, SimConfig};
//! use std::time::Duration;
//! let mut sim = Sim::new(SimConfig::new(7)).unwrap();
//! sim.add_nodes(3);
//! sim.run_until(Duration::from_secs(1));
//! assert_eq!(sim.live_slots().len(), 3);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod adv_schedule;
pub mod adversary;
pub mod cipher;
pub mod clock;
pub mod cluster;
pub mod events;
pub mod families;
pub mod faults;
pub mod health;
pub mod invariants;
pub mod metrics;
pub mod network;
pub mod observe;
pub mod reader;
pub mod scenarios;
pub mod schedule;
pub mod trace;

pub use cipher::CipherKind;
pub use cluster::{NodeOpts, Sim, SimConfig, SlotState};
pub use faults::Action;
pub use network::{NetConfig, Partition};
pub use scenarios::{run_scenario, Params, Report, SCENARIOS};
