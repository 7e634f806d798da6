//! The bench's side of `espial bench-node` processes ([`super::node_process`]): start them
//! on 127.0.<net>.x, ask for reports over their pipes with bounded waits, read their CPU
//! time. Every process is killed when its [`NodeProcess`] is dropped.

use super::node_process::hex_encode;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// UDP port of every bench node (each group has its own 127.0.<net>.x addresses).
pub(crate) const PORT: u16 = 27_650;
/// Longest wait for one answer from a node process.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// `127.0.<net>.<host>:PORT`.
pub(crate) fn addr(net: u8, host: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, net, host), PORT))
}

/// A per-run 32-byte key (not secret: it only keeps runs apart).
pub(crate) fn psk() -> Vec<u8> {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut k = t.to_le_bytes().to_vec();
    k.extend_from_slice(b"espial-bench-key");
    k
}

/// One `espial bench-node` process and its pipes.
pub(crate) struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeProcess {
    /// Starts a node on `bind` with these static peers, joining `topic` if given, and waits
    /// (bounded) for its `ready` line.
    pub(crate) async fn start(
        name: &str,
        bind: SocketAddr,
        peers: &[SocketAddr],
        psk: &[u8],
        topic: Option<&str>,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench-node")
            .args(["--bind", &bind.to_string()])
            .args(["--psk-hex", &hex_encode(psk)])
            .args(["--name", name]);
        if let Some(t) = topic {
            cmd.args(["--topic", t]);
        }
        for p in peers.iter().filter(|p| **p != bind) {
            cmd.args(["--peer", &p.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a node process: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("node process pipes missing".into());
        };
        let mut p = NodeProcess {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = p.answer().await?;
        if ready["ready"] != true {
            return Err(format!("unexpected first line from {name}: {ready}"));
        }
        Ok(p)
    }

    /// Sends a command line and reads the JSON answer (bounded wait).
    pub(crate) async fn ask(&mut self, cmd: &str) -> Result<Value, String> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| format!("node process stdin: {e}"))?;
        self.stdin.flush().await.map_err(|e| e.to_string())?;
        self.answer().await
    }

    async fn answer(&mut self) -> Result<Value, String> {
        match tokio::time::timeout(ANSWER_LIMIT, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => serde_json::from_str(&l).map_err(|e| format!("{e}: {l}")),
            Ok(Ok(None)) => Err("a node process ended".into()),
            Ok(Err(e)) => Err(format!("node process stdout: {e}")),
            Err(_) => Err(format!("a node process did not answer in {ANSWER_LIMIT:?}")),
        }
    }

    /// User + system CPU seconds the process used so far (Linux `/proc/<pid>/stat`).
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(&format!("/proc/{}/stat", self.child.id()?))
    }

    /// Asks the process to end (it stops without a graceful leave).
    pub(crate) async fn quit(&mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
    }
}

/// Starts `n` node processes on 127.0.<net>.<h> for h in `first..first + n`, with `seeds`
/// as static peers, joining `topic` if given.
pub(crate) async fn start_group(
    net: u8,
    first: u8,
    n: u8,
    seeds: &[SocketAddr],
    psk: &[u8],
    topic: Option<&str>,
) -> Result<Vec<NodeProcess>, String> {
    let mut procs = Vec::with_capacity(n as usize);
    for h in first..first + n {
        let name = format!("n{net}-{h}");
        procs.push(NodeProcess::start(&name, addr(net, h), seeds, psk, topic).await?);
    }
    Ok(procs)
}

/// Every process's `report`, in order.
pub(crate) async fn reports(procs: &mut [NodeProcess]) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(procs.len());
    for p in procs.iter_mut() {
        out.push(p.ask("report").await?);
    }
    Ok(out)
}

/// A counter of a report (0 when missing).
pub(crate) fn field(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// True when every report sees `n` members and names the same master (`Some(master)` to
/// require that one).
pub(crate) fn converged(reps: &[Value], n: u64, master: Option<&str>) -> bool {
    let first = reps.first().and_then(|v| v["master"].as_str());
    let want = master.or(first);
    want.is_some()
        && reps
            .iter()
            .all(|v| field(v, "members") == n && v["master"].as_str() == want)
}

/// Asks for reports (every 5 ms) until every process has at least `n` by `key` or `limit`
/// passed; whether they all did, and the last reports.
pub(crate) async fn wait_for(
    procs: &mut [NodeProcess],
    key: &str,
    n: u64,
    limit: Duration,
) -> Result<(bool, Vec<Value>), String> {
    let start = Instant::now();
    loop {
        let reps = reports(procs).await?;
        if reps.iter().all(|v| field(v, key) >= n) {
            return Ok((true, reps));
        }
        if start.elapsed() > limit {
            return Ok((false, reps));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// User + system CPU seconds from a Linux `stat` file (fields 14 and 15, in clock ticks of
/// 100 per second).
pub(crate) fn cpu_secs(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: field 3 is f[0]; utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
