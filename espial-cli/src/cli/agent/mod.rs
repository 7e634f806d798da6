//! `espial agent`: one node driven by flags (or a TOML config file), commands on stdin
//! or on a control socket, events as JSON lines on stdout, event handler scripts. The
//! JSON schema of events, replies and errors is in docs/AGENT.md.

mod commands;
mod handlers;
mod input;
mod prometheus;
mod rpc;

use super::Profile;
use clap::Args;
use commands::{Agent, Flow, Out};
use espial::jsonl::event_json;
use espial::{Espial, Event};
use input::{LineReader, MAX_LINE};
use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;

pub(crate) use rpc::parse_addr as rpc_path;

/// Default `--bind`.
const DEFAULT_BIND: &str = "0.0.0.0:27272";

/// The agent's settings: each flag has a key of the same name in the `--config` file
/// (TOML, e.g. `bind = "127.0.0.1:27272"`, `peers = ["10.0.0.5:27272"]`,
/// `on-event = ["custom:jobs=./job.sh"]`). A flag given on the command line wins over the
/// file; list flags given on the command line replace the file's list.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub(crate) struct AgentArgs {
    /// TOML file with any of these settings (keys named like the flags, without `--`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to bind (ip:port; port 0 = any free port) [default: 0.0.0.0:27272].
    #[arg(long)]
    bind: Option<SocketAddr>,
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
    psk_file: Option<PathBuf>,
    /// Timing profile [default: lan].
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Quorum mode: be master only while seeing at least N live members.
    #[arg(long)]
    quorum: Option<usize>,
    /// Election priority (higher preferred) [default: 0].
    #[arg(long)]
    priority: Option<u32>,
    /// Never become master.
    #[arg(long)]
    not_eligible: bool,
    /// Control socket for `espial members|send|request|monitor --rpc unix:PATH` (and any
    /// program speaking the stdin commands over a Unix socket).
    #[arg(long, value_name = "unix:PATH")]
    rpc: Option<String>,
    /// Event handler: runs `sh -c CMD` with each matching event's JSON line on stdin
    /// (repeatable). FILTER: comma-separated event names, `custom:NAME` for one custom
    /// event name; none = every event.
    #[arg(long = "on-event", value_name = "[FILTER=]CMD")]
    on_event: Vec<String>,
    /// Handlers running at once; more events wait (up to 256, then are reported dropped)
    /// [default: 4].
    #[arg(long, value_name = "N")]
    on_event_concurrency: Option<usize>,
    /// A handler still running after this many milliseconds is killed and reported
    /// [default: 10000].
    #[arg(long, value_name = "MS")]
    on_event_timeout: Option<u64>,
    /// Serve the node's metrics in the Prometheus text format at
    /// http://ADDR/metrics (a loopback address only, e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "127.0.0.1:PORT")]
    metrics: Option<SocketAddr>,
}

impl AgentArgs {
    /// Fills what the command line left unset from the `--config` file.
    fn with_config(mut self) -> Result<Self, String> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
        let file: AgentArgs =
            toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
        macro_rules! take {
            (opt: $($f:ident),*; list: $($l:ident),*) => {
                $( if self.$f.is_none() { self.$f = file.$f; } )*
                $( if self.$l.is_empty() { self.$l = file.$l; } )*
            };
        }
        take!(opt: bind, advertise, multicast, multicast_iface, cluster, name, psk_file,
              profile, quorum, priority, rpc, on_event_concurrency, on_event_timeout, metrics;
              list: peers, meta, join, on_event);
        self.not_eligible |= file.not_eligible;
        Ok(self)
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn print(v: Value) {
    super::out(v);
}

/// One event as its JSON line (see [`espial::jsonl`]).
pub(crate) fn event_line(espial: &Espial, e: &Event) -> Value {
    let me = espial.node_info();
    event_json(e, &me, |id| espial.node(id))
}

pub(crate) async fn run(args: AgentArgs) -> ExitCode {
    let stdout: Out = Arc::new(print);
    let fail = |e: String| {
        commands::error(&stdout, None, None, format!("cannot start: {e}"), None);
        eprintln!("espial agent: {e}");
        ExitCode::FAILURE
    };
    let args = match args.with_config() {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let mut handlers = Vec::new();
    for h in &args.on_event {
        match h.parse::<handlers::Handler>() {
            Ok(h) => handlers.push(h),
            Err(e) => return fail(e),
        }
    }
    let rpc = match args.rpc.as_deref().map(rpc::parse_addr).transpose() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let _metrics = match args.metrics {
        Some(addr) => match prometheus::serve(addr).await {
            Ok(task) => Some(AbortOnDrop(task)),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let espial = match start(&args).await {
        Ok(espial) => espial,
        Err(e) => return fail(e.to_string()),
    };
    let agent = Agent::new(espial);
    let _server = match &rpc {
        Some(path) => match rpc::serve(agent.clone(), path).await {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = agent.espial.shutdown().await;
                return fail(e);
            }
        },
        None => None,
    };
    let handlers = handlers::Handlers::new(
        handlers,
        args.on_event_concurrency.unwrap_or(4),
        Duration::from_millis(args.on_event_timeout.unwrap_or(10_000)),
        stdout.clone(),
    );
    serve(agent, handlers, stdout).await
}

async fn start(args: &AgentArgs) -> espial::Result<Espial> {
    let mut meta = Vec::new();
    for m in &args.meta {
        let kv = commands::parse_kv(m)
            .ok_or_else(|| espial::Error::Config(format!("--meta {m:?}: expected KEY=VALUE")))?;
        meta.push(kv);
    }
    let bind = args
        .bind
        .unwrap_or_else(|| DEFAULT_BIND.parse().expect("default bind address"));
    let mut b = Espial::builder()
        .bind(bind)
        .profile(args.profile.unwrap_or(Profile::Lan).config())
        .metadata(meta)
        .priority(args.priority.unwrap_or(0))
        .metrics(args.metrics.is_some())
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
        espial.join(name).await?;
    }
    Ok(espial)
}

async fn serve(agent: Arc<Agent>, handlers: handlers::Handlers, stdout: Out) -> ExitCode {
    let espial = agent.espial.clone();
    let mut events = espial.events();
    let printer = {
        let agent = agent.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                agent.note(&e);
                let v = event_line(&agent.espial, &e);
                handlers.dispatch(&v);
                print(v);
            }
        })
    };
    let mut lines = LineReader::new(BufReader::new(tokio::io::stdin()), MAX_LINE);
    let mut stdin_open = true;
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            commands::error(
                &stdout,
                None,
                None,
                format!("cannot watch SIGTERM: {e}"),
                None,
            );
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
            line = lines.next(), if stdin_open => match line {
                // End of input: keep running until quit or a signal.
                Ok(input::Line::Eof) => stdin_open = false,
                Ok(line) => {
                    if agent.line(line, &stdout).await == Flow::Quit {
                        break;
                    }
                }
                Err(e) => {
                    commands::error(&stdout, None, None, format!("stdin: {e}"), None);
                    stdin_open = false;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm => break,
        }
    }
    let _ = espial.shutdown().await;
    // Let the printer write the last events (the stream ends once the node stopped).
    let _ = tokio::time::timeout(Duration::from_millis(500), printer).await;
    ExitCode::SUCCESS
}
