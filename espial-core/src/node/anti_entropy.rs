//! Anti-entropy: digest-first push-pull, and the full state of join answers.
//!
//! **Periodic push-pull** starts with a digest, not the full state (docs/PROTOCOL.md,
//! "Anti-entropy"):
//!
//! 1. A → B `DigestOffer { round, summary }`: A's claim, live-member count and a keyed hash
//!    of its sorted live records (`membership::digest`), `round` random (the hash key).
//! 2. B computes the same summary of its own view with that key. Equal: `DigestEqual { round
//!    }` and the exchange is over (the steady state: two small messages). Otherwise B sends
//!    its per-member records, `Digest` chunks covering disjoint id ranges, with its signed
//!    claim.
//! 3. A compares each chunk with its own records in the chunk's range and answers with
//!    `State` chunks (`reply = false`) holding the entries where it knows better or B lacks
//!    them (and its signed claim when the claims differ), plus a `DigestRequest` for the
//!    members where B knows better or A lacks them.
//! 4. B answers the request with `State` chunks holding those entries.
//!
//! Both sides are repaired in one exchange. Digests never change a member table: they only
//! select signed entries to send or ask for, and received entries are verified as always
//! (`node::updates`).
//!
//! **Full state** (`state_chunks`, one round trip) where a difference is already known and
//! the repair is urgent: a join answer, the pulls after a member-count mismatch or a stranger
//! (`sync_soon`, `sync_with_stranger`), the election's and a partition heal's pulls (they need
//! the peer's claim at once). Measured in the simulator (`partition-heal`, 20 nodes, seeds
//! 1-9): a digest there took the median heal from 340 to 420 ms.

use super::Node;
use crate::membership::{digest, Liveness};
use crate::wire::{
    encoded_size, msg_size, Claim, DigestChunk, DigestRecord, Msg, SignedEntry, StateChunk, Update,
    ViewSummary,
};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Offers awaiting answers, at most (the oldest is forgotten first).
const MAX_OPEN_ROUNDS: usize = 8;
/// Answers to an offer are accepted this long after it.
const ROUND_TTL: Duration = Duration::from_secs(30);
/// Least time between two pulls triggered by a mismatch (member count, stranger).
const SYNC_GAP: Duration = Duration::from_secs(2);
/// Room kept free in a record around a chunk (message tag, vector length, spare).
const CHUNK_SLACK: usize = 96;

/// An offer we sent.
pub(super) struct Round {
    peer: NodeId,
    at: Instant,
    /// Our signed claim was sent to the peer in this exchange.
    told: bool,
}

/// Anti-entropy bookkeeping.
#[derive(Default)]
pub(crate) struct AntiEntropy {
    /// Open offers by round.
    pub(super) rounds: BTreeMap<u64, Round>,
    /// Last pull triggered by a mismatch or a stranger.
    last_sync: Option<Instant>,
}

impl Node {
    /// Periodic anti-entropy with one random live member: a digest offer.
    pub(super) fn push_pull(&mut self, now: Instant) {
        let live = self.members.live_ids();
        if live.is_empty() {
            return;
        }
        let id = live[self.rng.below(live.len())];
        self.offer_digest(now, id);
    }

    /// Pulls the full state of a random member (at most once per 2 s) when the master's
    /// member count differs from ours: a difference is known, one round trip repairs both.
    pub(super) fn sync_soon(&mut self, now: Instant) {
        if self.sync_due(now) {
            self.pull_state();
        }
    }

    /// Full-state push-pull with one random live member (it answers with its own).
    pub(super) fn pull_state(&mut self) {
        let live = self.members.live_ids();
        if live.is_empty() {
            return;
        }
        let id = live[self.rng.below(live.len())];
        self.push_full_state(id);
    }

    /// Sends our full state to `id`, asking for its own in return.
    pub(super) fn push_full_state(&mut self, id: NodeId) {
        let msgs = self
            .state_chunks(true)
            .into_iter()
            .map(Msg::State)
            .collect();
        self.queue(id, msgs);
    }

    /// At most one mismatch-triggered pull per 2 s: true (and the time noted) when one may go
    /// now.
    pub(super) fn sync_due(&mut self, now: Instant) -> bool {
        if self
            .anti_entropy
            .last_sync
            .is_some_and(|t| now < t + SYNC_GAP)
        {
            return false;
        }
        self.anti_entropy.last_sync = Some(now);
        true
    }

    /// Starts a digest exchange with `peer` (step 1).
    pub(super) fn offer_digest(&mut self, now: Instant, peer: NodeId) {
        let rounds = &mut self.anti_entropy.rounds;
        rounds.retain(|_, r| now < r.at + ROUND_TTL);
        while rounds.len() >= MAX_OPEN_ROUNDS {
            let oldest = rounds.iter().min_by_key(|(_, r)| r.at).map(|(k, _)| *k);
            match oldest {
                Some(k) => rounds.remove(&k),
                None => break,
            };
        }
        let round = self.rng.next_u64();
        let open = Round {
            peer,
            at: now,
            told: false,
        };
        self.anti_entropy.rounds.insert(round, open);
        let summary = self.view_summary(round);
        self.queue(peer, vec![Msg::DigestOffer { round, summary }]);
    }

    /// Fuzzing only: a round of an open offer to `peer`, opening one if there is none.
    pub(super) fn open_round_to(&mut self, now: Instant, peer: NodeId) -> u64 {
        let open = self
            .anti_entropy
            .rounds
            .iter()
            .find(|(_, r)| r.peer == peer && now < r.at + ROUND_TTL)
            .map(|(k, _)| *k);
        if let Some(k) = open {
            return k;
        }
        self.offer_digest(now, peer);
        self.anti_entropy
            .rounds
            .iter()
            .find(|(_, r)| r.peer == peer && r.at == now)
            .map_or(0, |(k, _)| *k)
    }

    /// Step 2: answer an offer with `DigestEqual` or with our per-member digest.
    pub(super) fn on_digest_offer(
        &mut self,
        _now: Instant,
        from: NodeId,
        round: u64,
        summary: ViewSummary,
    ) {
        self.note_max_term(summary.max_term);
        if self.view_summary(round) == summary_for_compare(&summary, self.election.max_term) {
            self.queue(from, vec![Msg::DigestEqual { round }]);
            return;
        }
        let msgs = self
            .digest_chunks(round)
            .into_iter()
            .map(Msg::Digest)
            .collect();
        self.queue(from, msgs);
    }

    /// The peer of an open offer holds the same view: the exchange is over.
    pub(super) fn on_digest_equal(&mut self, from: NodeId, round: u64) {
        if self
            .anti_entropy
            .rounds
            .get(&round)
            .is_some_and(|r| r.peer == from)
        {
            self.anti_entropy.rounds.remove(&round);
        }
    }

    /// Step 3: compare a chunk of the peer's digest with our records in its range; send what
    /// we know better, ask for what it knows better. Only for an open offer to that peer; a
    /// malformed chunk is refused whole and counted (`Stats::digests_refused`).
    pub(super) fn on_digest(&mut self, now: Instant, from: NodeId, chunk: DigestChunk) {
        let open = self
            .anti_entropy
            .rounds
            .get(&chunk.round)
            .is_some_and(|r| r.peer == from && now < r.at + ROUND_TTL);
        if !open || !digest::chunk_ok(&chunk) {
            self.stats.digests_refused += 1;
            return;
        }
        let round = chunk.round;
        self.note_max_term(chunk.max_term);
        self.relayed_claim(
            now,
            chunk.claim,
            chunk.claim_signature.clone(),
            chunk.master_alive,
        );
        let mine = self.records_in(round, chunk.lo, chunk.hi);
        let d = digest::compare(self.me.id, &mine, &chunk.records);
        let updates: Vec<Update> = d
            .send
            .iter()
            .flat_map(|id| self.updates_about(*id))
            .collect();
        let want: Vec<NodeId> = d
            .want
            .into_iter()
            .filter(|id| !self.join.refused_members.contains_key(id))
            .collect();
        let claims_differ = chunk.claim != self.election.claim
            || chunk.master_alive != self.current_master().is_some();
        let told = self.anti_entropy.rounds.get(&round).is_some_and(|r| r.told);
        let mut msgs = Vec::new();
        if !updates.is_empty() || (claims_differ && !told) {
            msgs.extend(
                self.chunk_updates(updates, false)
                    .into_iter()
                    .map(Msg::State),
            );
            if let Some(r) = self.anti_entropy.rounds.get_mut(&round) {
                r.told = true;
            }
        }
        msgs.extend(self.digest_requests(round, want));
        self.queue(from, msgs);
    }

    /// Step 4: send the entries asked for (each known id once; unknown ids skipped).
    pub(super) fn on_digest_request(&mut self, from: NodeId, ids: Vec<NodeId>) {
        let ids: BTreeSet<NodeId> = ids.into_iter().collect();
        let updates: Vec<Update> = ids.iter().flat_map(|id| self.updates_about(*id)).collect();
        if updates.is_empty() {
            return;
        }
        let msgs = self
            .chunk_updates(updates, false)
            .into_iter()
            .map(Msg::State)
            .collect();
        self.queue(from, msgs);
    }

    /// Our records with ids in `lo..=hi` (the local node included), by id.
    fn records_in(&self, round: u64, lo: NodeId, hi: NodeId) -> Vec<DigestRecord> {
        let mut v: Vec<DigestRecord> = self
            .members
            .range(lo, hi)
            .map(|m| digest::record(round, m))
            .collect();
        let me = self.me.id;
        if lo <= me && me <= hi {
            let pos = v.partition_point(|r| r.id < me);
            let inc = self.my_entry.entry.incarnation;
            let mine = digest::self_record(round, me, inc, &self.my_entry.signature);
            v.insert(pos, mine);
        }
        v
    }

    /// The summary of our view under the key `round`.
    fn view_summary(&self, round: u64) -> ViewSummary {
        let records = self.records_in(round, NodeId(0), NodeId(u128::MAX));
        let live = records.iter().filter(|r| digest::is_live(r.status)).count();
        ViewSummary {
            claim: self.election.claim,
            master_alive: self.current_master().is_some(),
            max_term: self.election.max_term,
            live: u32::try_from(live).unwrap_or(u32::MAX),
            hash: digest::view_hash(round, records.iter()),
        }
    }

    /// Our whole digest as chunks that each fit one record, covering disjoint id ranges.
    fn digest_chunks(&self, round: u64) -> Vec<DigestChunk> {
        let records = self.records_in(round, NodeId(0), NodeId(u128::MAX));
        let base = DigestChunk {
            round,
            claim: self.election.claim,
            claim_signature: self.election.claim_sig.clone(),
            master_alive: self.current_master().is_some(),
            max_term: self.election.max_term,
            lo: NodeId(0),
            hi: NodeId(u128::MAX),
            records: Vec::new(),
            index: u16::MAX,
            total: u16::MAX,
        };
        let room = self
            .sessions
            .plaintext_budget()
            .saturating_sub(msg_size(&Msg::Digest(base.clone())) + CHUNK_SLACK);
        let groups = pack(records, room, encoded_size);
        let total = u16::try_from(groups.len()).unwrap_or(u16::MAX);
        let last = groups.len().saturating_sub(1);
        let mut lo = NodeId(0);
        let mut chunks = Vec::with_capacity(groups.len());
        for (i, records) in groups.into_iter().enumerate() {
            let hi = match records.last() {
                Some(r) if i < last => r.id,
                _ => NodeId(u128::MAX),
            };
            chunks.push(DigestChunk {
                lo,
                hi,
                records,
                index: u16::try_from(i).unwrap_or(u16::MAX),
                total,
                ..base.clone()
            });
            lo = NodeId(hi.0.saturating_add(1));
        }
        chunks
    }

    /// `DigestRequest`s for `ids`, each fitting one record.
    fn digest_requests(&self, round: u64, ids: Vec<NodeId>) -> Vec<Msg> {
        let empty = msg_size(&Msg::DigestRequest {
            round,
            ids: Vec::new(),
        });
        let room = self
            .sessions
            .plaintext_budget()
            .saturating_sub(empty + CHUNK_SLACK);
        pack(ids, room, encoded_size)
            .into_iter()
            .filter(|ids| !ids.is_empty())
            .map(|ids| Msg::DigestRequest { round, ids })
            .collect()
    }

    /// What we send about a member (the local node included): its signed entry when alive
    /// (and, when suspected, the entry then the suspicion); a failed or departed member's
    /// `Dead` / signed `Left`. Empty for an unknown id, and for a departed member whose `Left`
    /// signature is not verified yet (see `node::updates`).
    fn updates_about(&self, id: NodeId) -> Vec<Update> {
        if id == self.me.id {
            return vec![Update::Alive(self.my_entry.clone())];
        }
        let Some(m) = self.members.get(id) else {
            return Vec::new();
        };
        if matches!(m.state, Liveness::Left { .. }) && m.left_signature.is_empty() {
            return Vec::new(); // its `Left` is not verified yet (or failed): never forwarded
        }
        let mut v = Vec::with_capacity(2);
        if let Liveness::Suspect { .. } = m.state {
            v.push(Update::Alive(SignedEntry {
                entry: m.info.clone(),
                signature: m.signature.clone(),
            }));
        }
        v.push(self.members.as_update(m));
        v
    }

    /// Our full state as chunks that each fit one record (join answers; the election's and a
    /// partition heal's pulls, with `reply`).
    pub(super) fn state_chunks(&self, reply: bool) -> Vec<StateChunk> {
        let mut updates = vec![Update::Alive(self.my_entry.clone())];
        for m in self.members.iter() {
            updates.extend(self.updates_about(m.info.id));
        }
        self.chunk_updates(updates, reply)
    }

    /// `updates` as `State` chunks that each fit one record, with our signed claim (one
    /// chunk without members when `updates` is empty).
    fn chunk_updates(&self, updates: Vec<Update>, reply: bool) -> Vec<StateChunk> {
        let budget = self.sessions.plaintext_budget().saturating_sub(96);
        let groups = pack(updates, budget, |u| {
            msg_size(&Msg::Updates(std::slice::from_ref(u).to_vec()))
        });
        let total = groups.len() as u16;
        let master_alive = self.current_master().is_some();
        groups
            .into_iter()
            .enumerate()
            .map(|(i, members)| StateChunk {
                claim: self.election.claim,
                claim_signature: self.election.claim_sig.clone(),
                master_alive,
                max_term: self.election.max_term,
                members,
                reply,
                index: i as u16,
                total,
            })
            .collect()
    }

    pub(super) fn on_state(&mut self, now: Instant, from: NodeId, chunk: StateChunk) {
        self.note_max_term(chunk.max_term);
        for u in chunk.members {
            self.apply_update(now, u, true, from);
        }
        self.relayed_claim(now, chunk.claim, chunk.claim_signature, chunk.master_alive);
        if chunk.reply && chunk.index == 0 {
            let msgs = self
                .state_chunks(false)
                .into_iter()
                .map(Msg::State)
                .collect();
            self.queue(from, msgs);
        }
    }

    /// A peer's highest term (unsigned, as in state chunks): raises ours, unless implausible.
    fn note_max_term(&mut self, term: u64) {
        if term <= super::election::MAX_TERM {
            self.election.max_term = self.election.max_term.max(term);
        } else {
            self.stats.election_dropped += 1;
        }
    }

    /// A claim relayed in a state or digest chunk: counts only with its master's signature.
    fn relayed_claim(
        &mut self,
        now: Instant,
        claim: Option<Claim>,
        signature: Vec<u8>,
        master_alive: bool,
    ) {
        let Some(c) = claim else {
            return;
        };
        if !self.claim_signed(&c, &signature) {
            self.stats.election_dropped += 1;
        } else if master_alive || c.master == self.me.id {
            self.consider_signed_claim(now, c, signature, false);
        } else if c.term <= super::election::MAX_TERM {
            self.election.max_term = self.election.max_term.max(c.term);
        }
    }
}

/// The offer's summary as ours would be if equal: `max_term` is not compared (it only ever
/// rises, and differs harmlessly).
fn summary_for_compare(s: &ViewSummary, our_max_term: u64) -> ViewSummary {
    ViewSummary {
        max_term: our_max_term,
        ..s.clone()
    }
}

/// Splits `items` into groups whose summed `size` stays within `room` (a single item larger
/// than `room` gets a group of its own). Always at least one group (maybe empty).
fn pack<T>(items: Vec<T>, room: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = vec![Vec::new()];
    let mut used = 0usize;
    for item in items {
        let s = size(&item);
        if used.saturating_add(s) > room && groups.last().is_some_and(|g| !g.is_empty()) {
            groups.push(Vec::new());
            used = 0;
        }
        used = used.saturating_add(s);
        if let Some(g) = groups.last_mut() {
            g.push(item);
        }
    }
    groups
}
