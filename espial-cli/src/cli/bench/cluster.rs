//! Cluster figures from real OS processes: 5 `espial agent` copies of this binary on
//! 127.0.<net>.1-5 with static peers (LAN profile), their JSON lines read with deadlines.
//!
//! - join: from spawning the 5 processes until every one follows the same master (by its
//!   election events) and has seen the 4 others added;
//! - failover: after a random pause (0-1 s, so the kill lands at a random phase of the
//!   probe and heartbeat timers) `kill -9` of the master, until the 4 survivors' latest
//!   election events all name the same new master; once in the default (available) mode and
//!   once with `--quorum 3` (trials alternate). Every failover trial also reports how long
//!   two agents were master at once (from their `promotion` / `demotion` lines' `ts_ms`, the
//!   killed master's role ending when its death was confirmed), over the whole trial;
//! - leave: `quit` on stdin of one non-master agent, until the 4 others printed
//!   `removed_node` with reason `left` for it.
//!
//! Times are taken in this process when it reads the line that completes the condition.

use super::stats::{self, Summary};
use super::Report;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Agents per cluster.
const N: usize = 5;
/// UDP port of every agent (each cluster has its own 127.0.<net>.x addresses).
const PORT: u16 = 27_500;
const FORM_LIMIT: Duration = Duration::from_secs(20);
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);
const LEAVE_LIMIT: Duration = Duration::from_secs(10);
/// Quorum of the quorum-mode failover trials (a majority of `N`).
const QUORUM: usize = 3;
/// After the survivors agree, lines are still collected this long (a late promotion would
/// show as an overlap).
const SETTLE: Duration = Duration::from_millis(500);

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Vec<Value>,
    alive: bool,
    /// When its `kill -9` was confirmed (ms since the Unix epoch).
    killed_ms: Option<u64>,
}

struct Cluster {
    procs: Vec<Proc>,
    rx: mpsc::UnboundedReceiver<(usize, Instant, Value)>,
}

impl Proc {
    fn id(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|v| v["event"] == "listening")
            .and_then(|v| v["node"]["id"].as_str())
    }

    /// The master this agent follows by its latest election event (`no_master`: none).
    fn master(&self) -> Option<&str> {
        let v = self.lines.iter().rev().find(|v| {
            matches!(
                v["event"].as_str(),
                Some("new_master" | "promotion" | "demotion" | "no_master")
            )
        })?;
        match v["event"].as_str()? {
            "new_master" => v["node"]["id"].as_str(),
            "promotion" => self.id(),
            "demotion" => v["new_master"].as_str(),
            _ => None,
        }
    }

    /// The spans (`ts_ms`) during which this agent said it was master: from each
    /// `promotion` to its next `demotion`, or to `end` (`u64::MAX` while it runs).
    fn master_spans(&self, end: u64) -> Vec<(u64, u64)> {
        let mut spans = Vec::new();
        let mut from = None;
        for v in &self.lines {
            let ts = v["ts_ms"].as_u64().unwrap_or(0);
            match v["event"].as_str() {
                Some("promotion") => from = from.or(Some(ts)),
                Some("demotion") => {
                    if let Some(f) = from.take() {
                        spans.push((f, ts.min(end)));
                    }
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            spans.push((f, end));
        }
        spans
    }

    /// Distinct members it saw added.
    fn added(&self) -> usize {
        self.lines
            .iter()
            .filter(|v| v["event"] == "added_node")
            .filter_map(|v| v["node"]["id"].as_str())
            .collect::<HashSet<_>>()
            .len()
    }

    fn saw_left(&self, id: &str) -> bool {
        self.lines
            .iter()
            .any(|v| v["event"] == "removed_node" && v["node"]["id"] == id && v["reason"] == "left")
    }
}

impl Cluster {
    fn spawn(net: u8, quorum: Option<usize>) -> std::io::Result<Cluster> {
        let exe = std::env::current_exe()?;
        let addrs: Vec<String> = (1..=N).map(|h| format!("127.0.{net}.{h}:{PORT}")).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut procs = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            let mut cmd = Command::new(&exe);
            cmd.args(["agent", "--bind", a, "--peers", &addrs.join(",")])
                .args(["--profile", "lan", "--name", &format!("b{}", i + 1)]);
            if let Some(q) = quorum {
                cmd.args(["--quorum", &q.to_string()]);
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child.stdout.take();
            let stdin = child.stdin.take();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(stdout) = stdout else { return };
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if tx.send((i, Instant::now(), v)).is_err() {
                        break;
                    }
                }
            });
            procs.push(Proc {
                child,
                stdin,
                lines: Vec::new(),
                alive: true,
                killed_ms: None,
            });
        }
        Ok(Cluster { procs, rx })
    }

    /// Waits until `cond` holds; returns when the line that completed it was read, or
    /// `None` after `limit`.
    async fn wait(&mut self, limit: Duration, cond: impl Fn(&Cluster) -> bool) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        if cond(self) {
            return Some(Instant::now());
        }
        loop {
            tokio::select! {
                m = self.rx.recv() => {
                    let (i, at, v) = m?;
                    self.procs[i].lines.push(v);
                    // Take in lines that already arrived before re-checking.
                    if cond(self) {
                        return Some(at);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Collects lines for `d` (no condition).
    async fn collect(&mut self, d: Duration) {
        let _ = self.wait(d, |_| false).await;
    }

    /// Total time (ms) during which two or more agents said they were master, by their
    /// `ts_ms`; a killed agent's role ends when its death was confirmed.
    fn two_masters_ms(&self) -> u64 {
        let mut edges: Vec<(u64, i32)> = Vec::new();
        for p in &self.procs {
            for (a, b) in p.master_spans(p.killed_ms.unwrap_or(u64::MAX)) {
                if b > a {
                    edges.push((a, 1));
                    edges.push((b, -1));
                }
            }
        }
        // Ends before starts at the same millisecond: a hand-over within 1 ms is no overlap
        // at this resolution.
        edges.sort();
        let (mut n, mut since, mut total) = (0, 0, 0);
        for (t, d) in edges {
            if n >= 2 {
                total += t - since;
            }
            n += d;
            since = t;
        }
        total
    }

    /// The first `promotion` (ts_ms) of an agent other than `old`, at or after `after_ms`.
    fn first_promotion_after(&self, old: &str, after_ms: u64) -> Option<u64> {
        self.procs
            .iter()
            .filter(|p| p.id() != Some(old))
            .flat_map(|p| p.lines.iter())
            .filter(|v| v["event"] == "promotion")
            .filter_map(|v| v["ts_ms"].as_u64())
            .filter(|t| *t + 1 >= after_ms)
            .min()
    }

    fn live(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.alive)
    }

    /// The master every live agent follows, when they agree.
    fn agreed(&self) -> Option<String> {
        let masters: HashSet<Option<&str>> = self.live().map(Proc::master).collect();
        match masters.into_iter().collect::<Vec<_>>()[..] {
            [Some(m)] => Some(m.to_string()),
            _ => None,
        }
    }

    fn formed(&self) -> bool {
        self.agreed().is_some() && self.procs.iter().all(|p| p.added() >= N - 1)
    }

    async fn kill9(&mut self, i: usize) {
        self.procs[i].alive = false;
        let _ = self.procs[i].child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.procs[i].child.wait()).await;
        self.procs[i].killed_ms = Some(now_ms());
    }

    async fn teardown(mut self) {
        for p in &mut self.procs {
            let _ = p.child.start_kill();
        }
        for p in &mut self.procs {
            let _ = tokio::time::timeout(Duration::from_secs(2), p.child.wait()).await;
        }
    }
}

/// A small time-seeded xorshift generator (random kill phase and leaver).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Failover samples of one mode.
#[derive(Default)]
struct FailoverSamples {
    /// Kill until the survivors agree (ms).
    agree: Vec<f64>,
    /// Kill (confirmed) until the first promotion of a survivor (ms, by `ts_ms`).
    promoted_after_kill: Vec<f64>,
    /// Per trial: time two agents were master at once (ms), whole trial.
    two_masters: Vec<u64>,
}

#[derive(Default)]
struct Samples {
    join: Vec<f64>,
    failover: FailoverSamples,
    failover_quorum: FailoverSamples,
    leave: Vec<f64>,
}

/// What a trial does after the cold start.
#[derive(Clone, Copy, PartialEq)]
enum After {
    Nothing,
    /// `kill -9` of the master; `true`: the agents run with `--quorum 3`.
    Failover(bool),
    Leave,
}

/// Runs the cluster trials and prints join, failover and/or leave figures. With
/// `failover` and `leave` both set, every trial's cold start is also a join sample.
pub(crate) async fn run(r: &mut Report, quick: bool, join: bool, failover: bool, leave: bool) {
    let per = if quick { 2 } else { 10 };
    let mut plan = Vec::new();
    if failover {
        // Plain and quorum trials alternate, so both see the same machine load.
        plan.extend((0..per).flat_map(|_| [After::Failover(false), After::Failover(true)]));
    }
    if leave {
        plan.extend((0..per).map(|_| After::Leave));
    }
    if plan.is_empty() && join {
        plan.extend((0..per).map(|_| After::Nothing));
    }
    let mut s = Samples::default();
    let mut rng = Rng::new();
    for (k, after) in plan.into_iter().enumerate() {
        let net = 200 + (k % 50) as u8;
        if let Err(e) = trial(&mut s, &mut rng, net, after).await {
            r.failures += 1;
            r.note("cluster", format!("trial {} failed: {e}", k + 1));
        }
    }
    let put = |r: &mut Report, name: &str, what: &str, v: &[f64]| {
        let Some((sum, o)) = summary_of(r, name, v) else {
            return;
        };
        r.emit(
            Value::Object(o),
            format!(
                "{name:<9} {what}: {}",
                sum.text("ms", if sum.max < 10.0 { 2 } else { 0 })
            ),
        );
    };
    if join {
        put(
            r,
            "join",
            "cold start of 5 processes to one agreed master and full membership",
            &s.join,
        );
    }
    if failover {
        put_failover(r, false, &s.failover);
        put_failover(r, true, &s.failover_quorum);
    }
    if leave {
        put(
            r,
            "leave",
            "graceful quit until the 4 others saw removed_node left",
            &s.leave,
        );
    }
}

/// The summary of the trials' milliseconds `v` and its JSON object (bench name, summary,
/// processes, profile); `None` (counted as a failure, with a note) when no trial succeeded.
fn summary_of(r: &mut Report, name: &str, v: &[f64]) -> Option<(Summary, Map<String, Value>)> {
    let Some(sum) = Summary::of(v) else {
        r.failures += 1;
        r.note(name, "no successful trial".into());
        return None;
    };
    let mut o = Map::new();
    o.insert("bench".into(), name.into());
    sum.put(&mut o, "ms");
    o.insert("processes".into(), N.into());
    o.insert("profile".into(), "lan".into());
    Some((sum, o))
}

/// Prints the failover figure of one mode: `failover` (available mode) or `failover_quorum`.
fn put_failover(r: &mut Report, quorum: bool, f: &FailoverSamples) {
    let name = if quorum {
        "failover_quorum"
    } else {
        "failover"
    };
    let Some((sum, mut o)) = summary_of(r, name, &f.agree) else {
        return;
    };
    o.insert(
        "quorum".into(),
        if quorum { QUORUM.into() } else { Value::Null },
    );
    let two_max = f.two_masters.iter().copied().max().unwrap_or(0);
    let two_trials = f.two_masters.iter().filter(|t| **t > 0).count();
    o.insert("two_masters_ms_max".into(), two_max.into());
    o.insert("two_masters_trials".into(), two_trials.into());
    let promoted = Summary::of(&f.promoted_after_kill);
    if let Some(p) = promoted {
        o.insert(
            "promoted_after_kill_ms_min".into(),
            stats::round(p.min).into(),
        );
        o.insert(
            "promoted_after_kill_ms_median".into(),
            stats::round(p.median).into(),
        );
    }
    let what = if quorum {
        format!("kill -9 of the master, --quorum {QUORUM}, until 4 survivors agree")
    } else {
        "kill -9 of the master until 4 survivors agree on a new one".to_string()
    };
    let mut text = format!("{name:<9} {what}: {}", sum.text("ms", 0));
    text.push_str(&format!(
        "; two masters at once: {two_trials} of {} trials (max {two_max} ms, ts_ms resolution 1 ms)",
        f.two_masters.len()
    ));
    if let Some(p) = promoted {
        text.push_str(&format!(
            "; first promotion {:.0} ms after the kill (median; min {:.0})",
            p.median, p.min
        ));
    }
    r.emit(Value::Object(o), text);
}

async fn trial(s: &mut Samples, rng: &mut Rng, net: u8, after: After) -> Result<(), String> {
    let start = Instant::now();
    let quorum = (after == After::Failover(true)).then_some(QUORUM);
    let mut c = Cluster::spawn(net, quorum).map_err(|e| format!("cannot start agents: {e}"))?;
    let res = measure(&mut c, s, rng, start, after).await;
    c.teardown().await;
    res
}

async fn measure(
    c: &mut Cluster,
    s: &mut Samples,
    rng: &mut Rng,
    start: Instant,
    after: After,
) -> Result<(), String> {
    let formed = c
        .wait(FORM_LIMIT, Cluster::formed)
        .await
        .ok_or("cluster did not form in 20 s")?;
    // Join figures come from the default mode only (comparable across versions).
    if after != After::Failover(true) {
        s.join.push(ms(formed - start));
    }
    let master = c.agreed().ok_or("no agreed master")?;
    let mi = c
        .procs
        .iter()
        .position(|p| p.id() == Some(master.as_str()))
        .ok_or("master is not one of the agents")?;
    match after {
        After::Nothing => {}
        After::Failover(quorum) => {
            // Lines keep arriving during the pause (the overlap count needs them all).
            c.collect(Duration::from_millis(rng.below(1000))).await;
            let t = Instant::now();
            c.kill9(mi).await;
            let killed = c.procs[mi].killed_ms.unwrap_or(0);
            let old = master.clone();
            let done = c
                .wait(FAILOVER_LIMIT, |c| c.agreed().is_some_and(|m| m != old))
                .await
                .ok_or("survivors did not agree on a new master in 15 s")?;
            c.collect(SETTLE).await;
            let f = if quorum {
                &mut s.failover_quorum
            } else {
                &mut s.failover
            };
            f.agree.push(ms(done.saturating_duration_since(t)));
            if let Some(p) = c.first_promotion_after(&old, killed) {
                f.promoted_after_kill.push(p.saturating_sub(killed) as f64);
            }
            f.two_masters.push(c.two_masters_ms());
        }
        After::Leave => {
            let others: Vec<usize> = (0..N).filter(|i| *i != mi).collect();
            let li = others[rng.below(others.len() as u64) as usize];
            let id = c.procs[li].id().ok_or("leaver has no id")?.to_string();
            let t = Instant::now();
            let stdin = c.procs[li].stdin.as_mut().ok_or("no stdin")?;
            stdin
                .write_all(b"quit\n")
                .await
                .map_err(|e| format!("write quit: {e}"))?;
            let _ = stdin.flush().await;
            c.procs[li].alive = false;
            let done = c
                .wait(LEAVE_LIMIT, |c| c.live().all(|p| p.saw_left(&id)))
                .await
                .ok_or("others did not see the leave in 10 s")?;
            s.leave.push(ms(done.saturating_duration_since(t)));
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
