//! Event listeners.

use espial_core::Event;
use espial_net::hub::Listener;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One listener's stream of events ([`crate::Espial::events`]).
///
/// Every listener is independent and sees every event, in the node's order.
///
/// **Custom events are flow-controlled up to the listeners, never dropped.** A custom
/// event counts as consumed once *every* open stream has returned it; only then is its
/// sender told `delivered` (`send_confirmed`), and only then does the sender get credit for
/// more. A slow reader therefore slows its senders down (they see
/// [`SendError::Backpressure`](crate::SendError::Backpressure)) instead of losing events;
/// unread custom events are bounded in bytes by `Builder::max_unread_event_bytes` (default
/// 32 MiB, payload + 64 bytes each). Drop streams you do not read: an open stream that is
/// never polled holds custom events back for the whole node.
///
/// Before the first call to `events()` (and after every stream was dropped), events are
/// kept for the next stream, within the same bounds: an application that never reads
/// cannot make the node hold more than the bound; its senders wait.
///
/// **Other events** (membership, election, send outcomes) never slow the node down: if a
/// listener falls more than the event buffer (`Builder::event_buffer`, default 4096) of
/// them behind, the oldest are dropped **for that listener only**, a warning is logged and
/// [`EventStream::lagged`] counts them. The stream ends after the node shuts down and
/// every kept event was read.
///
/// Use it with `futures::StreamExt` (`events.next().await`) or with [`EventStream::recv`].
pub struct EventStream {
    listener: Listener,
    lagged: u64,
}

impl EventStream {
    pub(crate) fn new(listener: Listener) -> Self {
        EventStream {
            listener,
            lagged: 0,
        }
    }

    /// The next event, or `None` once the node has stopped and all events were read.
    pub async fn recv(&mut self) -> Option<Event> {
        futures::StreamExt::next(self).await
    }

    /// The next event if one is ready now (never waits).
    pub fn try_recv(&mut self) -> Option<Event> {
        match self.listener.poll_next(None) {
            Poll::Ready(Some((e, lag))) => {
                self.note_lag(lag);
                Some(e)
            }
            _ => None,
        }
    }

    /// How many non-custom events this listener missed because it fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    fn note_lag(&mut self, n: u64) {
        if n > 0 {
            self.lagged += n;
            tracing::warn!("an event listener fell behind and missed {n} event(s); read events faster or raise Builder::event_buffer");
        }
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        match self.listener.poll_next(Some(cx)) {
            Poll::Ready(Some((e, lag))) => {
                self.note_lag(lag);
                Poll::Ready(Some(e))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("lagged", &self.lagged)
            .finish_non_exhaustive()
    }
}
