//! Bookkeeping of sends (per-target outcome) and requests (replies and summary).

use crate::event::{Event, RequestId, SendId, SendOutcome};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

#[derive(Debug)]
struct SendTrack {
    /// Targets without a result yet, sorted (few per send: a sorted vector is faster than a
    /// tree and costs one allocation).
    pending: Vec<NodeId>,
    delivered: Vec<NodeId>,
    failed: Vec<NodeId>,
    request: Option<RequestId>,
}

#[derive(Debug)]
struct RequestTrack {
    deadline: Instant,
    targets: Vec<NodeId>,
    answered: Vec<NodeId>,
    unable: BTreeSet<NodeId>,
}

/// Sends awaiting their outcome and requests awaiting replies.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Keyed by increasing ids: acknowledgements arrive roughly in send order, so lookups
    /// walk neighbouring entries of the tree (a hash map scatters them and measured slower).
    sends: BTreeMap<SendId, SendTrack>,
    requests: BTreeMap<RequestId, RequestTrack>,
}

/// What happened to a reply.
pub(crate) enum ReplyFate {
    /// Reported as `Event::Reply`.
    Accepted,
    /// Not a pending request, not a target, or already answered.
    Dropped,
}

impl Tracker {
    /// Starts tracking a send to `targets` (already de-duplicated). Targets in `failed` are
    /// reported failed at once.
    pub(crate) fn start(
        &mut self,
        events: &mut VecDeque<Event>,
        id: SendId,
        targets: &[NodeId],
        failed: Vec<NodeId>,
        request: Option<(RequestId, Instant)>,
    ) {
        let mut pending: Vec<NodeId> = targets
            .iter()
            .copied()
            .filter(|t| !failed.contains(t))
            .collect();
        pending.sort_unstable();
        pending.dedup();
        let delivered = Vec::with_capacity(pending.len());
        if let Some((rid, deadline)) = request {
            let mut all: Vec<NodeId> = targets.to_vec();
            all.extend(failed.iter().copied());
            self.requests.insert(
                rid,
                RequestTrack {
                    deadline,
                    unable: failed.iter().copied().collect(),
                    targets: all,
                    answered: Vec::new(),
                },
            );
        }
        self.sends.insert(
            id,
            SendTrack {
                pending,
                delivered,
                failed,
                request: request.map(|r| r.0),
            },
        );
        self.check_send(events, id);
        if let Some((rid, _)) = request {
            self.check_request(events, rid);
        }
    }

    /// Records one target's result for a send.
    pub(crate) fn resolve(
        &mut self,
        events: &mut VecDeque<Event>,
        id: SendId,
        target: NodeId,
        delivered: bool,
    ) {
        let Some(t) = self.sends.get_mut(&id) else {
            return;
        };
        match t.pending.binary_search(&target) {
            Ok(i) => {
                t.pending.remove(i);
            }
            Err(_) => return,
        }
        if delivered {
            t.delivered.push(target);
        } else {
            t.failed.push(target);
            if let Some(rid) = t.request {
                self.unable(events, rid, target);
            }
        }
        self.check_send(events, id);
    }

    fn check_send(&mut self, events: &mut VecDeque<Event>, id: SendId) {
        if self.sends.get(&id).is_some_and(|t| t.pending.is_empty()) {
            if let Some(t) = self.sends.remove(&id) {
                events.push_back(Event::SendOutcome(SendOutcome {
                    send: id,
                    delivered: t.delivered,
                    failed: t.failed,
                }));
            }
        }
    }

    /// `target` can no longer answer `rid` (gone, or the request to it failed).
    fn unable(&mut self, events: &mut VecDeque<Event>, rid: RequestId, target: NodeId) {
        if let Some(r) = self.requests.get_mut(&rid) {
            if r.targets.contains(&target) {
                r.unable.insert(target);
            }
        }
        self.check_request(events, rid);
    }

    /// A peer is gone: it cannot answer any request.
    pub(crate) fn peer_gone(&mut self, events: &mut VecDeque<Event>, peer: NodeId) {
        let ids: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.targets.contains(&peer))
            .map(|(id, _)| *id)
            .collect();
        for rid in ids {
            self.unable(events, rid, peer);
        }
    }

    /// A reply arrived.
    pub(crate) fn reply(
        &mut self,
        events: &mut VecDeque<Event>,
        rid: RequestId,
        from: NodeId,
        data: bytes::Bytes,
    ) -> ReplyFate {
        let Some(r) = self.requests.get_mut(&rid) else {
            return ReplyFate::Dropped;
        };
        if !r.targets.contains(&from) || r.answered.contains(&from) {
            return ReplyFate::Dropped;
        }
        r.answered.push(from);
        events.push_back(Event::Reply {
            request: rid,
            from,
            data,
        });
        self.check_request(events, rid);
        ReplyFate::Accepted
    }

    /// Ends a request early when no target can still answer.
    fn check_request(&mut self, events: &mut VecDeque<Event>, rid: RequestId) {
        let done = self.requests.get(&rid).is_some_and(|r| {
            r.targets
                .iter()
                .all(|t| r.answered.contains(t) || r.unable.contains(t))
        });
        if done {
            self.finish_request(events, rid);
        }
    }

    fn finish_request(&mut self, events: &mut VecDeque<Event>, rid: RequestId) {
        if let Some(r) = self.requests.remove(&rid) {
            let missing = r
                .targets
                .iter()
                .copied()
                .filter(|t| !r.answered.contains(t))
                .collect();
            events.push_back(Event::RequestDone {
                request: rid,
                answered: r.answered,
                missing,
            });
        }
    }

    /// Summarizes requests whose timeout passed.
    pub(crate) fn on_timeout(&mut self, events: &mut VecDeque<Event>, now: Instant) {
        let due: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for rid in due {
            self.finish_request(events, rid);
        }
    }

    /// Earliest request deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.requests.values().map(|r| r.deadline).min()
    }

    /// Sends still awaiting an outcome, requests still open.
    pub(crate) fn open(&self) -> (usize, usize) {
        (self.sends.len(), self.requests.len())
    }
}
