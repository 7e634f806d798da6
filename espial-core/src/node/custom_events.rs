//! The application's custom events on the node: subscriptions, sends (one, batches,
//! requests, replies) and the resolution of their targets. Delivery itself is the
//! `delivery` engine's; this module checks the input and picks the targets.

use super::*;

impl Node {
    /// Subscribes to a custom event name (gossiped to every member).
    pub fn subscribe(&mut self, now: Instant, name: &str) -> Result<(), SubscribeError> {
        if self.left {
            return Err(SubscribeError::Shutdown);
        }
        check_event_name(name)?;
        if self.me.subscriptions.insert(name.to_string()) {
            self.publish_self();
            self.flush(now);
        }
        Ok(())
    }

    /// Unsubscribes from a custom event name.
    pub fn unsubscribe(&mut self, now: Instant, name: &str) -> Result<(), SubscribeError> {
        if self.left {
            return Err(SubscribeError::Shutdown);
        }
        check_event_name(name)?;
        if self.me.subscriptions.remove(name) {
            self.publish_self();
            self.flush(now);
        }
        Ok(())
    }

    /// Publishes a custom event. Delivery is reliable, exactly once and in send order per
    /// sender to every target that stays alive; the outcome arrives as
    /// [`Event::SendOutcome`] once every target acknowledged or failed (at once when there
    /// are no targets). The local node never receives its own events. Errors queue nothing.
    pub fn send(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        target: Target,
    ) -> Result<SendId, SendError> {
        if self.left {
            return Err(SendError::Shutdown);
        }
        self.check_lease(now);
        check_event_name(name)?;
        if payload.len() > self.config.max_event_payload {
            return Err(SendError::TooLarge {
                size: payload.len(),
                limit: self.config.max_event_payload,
            });
        }
        let by_subscription = target == Target::Subscribers;
        let targets = self.resolve_targets(name, target)?;
        let id = if by_subscription {
            self.delivery
                .send_to_subscribers(now, name, payload, &targets, None)?
        } else {
            self.delivery.send(now, name, payload, &targets, None)?
        };
        self.deferred_flush = Some(now);
        Ok(id)
    }

    /// Publishes several events to the same target, in order, each with [`Node::send`]'s
    /// guarantees; the targets are resolved once for the batch. Stops at the first refusal
    /// (typically [`SendError::Backpressure`] part way): returns the ids of the events queued,
    /// a prefix of `payloads`, and the refusal if there was one. Nothing after a refused
    /// payload is queued, so the caller may send the rest again later.
    ///
    /// ```
    /// # use espial_core::{testkit::TestNet, Config, SendError, Target};
    /// # use bytes::Bytes;
    /// let mut net = TestNet::new(1, Config::lan());
    /// let a = espial_core::testkit::addr(0);
    /// let (ids, refused) = net
    ///     .with(a, |node, now| {
    ///         let payloads = [Bytes::from_static(b"1"), Bytes::from_static(b"2")];
    ///         node.send_batch(now, "jobs", payloads, Target::Subscribers)
    ///     })
    ///     .unwrap();
    /// assert_eq!((ids.len(), refused), (2, None)); // no subscribers yet: delivered to nobody
    /// ```
    pub fn send_batch(
        &mut self,
        now: Instant,
        name: &str,
        payloads: impl IntoIterator<Item = Bytes>,
        target: Target,
    ) -> (Vec<SendId>, Option<SendError>) {
        let mut ids = Vec::new();
        if self.left {
            return (ids, Some(SendError::Shutdown));
        }
        self.check_lease(now);
        if let Err(e) = check_event_name(name) {
            return (ids, Some(e.into()));
        }
        let by_subscription = target == Target::Subscribers;
        let targets = match self.resolve_targets(name, target) {
            Ok(t) => t,
            Err(e) => return (ids, Some(e)),
        };
        let mut refused = None;
        for payload in payloads {
            if payload.len() > self.config.max_event_payload {
                refused = Some(SendError::TooLarge {
                    size: payload.len(),
                    limit: self.config.max_event_payload,
                });
                break;
            }
            let res = if by_subscription {
                self.delivery
                    .send_to_subscribers(now, name, payload, &targets, None)
            } else {
                self.delivery.send(now, name, payload, &targets, None)
            };
            match res {
                Ok(id) => ids.push(id),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if !ids.is_empty() {
            self.deferred_flush = Some(now);
        }
        (ids, refused)
    }

    /// Sends a request to the live subscribers of `name`; replies arrive as
    /// [`Event::Reply`] as they come, and [`Event::RequestDone`] tells who answered and who
    /// did not, at the timeout (or earlier once no target can still answer).
    pub fn request(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<RequestId, SendError> {
        if self.left {
            return Err(SendError::Shutdown);
        }
        check_event_name(name)?;
        let targets = self.resolve_targets(name, Target::Subscribers)?;
        self.next_request += 1;
        let rid = RequestId(self.next_request);
        self.delivery
            .send_to_subscribers(now, name, payload, &targets, Some((rid, timeout)))?;
        self.deferred_flush = Some(now);
        Ok(rid)
    }

    /// Replies to a request received as a [`crate::CustomEvent`] with `request` set.
    pub fn reply(
        &mut self,
        now: Instant,
        to: NodeId,
        request: RequestId,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if self.left {
            return Err(SendError::Shutdown);
        }
        if !self.members.is_live(to) {
            return Err(SendError::UnknownTarget(to));
        }
        self.delivery.reply(now, to, request, payload)?;
        self.deferred_flush = Some(now);
        Ok(())
    }

    pub(super) fn resolve_targets(
        &self,
        name: &str,
        target: Target,
    ) -> Result<Vec<NodeId>, SendError> {
        match target {
            Target::Subscribers => Ok(self
                .members
                .live_ids()
                .iter()
                .copied()
                .filter(|id| {
                    !self.join.refused_by.contains(id)
                        && self
                            .members
                            .get(*id)
                            .is_some_and(|m| m.info.subscriptions.contains(name))
                })
                .collect()),
            Target::Nodes(ids) => {
                for id in &ids {
                    if *id != self.me.id
                        && (!self.members.is_live(*id) || self.join.refused_by.contains(id))
                    {
                        return Err(SendError::UnknownTarget(*id));
                    }
                }
                Ok(ids)
            }
            Target::Master => match self.current_master() {
                Some(m) => Ok(vec![m]),
                None => Err(SendError::NoMaster),
            },
        }
    }
}
