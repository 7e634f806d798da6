//! Client subcommands that talk to a running `espial agent --rpc unix:PATH`:
//! `espial members`, `espial send`, `espial request` and `espial monitor`. Each prints the
//! agent's JSON lines on stdout and exits with 0 when the agent answered `"ok": true`.

use clap::Args;
use serde_json::Value;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Where the agent listens.
#[derive(Args, Debug)]
pub(crate) struct RpcArg {
    /// The agent's control socket (as given to `espial agent --rpc`).
    #[arg(long, value_name = "unix:PATH")]
    rpc: String,
}

/// `espial send`.
#[derive(Args, Debug)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    rpc: RpcArg,
    /// Wait for the delivery report (which subscribers acknowledged, which failed).
    #[arg(long)]
    confirm: bool,
    /// Event name.
    name: String,
    /// Payload (UTF-8, one line).
    #[arg(default_value = "")]
    data: String,
}

/// `espial request`.
#[derive(Args, Debug)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    rpc: RpcArg,
    /// How long to collect replies (milliseconds, or 500ms, 2s).
    #[arg(long, default_value = "1000")]
    timeout: String,
    /// Event name.
    name: String,
    /// Payload (UTF-8, one line).
    #[arg(default_value = "")]
    data: String,
}

/// `espial members` and `espial monitor`.
#[derive(Args, Debug)]
pub(crate) struct PlainArgs {
    #[command(flatten)]
    rpc: RpcArg,
}

pub(crate) async fn members(a: PlainArgs) -> ExitCode {
    talk(&a.rpc.rpc, "nodes".into(), Until::Reply).await
}

pub(crate) async fn send(a: SendArgs) -> ExitCode {
    let confirm = if a.confirm { "--confirm " } else { "" };
    let line = format!("send {confirm}{} {}", a.name, a.data);
    talk(&a.rpc.rpc, line, Until::Reply).await
}

pub(crate) async fn request(a: RequestArgs) -> ExitCode {
    let line = format!("request --timeout {} {} {}", a.timeout, a.name, a.data);
    talk(&a.rpc.rpc, line, Until::Done).await
}

pub(crate) async fn monitor(a: PlainArgs) -> ExitCode {
    talk(&a.rpc.rpc, "monitor".into(), Until::Eof).await
}

enum Until {
    /// The first line answering our command.
    Reply,
    /// Our command's line with `"done": true` (or an error).
    Done,
    /// The agent closes the connection (or ^C).
    Eof,
}

/// The client's tag on its command (`@cli`), to find the replies meant for it.
const TAG: &str = "cli";

async fn talk(rpc: &str, line: String, until: Until) -> ExitCode {
    let path = match crate::cli::agent::rpc_path(rpc) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if line.contains('\n') || line.contains('\r') {
        return fail("arguments cannot contain a line break".into());
    }
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot reach the agent at {}: {e}", path.display())),
    };
    let (r, mut w) = stream.into_split();
    if let Err(e) = w.write_all(format!("@{TAG} {line}\n").as_bytes()).await {
        return fail(format!("cannot write to the agent: {e}"));
    }
    let mut lines = BufReader::new(r).lines();
    let mut ok = true;
    loop {
        let next = tokio::select! {
            l = lines.next_line() => l,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        let text = match next {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => return fail(format!("reading from the agent: {e}")),
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mine = v["id"] == TAG;
        crate::cli::out(&text);
        if mine && v["ok"] == false {
            ok = false;
            break;
        }
        match until {
            Until::Reply if mine => break,
            Until::Done if mine && v["done"] == true => break,
            _ => {}
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(msg: String) -> ExitCode {
    eprintln!("espial: {msg}");
    ExitCode::FAILURE
}
