//! `espial agent`: one node driven by flags and stdin commands, events as JSON lines.

use super::Profile;
use clap::Args;
use espial::jsonl::{event_json, node_json, now_ms};
use espial::{Espial, NodeId};
use futures::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Args, Debug)]
pub(crate) struct AgentArgs {
    /// Address to bind (ip:port; port 0 = any free port).
    #[arg(long, default_value = "0.0.0.0:27272")]
    bind: SocketAddr,
    /// Address other nodes should send to, when it differs from --bind.
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Static seed peers, comma-separated (ip:port or host:port). Turns multicast off unless
    /// --multicast is also given.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Multicast discovery on GROUP:PORT (e.g. 239.192.27.27:27272). Default when no
    /// --peers are given.
    #[arg(long, value_name = "GROUP:PORT")]
    multicast: Option<SocketAddr>,
    /// IPv4 address of the interface to use for multicast (e.g. 127.0.0.1 for lo).
    #[arg(long, value_name = "IP")]
    multicast_iface: Option<std::net::Ipv4Addr>,
    /// Cluster name in multicast beacons.
    #[arg(long)]
    cluster: Option<String>,
    /// Node name (default: host name).
    #[arg(long)]
    name: Option<String>,
    /// Metadata entry KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// Subscribe to a custom event name at start (repeatable).
    #[arg(long = "join", value_name = "NAME")]
    join: Vec<String>,
    /// File holding the cluster pre-shared key (its bytes, trailing newline removed;
    /// at least 16 bytes).
    #[arg(long)]
    psk_file: Option<std::path::PathBuf>,
    /// Timing profile.
    #[arg(long, value_enum, default_value = "lan")]
    profile: Profile,
    /// Quorum mode: be master only while seeing at least N live members.
    #[arg(long)]
    quorum: Option<usize>,
    /// Election priority (higher preferred).
    #[arg(long, default_value_t = 0)]
    priority: u32,
    /// Never become master.
    #[arg(long)]
    not_eligible: bool,
}

fn print(v: Value) {
    super::out(v);
}

fn error(msg: impl std::fmt::Display) {
    print(json!({ "error": msg.to_string(), "ts_ms": now_ms() }));
}

fn parse_kv(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

pub(crate) async fn run(args: AgentArgs) -> ExitCode {
    match start(&args).await {
        Ok(espial) => serve(espial).await,
        Err(e) => {
            error(format!("cannot start: {e}"));
            eprintln!("espial agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn start(args: &AgentArgs) -> espial::Result<Espial> {
    let mut meta = Vec::new();
    for m in &args.meta {
        let kv = parse_kv(m)
            .ok_or_else(|| espial::Error::Config(format!("--meta {m:?}: expected KEY=VALUE")))?;
        meta.push(kv);
    }
    let mut b = Espial::builder()
        .bind(args.bind)
        .profile(args.profile.config())
        .metadata(meta)
        .priority(args.priority)
        .master_eligible(!args.not_eligible);
    if let Some(a) = args.advertise {
        b = b.advertise(a);
    }
    if let Some(n) = &args.name {
        b = b.name(n);
    }
    if let Some(q) = args.quorum {
        b = b.quorum(q);
    }
    if let Some(c) = &args.cluster {
        b = b.cluster(c);
    }
    if !args.peers.is_empty() {
        b = b.peers(args.peers.iter().cloned());
    }
    if let Some(m) = args.multicast {
        b = b.multicast(m.ip(), m.port());
    }
    if let Some(i) = args.multicast_iface {
        b = b.multicast_interface(i);
    }
    if let Some(path) = &args.psk_file {
        let mut key = std::fs::read(path).map_err(|e| {
            espial::Error::Config(format!("cannot read --psk-file {}: {e}", path.display()))
        })?;
        while key.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            key.pop();
        }
        b = b.psk(key);
    }
    let espial = b.start().await?;
    for name in &args.join {
        espial.join(name)?;
    }
    Ok(espial)
}

async fn serve(espial: Espial) -> ExitCode {
    let mut events = espial.events();
    let printer = {
        let espial = espial.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                let me = espial.node_info();
                print(event_json(&e, &me, |id| espial.node(id)));
            }
        })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            error(format!("cannot watch SIGTERM: {e}"));
            None
        }
    };
    loop {
        #[cfg(unix)]
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<()>();
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if command(&espial, line.trim()).await {
                        break;
                    }
                }
                // End of input: keep running until quit or a signal.
                Ok(None) => stdin_open = false,
                Err(e) => {
                    error(format!("stdin: {e}"));
                    stdin_open = false;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm => break,
        }
    }
    let _ = espial.shutdown().await;
    // Let the printer write the last events (the stream ends once the node stopped).
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), printer).await;
    ExitCode::SUCCESS
}

/// Runs one stdin command; returns true on `quit`.
async fn command(espial: &Espial, line: &str) -> bool {
    if line.is_empty() {
        return false;
    }
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim_start();
    let ts = now_ms();
    let res: Result<Value, String> = match cmd {
        "send" => match rest.split_once(' ') {
            Some((name, data)) => espial
                .send(name, data.as_bytes().to_vec())
                .await
                .map(|id| json!({"reply": "send", "name": name, "send": id.0}))
                .map_err(|e| e.to_string()),
            None if !rest.is_empty() => espial
                .send(rest, Vec::new())
                .await
                .map(|id| json!({"reply": "send", "name": rest, "send": id.0}))
                .map_err(|e| e.to_string()),
            None => Err("usage: send NAME DATA".into()),
        },
        "send-to" => send_to(espial, rest).await,
        "join" | "leave" if rest.is_empty() || rest.contains(' ') => {
            Err(format!("usage: {cmd} NAME"))
        }
        "join" => espial
            .join(rest)
            .map(|()| json!({"reply": "join", "name": rest}))
            .map_err(|e| e.to_string()),
        "leave" => espial
            .leave(rest)
            .map(|()| json!({"reply": "leave", "name": rest}))
            .map_err(|e| e.to_string()),
        "nodes" => {
            let nodes: Vec<Value> = espial
                .nodes()
                .iter()
                .map(|n| {
                    let mut v = node_json(n);
                    v["subscriptions"] = json!(n.subscriptions);
                    v
                })
                .collect();
            Ok(json!({"reply": "nodes", "nodes": nodes}))
        }
        "master" => Ok(json!({
            "reply": "master",
            "master": espial.master().as_ref().map(node_json),
            "is_master": espial.is_master(),
        })),
        "promote" => espial
            .promote()
            .await
            .map(|()| json!({"reply": "promote", "ok": true}))
            .map_err(|e| e.to_string()),
        "meta" => match parse_kv(rest) {
            Some((k, v)) => {
                let mut m = espial.node_info().metadata;
                m.insert(k, v);
                espial
                    .set_metadata_map(m.clone())
                    .await
                    .map(|()| json!({"reply": "meta", "metadata": m.as_map()}))
                    .map_err(|e| e.to_string())
            }
            None => Err("usage: meta KEY=VALUE".into()),
        },
        "info" => Ok(json!({"reply": "info", "node": node_json(&espial.node_info())})),
        "stats" => Ok(json!({"reply": "stats", "stats": espial.stats()})),
        "quit" => {
            print(json!({"reply": "quit", "ts_ms": ts}));
            return true;
        }
        other => Err(format!(
            "unknown command {other:?}; commands: send NAME DATA, send-to ID[,ID..] NAME DATA, \
             join NAME, leave NAME, nodes, master, promote, meta KEY=VALUE, info, stats, quit"
        )),
    };
    match res {
        Ok(mut v) => {
            v["ts_ms"] = ts.into();
            print(v);
        }
        Err(e) => error(e),
    }
    false
}

async fn send_to(espial: &Espial, rest: &str) -> Result<Value, String> {
    let mut parts = rest.splitn(3, ' ');
    let (Some(ids), Some(name)) = (parts.next(), parts.next()) else {
        return Err("usage: send-to ID[,ID..] NAME DATA".into());
    };
    let data = parts.next().unwrap_or("");
    let nodes = espial.nodes();
    let mut targets = Vec::new();
    for key in ids.split(',').filter(|s| !s.is_empty()) {
        // An id (hex) or a member's name.
        let id = key
            .parse::<NodeId>()
            .ok()
            .filter(|id| nodes.iter().any(|n| n.id == *id))
            .or_else(|| nodes.iter().find(|n| n.name == key).map(|n| n.id));
        match id {
            Some(id) => targets.push(id),
            None => return Err(format!("no live member with id or name {key:?}")),
        }
    }
    if targets.is_empty() {
        return Err("usage: send-to ID[,ID..] NAME DATA".into());
    }
    espial
        .send_to(targets, name, data.as_bytes().to_vec())
        .await
        .map(|id| json!({"reply": "send-to", "name": name, "send": id.0}))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(parse_kv("a=b=c"), Some(("a".into(), "b=c".into())));
        assert_eq!(parse_kv("=x"), None);
        assert_eq!(parse_kv("nokey"), None);
    }
}
