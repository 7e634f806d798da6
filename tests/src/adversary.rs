//! Agent clusters for the adversary suite: start `espial agent` processes on
//! `127.0.<net>.<h>`, query them, and check that an attack left the cluster intact.

use crate::addr;
use crate::agent::Agents;
use espial_core::NodeId;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// The agents of one test with their ids and addresses (index = agent index).
pub struct AgentCluster {
    /// The processes.
    pub a: Agents,
    /// Node ids as printed by each agent's `listening` line.
    pub ids: Vec<NodeId>,
    /// Bound addresses.
    pub addrs: Vec<SocketAddr>,
    /// The PSK file, when the cluster has one.
    pub psk: Option<String>,
    /// Members that are not agents (an admitted attacker): (id, address) as views show them.
    pub extra_members: Vec<(String, String)>,
    bin: String,
    net: u8,
    port: u16,
}

/// Writes `psk` to a fresh file and returns its path.
fn psk_file(psk: &[u8], tag: &str) -> String {
    let path = std::env::temp_dir().join(format!("espial-adv-psk-{tag}-{}", std::process::id()));
    std::fs::write(&path, psk).expect("write PSK file");
    path.display().to_string()
}

impl AgentCluster {
    /// Starts `n` agents `a1..an` on `127.0.<net>.1..n:<port>` with static peers (every
    /// agent gets `extra(h)` as additional arguments) and waits until they agree on one
    /// master and every agent added the others.
    pub async fn start(
        bin: &str,
        net: u8,
        port: u16,
        n: usize,
        psk: Option<&[u8]>,
        extra: impl Fn(u8) -> Vec<String>,
    ) -> AgentCluster {
        let peers: Vec<String> = (1..=n as u8)
            .map(|h| addr(net, h, port).to_string())
            .collect();
        let mut c = AgentCluster {
            a: Agents::new(),
            ids: Vec::new(),
            addrs: (1..=n as u8).map(|h| addr(net, h, port)).collect(),
            psk: psk.map(|k| psk_file(k, &format!("{net}"))),
            extra_members: Vec::new(),
            bin: bin.to_string(),
            net,
            port,
        };
        for h in 1..=n as u8 {
            let mut args = vec![
                "--bind".to_string(),
                addr(net, h, port).to_string(),
                "--peers".into(),
                peers.join(","),
            ];
            if let Some(path) = &c.psk {
                args.extend(["--psk-file".to_string(), path.clone()]);
            }
            args.extend(extra(h));
            c.a.spawn(bin, &format!("a{h}"), &args);
        }
        c.a.wait("agents formed one cluster", Duration::from_secs(20), |a| {
            let masters: HashSet<Option<String>> =
                a.agents.iter().map(|x| x.master_by_events()).collect();
            masters.len() == 1
                && !masters.contains(&None)
                && a.agents
                    .iter()
                    .all(|x| x.events("added_node").count() >= n - 1)
        })
        .await;
        c.ids =
            c.a.agents
                .iter()
                .map(|x| x.id().expect("listening line").parse().expect("hex id"))
                .collect();
        c
    }

    /// Starts one more agent `name` at `127.0.<net>.<host>` that knows only `seeds`; returns
    /// its index (not added to `ids`/`addrs`).
    pub fn spawn_newcomer(&mut self, name: &str, host: u8, seeds: &[SocketAddr]) -> usize {
        let peers: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let mut args = vec![
            "--bind".to_string(),
            addr(self.net, host, self.port).to_string(),
            "--peers".into(),
            peers.join(","),
        ];
        if let Some(path) = self.psk.clone() {
            args.extend(["--psk-file".to_string(), path]);
        }
        let bin = self.bin.clone();
        self.a.spawn(&bin, name, &args)
    }

    /// Sends `cmd` to agent `i` and returns its next reply named `reply` (panics when the
    /// agent answers with an error instead, e.g. because its node task died).
    pub async fn query(&mut self, i: usize, cmd: &str, reply: &str) -> Value {
        self.a.pump();
        let count = |a: &Agents| {
            let l = &a.agents[i].lines;
            (
                l.iter().filter(|v| v["reply"] == reply).count(),
                l.iter().filter(|v| v.get("error").is_some()).count(),
            )
        };
        let before = count(&self.a);
        self.a.cmd(i, cmd).await;
        self.a
            .wait(&format!("reply to {cmd:?}"), Duration::from_secs(10), |a| {
                let now = count(a);
                now.0 > before.0 || now.1 > before.1
            })
            .await;
        let now = count(&self.a);
        assert!(
            now.0 > before.0,
            "{} answered {cmd:?} with an error: {:?}",
            self.a.agents[i].name,
            self.a.agents[i]
                .lines
                .iter()
                .rev()
                .find(|v| v.get("error").is_some())
        );
        self.a.agents[i].last_reply(reply).cloned().expect("reply")
    }

    /// Proves every agent in `live` still works end to end: each sets metadata `adv=<tag>`
    /// through its node task, and every one of them then sees every other's new value.
    pub async fn assert_working(&mut self, live: &[usize], tag: &str, limit: Duration) {
        for &i in live {
            self.query(i, &format!("meta adv={tag}"), "meta").await;
        }
        let deadline = std::time::Instant::now() + limit;
        for &i in live {
            loop {
                let r = self.query(i, "nodes", "nodes").await;
                let ok = live.iter().all(|&j| {
                    let id = self.ids[j].to_string();
                    r["nodes"].as_array().is_some_and(|v| {
                        v.iter()
                            .any(|n| n["id"] == id.as_str() && n["metadata"]["adv"] == tag)
                    })
                });
                if ok {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} does not see everyone's metadata adv={tag} (a node stopped working): {r}",
                    self.a.agents[i].name
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Agent `i`'s member view: id → address.
    pub async fn view(&mut self, i: usize) -> BTreeMap<String, String> {
        let r = self.query(i, "nodes", "nodes").await;
        r["nodes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|n| {
                        (
                            n["id"].as_str().unwrap_or("").to_string(),
                            n["addr"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Agent `i`'s stats snapshot (the `stats` command).
    pub async fn stats(&mut self, i: usize) -> Value {
        self.query(i, "stats", "stats").await["stats"].clone()
    }

    /// Asserts that the cluster is intact: no agent ever emitted `removed_node` for one of
    /// the cluster's agents (`live` = the indices that must still be there), every agent's
    /// view lists exactly those members at their real addresses (waiting at most `settle`
    /// for in-flight gossip), and every agent follows the master it followed before
    /// (`master`, by id, when given).
    pub async fn assert_intact(&mut self, live: &[usize], master: Option<&str>, settle: Duration) {
        self.a.pump();
        for &i in live {
            for v in self.a.agents[i].events("removed_node") {
                let gone = v["node"]["id"].as_str().unwrap_or("");
                let gone_idx = self.ids.iter().position(|id| id.to_string() == gone);
                if let Some(g) = gone_idx {
                    assert!(
                        !live.contains(&g),
                        "{} removed live member {} (reason {}): {v}",
                        self.a.agents[i].name,
                        self.a.agents[g].name,
                        v["reason"]
                    );
                }
            }
        }
        let mut want: BTreeMap<String, String> = live
            .iter()
            .map(|&i| (self.ids[i].to_string(), self.addrs[i].to_string()))
            .collect();
        want.extend(self.extra_members.iter().cloned());
        let deadline = std::time::Instant::now() + settle;
        for &i in live {
            loop {
                let got = self.view(i).await;
                if got == want {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}'s view is not the cluster:\n got {got:?}\nwant {want:?}",
                    self.a.agents[i].name
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.assert_working(live, "intact", settle).await;
        if let Some(m) = master {
            for &i in live {
                assert_eq!(
                    self.a.agents[i].master_by_events().as_deref(),
                    Some(m),
                    "{} changed master",
                    self.a.agents[i].name
                );
            }
        }
    }

    /// The master every agent follows (by its events).
    pub fn master(&mut self) -> Option<String> {
        self.a.pump();
        self.a.agents[0].master_by_events()
    }

    /// Number of election events (promotion, demotion, new_master) agent `i` printed.
    pub fn election_events(&mut self, i: usize) -> usize {
        self.a.pump();
        self.a.agents[i]
            .lines
            .iter()
            .filter(|v| {
                matches!(
                    v["event"].as_str(),
                    Some("promotion" | "demotion" | "new_master" | "no_master")
                )
            })
            .count()
    }
}
