//! The replies of a request a handle awaits, handed from the node's task to the handle
//! without losing any.
//!
//! The handle creates a pair with [`request_slot`]: it keeps the [`PendingReplies`] and
//! sends the [`RequestSlot`] to the task with the request. The task offers each
//! `Event::Reply` of the request, then its `Event::RequestDone`, to the slot
//! ([`RequestSlot::offer`]); the handle reads them with [`PendingReplies::next`] and
//! [`PendingReplies::finish`].
//!
//! **Nothing is lost when the handle is dropped early.** A reply the handle never read is
//! published on the node's event streams as `Event::Reply` (and the end as
//! `Event::RequestDone`), whether it reached the slot before or after the drop:
//! - the drop marks the slot abandoned and publishes what the slot holds, both under the
//!   slot's lock;
//! - from then on [`RequestSlot::offer`] refuses, and the task publishes the event itself.
//!
//! Because both happen under the same lock, nothing the task publishes for the request
//! after the drop overtakes what the drop published: `RequestDone` always comes last.
//!
//! ```
//! use espial_core::{Event, NodeId, RequestId};
//! use espial_net::hub::EventSink;
//! use espial_net::request::request_slot;
//! use espial_net::EventHub;
//! use std::task::Poll;
//!
//! let hub = EventHub::new(16);
//! let mut stream = hub.listen();
//! let (pending, slot) = request_slot();
//! // The task registers the request, then offers a reply the handle never reads.
//! let raw = tokio::sync::broadcast::channel(1).0;
//! slot.attach(RequestId(7), EventSink::new(Some(hub.clone()), raw));
//! let reply = Event::Reply {
//!     request: RequestId(7),
//!     from: NodeId(1),
//!     data: "pong".into(),
//! };
//! assert!(slot.offer(&reply));
//! drop(pending);
//! // The reply was not lost: it is on the stream.
//! assert!(matches!(
//!     stream.poll_next(None),
//!     Poll::Ready(Some((Event::Reply { .. }, _)))
//! ));
//! // Later events of the request are refused by the slot: the task publishes them.
//! assert!(!slot.offer(&reply));
//! ```

use crate::driver::RequestReplies;
use crate::hub::EventSink;
use bytes::Bytes;
use espial_core::{Event, NodeId, RequestId};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A new request's two ends: the handle's and the task's.
pub fn request_slot() -> (PendingReplies, RequestSlot) {
    let shared = Arc::new(Mutex::new(State::default()));
    (
        PendingReplies {
            shared: shared.clone(),
        },
        RequestSlot { shared },
    )
}

#[derive(Debug, Default)]
struct State {
    /// Set by the task when it registered the request (and where its events go).
    registered: Option<(RequestId, EventSink)>,
    /// Replies not yet returned by [`PendingReplies::next`].
    unread: VecDeque<(NodeId, Bytes)>,
    /// Every reply, and at the end who did not answer.
    all: RequestReplies,
    /// The request's `Event::RequestDone`, once it ended.
    done: Option<Event>,
    /// [`PendingReplies::finish`] returned every reply: nothing is left to publish.
    finished: bool,
    /// The handle was dropped: the task publishes the request's events itself.
    abandoned: bool,
    /// The task dropped its end before the request ended (the node stopped).
    task_gone: bool,
    waker: Option<Waker>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The task's end: where it hands the request's replies and end.
#[derive(Debug)]
pub struct RequestSlot {
    shared: Arc<Mutex<State>>,
}

impl RequestSlot {
    /// The task registered the request as `id`; a dropped handle publishes to `sink`.
    pub fn attach(&self, id: RequestId, sink: EventSink) {
        let mut s = lock(&self.shared);
        if s.abandoned {
            // Dropped before the task saw it: nothing reached the slot, nothing to publish.
            return;
        }
        s.registered = Some((id, sink));
    }

    /// Offers an `Event::Reply` or `Event::RequestDone` of this request. True: the handle
    /// has it. False: the handle was dropped (or `e` is another kind of event), so the
    /// caller publishes `e` like any other event.
    pub fn offer(&self, e: &Event) -> bool {
        let mut s = lock(&self.shared);
        if s.abandoned || s.done.is_some() {
            return false;
        }
        match e {
            Event::Reply { from, data, .. } => {
                s.unread.push_back((*from, data.clone()));
                s.all.replies.push((*from, data.clone()));
            }
            Event::RequestDone { missing, .. } => {
                s.all.missing = missing.clone();
                s.done = Some(e.clone());
            }
            _ => return false,
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        true
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        if s.done.is_none() {
            s.task_gone = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

/// The handle's end: the replies as they arrive, then all of them.
#[derive(Debug)]
pub struct PendingReplies {
    shared: Arc<Mutex<State>>,
}

impl PendingReplies {
    /// The next reply not yet returned, `(from, payload)`; `None` once the request ended
    /// (every target answered, or the timeout) or the node stopped.
    pub async fn next(&mut self) -> Option<(NodeId, Bytes)> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(NodeId, Bytes)>> {
        let mut s = lock(&self.shared);
        if let Some(r) = s.unread.pop_front() {
            return Poll::Ready(Some(r));
        }
        if s.done.is_some() || s.task_gone {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for the end of the request, then returns every reply (those already returned
    /// by [`PendingReplies::next`] too) in arrival order and who did not answer; `None` if
    /// the node stopped first.
    pub async fn finish(self) -> Option<RequestReplies> {
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            if s.done.is_some() {
                s.finished = true;
                return Poll::Ready(Some(std::mem::take(&mut s.all)));
            }
            if s.task_gone {
                return Poll::Ready(None);
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for PendingReplies {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        if s.finished {
            return;
        }
        s.abandoned = true;
        let Some((request, sink)) = s.registered.clone() else {
            return;
        };
        // Published under the lock: the task's later events of this request wait for it.
        for (from, data) in std::mem::take(&mut s.unread) {
            sink.publish(Event::Reply {
                request,
                from,
                data,
            });
        }
        if let Some(done) = s.done.take() {
            sink.publish(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{EventHub, Listener};
    use tokio::sync::broadcast;

    const ID: RequestId = RequestId(9);

    fn reply(from: u128) -> Event {
        Event::Reply {
            request: ID,
            from: NodeId(from),
            data: Bytes::from_static(b"r"),
        }
    }

    fn done() -> Event {
        Event::RequestDone {
            request: ID,
            answered: vec![NodeId(1), NodeId(2)],
            missing: vec![NodeId(3)],
        }
    }

    /// A hub with a listener, and a slot registered to publish to it.
    fn registered() -> (PendingReplies, RequestSlot, Listener) {
        let hub = EventHub::new(16);
        let listener = hub.listen();
        let (pending, slot) = request_slot();
        slot.attach(ID, EventSink::new(Some(hub), broadcast::channel(1).0));
        (pending, slot, listener)
    }

    fn published(l: &mut Listener) -> Vec<Event> {
        let mut out = Vec::new();
        while let Poll::Ready(Some((e, _))) = l.poll_next(None) {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn replies_go_to_the_handle_once_and_nothing_is_published() {
        let (mut pending, slot, mut l) = registered();
        assert!(slot.offer(&reply(1)));
        assert_eq!(pending.next().await.unwrap().0, NodeId(1));
        assert!(slot.offer(&reply(2)));
        assert!(slot.offer(&done()));
        // The end: next returns what is left, then None; finish returns every reply.
        assert_eq!(pending.next().await.unwrap().0, NodeId(2));
        assert_eq!(pending.next().await, None);
        let all = pending.finish().await.unwrap();
        assert_eq!(all.replies.len(), 2);
        assert_eq!(all.missing, vec![NodeId(3)]);
        assert!(published(&mut l).is_empty());
    }

    #[test]
    fn a_drop_publishes_the_unread_replies_then_the_end() {
        let (mut pending, slot, mut l) = registered();
        assert!(slot.offer(&reply(1)));
        assert!(slot.offer(&reply(2)));
        // The handle reads one, then is dropped after the end reached it.
        let waker = futures::task::noop_waker();
        let read = pending.poll_next(&mut Context::from_waker(&waker));
        assert!(matches!(read, Poll::Ready(Some((NodeId(1), _)))));
        assert!(slot.offer(&done()));
        drop(pending);
        assert_eq!(published(&mut l), vec![reply(2), done()]);
        // Anything later for the request is the task's to publish.
        assert!(!slot.offer(&done()));
    }

    #[test]
    fn after_a_drop_the_slot_refuses_so_the_task_publishes_in_order() {
        let (pending, slot, mut l) = registered();
        assert!(slot.offer(&reply(1)));
        drop(pending);
        assert!(!slot.offer(&reply(2)));
        assert!(!slot.offer(&done()));
        assert_eq!(published(&mut l), vec![reply(1)]);
    }

    #[test]
    fn a_handle_dropped_before_the_task_registered_publishes_nothing() {
        // start_request cancelled: the task's later events are all refused (it publishes).
        let hub = EventHub::new(16);
        let mut l = hub.listen();
        let (pending, slot) = request_slot();
        drop(pending);
        slot.attach(ID, EventSink::new(Some(hub), broadcast::channel(1).0));
        assert!(!slot.offer(&reply(1)));
        assert!(published(&mut l).is_empty());
    }

    #[tokio::test]
    async fn a_stopped_task_ends_the_handle() {
        let (mut pending, slot, _l) = registered();
        assert!(slot.offer(&reply(1)));
        drop(slot);
        assert_eq!(pending.next().await.unwrap().0, NodeId(1));
        assert_eq!(pending.next().await, None);
        assert_eq!(pending.finish().await, None);
    }
}
