//! The control socket (`--rpc unix:PATH`): other processes on the host send the agent's
//! commands (the same lines as on stdin) and read the replies, one JSON line each, on a
//! Unix stream socket. `monitor` makes a connection also receive every event. Replies go to
//! the connection that sent the command; a connection that does not read loses lines
//! beyond [`CONNECTION_BUFFER`] rather than holding the agent up. The socket file is
//! created with mode 0600 (the agent's user only) and removed when the agent stops.

use super::commands::{Agent, Flow, Out};
use super::input::{Line, LineReader, MAX_LINE};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// Lines queued for one connection.
pub(crate) const CONNECTION_BUFFER: usize = 4096;

/// `unix:PATH` → PATH.
pub(crate) fn parse_addr(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!("--rpc {s:?}: expected unix:PATH")),
    }
}

/// A listening control socket; the file is removed on drop.
pub(crate) struct Server {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (replacing a stale socket nobody listens on) and serves connections.
pub(crate) async fn serve(agent: Arc<Agent>, path: &Path) -> Result<Server, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!("{}: another agent listens there", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("--rpc {}: {e}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(agent.clone(), stream));
        }
    });
    Ok(Server {
        path: path.to_path_buf(),
        task,
    })
}

async fn connection(agent: Arc<Agent>, stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<serde_json::Value>(CONNECTION_BUFFER);
    let writer = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if w.write_all(format!("{v}\n").as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let out: Out = Arc::new(move |v| {
        let _ = tx.try_send(v);
    });
    let mut lines = LineReader::new(BufReader::new(r), MAX_LINE);
    let mut monitor: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let line = match lines.next().await {
            Ok(Line::Eof) | Err(_) => break,
            Ok(l) => l,
        };
        match agent.line(line, &out).await {
            Flow::Next => {}
            Flow::Quit => break,
            Flow::Monitor => {
                if monitor.is_none() {
                    let (agent, out) = (agent.clone(), out.clone());
                    let mut events = agent.espial.events();
                    monitor = Some(tokio::spawn(async move {
                        while let Some(e) = events.recv().await {
                            out(super::event_line(&agent.espial, &e));
                        }
                    }));
                }
            }
        }
    }
    if let Some(m) = monitor {
        m.abort();
    }
    drop(out);
    // Replies still in flight (requests, confirmed sends) hold the channel open.
    let _ = writer.await;
}
