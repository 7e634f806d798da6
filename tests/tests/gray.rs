//! Gray failures with real `espial agent` processes (issue 11 item 3): one agent is cut off
//! with nftables for 5 s and healed while another agent sends 100 events/s; no healthy,
//! never-faulted agent may emit `removed_node` (reason `failed`) for another healthy agent.
//! The short version (2 heals) runs in CI; `ESPIAL_LONG=1` runs 20 heals.

use espial_tests::agent::{Agent, Agents};
use espial_tests::nft::Partition;
use espial_tests::{addr, ip, require_netns};
use std::collections::BTreeSet;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_espial-cli");
const N: usize = 5;
const NET: u8 = 41;
const PORT: u16 = 27410;

/// Member ids an agent lists by its added/removed events.
fn members(a: &Agent) -> BTreeSet<String> {
    let mut m = BTreeSet::new();
    for v in &a.lines {
        let id = v["node"]["id"].as_str().map(str::to_string);
        match (v["event"].as_str(), id) {
            (Some("added_node"), Some(id)) => {
                m.insert(id);
            }
            (Some("removed_node"), Some(id)) => {
                m.remove(&id);
            }
            _ => {}
        }
    }
    m
}

fn everyone_sees_everyone(a: &Agents) -> bool {
    a.agents.iter().all(|x| members(x).len() == N - 1)
}

/// Agent 0 sends one event to the subscribers of `jobs` every 10 ms for `d`.
async fn send_for(a: &mut Agents, round: usize, d: Duration) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for k in 0..d.as_millis() / 10 {
        tick.tick().await;
        a.cmd(0, &format!("send jobs r{round}-{k}")).await;
        a.pump();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_and_heal_while_sending_removes_no_healthy_node() {
    require_netns!();
    let heals = if std::env::var("ESPIAL_LONG").is_ok_and(|v| v == "1") {
        20
    } else {
        2
    };
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(NET, h, PORT).to_string())
        .collect();
    let mut a = Agents::new();
    for h in 1..=N as u8 {
        let mut args = vec![
            "--bind".to_string(),
            addr(NET, h, PORT).to_string(),
            "--peers".into(),
            peers.join(","),
        ];
        if h > 1 {
            args.extend(["--join".to_string(), "jobs".to_string()]);
        }
        a.spawn(BIN, &format!("g{h}"), &args);
    }
    a.wait(
        "5 agents joined",
        Duration::from_secs(20),
        everyone_sees_everyone,
    )
    .await;
    let ids: Vec<String> = a.agents.iter().map(|x| x.id().unwrap()).collect();
    let mut false_removals = Vec::new();
    let mut prev_victim = None;
    for round in 0..heals {
        let victim = 1 + round % (N - 1);
        let start: Vec<usize> = a.agents.iter().map(|x| x.lines.len()).collect();
        let others: Vec<_> = (0..N)
            .filter(|i| *i != victim)
            .map(|i| ip(NET, i as u8 + 1))
            .collect();
        let cut = Partition::new("espial_test_gray41", &[ip(NET, victim as u8 + 1)], &others);
        send_for(&mut a, round, Duration::from_secs(5)).await;
        cut.heal();
        send_for(&mut a, round, Duration::from_secs(3)).await;
        let t = a
            .wait(
                "the isolated agent back in every member list",
                Duration::from_secs(30),
                everyone_sees_everyone,
            )
            .await;
        // Healthy observers (not the victim) may remove only the victim (or the previous
        // round's victim, whose fault window may still be closing).
        for (i, x) in a.agents.iter().enumerate().filter(|(i, _)| *i != victim) {
            for v in &x.lines[start[i]..] {
                if v["event"] != "removed_node" || v["reason"] != "failed" {
                    continue;
                }
                let who = v["node"]["id"].as_str().unwrap_or_default();
                let allowed = who == ids[victim] || prev_victim.is_some_and(|p| who == ids[p]);
                if !allowed {
                    false_removals.push(format!("heal {round}: {} removed {who}", x.name));
                }
            }
        }
        println!(
            "heal {round}: isolated g{}, back in every member list {} ms after the heal window",
            victim + 1,
            t.as_millis()
        );
        prev_victim = Some(victim);
    }
    println!(
        "{heals} heals: {} false removal(s) of healthy nodes by healthy nodes",
        false_removals.len()
    );
    a.quit_all().await;
    assert!(false_removals.is_empty(), "{false_removals:#?}");
}
