//! Message bodies: the clear handshake and beacon, and the messages inside sealed records.

use crate::{NodeId, NodeInfo};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Multicast discovery beacon (clear; MAC'd under the cluster PSK when one is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// Cluster name; beacons of other clusters are ignored.
    pub cluster: String,
    /// Sender's node id.
    pub id: NodeId,
    /// Address to contact the sender at.
    pub addr: SocketAddr,
    /// MAC over the encoded beacon without this field (PSK clusters only).
    pub mac: Option<[u8; 16]>,
}

/// First handshake message, initiator to responder. The datagram is zero-padded after the
/// encoded body to at least [`crate::wire::HELLO_MIN_LEN`] bytes (the padding ensures the
/// answer is never larger than the question: no amplification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Initiator's node id.
    pub from: NodeId,
    /// Responder's id when known (`None` when contacting a seed address).
    pub to: Option<NodeId>,
    /// Random id of this handshake attempt (de-duplicates retransmissions).
    pub attempt: u64,
    /// Initiator's ephemeral public key share.
    pub share: Vec<u8>,
    /// The responder's cookie for this source address and attempt, once it sent one
    /// ([`Cookie`]; only needed while the responder is under load).
    pub cookie: Option<[u8; 16]>,
}

/// Stateless answer of a responder under load to a Hello without a valid cookie: the
/// initiator repeats its Hello with `cookie` (proving it receives at its source address).
/// Never larger than the Hello it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cookie {
    /// The `Hello.attempt` this answers.
    pub attempt: u64,
    /// MAC of the Hello's source address, initiator id and attempt under the responder's
    /// rotating secret.
    pub cookie: [u8; 16],
}

/// Identity proof: a static public key and a signature over the handshake transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// Static identity public key.
    pub public_key: Vec<u8>,
    /// Signature over the transcript.
    pub signature: Vec<u8>,
}

/// Second handshake message, responder to initiator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// Responder's node id.
    pub from: NodeId,
    /// Initiator's node id.
    pub to: NodeId,
    /// The `Hello.attempt` this answers.
    pub attempt: u64,
    /// Key epoch the responder assigned to the new session.
    pub epoch: u32,
    /// Responder's ephemeral public key share.
    pub share: Vec<u8>,
    /// Responder's identity proof: its static public key (whose node id must equal `from`)
    /// and its signature over the transcript.
    pub identity: IdentityProof,
    /// Empty record sealed with the responder's new send key (key confirmation).
    pub confirm: Vec<u8>,
}

/// A member entry as gossiped: everything needed to add or update a member.
pub type MemberEntry = NodeInfo;

/// A member entry with its subject's signature: only the member itself can state its
/// address, incarnation, metadata and subscriptions (see `membership::statements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    /// The entry (its `public_key` must derive its `id`).
    pub entry: MemberEntry,
    /// The subject's signature, domain `b"espial alive v2"`, over `postcard(entry)`.
    pub signature: Vec<u8>,
}

/// Liveness state carried by a membership update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// The member is alive at this incarnation (also carries metadata/subscription changes),
    /// signed by the member.
    Alive(SignedEntry),
    /// `by` suspects the member at this incarnation.
    Suspect {
        /// Suspected member.
        id: NodeId,
        /// Its incarnation as known by the suspecter.
        incarnation: u64,
        /// Who suspects it.
        by: NodeId,
    },
    /// The member is declared failed at this incarnation.
    Dead {
        /// Failed member.
        id: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// Who declared it.
        by: NodeId,
    },
    /// The member left gracefully (signed by the member).
    Left {
        /// Departed member.
        id: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// The member's signature, domain `b"espial left v2"`, over `id (16 bytes BE) ||
        /// incarnation (8 bytes BE)`.
        signature: Vec<u8>,
    },
}

impl Update {
    /// The member the update is about.
    pub fn subject(&self) -> NodeId {
        match self {
            Update::Alive(e) => e.entry.id,
            Update::Suspect { id, .. } | Update::Dead { id, .. } | Update::Left { id, .. } => *id,
        }
    }
}

/// A master claim: `(majority, term, priority, master)`, ordered lexicographically
/// (greater wins). `majority` is true when the claimant showed it could reach a majority of
/// the members it knows when it claimed (always true in quorum mode, where a claim needs a
/// quorum of votes): a claim made by a node cut off from the majority never wins over the
/// majority's master, whatever its term.
// Exhaustive on purpose: a wire type whose fields are its total order; a new field is a
// protocol change (new version), not a compatible addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// Made with a majority's answers (see the type's doc).
    pub majority: bool,
    /// Election term.
    pub term: u64,
    /// The master's priority at the time of the claim.
    pub priority: u32,
    /// The master.
    pub master: NodeId,
}

/// Membership entries with the sender's signed claim: one chunk of a node's full state (join
/// answers, the election's and a heal's pulls) or the entries a digest exchange selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChunk {
    /// The sender's current master claim, if any.
    pub claim: Option<Claim>,
    /// The claim's master's signature over it (domain `espial claim v2`, see
    /// `Msg::SignedClaim`); empty when the sender does not hold it. A relayed claim is
    /// adopted only with a valid signature.
    pub claim_signature: Vec<u8>,
    /// Whether the sender currently considers the claimed master alive.
    pub master_alive: bool,
    /// Highest term the sender has seen.
    pub max_term: u64,
    /// Members with their liveness (`Alive`, `Suspect`, `Dead` or `Left`).
    pub members: Vec<Update>,
    /// Whether the receiver should answer with its own state.
    pub reply: bool,
    /// Chunk index and total, for diagnostics.
    pub index: u16,
    /// Total chunks in this exchange.
    pub total: u16,
}

/// A member's liveness as summarized in a digest record (ordered: at the same incarnation a
/// later status wins, as in SWIM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DigestStatus {
    /// Alive (variant 0).
    Alive,
    /// Suspected (variant 1).
    Suspect,
    /// Declared failed (variant 2).
    Dead,
    /// Left gracefully (variant 3).
    Left,
}

/// One member in a digest: what the sender holds about it, without the entry itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    /// The member.
    pub id: NodeId,
    /// The incarnation the sender holds for it.
    pub incarnation: u64,
    /// Its liveness in the sender's view.
    pub status: DigestStatus,
    /// Short keyed hash of the stored signed entry (its signature), see
    /// `membership::digest::entry_hash`: the same incarnation with other content differs.
    pub hash: [u8; 4],
}

/// A summary of a node's whole view (anti-entropy digest offer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewSummary {
    /// The sender's current master claim, if any (unsigned: only compared).
    pub claim: Option<Claim>,
    /// Whether the sender considers the claimed master alive.
    pub master_alive: bool,
    /// Highest term the sender has seen.
    pub max_term: u64,
    /// Number of live members (alive or suspected) in the sender's view, itself included.
    pub live: u32,
    /// Keyed hash of the sorted live records (`membership::digest::view_hash`).
    pub hash: [u8; 8],
}

/// One chunk of a node's per-member digest (answer to a `DigestOffer` whose summary differs).
/// Records are sorted by id, strictly ascending, and all lie in `lo..=hi`; the chunks of one
/// answer cover disjoint ranges (the first from id 0, the last up to `u128::MAX`), so each
/// chunk can be compared on its own: a member of the receiver in `lo..=hi` without a record
/// is one the sender lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestChunk {
    /// The offer's round.
    pub round: u64,
    /// The sender's current master claim, if any.
    pub claim: Option<Claim>,
    /// The claim's master's signature over it (as in [`StateChunk`]); empty when not held.
    pub claim_signature: Vec<u8>,
    /// Whether the sender considers the claimed master alive.
    pub master_alive: bool,
    /// Highest term the sender has seen.
    pub max_term: u64,
    /// Lowest member id this chunk covers (inclusive).
    pub lo: NodeId,
    /// Highest member id this chunk covers (inclusive).
    pub hi: NodeId,
    /// The sender's records in `lo..=hi`, by id.
    pub records: Vec<DigestRecord>,
    /// Chunk index, for diagnostics.
    pub index: u16,
    /// Total chunks in this answer, for diagnostics.
    pub total: u16,
}

/// Messages inside sealed records. Several may share one record (piggybacking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Initiator's key confirmation with its identity proof (static public key whose node
    /// id must equal the record's sender, and its signature over the transcript).
    Confirm {
        /// Initiator's identity proof.
        identity: IdentityProof,
    },
    /// Responder's acknowledgement of `Confirm`.
    ConfirmAck,
    /// Join request: the joiner's signed member entry, seen by the admission filter.
    JoinRequest {
        /// The joiner.
        node: SignedEntry,
        /// Random id of this join attempt.
        attempt: u64,
    },
    /// Join accepted; the state follows as `State` chunks in the same or later records.
    JoinAccept {
        /// The join attempt answered.
        attempt: u64,
        /// The accepting member's signed entry.
        by: SignedEntry,
    },
    /// Join refused; nothing else is ever sent to the refused node. `attempt = 0` (never a
    /// real attempt id) means "my connection filter refuses you as a member": the sender
    /// learned of the receiver from the cluster and will not talk to it.
    JoinReject {
        /// The join attempt answered (0: a member's refusal, not an answer to a request).
        attempt: u64,
        /// The filter's reason.
        reason: String,
    },
    /// SWIM direct probe.
    Ping {
        /// Probe sequence number.
        seq: u64,
        /// The sender's live member count, itself included (a membership digest: the
        /// receiver pulls state after two mismatches in a row).
        members: u32,
    },
    /// Answer to `Ping`.
    Ack {
        /// The probe answered.
        seq: u64,
    },
    /// Ask the receiver to probe `target` on the sender's behalf.
    PingReq {
        /// The requester's probe sequence number.
        seq: u64,
        /// Target to probe.
        target: NodeId,
    },
    /// The indirect probe of `target` succeeded.
    IndirectAck {
        /// The requester's probe sequence number.
        seq: u64,
        /// The target that answered.
        target: NodeId,
    },
    /// Piggybacked membership updates.
    Updates(Vec<Update>),
    /// Membership entries (full state, or the entries of a digest exchange).
    State(StateChunk),
    /// Master heartbeat: the master's claim and incarnation.
    Heartbeat {
        /// The claim.
        claim: Claim,
        /// The master's incarnation (a bump refutes suspicion).
        incarnation: u64,
        /// How many live members the master sees (itself included): a member whose own
        /// count differs twice in a row pulls the full state of a random member.
        members: u32,
    },
    /// A new master claim (sent directly on promotion).
    Claim(Claim),
    /// The master of `claim` resigns (quorum lost or shutdown).
    Resign(Claim),
    /// Event delivery frames (custom events, acks, fragments).
    Delivery(crate::delivery::Frame),
    /// Quorum mode: the master of `claim` asks the receiver to renew its lease (round
    /// `round`). Sent each heartbeat period to a quorum of members plus spares, not to all.
    LeaseRequest {
        /// The master's claim (its master must be the authenticated sender).
        claim: Claim,
        /// Round number, echoed in the answer.
        round: u64,
    },
    /// Answer to `LeaseRequest`. `granted`: the sender promises not to vote for or renew
    /// the lease of any other master for `lease_promise` from the moment it received the
    /// request.
    LeaseAck {
        /// The term of the claim answered.
        term: u64,
        /// The round answered.
        round: u64,
        /// Whether the promise was given.
        granted: bool,
    },
    /// A candidate asks for a vote (quorum mode) or checks that it reaches a majority
    /// (available mode) before claiming `claim`.
    VoteRequest {
        /// The claim the sender would make (its master must be the authenticated sender).
        claim: Claim,
        /// Attempt number, echoed in the answer.
        attempt: u32,
        /// Forced takeover (`promote()`): voters ignore a master they still hear.
        force: bool,
    },
    /// Answer to `VoteRequest`.
    VoteReply {
        /// The term asked for.
        term: u64,
        /// The attempt answered.
        attempt: u32,
        /// Vote granted (quorum mode: with a promise like `LeaseAck`'s).
        granted: bool,
        /// The highest term the sender voted or promised in (a candidate asks again above it).
        voted_term: u64,
        /// The claim of the master the sender still follows, when it refused because of it.
        master: Option<Claim>,
    },
    /// A new master claim signed by its master (sent by the winner of an election to every
    /// member): `signature` = the master's identity signature, domain `b"espial claim v2"`,
    /// over `postcard(claim)`. Members keep it to relay the claim verifiably in `State`.
    SignedClaim {
        /// The claim.
        claim: Claim,
        /// The master's signature.
        signature: Vec<u8>,
    },
    /// Lifeguard nack: a member asked by `PingReq` tells the requester that the target did
    /// not answer its ping within its probe timeout (so the requester's own links work).
    Nack {
        /// The requester's probe sequence number (from the `PingReq`).
        seq: u64,
    },
    /// Anti-entropy, first step (periodic push-pull): a summary of the sender's view, hashed
    /// with `round` as the key. Answered with `DigestEqual` when the receiver's summary is the
    /// same, else with its `Digest` chunks (see `node::anti_entropy`).
    DigestOffer {
        /// Random id of this exchange; also the hash key.
        round: u64,
        /// The sender's view summary.
        summary: ViewSummary,
    },
    /// The receiver of `DigestOffer { round }` holds the same view: nothing to exchange.
    DigestEqual {
        /// The offer's round.
        round: u64,
    },
    /// Per-member digest chunk, the answer to an offer whose summary differs. The offer's
    /// sender answers with `State` chunks (the entries where it knows better or the digest's
    /// sender lacks them) and a `DigestRequest` for the entries where the sender knows better.
    Digest(DigestChunk),
    /// Asks for the current entries of these members; answered with `State` chunks
    /// (`reply = false`) carrying them (unknown ids are skipped, each id answered once).
    DigestRequest {
        /// The exchange's round.
        round: u64,
        /// Members wanted.
        ids: Vec<NodeId>,
    },
}
