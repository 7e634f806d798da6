//! Command-line interface of the `espial` binary.

mod agent;
mod bench;
mod client;
mod demo;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

/// espial: a secure distributed event layer (discovery, membership, master election and
/// encrypted events).
#[derive(Parser, Debug)]
#[command(name = "espial", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs a small cluster on loopback (127.0.0.x, real UDP, real encryption, static peers,
    /// no multicast) and narrates discovery, election, events, master failure and re-election,
    /// and a graceful exit. Ends by itself.
    Demo(demo::DemoArgs),
    /// Runs one node: prints every event as a JSON line on stdout and reads commands on stdin
    /// (send [--confirm] NAME DATA, send-to ID[,ID..] NAME DATA, send-to-master NAME DATA,
    /// request [--timeout MS] NAME DATA, reply REQUEST DATA, join NAME, leave NAME, nodes,
    /// master, promote, meta KEY=VALUE, info, stats, quit; `@ID` before a command is echoed
    /// in its reply). End of stdin does not stop the agent: it keeps running until `quit`,
    /// SIGTERM or SIGINT, each of which leaves the cluster gracefully. See docs/AGENT.md.
    Agent(Box<agent::AgentArgs>),
    /// Lists the members seen by a running agent (`espial agent --rpc unix:PATH`).
    Members(client::PlainArgs),
    /// Sends a custom event through a running agent.
    Send(client::SendArgs),
    /// Sends a request through a running agent; prints each reply, then a summary.
    Request(client::RequestArgs),
    /// Prints a running agent's events as JSON lines until interrupted.
    Monitor(client::PlainArgs),
    /// Performance figures on loopback (127.0.x.y unicast, no multicast): event throughput
    /// and latency, failover, join, leave, idle cost, crypto. Bounded; ends by itself.
    Bench(bench::BenchArgs),
    /// One node process of `espial bench` (started by the bench, not by hand).
    #[command(hide = true)]
    BenchNode(bench::node_process::NodeArgs),
}

/// Timing profile names for the command line.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    /// Local-area network (default).
    Lan,
    /// Wide-area network.
    Wan,
    /// One host, very short timeouts.
    Local,
}

impl Profile {
    pub(crate) fn config(self) -> espial::Config {
        match self {
            Profile::Lan => espial::Config::lan(),
            Profile::Wan => espial::Config::wan(),
            Profile::Local => espial::Config::local(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // A bench node is one node and one listener, a client one connection: one thread.
    let light = matches!(
        cli.command,
        Cmd::BenchNode(_) | Cmd::Members(_) | Cmd::Send(_) | Cmd::Request(_) | Cmd::Monitor(_)
    );
    let rt = if light {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("espial: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Cmd::Demo(args) => rt.block_on(demo::run(args)),
        Cmd::Agent(args) => rt.block_on(agent::run(*args)),
        Cmd::Members(args) => rt.block_on(client::members(args)),
        Cmd::Send(args) => rt.block_on(client::send(args)),
        Cmd::Request(args) => rt.block_on(client::request(args)),
        Cmd::Monitor(args) => rt.block_on(client::monitor(args)),
        Cmd::Bench(args) => rt.block_on(bench::run(args)),
        Cmd::BenchNode(args) => rt.block_on(bench::node_process::run(args)),
    }
}

/// Writes one line to stdout, ignoring a closed pipe (`espial demo | head` must not panic).
pub(crate) fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Logs go to stderr (stdout carries the JSON lines). `RUST_LOG` overrides the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
