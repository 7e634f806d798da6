//! Decoded messages fed to a node AS IF FROM ITS LIVE MEMBERS (the session layer bypassed, so
//! every input reaches member-message handling: updates, state, heartbeats, claims, joins,
//! delivery frames). Batches may be re-signed by the sending member, as a lying member can
//! sign anything about itself. Input format: `espial_core::fuzzing`. Must never panic; the
//! fuzz profile keeps overflow checks on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    espial_core::fuzzing::member_messages(data);
});
