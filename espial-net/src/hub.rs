//! [`EventHub`]: the events of one node shared by its listeners, with custom events
//! flow-controlled up to the application.
//!
//! The node's task appends every event ([`EventHub::push`]); each listener reads from its
//! own cursor ([`Listener`]), so every listener sees every event in the node's order.
//!
//! - A **custom event** stays until every listener has read it; only then does it count as
//!   consumed: the hub tells the task ([`EventHub::take_consumed`]), the task tells the
//!   core, and the sender's send becomes `delivered`. Custom events are never dropped for a
//!   slow listener: the core bounds their bytes (`Config::max_unread_event_bytes`) and holds
//!   back credit, so senders see backpressure instead.
//! - **Other events** (membership, election, outcomes) keep the lag policy: when more than
//!   `capacity` of them wait for the slowest listener, the oldest is dropped for the
//!   listeners that had not read it, which count it in [`Listener::lagged`].
//! - **Before the first listener** (and after the last one is dropped), events are kept for
//!   the next listener: custom events within the core's byte bound (senders wait), others
//!   within `capacity`. An application that never reads events makes its senders wait; it
//!   cannot make the node hold more than the bound.

use espial_core::Event;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// Identifies the pseudo-listener that keeps events while nobody listens.
const KEEPER: u64 = 0;

#[derive(Debug)]
struct Inner {
    /// Entries by position.
    log: BTreeMap<u64, Event>,
    /// Position of the next entry.
    tail: u64,
    /// Listener cursors: the next position each one reads.
    cursors: HashMap<u64, u64>,
    /// Events each listener lost to the lag policy, not yet reported to it.
    lagged: HashMap<u64, u64>,
    next_listener: u64,
    /// Non-custom entries in `log`.
    others: usize,
    capacity: usize,
    /// Custom events consumed and not yet taken by the node's task.
    consumed: usize,
    wakers: Vec<Waker>,
    closed: bool,
}

/// The events of one node, shared by its listeners (see the module documentation).
#[derive(Debug)]
pub struct EventHub {
    inner: Mutex<Inner>,
    /// Wakes the node's task when custom events were consumed.
    consumed: Notify,
}

impl EventHub {
    /// A hub keeping at most `capacity` non-custom events for the slowest listener. Events
    /// pushed before the first [`EventHub::listen`] are kept for it.
    pub fn new(capacity: usize) -> Arc<Self> {
        let mut cursors = HashMap::new();
        cursors.insert(KEEPER, 0);
        Arc::new(EventHub {
            inner: Mutex::new(Inner {
                log: BTreeMap::new(),
                tail: 0,
                cursors,
                lagged: HashMap::new(),
                next_listener: KEEPER + 1,
                others: 0,
                capacity: capacity.max(16),
                consumed: 0,
                wakers: Vec::new(),
                closed: false,
            }),
            consumed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an event (the node's task, in the node's order).
    pub fn push(&self, e: Event) {
        let mut g = self.lock();
        let custom = matches!(e, Event::Custom(_));
        let pos = g.tail;
        g.tail += 1;
        g.log.insert(pos, e);
        if !custom {
            g.others += 1;
            if g.others > g.capacity {
                g.drop_oldest_other();
            }
        }
        for w in g.wakers.drain(..) {
            w.wake();
        }
        drop(g);
    }

    /// Marks the hub closed (the node stopped): listeners end after reading what is left.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        for w in g.wakers.drain(..) {
            w.wake();
        }
    }

    /// A new listener. The first one (and the first after every listener was dropped) reads
    /// every event kept since; later ones read from now on.
    pub fn listen(self: &Arc<Self>) -> Listener {
        let mut g = self.lock();
        let id = g.next_listener;
        g.next_listener += 1;
        let tail = g.tail;
        let start = g.cursors.remove(&KEEPER).unwrap_or(tail);
        g.cursors.insert(id, start);
        drop(g);
        Listener {
            hub: self.clone(),
            id,
        }
    }

    /// Custom events consumed since the last call (for the node's task).
    pub fn take_consumed(&self) -> usize {
        std::mem::take(&mut self.lock().consumed)
    }

    /// Waits until custom events were consumed.
    pub async fn consumed_notified(&self) {
        self.consumed.notified().await
    }

    /// Events kept for the slowest listener: `(custom, others)`.
    pub fn backlog(&self) -> (usize, usize) {
        let g = self.lock();
        (g.log.len() - g.others, g.others)
    }

    /// Removes the entries every listener has read; counts consumed custom events.
    fn trim(&self, g: &mut Inner) {
        let min = g.cursors.values().copied().min().unwrap_or(g.tail);
        let mut consumed = 0;
        while let Some((&pos, e)) = g.log.first_key_value() {
            if pos >= min {
                break;
            }
            if matches!(e, Event::Custom(_)) {
                consumed += 1;
            } else {
                g.others -= 1;
            }
            g.log.remove(&pos);
        }
        if consumed > 0 {
            g.consumed += consumed;
            self.consumed.notify_one();
        }
    }
}

impl Inner {
    /// The lag policy: drops the oldest non-custom event; every listener that had not read
    /// it counts one more lagged event.
    fn drop_oldest_other(&mut self) {
        let Some(pos) = self
            .log
            .iter()
            .find(|(_, e)| !matches!(e, Event::Custom(_)))
            .map(|(p, _)| *p)
        else {
            return;
        };
        self.log.remove(&pos);
        self.others -= 1;
        for (id, cur) in &self.cursors {
            if *cur <= pos && *id != KEEPER {
                *self.lagged.entry(*id).or_default() += 1;
            }
        }
    }
}

/// One listener's cursor on an [`EventHub`]. Dropping it releases the events only it was
/// still to read.
#[derive(Debug)]
pub struct Listener {
    hub: Arc<EventHub>,
    id: u64,
}

impl Listener {
    /// The next event if one is ready, with how many events this listener lost to the lag
    /// policy since the last call; `Poll::Ready(None)` once the node stopped and everything
    /// was read.
    pub fn poll_next(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<(Event, u64)>> {
        let hub = self.hub.clone();
        let mut g = hub.lock();
        let lagged = g.lagged.remove(&self.id).unwrap_or(0);
        let cur = g.cursors.get(&self.id).copied().unwrap_or(g.tail);
        let next = g.log.range(cur..).next().map(|(p, _)| *p);
        match next {
            Some(pos) => {
                g.cursors.insert(self.id, pos + 1);
                if g.cursors.len() == 1 && g.log.first_key_value().map(|f| *f.0) == Some(pos) {
                    // The only listener reads the oldest entry: it leaves the hub now, so
                    // it is moved out rather than copied (the usual case, once per event).
                    let e = g.log.remove(&pos).expect("found above");
                    if matches!(e, Event::Custom(_)) {
                        g.consumed += 1;
                        hub.consumed.notify_one();
                    } else {
                        g.others -= 1;
                    }
                    return Poll::Ready(Some((e, lagged)));
                }
                let e = g.log.get(&pos).cloned().expect("found above");
                if matches!(e, Event::Custom(_))
                    || g.log.first_key_value().map(|f| *f.0) == Some(pos)
                {
                    hub.trim(&mut g);
                }
                Poll::Ready(Some((e, lagged)))
            }
            None => {
                let tail = g.tail;
                g.cursors.insert(self.id, tail);
                hub.trim(&mut g);
                if lagged > 0 {
                    *g.lagged.entry(self.id).or_default() += lagged;
                }
                if g.closed {
                    return Poll::Ready(None);
                }
                if let Some(cx) = cx {
                    // One waker per task: a listener polled again before the next event
                    // does not grow the list.
                    if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        g.wakers.push(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        let mut g = hub.lock();
        if let Some(cur) = g.cursors.remove(&self.id) {
            g.lagged.remove(&self.id);
            if g.cursors.is_empty() {
                // Nobody listens: keep what this listener had not read for the next one.
                g.cursors.insert(KEEPER, cur);
            }
        }
        hub.trim(&mut g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espial_core::{CustomEvent, NodeId, NodeInfo};

    fn custom(i: u8) -> Event {
        Event::Custom(CustomEvent::new("x", NodeId(1), vec![i]))
    }
    fn other(i: u16) -> Event {
        Event::Listening {
            node: NodeInfo::new(NodeId(i as u128), "n", "127.0.0.1:1".parse().unwrap()),
        }
    }
    fn next(l: &mut Listener) -> Option<(Event, u64)> {
        match l.poll_next(None) {
            Poll::Ready(v) => v,
            Poll::Pending => None,
        }
    }

    #[test]
    fn custom_events_wait_for_every_listener_and_the_first_listener_gets_the_backlog() {
        let hub = EventHub::new(16);
        hub.push(custom(1));
        hub.push(other(1));
        assert_eq!(hub.take_consumed(), 0, "nobody read it yet");
        let mut a = hub.listen();
        let mut b = hub.listen();
        assert_eq!(next(&mut a).map(|x| x.0), Some(custom(1)));
        assert_eq!(hub.take_consumed(), 1, "b listens from its creation on");
        hub.push(custom(2));
        assert_eq!(next(&mut a).map(|x| x.0), Some(other(1)));
        assert_eq!(next(&mut a).map(|x| x.0), Some(custom(2)));
        assert_eq!(hub.take_consumed(), 0, "b has not read #2");
        assert_eq!(next(&mut b).map(|x| x.0), Some(custom(2)));
        assert_eq!(hub.take_consumed(), 1);
        drop(b);
        hub.push(custom(3));
        drop(a);
        assert_eq!(hub.take_consumed(), 0, "kept for the next listener");
        let mut c = hub.listen();
        assert_eq!(next(&mut c).map(|x| x.0), Some(custom(3)));
        assert_eq!(hub.take_consumed(), 1);
        hub.close();
        assert!(matches!(c.poll_next(None), Poll::Ready(None)));
    }

    /// A single listener takes events out of the hub (no copy): counts and order as with
    /// two listeners.
    #[test]
    fn a_single_listener_moves_events_out_in_order() {
        let hub = EventHub::new(16);
        let mut a = hub.listen();
        for i in 0..5u8 {
            hub.push(custom(i));
            hub.push(other(i as u16));
        }
        for i in 0..5u8 {
            assert_eq!(next(&mut a).map(|x| x.0), Some(custom(i)));
            assert_eq!(next(&mut a).map(|x| x.0), Some(other(i as u16)));
        }
        assert_eq!(hub.take_consumed(), 5);
        assert_eq!(hub.backlog(), (0, 0), "nothing kept once read");
        assert!(next(&mut a).is_none());
        let mut b = hub.listen();
        hub.push(custom(9));
        assert_eq!(next(&mut a).map(|x| x.0), Some(custom(9)));
        assert_eq!(hub.take_consumed(), 0, "b has not read it");
        assert_eq!(next(&mut b).map(|x| x.0), Some(custom(9)));
        assert_eq!(hub.take_consumed(), 1);
    }

    #[test]
    fn other_events_lag_but_custom_events_never_drop() {
        let hub = EventHub::new(16);
        let mut slow = hub.listen();
        for i in 0..100u16 {
            hub.push(other(i));
            hub.push(custom(i as u8));
        }
        assert_eq!(hub.backlog(), (100, 16));
        let mut got_custom = 0;
        let mut lagged = 0;
        while let Some((e, l)) = next(&mut slow) {
            lagged += l;
            if matches!(e, Event::Custom(_)) {
                got_custom += 1;
            }
        }
        assert_eq!((got_custom, lagged), (100, 84));
        assert_eq!(hub.take_consumed(), 100);
    }
}
