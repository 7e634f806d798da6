//! `espial demo`: a small cluster on loopback that shows every feature, then ends.
//!
//! Only 127.0.0.x addresses, static peers (no multicast), real UDP sockets and real
//! AES-GCM sessions under a random per-run pre-shared key. Every step waits on events with
//! a deadline; a step that misses its deadline ends the demo with exit status 1.

use super::Profile;
use clap::Args;
use espial::jsonl::{event_json, now_ms};
use espial::{Espial, Event, NodeId, RemovalReason};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Print JSON lines (one object per event, with "at": the emitting node) instead of text.
    #[arg(long)]
    json: bool,
    /// Number of nodes (3 to 20), on 127.0.0.1 to 127.0.0.N.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(3..=20))]
    nodes: u8,
    /// Timing profile.
    #[arg(long, value_enum, default_value = "lan")]
    profile: Profile,
}

const TOPIC: &str = "greeting";

struct Member {
    name: String,
    espial: Espial,
    alive: bool,
}

struct Demo {
    json: bool,
    t0: Instant,
    rx: mpsc::UnboundedReceiver<(usize, Instant, Event)>,
    tx: mpsc::UnboundedSender<(usize, Instant, Event)>,
    nodes: Vec<Member>,
    names: HashMap<NodeId, String>,
    /// Custom events received: (receiver index, event name, sender id, payload).
    customs: Vec<(usize, String, NodeId, String)>,
    /// Removals seen: (observer index, removed id, reason).
    removals: Vec<(usize, NodeId, RemovalReason)>,
    /// The master each node's own events last named (new_master, promotion, demotion;
    /// no_master removes it): steps wait until the printed events agree, not only the
    /// nodes' state, so the output always shows every node following the master.
    followed: HashMap<usize, NodeId>,
}

type Step<T> = Result<T, String>;

pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut demo = Demo {
        json: args.json,
        t0: Instant::now(),
        rx,
        tx,
        nodes: Vec::new(),
        names: HashMap::new(),
        customs: Vec::new(),
        removals: Vec::new(),
        followed: HashMap::new(),
    };
    let res = demo.script(args.nodes as usize, args.profile).await;
    for n in demo.nodes.iter().filter(|n| n.alive) {
        let _ = n.espial.shutdown().await;
    }
    match res {
        Ok(()) => {
            let secs = demo.t0.elapsed().as_secs_f64();
            demo.say(
                "done",
                format!("demo finished in {secs:.1} s"),
                json!({"total_s": secs}),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            demo.say("failed", format!("demo FAILED: {e}"), json!({"error": e}));
            ExitCode::FAILURE
        }
    }
}

impl Demo {
    async fn script(&mut self, n: usize, profile: Profile) -> Step<()> {
        let psk = random_psk();
        self.say(
            "start",
            format!(
                "starting {n} nodes on 127.0.0.1-{n}: real UDP, AES-128-GCM sessions under a random \
                 cluster key, static peers (no multicast)"
            ),
            json!({"nodes": n}),
        );

        // 1. Start the nodes; each knows the addresses of the nodes started before it.
        let mut seeds: Vec<String> = Vec::new();
        for i in 0..n {
            let name = format!("node-{}", i + 1);
            let ip = Ipv4Addr::new(127, 0, 0, (i + 1) as u8);
            let espial = Espial::builder()
                .name(&name)
                .metadata([("role", if i % 2 == 0 { "api" } else { "worker" })])
                .bind(SocketAddr::from((ip, 0)))
                .peers(seeds.clone())
                .psk(psk.clone())
                .profile(profile.config())
                .start()
                .await
                .map_err(|e| format!("{name} could not start: {e}"))?;
            seeds.push(espial.advertised_addr().to_string());
            self.names.insert(espial.id(), name.clone());
            let mut events = espial.events();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                while let Some(e) = events.next().await {
                    if tx.send((i, Instant::now(), e)).is_err() {
                        break;
                    }
                }
            });
            self.nodes.push(Member {
                name,
                espial,
                alive: true,
            });
        }

        // 2. Discovery, admission and election.
        let t = Instant::now();
        self.wait("cluster formation", Duration::from_secs(20), |d| {
            d.agreed_master().is_some_and(|m| d.events_follow(m)) && d.all_see(n)
        })
        .await?;
        let master = self.agreed_master().unwrap_or_default();
        self.say(
            "formed",
            format!(
                "cluster formed in {} ms: {n} members everywhere, master {}",
                t.elapsed().as_millis(),
                self.name_of(master)
            ),
            json!({"formation_ms": t.elapsed().as_millis() as u64, "master": self.name_of(master)}),
        );

        // 3. Custom events: everyone but node-1 subscribes; node-2 publishes.
        for m in &self.nodes[1..] {
            m.espial.join(TOPIC).await.map_err(|e| e.to_string())?;
        }
        let subscribers: Vec<NodeId> = self.nodes[1..].iter().map(|m| m.espial.id()).collect();
        self.say(
            "subscribe",
            format!("node-2..node-{n} join {TOPIC:?}; node-1 does not"),
            json!({"event_name": TOPIC}),
        );
        self.wait("subscriptions to spread", Duration::from_secs(10), |d| {
            let snap = d.nodes[1].espial.snapshot();
            subscribers.iter().all(|id| {
                *id == snap.me.id
                    || snap
                        .member(*id)
                        .is_some_and(|m| m.subscriptions.contains(TOPIC))
            })
        })
        .await?;
        self.say(
            "send",
            format!("node-2 sends 3 {TOPIC:?} events"),
            json!({"count": 3}),
        );
        for k in 1..=3 {
            self.nodes[1]
                .espial
                .send(TOPIC, format!("hello #{k} from node-2"))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        let sender = self.nodes[1].espial.id();
        self.wait("custom events delivery", Duration::from_secs(10), |d| {
            (2..n).all(|i| d.customs_at(i, sender) >= 3)
        })
        .await?;
        let ordered = (2..n).all(|i| {
            let got: Vec<&str> = self
                .customs
                .iter()
                .filter(|c| c.0 == i && c.2 == sender)
                .map(|c| c.3.as_str())
                .collect();
            got == [
                "hello #1 from node-2",
                "hello #2 from node-2",
                "hello #3 from node-2",
            ]
        });
        if !ordered {
            return Err("custom events arrived duplicated or out of order".into());
        }
        self.say(
            "delivered",
            format!(
                "each of node-3..node-{n} got the 3 events once, in order; node-1 (not subscribed) got {}",
                self.customs_at(0, sender)
            ),
            json!({"unsubscribed_received": self.customs_at(0, sender)}),
        );

        // 4. The master crashes (its task is aborted: no leave message).
        let master = self
            .agreed_master()
            .ok_or("no master before the failover")?;
        let mi = self.index_of(master).ok_or("master is not a demo node")?;
        self.say(
            "kill",
            format!("killing the master {} without warning", self.nodes[mi].name),
            json!({"killed": self.nodes[mi].name}),
        );
        let t = Instant::now();
        self.nodes[mi].espial.kill();
        self.nodes[mi].alive = false;
        self.wait("a new master", Duration::from_secs(20), |d| {
            d.agreed_master()
                .is_some_and(|m| m != master && d.events_follow(m))
        })
        .await?;
        let failover = t.elapsed().as_millis() as u64;
        let new_master = self.agreed_master().unwrap_or_default();
        self.say(
            "failover",
            format!(
                "survivors agree on the new master {} {failover} ms after the crash",
                self.name_of(new_master)
            ),
            json!({"failover_ms": failover, "master": self.name_of(new_master)}),
        );
        self.wait("the crashed node's removal", Duration::from_secs(20), |d| {
            d.all_see(n - 1)
        })
        .await?;

        // 5. A graceful exit.
        let li = (0..n)
            .rev()
            .find(|i| self.nodes[*i].alive && self.nodes[*i].espial.id() != new_master)
            .ok_or("no node left to leave")?;
        let leaver = self.nodes[li].espial.id();
        self.say(
            "leave",
            format!("{} leaves gracefully", self.nodes[li].name),
            json!({"leaving": self.nodes[li].name}),
        );
        let t = Instant::now();
        self.nodes[li]
            .espial
            .shutdown()
            .await
            .map_err(|e| e.to_string())?;
        self.nodes[li].alive = false;
        self.wait("removal with reason left", Duration::from_secs(10), |d| {
            (0..n)
                .filter(|i| d.nodes[*i].alive)
                .all(|i| d.removals.contains(&(i, leaver, RemovalReason::Left)))
        })
        .await?;
        self.say(
            "left",
            format!(
                "every member removed it (reason \"left\") within {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            ),
            json!({"leave_ms": t.elapsed().as_millis() as u64}),
        );
        Ok(())
    }

    /// Prints events until `cond` holds or the deadline passes.
    async fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Demo) -> bool,
    ) -> Step<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Ok((i, at, e)) = self.rx.try_recv() {
                self.record(i, at, e);
            }
            if cond(self) {
                return Ok(());
            }
            tokio::select! {
                Some((i, at, e)) = self.rx.recv() => self.record(i, at, e),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(format!("timed out after {} s waiting for {what}", limit.as_secs()));
                }
            }
        }
    }

    fn record(&mut self, i: usize, at: Instant, e: Event) {
        match &e {
            Event::Custom(c) => self.customs.push((
                i,
                c.name.clone(),
                c.from,
                String::from_utf8_lossy(&c.data).into_owned(),
            )),
            Event::NodeRemoved { node, reason } => self.removals.push((i, node.id, *reason)),
            Event::NewMaster { master, .. } => {
                self.followed.insert(i, *master);
            }
            Event::Promotion { .. } => {
                self.followed.insert(i, self.nodes[i].espial.id());
            }
            Event::Demotion {
                new_master: Some(m),
                ..
            } => {
                self.followed.insert(i, *m);
            }
            Event::Demotion { .. } | Event::NoMaster { .. } => {
                self.followed.remove(&i);
            }
            _ => {}
        }
        self.show(i, at, &e);
    }

    fn show(&self, i: usize, at: Instant, e: &Event) {
        let m = &self.nodes[i];
        if self.json {
            let me = m.espial.node_info();
            let mut v = event_json(e, &me, |id| self.lookup(id));
            v["at"] = Value::String(m.name.clone());
            super::out(v);
            return;
        }
        let text = match e {
            Event::Listening { node } => {
                format!("listening on {} (id {})", node.addr, node.id.short())
            }
            Event::NodeAdded { node } => format!("added node {} ({})", node.name, node.addr),
            Event::NodeRemoved { node, reason } => {
                format!("removed node {} ({})", node.name, reason.as_str())
            }
            Event::Accepted { by } => format!("accepted into the cluster by {}", by.name),
            Event::Rejected { by, reason } => format!("rejected by {by}: {reason}"),
            Event::NewMaster { master, term, .. } => {
                format!("new master: {} (term {term})", self.name_of(*master))
            }
            Event::Promotion { term, .. } => format!("promoted to master (term {term})"),
            Event::Demotion { new_master, .. } => format!(
                "demoted; new master: {}",
                new_master.map_or("none".to_string(), |m| self.name_of(m))
            ),
            Event::NoMaster { previous } => {
                format!("no master any more (was {})", self.name_of(*previous))
            }
            Event::Custom(c) => format!(
                "custom event {:?} from {}: {:?}",
                c.name,
                self.name_of(c.from),
                String::from_utf8_lossy(&c.data)
            ),
            Event::HandshakeFailed { addr, reason } => {
                format!("handshake with {addr} failed: {reason}")
            }
            // Metadata/subscription updates and delivery reports are left to --json.
            _ => return,
        };
        super::out(format!(
            "{:>8.3}s  {:<8} {text}",
            at.saturating_duration_since(self.t0).as_secs_f64(),
            m.name
        ));
    }

    fn say(&self, step: &str, text: String, extra: Value) {
        if self.json {
            let mut v = json!({"demo": step, "message": text, "ts_ms": now_ms()});
            if let (Value::Object(o), Value::Object(x)) = (&mut v, extra) {
                o.extend(x);
            }
            super::out(v);
        } else {
            super::out(format!(
                "{:>8.3}s  {:<8} {text}",
                self.t0.elapsed().as_secs_f64(),
                "[demo]"
            ));
        }
    }

    fn lookup(&self, id: NodeId) -> Option<espial::NodeInfo> {
        self.nodes.iter().find_map(|m| m.espial.node(id))
    }

    fn name_of(&self, id: NodeId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| id.short())
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|m| m.espial.id() == id)
    }

    fn customs_at(&self, i: usize, from: NodeId) -> usize {
        self.customs
            .iter()
            .filter(|c| c.0 == i && c.2 == from && c.1 == TOPIC)
            .count()
    }

    /// The master every live node follows, when they all agree on one live node.
    fn agreed_master(&self) -> Option<NodeId> {
        let mut alive = self.nodes.iter().filter(|m| m.alive);
        let first = alive.next()?.espial.master_id()?;
        let live = self.nodes.iter().any(|m| m.alive && m.espial.id() == first);
        (live && alive.all(|m| m.espial.master_id() == Some(first))).then_some(first)
    }

    /// Every live node's own events name `master` as the current master.
    fn events_follow(&self, master: NodeId) -> bool {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive)
            .all(|i| self.followed.get(&i) == Some(&master))
    }

    /// Every live node sees exactly `n` members.
    fn all_see(&self, n: usize) -> bool {
        self.nodes
            .iter()
            .filter(|m| m.alive)
            .all(|m| m.espial.snapshot().members.len() == n)
    }
}

fn random_psk() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    // 32 bytes from the std hasher's per-process random keys, hex-encoded: a demo secret.
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(i);
            format!("{:016x}", h.finish())
        })
        .collect::<String>()
        .into_bytes()
}
