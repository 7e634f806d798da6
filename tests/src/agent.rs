//! `espial agent` processes driven through stdin, their JSON lines collected.

use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// One agent process.
pub struct Agent {
    /// Its `--name`.
    pub name: String,
    /// Every JSON line it printed so far (after [`Agents::pump`]).
    pub lines: Vec<Value>,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Several agents with their output merged in arrival order.
pub struct Agents {
    /// The agents, by index.
    pub agents: Vec<Agent>,
    tx: mpsc::UnboundedSender<(usize, Value)>,
    rx: mpsc::UnboundedReceiver<(usize, Value)>,
}

impl Default for Agents {
    fn default() -> Self {
        Self::new()
    }
}

impl Agents {
    /// No agents yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Agents {
            agents: Vec::new(),
            tx,
            rx,
        }
    }

    /// Starts `bin agent --name NAME ARGS...`; returns its index.
    pub fn spawn(&mut self, bin: &str, name: &str, args: &[String]) -> usize {
        let i = self.agents.len();
        let mut child = Command::new(bin)
            .arg("agent")
            .arg("--name")
            .arg(name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let tx = self.tx.clone();
        let who = name.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send((i, v)).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("{who} printed a line that is not JSON ({e}): {line:?}"),
                }
            }
        });
        self.agents.push(Agent {
            name: name.to_string(),
            lines: Vec::new(),
            child,
            stdin,
        });
        i
    }

    /// Writes one command line to agent `i`.
    pub async fn cmd(&mut self, i: usize, line: &str) {
        let stdin = self.agents[i].stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to agent stdin");
        stdin.flush().await.expect("flush agent stdin");
    }

    /// Writes raw bytes to agent `i`'s stdin (to test input that is not a clean line).
    pub async fn write(&mut self, i: usize, bytes: &[u8]) {
        let stdin = self.agents[i].stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write to agent stdin");
        stdin.flush().await.expect("flush agent stdin");
    }

    /// Waits (at most `limit`) for agent `i` to exit by itself.
    pub async fn wait_exit(&mut self, i: usize, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.agents[i].child.wait())
            .await
            .expect("agent exits")
            .expect("wait")
    }

    /// Takes in every line printed so far.
    pub fn pump(&mut self) {
        while let Ok((i, v)) = self.rx.try_recv() {
            self.agents[i].lines.push(v);
        }
    }

    /// Waits until `cond` holds, re-checking after every line. Panics after `limit`.
    pub async fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Agents) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.pump();
            if cond(self) {
                return start.elapsed();
            }
            tokio::select! {
                Some((i, v)) = self.rx.recv() => self.agents[i].lines.push(v),
                _ = tokio::time::sleep_until(deadline) => {
                    let tails: Vec<String> = self.agents.iter().map(|a| {
                        let n = a.lines.len();
                        format!("  {}: {} lines, last: {:?}", a.name, n, a.lines.iter().skip(n.saturating_sub(3)).collect::<Vec<_>>())
                    }).collect();
                    panic!("timed out after {limit:?} waiting for {what}\n{}", tails.join("\n"));
                }
            }
        }
    }

    /// Collects lines for `d` (a fault's fixed duration), then returns.
    pub async fn pump_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                Some((i, v)) = self.rx.recv() => self.agents[i].lines.push(v),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.pump();
    }

    /// Sends SIGKILL to agent `i` (no graceful leave).
    pub async fn kill9(&mut self, i: usize) {
        self.agents[i].child.start_kill().expect("kill -9");
        let _ = self.agents[i].child.wait().await;
    }

    /// Process id of agent `i` (for its memory figures in `/proc`).
    pub fn pid(&self, i: usize) -> u32 {
        self.agents[i].child.id().expect("agent still running")
    }

    /// Closes agent `i`'s stdin (end of input).
    pub fn close_stdin(&mut self, i: usize) {
        self.agents[i].stdin = None;
    }

    /// Sends SIGTERM to agent `i` and waits (at most `limit`) for its exit status.
    pub async fn sigterm(&mut self, i: usize, limit: Duration) -> std::process::ExitStatus {
        let pid = self.agents[i].child.id().expect("agent still running");
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {pid} failed");
        tokio::time::timeout(limit, self.agents[i].child.wait())
            .await
            .expect("agent exits after SIGTERM")
            .expect("wait")
    }

    /// Sends `quit` to every agent still running and waits (bounded) for them to exit.
    pub async fn quit_all(&mut self) {
        for i in 0..self.agents.len() {
            if let Some(s) = self.agents[i].stdin.as_mut() {
                let _ = s.write_all(b"quit\n").await;
                let _ = s.flush().await;
            }
            let wait = self.agents[i].child.wait();
            if tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .is_err()
            {
                let _ = self.agents[i].child.start_kill();
            }
        }
    }
}

impl Agent {
    /// Lines whose `"event"` is `name`.
    pub fn events<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |v| v["event"] == name)
    }

    /// The last reply carrying the client id `id` (sent as `@id COMMAND`).
    pub fn reply_to(&self, id: &str) -> Option<&Value> {
        self.lines
            .iter()
            .rev()
            .find(|v| v.get("reply").is_some() && v["id"] == id)
    }

    /// The last line that has a `"reply"` equal to `name`.
    pub fn last_reply(&self, name: &str) -> Option<&Value> {
        self.lines.iter().rev().find(|v| v["reply"] == name)
    }

    /// This agent's node id (from its `listening` line).
    pub fn id(&self) -> Option<String> {
        self.events("listening")
            .next()
            .and_then(|v| v["node"]["id"].as_str().map(str::to_string))
    }

    /// The master this agent follows according to its latest election event: `None` before
    /// any, and after `no_master` (or a `demotion` naming no successor).
    pub fn master_by_events(&self) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .find_map(|v| match v["event"].as_str()? {
                "new_master" => Some(v["node"]["id"].as_str().map(str::to_string)),
                "promotion" => Some(self.id()),
                "demotion" => Some(v["new_master"].as_str().map(str::to_string)),
                "no_master" => Some(None),
                _ => None,
            })
            .flatten()
    }
}
