//! Event handlers (`--on-event [FILTER=]CMD`, like serf's `-event-handler`): each event that
//! matches a handler's filter runs `sh -c CMD` with the event's JSON line on stdin and
//! `ESPIAL_EVENT` (the event name) in the environment. At most `concurrency` handlers run at
//! once; up to [`MAX_QUEUED`] more wait; beyond that an event is not handled and a
//! `handler_dropped` line says so. A handler that exits with a failure is reported
//! (`handler_failed`); one that runs longer than the timeout is killed with its whole
//! process group and reported (`handler_timeout`). A handler's stdout goes to the agent's
//! stderr, never into the agent's JSON lines.

use super::commands::Out;
use espial::jsonl::now_ms;
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Events waiting for a free handler slot before new ones are dropped.
pub(crate) const MAX_QUEUED: usize = 256;

/// One `--on-event` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handler {
    /// Event names (`custom` matches every custom event, `custom:NAME` only that name);
    /// empty = every event.
    filter: Vec<String>,
    cmd: String,
}

impl std::str::FromStr for Handler {
    type Err = String;

    /// `CMD` or `FILTER=CMD` with FILTER a comma-separated list of event names (or `*`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (filter, cmd) = match s.split_once('=') {
            Some((f, c))
                if !f.is_empty()
                    && f.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'_' | b',' | b':' | b'*' | b'-' | b'.')
                    }) =>
            {
                (f, c)
            }
            _ => ("*", s),
        };
        if cmd.trim().is_empty() {
            return Err(format!("--on-event {s:?}: no command"));
        }
        let filter = filter
            .split(',')
            .filter(|f| !f.is_empty() && *f != "*")
            .map(str::to_string)
            .collect();
        Ok(Handler {
            filter,
            cmd: cmd.to_string(),
        })
    }
}

impl Handler {
    fn matches(&self, v: &Value) -> bool {
        let name = v["event"].as_str().unwrap_or("");
        self.filter.is_empty()
            || self.filter.iter().any(|f| match f.split_once(':') {
                Some(("custom", n)) => name == "custom" && v["name"] == n,
                _ => f == name,
            })
    }
}

/// The handlers of one agent.
pub(crate) struct Handlers {
    list: Vec<Handler>,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    timeout: Duration,
    out: Out,
}

impl Handlers {
    pub(crate) fn new(list: Vec<Handler>, concurrency: usize, timeout: Duration, out: Out) -> Self {
        Handlers {
            list,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
            timeout,
            out,
        }
    }

    /// Starts every handler whose filter matches this event line.
    pub(crate) fn dispatch(&self, event: &Value) {
        for h in self.list.iter().filter(|h| h.matches(event)) {
            let name = event["event"].as_str().unwrap_or("").to_string();
            if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                (self.out)(json!({
                    "event": "handler_dropped", "handler": h.cmd, "for": name,
                    "reason": format!("{MAX_QUEUED} events already wait for a handler"),
                    "ts_ms": now_ms(),
                }));
                continue;
            }
            let (slots, queued, out) = (self.slots.clone(), self.queued.clone(), self.out.clone());
            let (cmd, timeout) = (h.cmd.clone(), self.timeout);
            let line = format!("{event}\n");
            tokio::spawn(async move {
                let permit = slots.acquire_owned().await;
                queued.fetch_sub(1, Ordering::Relaxed);
                let _permit = permit;
                if let Some(report) = run(&cmd, &name, line.as_bytes(), timeout).await {
                    out(report);
                }
            });
        }
    }
}

/// Runs one handler; returns the report line when it failed.
async fn run(cmd: &str, event: &str, input: &[u8], timeout: Duration) -> Option<Value> {
    let report = |kind: &str, detail: Value| {
        let mut v = json!({"event": kind, "handler": cmd, "for": event, "ts_ms": now_ms()});
        if let (Some(o), Value::Object(d)) = (v.as_object_mut(), detail) {
            o.extend(d);
        }
        Some(v)
    };
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("ESPIAL_EVENT", event)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return report("handler_failed", json!({"error": e.to_string()})),
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let work = async {
        if let Some(s) = stdin.as_mut() {
            // A handler that does not read its input is fine.
            let _ = s.write_all(input).await;
        }
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => report(
            "handler_failed",
            json!({"status": status.code(), "error": status.to_string()}),
        ),
        Ok(Err(e)) => report("handler_failed", json!({"error": e.to_string()})),
        Err(_) => {
            // The handler and everything it started (its own process group).
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
            report(
                "handler_timeout",
                json!({"timeout_ms": timeout.as_millis() as u64, "error": "killed after the timeout"}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let h: Handler = "custom:jobs,added_node=./x.sh a=b".parse().unwrap();
        assert_eq!(h.cmd, "./x.sh a=b");
        assert!(h.matches(&json!({"event": "added_node"})));
        assert!(h.matches(&json!({"event": "custom", "name": "jobs"})));
        assert!(!h.matches(&json!({"event": "custom", "name": "other"})));
        let all: Handler = "echo hi >&2".parse().unwrap();
        assert!(all.matches(&json!({"event": "promotion"})));
        let all: Handler = "logger x=1".parse().unwrap();
        assert_eq!(all.cmd, "logger x=1"); // "logger x" is not a filter (space)
        assert!("custom=".parse::<Handler>().is_err());
    }
}
