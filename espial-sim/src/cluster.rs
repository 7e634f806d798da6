//! The simulated cluster: slots holding `espial_core::Node`s, one virtual clock and the
//! event queue (datagram deliveries, node wake-ups, scripted actions).
//!
//! Time is virtual: one real `Instant` is taken at start as the base and only durations are
//! added to it, so a run depends on the seed alone. The loop jumps from event to event.

use crate::cipher::CipherKind;
use crate::events::EventLog;
use crate::faults::Action;
use crate::health::Health;
use crate::metrics::Counters;
use crate::network::{addr_slot, slot_addr, Fate, NetConfig, Network};
pub use crate::observe::describe;
use crate::trace::Trace;
use espial_core::rng::Rng;
use espial_core::{Admission, AdmissionRequest, Config, Metadata, Node, NodeId, NodeInfo, Output};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most violations kept verbatim; later ones are only counted.
pub const MAX_VIOLATIONS: usize = 200;
/// Datagrams a paused node buffers before dropping (its socket buffer).
pub const PAUSE_INBOX: usize = 4096;

/// Everything that defines a run besides the scenario script.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice (network, node ids, node seeds, faults).
    pub seed: u64,
    /// Configuration given to every node (the LAN profile by default).
    pub core: Config,
    /// Network model.
    pub net: NetConfig,
    /// Cipher suite of the nodes.
    pub cipher: CipherKind,
    /// Keep readable trace records (the rolling hash is always kept).
    pub keep_trace: bool,
    /// How many static seed slots every node is given at start (slots `0..k`).
    pub static_seeds: usize,
    /// Extra random live nodes given to each starting node as discovered addresses.
    pub random_seeds: usize,
    /// Count sent bytes per message kind into `Counters::by_kind` (test cipher only).
    pub classify_traffic: bool,
    /// Period of repeated discovery (like multicast beacons or re-resolved static peers):
    /// each running node is fed the static seeds and `random_seeds` random running nodes
    /// again, with a random phase per node. `None` feeds addresses only at start.
    pub discovery_interval: Option<Duration>,
    /// Model of the application reading custom events. `Direct` (default): read the
    /// moment the node hands them out. `Consumed`: kept in a per-node application inbox,
    /// read when the reader is not paused ([`crate::faults::Action::PauseReader`]), and
    /// reported with `Node::events_consumed` (the node runs with `set_app_consumption`).
    /// `LegacyListener(cap)`: the pre-flow-control facade: an inbox of at most `cap`
    /// events that drops the oldest (broadcast lag), no consumption reports.
    pub reader: ReaderModel,
    /// Quorum mode: skip joins and restarts that would run more than `2q − 1` nodes at
    /// once (the documented precondition of quorum mode; on by default). Off: the nodes'
    /// own refusal of such joins is all that stands (regression tests of that refusal).
    pub quorum_precondition: bool,
}

/// How the simulated application reads custom events (see [`SimConfig::reader`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderModel {
    /// Read at once.
    Direct,
    /// Inbox with consumption reports (flow control up to the application).
    Consumed,
    /// Inbox of this capacity dropping the oldest; no consumption reports.
    LegacyListener(usize),
}

impl SimConfig {
    /// LAN profile, 1 ms ± 0.5 ms latency, no loss, test cipher.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            core: Config::lan(),
            net: NetConfig::default(),
            cipher: CipherKind::Test,
            keep_trace: false,
            static_seeds: 3,
            random_seeds: 1,
            discovery_interval: Some(Duration::from_secs(5)),
            classify_traffic: false,
            reader: ReaderModel::Direct,
            quorum_precondition: true,
        }
    }
}

/// What a slot's node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Handles datagrams and timers.
    Running,
    /// Handles nothing until the given time (ns); datagrams queue up.
    Paused(u64),
    /// Gone; datagrams to it are dropped.
    Crashed,
    /// Left gracefully; inert.
    Left,
}

/// Options for a node the simulator starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeOpts {
    /// May it become master.
    pub eligible: bool,
    /// Election priority.
    pub priority: u32,
    /// Initial metadata.
    pub metadata: Metadata,
    /// Name prefix (the slot number is appended).
    pub name: String,
}

impl Default for NodeOpts {
    fn default() -> Self {
        NodeOpts {
            eligible: true,
            priority: 0,
            metadata: Metadata::new(),
            name: "n".into(),
        }
    }
}

/// One simulated host: a fixed address and the node (incarnation) running there.
pub struct Slot {
    /// The running node, `None` once crashed.
    pub node: Option<Node>,
    /// Current state.
    pub state: SlotState,
    /// Incarnation counter of the slot (bumped by crash and restart).
    pub gen: u32,
    /// Id of the current (or last) node.
    pub id: NodeId,
    /// Options it was started with.
    pub opts: NodeOpts,
    /// When the current incarnation started (ns).
    pub started_at: u64,
    /// It received `node_rejected` (and no `node_accepted` or `added_node` since).
    pub rejected: bool,
    /// It received `node_accepted`.
    pub accepted: bool,
    /// Highest `max_term()` seen (terms never decrease).
    pub last_term: u64,
    /// Master according to its promotion/demotion events.
    pub master_by_events: bool,
    /// Member count according to its added/removed events (itself included).
    pub members_by_events: usize,
    /// Bytes sent by this slot (all incarnations).
    pub bytes_out: u64,
    /// Datagrams sent by this slot (all incarnations).
    pub packets_out: u64,
    /// Clock rate of this host: its `now` advances `rate` ns per simulated ns (drift).
    pub rate: f64,
    /// Processing delay of this host in ns (a slow node): every input is handled this
    /// much after it arrives, timers fire this much late.
    pub slow: u64,
    pub(crate) wake_at: Option<u64>,
    inbox: Vec<(usize, Vec<u8>)>,
    /// Custom events handed out and not yet read by the application (reader models with
    /// an inbox).
    pub app_inbox: std::collections::VecDeque<crate::reader::Handed>,
    /// The application reads nothing before this time (ns).
    pub reader_paused_until: u64,
    /// Events the legacy listener model dropped (lag).
    pub app_dropped: u64,
}

impl Slot {
    /// A slot not yet booted (its node is created by `boot`/`new_node`).
    fn new(opts: NodeOpts, now: u64) -> Self {
        Slot {
            node: None,
            state: SlotState::Crashed,
            gen: 0,
            id: NodeId(0),
            opts,
            started_at: now,
            rejected: false,
            accepted: false,
            last_term: 0,
            master_by_events: false,
            members_by_events: 1,
            bytes_out: 0,
            packets_out: 0,
            rate: 1.0,
            slow: 0,
            wake_at: None,
            inbox: Vec::new(),
            app_inbox: std::collections::VecDeque::new(),
            reader_paused_until: 0,
            app_dropped: 0,
        }
    }
}

impl Slot {
    /// Running (not paused, crashed or left) and not rejected.
    pub fn is_live(&self) -> bool {
        self.state == SlotState::Running && !self.rejected && self.node.is_some()
    }
    /// Running or paused (the process exists).
    pub fn exists(&self) -> bool {
        matches!(self.state, SlotState::Running | SlotState::Paused(_)) && self.node.is_some()
    }
}

enum Ev {
    Deliver {
        to: usize,
        from: usize,
        from_gen: u32,
        data: Vec<u8>,
        /// Already held back by the receiver's processing delay.
        late: bool,
    },
    Wake {
        slot: usize,
        gen: u32,
    },
    Resume {
        slot: usize,
        gen: u32,
    },
    Action(usize),
    /// A datagram from an address that is no slot's (adversary), or spoofed.
    Spoofed {
        to: usize,
        from: SocketAddr,
        data: Vec<u8>,
    },
    Discover {
        slot: usize,
        gen: u32,
    },
}

struct Entry {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap, we want the earliest (then first-scheduled) event.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

/// Admission policy answered synchronously by the simulator.
pub type AdmissionPolicy = Box<dyn FnMut(&AdmissionRequest) -> Admission>;

/// The simulated cluster and its event loop.
pub struct Sim {
    /// Run parameters.
    pub cfg: SimConfig,
    pub(crate) base: Instant,
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Entry>,
    /// Every slot ever used (index = slot number).
    pub slots: Vec<Slot>,
    /// The network model.
    pub net: Network,
    /// Random stream for scenario and fault choices (separate from the network's).
    pub rng: Rng,
    ids: Rng,
    /// Trace of the run.
    pub trace: Trace,
    /// Violations found while running (continuous invariants).
    pub violations: Vec<String>,
    /// Violations found beyond [`MAX_VIOLATIONS`].
    pub violations_dropped: u64,
    /// Counters of traffic and events.
    pub counters: Counters,
    /// Custom-event bookkeeping (event scenarios).
    pub events: EventLog,
    /// Fault ledger for the "no healthy node removed by a healthy node" invariant.
    pub health: Health,
    actions: Vec<Option<Action>>,
    pub(crate) by_id: HashMap<NodeId, usize>,
    admission: Option<AdmissionPolicy>,
    outbuf: Vec<Output>,
    /// Adversaries (spoofing outsider, lying member) and their invariants, when enabled.
    pub adversary: Option<Box<crate::adversary::Adversary>>,
    /// Slots whose node believed it was master after its last interaction (quorum check).
    pub(crate) believers: std::collections::BTreeSet<usize>,
    /// Start of the current two-master overlap (quorum mode), if any.
    pub(crate) overlap_since: Option<u64>,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl Sim {
    /// An empty simulation (no nodes yet). Fails when the cipher suite is unavailable.
    pub fn new(cfg: SimConfig) -> Result<Sim, String> {
        cfg.cipher.check()?;
        cfg.core.validate().map_err(|e| e.to_string())?;
        let mut root = Rng::new(cfg.seed);
        let net = Network::new(cfg.net.clone(), root.next_u64());
        let rng = Rng::new(root.next_u64());
        let ids = Rng::new(root.next_u64());
        let keep = cfg.keep_trace;
        Ok(Sim {
            cfg,
            base: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            net,
            rng,
            ids,
            trace: Trace::new(keep),
            violations: Vec::new(),
            violations_dropped: 0,
            counters: Counters::default(),
            events: EventLog::default(),
            health: Health::default(),
            actions: Vec::new(),
            by_id: HashMap::new(),
            admission: None,
            outbuf: Vec::new(),
            adversary: None,
            believers: Default::default(),
            overlap_since: None,
        })
    }

    /// Simulated time since start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// Simulated time since start, in milliseconds.
    pub fn now_ms(&self) -> f64 {
        self.now as f64 / 1e6
    }

    /// The `Instant` handed to nodes for the current simulated time.
    pub fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    /// Records a violation of an invariant.
    pub fn violation(&mut self, msg: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations
                .push(format!("t={:.1}ms: {msg}", self.now as f64 / 1e6));
        } else {
            self.violations_dropped += 1;
        }
    }

    /// Installs an admission policy; nodes started afterwards ask it about every joiner.
    pub fn set_admission(&mut self, policy: AdmissionPolicy) {
        self.admission = Some(policy);
    }

    /// The slot whose current or last incarnation had this id.
    pub fn slot_of(&self, id: NodeId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// Slots whose node is running and not rejected.
    pub fn live_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_live())
            .collect()
    }

    /// The node in a slot, if it exists.
    pub fn node(&self, slot: usize) -> Option<&Node> {
        self.slots.get(slot).and_then(|s| s.node.as_ref())
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Schedules an action at simulated time `at` (from start; not before now).
    pub fn schedule(&mut self, at: Duration, action: Action) {
        let idx = self.actions.len();
        self.actions.push(Some(action));
        let at = ns(at).max(self.now);
        self.push(at, Ev::Action(idx));
    }

    /// Discovery addresses for a node starting in `slot`: the static seeds and a few random
    /// running nodes.
    pub fn seed_addrs(&mut self, slot: usize) -> Vec<SocketAddr> {
        let mut out: Vec<usize> = (0..self.cfg.static_seeds.min(self.slots.len()))
            .filter(|&s| s != slot)
            .collect();
        let n = self.slots.len();
        if n > 1 {
            for _ in 0..self.cfg.random_seeds {
                for _attempt in 0..8 {
                    let s = self.rng.below(n);
                    if s != slot && self.slots[s].is_live() && !out.contains(&s) {
                        out.push(s);
                        break;
                    }
                }
            }
        }
        out.into_iter().map(slot_addr).collect()
    }

    fn new_node(&mut self, slot: usize) -> Node {
        let test_id = NodeId(((self.ids.next_u64() as u128) << 64) | self.ids.next_u64() as u128);
        let node_seed = self.ids.next_u64();
        let opts = self.slots[slot].opts.clone();
        let cipher = self
            .cfg
            .cipher
            .make(node_seed ^ 0xc1_9e4, test_id)
            .expect("cipher checked at start");
        let id = cipher.node_id();
        let mut info = NodeInfo::new(id, format!("{}{slot}", opts.name), slot_addr(slot));
        info.master_eligible = opts.eligible;
        info.priority = opts.priority;
        info.metadata = opts.metadata.clone();
        let mut node = Node::new(
            self.cfg.core.clone(),
            info,
            cipher,
            node_seed,
            self.local_instant(slot),
        )
        .expect("config validated at start");
        if self.admission.is_some() {
            node.set_admission_filter(true);
        }
        if self.cfg.reader == ReaderModel::Consumed {
            node.set_app_consumption(true);
        }
        let s = &mut self.slots[slot];
        s.app_inbox.clear();
        s.id = id;
        s.started_at = self.now;
        s.rejected = false;
        s.accepted = false;
        s.last_term = 0;
        s.master_by_events = false;
        s.members_by_events = 1;
        s.wake_at = None;
        s.inbox.clear();
        self.by_id.insert(id, slot);
        let gen = self.slots[slot].gen;
        self.events.on_start(slot, gen, id);
        node
    }

    /// Starts a new node in a new slot, gives it seed addresses, and returns the slot.
    pub fn add_node(&mut self, opts: NodeOpts) -> usize {
        let slot = self.slots.len();
        self.slots.push(Slot::new(opts, self.now));
        self.health.new_slot(slot);
        self.boot(slot);
        slot
    }

    /// Starts `n` nodes at once with default options.
    pub fn add_nodes(&mut self, n: usize) -> Vec<usize> {
        self.add_nodes_with(vec![NodeOpts::default(); n])
    }

    /// Starts one node per options entry, all at once.
    pub fn add_nodes_with(&mut self, opts: Vec<NodeOpts>) -> Vec<usize> {
        let first = self.slots.len();
        let n = opts.len();
        // Create every slot first so seeds can point at nodes started in the same instant.
        for opts in opts {
            self.health.new_slot(self.slots.len());
            self.slots.push(Slot::new(opts, self.now));
        }
        for s in first..first + n {
            let node = self.new_node(s);
            self.slots[s].node = Some(node);
            self.slots[s].state = SlotState::Running;
        }
        for s in first..first + n {
            self.trace.fault(self.now, &format!("start n{s}"));
            self.drain(s);
            let seeds = self.seed_addrs(s);
            self.discover(s, &seeds);
            self.schedule_discovery(s);
        }
        (first..first + n).collect()
    }

    /// (Re)starts a node in an existing slot with a new id and discovery addresses.
    pub fn boot(&mut self, slot: usize) {
        self.slots[slot].gen += 1;
        let node = self.new_node(slot);
        self.slots[slot].node = Some(node);
        self.slots[slot].state = SlotState::Running;
        self.trace.fault(self.now, &format!("start n{slot}"));
        self.drain(slot);
        let seeds = self.seed_addrs(slot);
        self.discover(slot, &seeds);
        self.schedule_discovery(slot);
    }

    fn schedule_discovery(&mut self, slot: usize) {
        if let Some(iv) = self.cfg.discovery_interval {
            let iv = ns(iv);
            let at = self.now + iv / 2 + self.rng.below(iv as usize) as u64;
            let gen = self.slots[slot].gen;
            self.push(at, Ev::Discover { slot, gen });
        }
    }

    /// Feeds discovered addresses to a running node.
    pub fn discover(&mut self, slot: usize, addrs: &[SocketAddr]) {
        let now = self.local_instant(slot);
        if let Some(node) = self.running(slot) {
            node.handle_discovered(now, addrs);
            self.drain(slot);
        }
    }

    fn running(&mut self, slot: usize) -> Option<&mut Node> {
        let s = self.slots.get_mut(slot)?;
        if s.state != SlotState::Running {
            return None;
        }
        s.node.as_mut()
    }

    /// Runs a command on a running node, then drains its outputs. `None` when not running.
    pub fn with_node<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Node, Instant) -> R,
    ) -> Option<R> {
        let now = self.local_instant(slot);
        let node = self.running(slot)?;
        let r = f(node, now);
        self.drain(slot);
        Some(r)
    }

    /// Crashes a node: it disappears, its in-flight datagrams are dropped.
    pub fn crash(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if s.node.is_none() {
            return;
        }
        s.node = None;
        s.state = SlotState::Crashed;
        s.gen += 1;
        s.wake_at = None;
        s.inbox.clear();
        self.believers.remove(&slot);
        self.health.start(slot);
        self.trace.fault(self.now, &format!("crash n{slot}"));
        self.events.on_crash(slot, self.now);
    }

    /// Restarts a slot (crashing what runs there first): new node, new id, same address.
    pub fn restart(&mut self, slot: usize) {
        self.crash(slot);
        self.trace.fault(self.now, &format!("restart n{slot}"));
        self.boot(slot);
        self.health.end(slot, self.now);
    }

    /// Graceful leave: the node announces it, then stays inert.
    pub fn leave(&mut self, slot: usize) {
        let now = self.local_instant(slot);
        if let Some(node) = self.running(slot) {
            node.leave(now);
            self.trace.fault(self.now, &format!("leave n{slot}"));
            self.drain(slot);
            self.slots[slot].state = SlotState::Left;
            self.slots[slot].wake_at = None;
            self.events.on_crash(slot, self.now);
        }
    }

    /// Pauses a running node for `d`: it handles nothing, datagrams queue up.
    pub fn pause(&mut self, slot: usize, d: Duration) {
        let s = &mut self.slots[slot];
        if s.state != SlotState::Running {
            return;
        }
        let until = self.now + ns(d);
        s.state = SlotState::Paused(until);
        s.wake_at = None;
        self.health.until(slot, until);
        let s = &mut self.slots[slot];
        let gen = s.gen;
        self.trace
            .fault(self.now, &format!("pause n{slot} {}ms", d.as_millis()));
        self.push(until, Ev::Resume { slot, gen });
    }

    /// Runs every event up to and including simulated time `t` (from start).
    pub fn run_until(&mut self, t: Duration) {
        let end = ns(t);
        while let Some(top) = self.queue.peek() {
            if top.at > end {
                break;
            }
            let e = self.queue.pop().expect("peeked");
            self.now = e.at;
            self.counters.steps += 1;
            self.handle(e.ev);
            if self.cfg.core.quorum.is_some() {
                self.check_single_master();
            }
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` more simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now() + d;
        self.run_until(t);
    }

    /// Runs until `pred` holds (checked every `step`) or `deadline` (from start) passes.
    /// Returns the time at which it first held.
    pub fn run_until_pred(
        &mut self,
        deadline: Duration,
        step: Duration,
        mut pred: impl FnMut(&mut Sim) -> bool,
    ) -> Option<Duration> {
        loop {
            if pred(self) {
                return Some(self.now());
            }
            if self.now() >= deadline {
                return None;
            }
            let next = (self.now() + step).min(deadline);
            self.run_until(next);
        }
    }
}

// The event loop lives in its own file but is part of this module (it uses its private items).
#[path = "step.rs"]
mod step;
