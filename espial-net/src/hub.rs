//! [`EventHub`]: the events of one node shared by its listeners, with custom events
//! flow-controlled up to the application.
//!
//! The node's task appends every event ([`EventHub::push`]); each listener reads from its
//! own cursor ([`Listener`]), so every listener sees every event in the node's order.
//!
//! - A **custom event** stays until every listener has read it; only then does it count as
//!   consumed: the hub tells the task ([`EventHub::take_consumed`]), the task tells the
//!   core, and the sender's send becomes `delivered`. The task is woken for it only when
//!   it would not wake within the ack delay anyway ([`EventHub::arm`]): an application
//!   that reads each event as it arrives costs no extra wake-up per event. Custom events are never dropped for a
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
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify};

/// Identifies the pseudo-listener that keeps events while nobody listens.
const KEEPER: u64 = 0;

/// Cost of one consumed custom event in the core's flow-control units (payload + 64, as
/// `espial_core` counts unread events).
fn cost(e: &Event) -> u64 {
    match e {
        Event::Custom(c) => c.data.len() as u64 + 64,
        _ => 0,
    }
}

/// When the node's task wants to hear of consumption (set by [`EventHub::arm`]).
#[derive(Debug, Clone, Copy)]
struct Wake {
    /// The task wakes by then anyway (`None`: not before the next input).
    at: Option<Instant>,
    /// Consumption may wait this long for the task's own wake-up.
    slack: Duration,
    /// This many consumed bytes are reported at once.
    bytes: u64,
}

#[derive(Debug)]
struct Inner {
    /// Entries by position, in order (positions have gaps where the lag policy dropped an
    /// entry). A deque, not a map: events enter at the back and usually leave at the front.
    log: VecDeque<(u64, Event)>,
    /// Position of the next entry.
    tail: u64,
    /// Listener cursors `(listener, next position it reads)`; few, so a vector.
    cursors: Vec<(u64, u64)>,
    /// Events each listener lost to the lag policy, not yet reported to it.
    lagged: Vec<(u64, u64)>,
    next_listener: u64,
    /// Non-custom entries in `log`.
    others: usize,
    capacity: usize,
    /// Custom events consumed and not yet taken by the node's task, and their cost.
    consumed: usize,
    consumed_bytes: u64,
    wake: Wake,
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
        Arc::new(EventHub {
            inner: Mutex::new(Inner {
                log: VecDeque::new(),
                tail: 0,
                cursors: vec![(KEEPER, 0)],
                lagged: Vec::new(),
                next_listener: KEEPER + 1,
                others: 0,
                capacity: capacity.max(16),
                consumed: 0,
                consumed_bytes: 0,
                // Until the task says otherwise, every consumption wakes it.
                wake: Wake {
                    at: None,
                    slack: Duration::ZERO,
                    bytes: 0,
                },
                wakers: Vec::new(),
                closed: false,
            }),
            consumed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an event (through [`EventSink::publish`]).
    pub fn push(&self, e: Event) {
        let mut g = self.lock();
        if !matches!(e, Event::Custom(_)) {
            g.others += 1;
        }
        let pos = g.tail;
        g.tail += 1;
        g.log.push_back((pos, e));
        if g.others > g.capacity {
            g.drop_oldest_other();
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
        let start = match g.cursors.iter().position(|c| c.0 == KEEPER) {
            Some(i) => g.cursors.swap_remove(i).1,
            None => tail,
        };
        g.cursors.push((id, start));
        drop(g);
        Listener {
            hub: self.clone(),
            id,
        }
    }

    /// Custom events consumed since the last call (for the node's task).
    pub fn take_consumed(&self) -> usize {
        let mut g = self.lock();
        g.consumed_bytes = 0;
        std::mem::take(&mut g.consumed)
    }

    /// The node's task is about to wait, and will wake by `at` anyway (`None`: only on
    /// input). From now on a consumption wakes it ([`EventHub::consumed_notified`]) only if
    /// it would otherwise wait more than `slack` to be reported, or once `bytes` of
    /// consumption (payload + 64 per event) are pending; `bytes == 0` wakes it at every
    /// consumption. Returns (and takes) the custom events consumed since the last
    /// [`EventHub::take_consumed`] or `arm`: when it is not 0 the task must report them
    /// instead of waiting.
    ///
    /// This saves the task a wake-up per event when the application reads each event as
    /// it arrives: the task's next deadline (usually the acknowledgement it owes) is near,
    /// and the consumption rides on it.
    pub fn arm(&self, at: Option<Instant>, slack: Duration, bytes: u64) -> usize {
        let mut g = self.lock();
        g.wake = Wake { at, slack, bytes };
        g.consumed_bytes = 0;
        std::mem::take(&mut g.consumed)
    }

    /// Waits until custom events were consumed (see [`EventHub::arm`] for when).
    pub async fn consumed_notified(&self) {
        self.consumed.notified().await
    }

    /// Events kept for the slowest listener: `(custom, others)`.
    pub fn backlog(&self) -> (usize, usize) {
        let g = self.lock();
        (g.log.len() - g.others, g.others)
    }

    /// Counts consumed custom events and wakes the node's task if it wants to know now.
    fn note_consumed(&self, g: &mut Inner, n: usize, bytes: u64) {
        if n == 0 {
            return;
        }
        g.consumed += n;
        g.consumed_bytes += bytes;
        let w = g.wake;
        let at_once =
            g.consumed_bytes >= w.bytes || w.at.is_none_or(|at| at > Instant::now() + w.slack);
        if at_once {
            self.consumed.notify_one();
        }
    }

    /// Removes the entries every listener has read; counts consumed custom events.
    fn trim(&self, g: &mut Inner) {
        let min = g.cursors.iter().map(|c| c.1).min().unwrap_or(g.tail);
        let (mut n, mut bytes) = (0, 0);
        while g.log.front().is_some_and(|f| f.0 < min) {
            let Some((_, e)) = g.log.pop_front() else {
                break;
            };
            if matches!(e, Event::Custom(_)) {
                n += 1;
                bytes += cost(&e);
            } else {
                g.others -= 1;
            }
        }
        self.note_consumed(g, n, bytes);
    }
}

impl Inner {
    fn cursor(&self, id: u64) -> Option<u64> {
        self.cursors.iter().find(|c| c.0 == id).map(|c| c.1)
    }

    fn set_cursor(&mut self, id: u64, pos: u64) {
        match self.cursors.iter_mut().find(|c| c.0 == id) {
            Some(c) => c.1 = pos,
            None => self.cursors.push((id, pos)),
        }
    }

    fn add_lagged(&mut self, id: u64, n: u64) {
        match self.lagged.iter_mut().find(|l| l.0 == id) {
            Some(l) => l.1 += n,
            None => self.lagged.push((id, n)),
        }
    }

    fn take_lagged(&mut self, id: u64) -> u64 {
        match self.lagged.iter().position(|l| l.0 == id) {
            Some(i) => self.lagged.swap_remove(i).1,
            None => 0,
        }
    }

    /// The lag policy: drops the oldest non-custom event; every listener that had not read
    /// it counts one more lagged event.
    fn drop_oldest_other(&mut self) {
        let Some(i) = self
            .log
            .iter()
            .position(|(_, e)| !matches!(e, Event::Custom(_)))
        else {
            return;
        };
        let Some((pos, _)) = self.log.remove(i) else {
            return;
        };
        self.others -= 1;
        let behind: Vec<u64> = self
            .cursors
            .iter()
            .filter(|(id, cur)| *cur <= pos && *id != KEEPER)
            .map(|c| c.0)
            .collect();
        for id in behind {
            self.add_lagged(id, 1);
        }
    }
}

/// Where a node's events go: its hub when it has one (the raw broadcast channel then gets
/// the non-custom events, for raw subscribers such as the metrics task), else the raw
/// broadcast channel alone.
#[derive(Debug, Clone)]
pub struct EventSink {
    hub: Option<Arc<EventHub>>,
    raw: broadcast::Sender<Event>,
}

impl EventSink {
    /// A sink publishing to `hub` (if any) and `raw`.
    pub fn new(hub: Option<Arc<EventHub>>, raw: broadcast::Sender<Event>) -> Self {
        EventSink { hub, raw }
    }

    /// Publishes one event (the node's task, in the node's order, or a dropped request
    /// handle publishing the replies it did not read; see [`crate::request`]).
    pub fn publish(&self, e: Event) {
        match &self.hub {
            Some(h) => {
                // Custom events reach the application only through the hub, which
                // flow-controls them.
                if !matches!(e, Event::Custom(_)) && self.raw.receiver_count() > 0 {
                    let _ = self.raw.send(e.clone());
                }
                h.push(e)
            }
            // No listener is not an error: events are simply not observed.
            None => {
                let _ = self.raw.send(e);
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
        let lagged = g.take_lagged(self.id);
        let tail = g.tail;
        let cur = g.cursor(self.id).unwrap_or(tail);
        // The first entry at or after the cursor (usually the front).
        let i = match g.log.front() {
            Some(f) if f.0 >= cur => 0,
            _ => g.log.partition_point(|(p, _)| *p < cur),
        };
        if i < g.log.len() {
            let pos = g.log[i].0;
            g.set_cursor(self.id, pos + 1);
            let e = if g.cursors.len() == 1 && i == 0 {
                // The only listener reads the oldest entry: it leaves the hub now, so it
                // is moved out rather than copied (the usual case, once per event).
                let (_, e) = g.log.pop_front().expect("checked above");
                if matches!(e, Event::Custom(_)) {
                    let c = cost(&e);
                    hub.note_consumed(&mut g, 1, c);
                } else {
                    g.others -= 1;
                }
                e
            } else {
                g.log[i].1.clone()
            };
            hub.trim(&mut g);
            return Poll::Ready(Some((e, lagged)));
        }
        g.set_cursor(self.id, tail);
        hub.trim(&mut g);
        if lagged > 0 {
            g.add_lagged(self.id, lagged);
        }
        if g.closed {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            // One waker per task: a listener polled again before the next event does not
            // grow the list.
            if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                g.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        let mut g = hub.lock();
        if let Some(i) = g.cursors.iter().position(|c| c.0 == self.id) {
            let cur = g.cursors.swap_remove(i).1;
            g.take_lagged(self.id);
            if g.cursors.is_empty() {
                // Nobody listens: keep what this listener had not read for the next one.
                g.cursors.push((KEEPER, cur));
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

    /// True when the node's task would be woken now (a stored `Notify` permit).
    fn woken(hub: &EventHub) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::select! {
                biased;
                _ = hub.consumed_notified() => true,
                _ = std::future::ready(()) => false,
            }
        })
    }

    /// Consumption wakes the node's task only when its next wake-up is too far, or enough
    /// bytes are pending; it is never lost: `arm` hands it over.
    #[test]
    fn consumption_rides_on_the_tasks_next_wake_up_when_that_is_near() {
        let hub = EventHub::new(16);
        let mut a = hub.listen();
        let slack = Duration::from_millis(5);
        // The task wakes within the slack anyway: reading does not wake it...
        assert_eq!(hub.arm(Some(Instant::now()), slack, 1 << 20), 0);
        hub.push(custom(1));
        assert!(next(&mut a).is_some());
        assert!(!woken(&hub), "the task's own deadline is near");
        // ...and the next arm (its next loop) takes the consumption.
        assert_eq!(hub.arm(Some(Instant::now()), slack, 1 << 20), 1);
        // A far deadline (or none): reading wakes it.
        assert_eq!(
            hub.arm(
                Some(Instant::now() + Duration::from_secs(1)),
                slack,
                1 << 20
            ),
            0
        );
        hub.push(custom(2));
        assert!(next(&mut a).is_some());
        assert!(woken(&hub), "the task would sleep past the slack");
        assert_eq!(hub.take_consumed(), 1);
        assert_eq!(hub.arm(None, slack, 1 << 20), 0);
        hub.push(custom(3));
        assert!(next(&mut a).is_some());
        assert!(woken(&hub), "no deadline at all");
        assert_eq!(hub.take_consumed(), 1);
        // Enough bytes pending wake it whatever its deadline (65 = 1-byte payload + 64).
        assert_eq!(hub.arm(Some(Instant::now()), slack, 130), 0);
        hub.push(custom(4));
        hub.push(custom(5));
        assert!(next(&mut a).is_some());
        assert!(!woken(&hub), "65 of 130 bytes");
        assert!(next(&mut a).is_some());
        assert!(woken(&hub), "130 of 130 bytes");
        assert_eq!(hub.take_consumed(), 2);
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
