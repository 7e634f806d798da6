//! Adversaries in the simulator (issue 10): an **outsider** that can spoof source addresses
//! (forged handshakes claiming a member's id, forged sealed records, Hello floods, replays
//! of captured datagrams) and an **admitted member that lies** (an honest node whose
//! crafted messages go out through `Node::adversary_send`: forged statements about others
//! with extreme counters, replays, floods).
//!
//! Invariants checked on every event (added to the simulator's own):
//! - no statement is accepted under a forged author: nobody removes a running node that did
//!   not leave as `left`; no honest node's address or incarnation as seen by another differs
//!   from what that node itself announced; no `new_master` names an honest node at a term
//!   it never claimed;
//! - with `strict_removals` (schedules without network faults or pauses): no running node
//!   is removed at all;
//! - amplification: bytes the nodes send to addresses that are no node's ≤ bytes the
//!   outsider sent from such addresses.
//!
//! The outsider never forges a signature (the test cipher's would be trivial): it uses its
//! own key while *claiming* someone else's id, which is exactly what the protocol must
//! refuse.

use crate::cluster::{Sim, SlotState};
use crate::network::slot_addr;
use espial_core::membership::statements;
use espial_core::rng::Rng;
use espial_core::session::Sessions;
use espial_core::wire::{Claim, Msg, SealedHeader, Update};
use espial_core::{Cipher, Event, NodeId, PlaintextTestCipher, RemovalReason, Stats};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Captured datagrams kept for replays.
const CAPTURE: usize = 64;

/// A forged statement a lying member sends about `victim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lie {
    /// `Left{victim, u64::MAX}`.
    Left,
    /// `Alive{victim at the liar's address, u64::MAX}`.
    Alive,
    /// `Dead{victim, u64::MAX}`.
    Dead,
    /// `Suspect{receiver itself, u64::MAX}` (its refutation must not overflow).
    SuspectReceiver,
    /// `Claim{u64::MAX, victim}`.
    Claim,
    /// `Heartbeat` for a claim naming the victim with term `u64::MAX`.
    Heartbeat,
    /// `Resign` of the receiver's current claim.
    Resign,
}

/// An impersonation attempt in progress: a session table whose id is someone else's.
struct Imp {
    addr: SocketAddr,
    target: usize,
    sessions: Sessions,
    rng: Rng,
    stats: Stats,
}

/// The adversaries of one run and their bookkeeping.
pub struct Adversary {
    /// Slot of the lying member, if any.
    pub liar: Option<usize>,
    /// Fail on any removal of a running node (schedules without network faults).
    pub strict_removals: bool,
    rng: Rng,
    imps: Vec<Imp>,
    captured: VecDeque<(usize, usize, Vec<u8>)>,
    seen: u64,
    next_outside: u32,
    /// Bytes the outsider sent from addresses that are no node's.
    pub bytes_from_outside: u64,
    /// Bytes the nodes sent to addresses that are no node's.
    pub bytes_to_outside: u64,
    /// Per non-node address: (bytes it sent to nodes, bytes nodes sent to it).
    per_addr: BTreeMap<SocketAddr, (u64, u64)>,
    promoted: HashSet<(NodeId, u64)>,
    /// Attacks performed, by kind.
    pub attacks: BTreeMap<&'static str, u64>,
}

impl Adversary {
    /// Adversaries seeded with `seed`; `liar` is the lying member's slot.
    pub fn new(seed: u64, liar: Option<usize>) -> Self {
        Adversary {
            liar,
            strict_removals: false,
            rng: Rng::new(seed ^ 0xad5e_75a1),
            imps: Vec::new(),
            captured: VecDeque::new(),
            seen: 0,
            next_outside: 0,
            bytes_from_outside: 0,
            bytes_to_outside: 0,
            per_addr: BTreeMap::new(),
            promoted: HashSet::new(),
            attacks: BTreeMap::new(),
        }
    }

    /// A fresh address that belongs to no node (TEST-NET-2).
    fn outside(&mut self) -> SocketAddr {
        self.next_outside = self.next_outside.wrapping_add(1);
        let v = self.next_outside;
        SocketAddr::from((Ipv4Addr::new(198, 51, (v >> 8) as u8, v as u8), 9_999))
    }

    fn random_id(&mut self) -> NodeId {
        NodeId(((self.rng.next_u64() as u128) << 64) | self.rng.next_u64() as u128)
    }

    fn count(&mut self, kind: &'static str) {
        *self.attacks.entry(kind).or_default() += 1;
    }

    /// Called for every datagram the network delivers: keeps a sample for replays.
    pub fn capture(&mut self, from: usize, to: usize, data: &[u8]) {
        self.seen += 1;
        if !self.seen.is_multiple_of(23) {
            return;
        }
        if self.captured.len() >= CAPTURE {
            self.captured.pop_front();
        }
        self.captured.push_back((from, to, data.to_vec()));
    }

    /// A node sent `data` to `to`, an address that is no node's (ours, or a spoofed victim).
    pub fn on_outside(&mut self, sim: &mut Sim, _from: usize, to: SocketAddr, data: Vec<u8>) {
        self.bytes_to_outside += data.len() as u64;
        self.per_addr.entry(to).or_default().1 += data.len() as u64;
        let Some(i) = self.imps.iter().position(|m| m.addr == to) else {
            return;
        };
        let Ok((kind, body)) = espial_core::wire::split_header(&data, 65_536) else {
            return;
        };
        let now = sim.instant();
        let imp = &mut self.imps[i];
        let mut out = Vec::new();
        let from_addr = slot_addr(imp.target);
        let _ = imp.sessions.handle(
            now,
            from_addr,
            kind,
            body,
            &mut imp.rng,
            &mut imp.stats,
            &mut out,
        );
        let (addr, target) = (imp.addr, imp.target);
        for (_, d) in out {
            self.sent_from(addr, d.len());
            sim.inject(target, addr, d, Duration::from_millis(1));
        }
    }

    /// Checks the adversary invariants on an event node `slot` emitted.
    pub fn check_event(&mut self, sim: &mut Sim, slot: usize, e: &Event) {
        let liar = self.liar;
        let honest = |sim: &Sim, id: NodeId| -> Option<usize> {
            let v = sim.slot_of(id)?;
            let s = &sim.slots[v];
            (s.id == id && s.node.is_some() && Some(v) != liar).then_some(v)
        };
        match e {
            Event::Promotion { term, .. } => {
                self.promoted.insert((sim.slots[slot].id, *term));
            }
            Event::NodeRemoved { node, reason } => {
                let Some(v) = honest(sim, node.id) else {
                    return;
                };
                let state = sim.slots[v].state;
                if *reason == RemovalReason::Left && state != SlotState::Left {
                    sim.violation(format!(
                        "forged author: n{slot} removed n{v} as left, but it did not leave"
                    ));
                } else if self.strict_removals && state == SlotState::Running {
                    sim.violation(format!(
                        "healthy node removed: n{slot} removed running n{v} ({reason:?})"
                    ));
                }
            }
            Event::NodeAdded { node } | Event::NodeUpdated { node } => {
                let Some(v) = honest(sim, node.id) else {
                    return;
                };
                let real = sim.slots[v].node.as_ref().map(|n| n.info().incarnation);
                if node.addr != slot_addr(v) {
                    sim.violation(format!(
                        "forged author: n{slot} sees n{v} at {} (its address is {})",
                        node.addr,
                        slot_addr(v)
                    ));
                }
                if real.is_some_and(|r| node.incarnation > r) {
                    sim.violation(format!(
                        "forged author: n{slot} sees n{v} at incarnation {} (it is at {:?})",
                        node.incarnation, real
                    ));
                }
            }
            Event::NewMaster { master, term, .. }
                if honest(sim, *master).is_some() && !self.promoted.contains(&(*master, *term)) =>
            {
                sim.violation(format!(
                    "forged author: n{slot} follows {} at term {term}, a claim it never made",
                    master.short()
                ));
            }
            _ => {}
        }
    }

    /// Counts `n` bytes the outsider sent from `addr` (an address that is no node's).
    fn sent_from(&mut self, addr: SocketAddr, n: usize) {
        self.bytes_from_outside += n as u64;
        self.per_addr.entry(addr).or_default().0 += n as u64;
    }

    /// Violations found at the end of a run: amplification toward any address that is no
    /// node's (bytes the nodes sent it > bytes it sent them).
    pub fn final_violations(&self) -> Vec<String> {
        let over: Vec<_> = self.per_addr.iter().filter(|(_, (i, o))| o > i).collect();
        let mut v = Vec::new();
        if let Some((addr, (i, o))) = over.iter().max_by_key(|(_, (i, o))| o * 1000 / i.max(&1)) {
            v.push(format!(
                "amplification: {} non-node address(es) got more than they sent, worst {addr}: \
                 {i} B in, {o} B out ({:.1}x); all: {} B in, {} B out",
                over.len(),
                *o as f64 / (*i).max(1) as f64,
                self.bytes_from_outside,
                self.bytes_to_outside
            ));
        }
        v
    }
}

fn with_adv<R>(sim: &mut Sim, f: impl FnOnce(&mut Adversary, &mut Sim) -> R) -> Option<R> {
    let mut adv = sim.adversary.take()?;
    let r = f(&mut adv, sim);
    sim.adversary = Some(adv);
    Some(r)
}

fn running_id(sim: &Sim, slot: usize) -> Option<NodeId> {
    let s = sim.slots.get(slot)?;
    (s.state == SlotState::Running && s.node.is_some()).then_some(s.id)
}

/// The forged statement `lie` about `victim` (whose real identity key is `victim_key`),
/// by `author` at `author_addr`, for `receiver`. Statements that need the subject's
/// signature carry one made with the author's own key (`signer`): never a forgery of a key
/// it does not hold, only a lie about whose statement it is.
#[allow(clippy::too_many_arguments)]
pub fn forge(
    lie: Lie,
    signer: &dyn Cipher,
    author: NodeId,
    author_addr: SocketAddr,
    victim: NodeId,
    victim_key: &[u8],
    receiver: NodeId,
    receiver_claim: Option<Claim>,
) -> Msg {
    let big = Claim {
        majority: true,
        term: u64::MAX,
        priority: u32::MAX,
        master: victim,
    };
    match lie {
        Lie::Left => Msg::Updates(vec![Update::Left {
            id: victim,
            incarnation: u64::MAX,
            signature: statements::sign_left(signer, victim, u64::MAX),
        }]),
        Lie::Alive => {
            let mut fake = espial_core::NodeInfo::new(victim, "forged", author_addr);
            fake.incarnation = u64::MAX;
            fake.public_key = victim_key.to_vec();
            Msg::Updates(vec![Update::Alive(statements::sign_alive(signer, &fake))])
        }
        Lie::Dead => Msg::Updates(vec![Update::Dead {
            id: victim,
            incarnation: u64::MAX,
            by: author,
        }]),
        Lie::SuspectReceiver => Msg::Updates(vec![Update::Suspect {
            id: receiver,
            incarnation: u64::MAX,
            by: author,
        }]),
        Lie::Claim => Msg::Claim(big),
        Lie::Heartbeat => Msg::Heartbeat {
            claim: big,
            incarnation: u64::MAX,
            members: u32::MAX,
        },
        Lie::Resign => Msg::Resign(receiver_claim.unwrap_or(big)),
    }
}

/// The lying member sends `lie` about `victim` to every running node (or only `target`).
pub fn lie(sim: &mut Sim, lie: Lie, victim: usize, target: Option<usize>) {
    let Some(liar) = sim.adversary.as_ref().and_then(|a| a.liar) else {
        return;
    };
    // About itself the liar would be telling the truth (it may say it left): not a lie.
    if victim == liar {
        return;
    }
    let (Some(author), Some(victim_id)) = (running_id(sim, liar), running_id(sim, victim)) else {
        return;
    };
    let targets: Vec<usize> = match target {
        Some(t) => vec![t],
        None => sim.live_slots(),
    };
    for t in targets {
        let Some(receiver) = running_id(sim, t).filter(|_| t != liar) else {
            continue;
        };
        let claim = sim.node(t).and_then(|n| n.claim());
        if lie == Lie::Resign && claim.is_some_and(|c| c.master == author) {
            continue; // the liar's own resignation would be true (a faulty master: out of scope)
        }
        let victim_key = sim
            .node(victim)
            .map(|n| n.info().public_key.clone())
            .unwrap_or_default();
        sim.with_node(liar, |n, now| {
            let msg = forge(
                lie,
                n.cipher(),
                author,
                slot_addr(liar),
                victim_id,
                &victim_key,
                receiver,
                claim,
            );
            n.adversary_send(now, receiver, slot_addr(t), vec![msg])
        });
    }
    with_adv(sim, |a, _| a.count("lie"));
}

/// The lying member floods `target` with `count` pings and empty updates.
pub fn lie_flood(sim: &mut Sim, target: usize, count: usize) {
    let Some(liar) = sim.adversary.as_ref().and_then(|a| a.liar) else {
        return;
    };
    let Some(receiver) = running_id(sim, target).filter(|_| target != liar) else {
        return;
    };
    for k in 0..count {
        let m = if k % 2 == 0 {
            Msg::Ping {
                seq: k as u64,
                members: u32::MAX,
            }
        } else {
            Msg::Updates(vec![])
        };
        sim.with_node(liar, |n, now| {
            n.adversary_send(now, receiver, slot_addr(target), vec![m])
        });
    }
    with_adv(sim, |a, _| a.count("lie_flood"));
}

/// The outsider claims `claimed`'s id toward `target` with its own key, from its own
/// address (or spoofed from `claimed`'s address), and queues forged statements for the
/// session it hopes to get.
pub fn impersonate(sim: &mut Sim, claimed: usize, target: usize, spoof: bool) {
    let (Some(claimed_id), Some(target_id)) = (running_id(sim, claimed), running_id(sim, target))
    else {
        return;
    };
    let cfg = sim.cfg.core.clone();
    let now = sim.instant();
    with_adv(sim, |a, sim| {
        a.count("impersonate");
        let own = a.random_id();
        let addr = if spoof {
            slot_addr(claimed)
        } else {
            a.outside()
        };
        let mut imp = Imp {
            addr,
            target,
            sessions: Sessions::new(
                claimed_id,
                Box::new(PlaintextTestCipher::for_node(own)),
                &cfg,
            ),
            rng: Rng::new(a.rng.next_u64()),
            stats: Stats::default(),
        };
        let victim = sim
            .live_slots()
            .into_iter()
            .find(|&s| s != claimed && s != target)
            .and_then(|s| running_id(sim, s))
            .unwrap_or(claimed_id);
        let claim = sim.node(target).and_then(|n| n.claim());
        let victim_key = sim
            .slot_of(victim)
            .and_then(|s| sim.node(s))
            .map(|n| n.info().public_key.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for l in [Lie::Left, Lie::Alive, Lie::Dead, Lie::Resign, Lie::Claim] {
            let m = forge(
                l,
                imp.sessions.cipher(),
                claimed_id,
                addr,
                victim,
                &victim_key,
                target_id,
                claim,
            );
            imp.sessions.send(
                now,
                Some(target_id),
                slot_addr(target),
                vec![m],
                &mut imp.rng,
                &mut imp.stats,
                &mut out,
            );
        }
        for (_, d) in out {
            if !spoof {
                a.sent_from(addr, d.len());
            }
            sim.inject(target, addr, d, Duration::from_millis(1));
        }
        if !spoof {
            a.imps.push(imp);
            if a.imps.len() > 16 {
                a.imps.remove(0);
            }
        }
    });
}

/// `count` fake sealed records naming `claimed` (unknown epochs, garbage ciphertext), each
/// from another spoofed victim address that is no node's: "heal" bait.
pub fn forged_sealed(sim: &mut Sim, claimed: usize, target: usize, count: usize) {
    let Some(claimed_id) = running_id(sim, claimed) else {
        return;
    };
    with_adv(sim, |a, sim| {
        a.count("forged_sealed");
        for _ in 0..count {
            let victim = a.outside();
            let mut d = Vec::new();
            SealedHeader {
                sender: claimed_id,
                epoch: a.rng.next_u64() as u32,
                counter: a.rng.next_u64() >> 8,
            }
            .write(&mut d);
            d.extend((0..8).map(|_| a.rng.next_u64() as u8));
            a.sent_from(victim, d.len());
            sim.inject(target, victim, d, Duration::from_millis(1));
        }
    });
}

/// `count` Hellos from random ids and random spoofed addresses (no node's) to `target`.
pub fn hello_flood(sim: &mut Sim, target: usize, count: usize) {
    let cfg = sim.cfg.core.clone();
    let now = sim.instant();
    let to = slot_addr(target);
    with_adv(sim, |a, sim| {
        a.count("hello_flood");
        for k in 0..count {
            let id = a.random_id();
            let mut s = Sessions::new(id, Box::new(PlaintextTestCipher::for_node(id)), &cfg);
            let mut out = Vec::new();
            s.send(
                now,
                None,
                to,
                vec![],
                &mut Rng::new(id.0 as u64),
                &mut Stats::default(),
                &mut out,
            );
            let from = a.outside();
            for (_, d) in out {
                a.sent_from(from, d.len());
                // Spread over ~1 ms per 100.
                let delay = Duration::from_micros(10 * k as u64 + 1);
                sim.inject(target, from, d, delay);
            }
        }
    });
}

/// Replays `count` captured datagrams to their original receiver, from an address that is
/// no node's (or, with `as_sender`, from the original sender's address).
pub fn replay(sim: &mut Sim, count: usize, as_sender: bool) {
    with_adv(sim, |a, sim| {
        a.count("replay");
        for _ in 0..count {
            if a.captured.is_empty() {
                return;
            }
            let i = a.rng.below(a.captured.len());
            let (from, to, data) = a.captured[i].clone();
            let src = if as_sender {
                slot_addr(from)
            } else {
                let src = a.outside();
                a.sent_from(src, data.len());
                src
            };
            sim.inject(to, src, data, Duration::from_millis(1));
        }
    });
}
