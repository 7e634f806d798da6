//! Event listeners.

use espial_core::Event;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::broadcast::{self, error::RecvError};

type Pending =
    Pin<Box<dyn Future<Output = (Result<Event, RecvError>, broadcast::Receiver<Event>)> + Send>>;

/// One listener's stream of events ([`crate::Espial::events`]).
///
/// Every listener is independent and sees every event. A listener never slows the node
/// down: if it falls more than the event buffer (`Builder::event_buffer`, default 4096)
/// behind, the oldest events are dropped **for that listener only**, a warning is logged and
/// [`EventStream::lagged`] counts them. The stream ends after the node shuts down and every
/// buffered event was read.
///
/// Use it with `futures::StreamExt` (`events.next().await`) or with [`EventStream::recv`].
pub struct EventStream {
    rx: Option<broadcast::Receiver<Event>>,
    pending: Option<Pending>,
    lagged: u64,
}

impl EventStream {
    pub(crate) fn new(rx: broadcast::Receiver<Event>) -> Self {
        EventStream {
            rx: Some(rx),
            pending: None,
            lagged: 0,
        }
    }

    /// The next event, or `None` once the node has stopped and all events were read.
    pub async fn recv(&mut self) -> Option<Event> {
        futures::StreamExt::next(self).await
    }

    /// The next event if one is ready now (never waits).
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.as_mut()?.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.note_lag(n),
                Err(_) => return None,
            }
        }
    }

    /// How many events this listener missed because it fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    fn note_lag(&mut self, n: u64) {
        self.lagged += n;
        tracing::warn!("an event listener fell behind and missed {n} event(s); read events faster or raise Builder::event_buffer");
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if self.pending.is_none() {
                let Some(mut rx) = self.rx.take() else {
                    return Poll::Ready(None);
                };
                self.pending = Some(Box::pin(async move {
                    let r = rx.recv().await;
                    (r, rx)
                }));
            }
            let fut = self.pending.as_mut().expect("set above");
            let (res, rx) = match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(v) => v,
            };
            self.pending = None;
            match res {
                Ok(e) => {
                    self.rx = Some(rx);
                    return Poll::Ready(Some(e));
                }
                Err(RecvError::Lagged(n)) => {
                    self.rx = Some(rx);
                    self.note_lag(n);
                }
                Err(RecvError::Closed) => return Poll::Ready(None),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use espial_core::{NodeId, NodeInfo};

    fn ev(i: u16) -> Event {
        Event::Listening {
            node: NodeInfo::new(NodeId(i as u128), "n", "127.0.0.1:1".parse().unwrap()),
        }
    }

    #[tokio::test]
    async fn slow_listener_lags_without_blocking_the_sender() {
        let (tx, rx) = broadcast::channel(4);
        let mut slow = EventStream::new(rx);
        let mut fast = EventStream::new(tx.subscribe());
        for i in 0..10 {
            tx.send(ev(i)).unwrap(); // never blocks
            assert_eq!(fast.recv().await, Some(ev(i)));
        }
        // The slow listener lost the 6 oldest and resumes with the 4 newest.
        assert_eq!(slow.recv().await, Some(ev(6)));
        assert_eq!(slow.lagged(), 6);
        drop(tx);
        assert_eq!(slow.recv().await, Some(ev(7)));
        assert_eq!(slow.try_recv(), Some(ev(8)));
        assert_eq!(slow.recv().await, Some(ev(9)));
        assert_eq!(slow.recv().await, None, "ends once the node is gone");
    }
}
