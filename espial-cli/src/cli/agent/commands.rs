//! The agent's commands (one line each, from stdin or the control socket) and their
//! replies. Every reply is one JSON object with `"reply"` (the command it answers), `"ok"`,
//! the client's `"id"` when the line started with `@ID`, and `"ts_ms"`; an error has
//! `"ok": false` and `"error"`. The schema is in docs/AGENT.md.

use super::input::{echo, parse, split_word, Line, MAX_LINE};
use espial::jsonl::{node_json, now_ms};
use espial::{Espial, Event, NodeId, NodeInfo, RequestId};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where replies go (stdout, or one control-socket connection).
pub(crate) type Out = Arc<dyn Fn(Value) + Send + Sync>;

/// Requests received (custom events with a request id) remembered for `reply`.
const REMEMBERED_REQUESTS: usize = 4096;
/// Default and largest `request --timeout`.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `send --confirm` waits for the delivery report before giving up.
const CONFIRM_WAIT: Duration = Duration::from_secs(120);

/// The command list, as printed with an unknown command.
pub(crate) const USAGE: &str = "commands: send [--confirm] NAME [DATA], \
send-to ID[,ID..] NAME [DATA], send-to-master NAME [DATA], \
request [--timeout MS] NAME [DATA], reply REQUEST DATA, join NAME, leave NAME, \
nodes, master, promote, meta KEY=VALUE, info, stats, monitor, quit";

/// Every command word.
const COMMANDS: &[&str] = &[
    "send",
    "send-to",
    "send-to-master",
    "request",
    "reply",
    "join",
    "leave",
    "nodes",
    "members",
    "master",
    "promote",
    "meta",
    "info",
    "stats",
    "monitor",
    "quit",
];

/// What the caller does after a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next line.
    Next,
    /// `quit`.
    Quit,
    /// `monitor`: stream events to this output (control socket).
    Monitor,
}

/// The agent's state shared by every input.
pub(crate) struct Agent {
    pub(crate) espial: Espial,
    received: Mutex<VecDeque<(NodeId, RequestId)>>,
}

/// One command being answered.
struct Ctx {
    cmd: String,
    id: Option<String>,
    out: Out,
}

impl Ctx {
    fn ok(&self, mut v: Value) {
        v["reply"] = self.cmd.clone().into();
        v["ok"] = true.into();
        if let Some(id) = &self.id {
            v["id"] = id.clone().into();
        }
        v["ts_ms"] = now_ms().into();
        (self.out)(v);
    }

    fn err(&self, msg: impl std::fmt::Display) {
        error(&self.out, Some(&self.cmd), self.id.as_deref(), msg, None);
    }
}

/// Prints an error reply.
pub(crate) fn error(
    out: &Out,
    cmd: Option<&str>,
    id: Option<&str>,
    msg: impl std::fmt::Display,
    input: Option<String>,
) {
    let mut v = json!({
        "reply": cmd,
        "ok": false,
        "error": msg.to_string(),
        "ts_ms": now_ms(),
    });
    if let Some(id) = id {
        v["id"] = id.into();
    }
    if let Some(input) = input {
        v["input"] = input.into();
    }
    out(v);
}

impl Agent {
    pub(crate) fn new(espial: Espial) -> Arc<Self> {
        Arc::new(Agent {
            espial,
            received: Mutex::new(VecDeque::new()),
        })
    }

    /// Remembers requests received, for `reply`.
    pub(crate) fn note(&self, e: &Event) {
        if let Event::Custom(c) = e {
            if let Some(r) = c.request {
                let mut q = self.received.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() == REMEMBERED_REQUESTS {
                    q.pop_front();
                }
                q.push_back((c.from, r));
            }
        }
    }

    /// Runs one input line.
    pub(crate) async fn line(self: &Arc<Self>, line: Line, out: &Out) -> Flow {
        let bytes = match line {
            Line::Whole(b) => b,
            Line::TooLong { head, len } => {
                error(
                    out,
                    None,
                    None,
                    format!("line of {len} bytes refused: the limit is {MAX_LINE} bytes"),
                    Some(echo(&head)),
                );
                return Flow::Next;
            }
            Line::Eof => return Flow::Next,
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.valid_up_to();
                error(
                    out,
                    None,
                    None,
                    format!("invalid UTF-8 at byte {at}: line ignored"),
                    Some(echo(&bytes)),
                );
                return Flow::Next;
            }
        };
        let parsed = match parse(text) {
            Ok(Some(p)) => p,
            Ok(None) => return Flow::Next,
            Err(e) => {
                error(out, None, None, e, Some(echo(text.as_bytes())));
                return Flow::Next;
            }
        };
        if !COMMANDS.contains(&parsed.cmd) {
            let msg = format!("unknown command {:?}; {USAGE}", echo(parsed.cmd.as_bytes()));
            error(out, None, parsed.id, msg, Some(echo(text.as_bytes())));
            return Flow::Next;
        }
        let ctx = Ctx {
            cmd: parsed.cmd.to_string(),
            id: parsed.id.map(str::to_string),
            out: out.clone(),
        };
        self.run(ctx, parsed.rest).await
    }

    async fn run(self: &Arc<Self>, ctx: Ctx, rest: &str) -> Flow {
        let e = &self.espial;
        let no_args = |ctx: &Ctx| {
            if rest.is_empty() {
                true
            } else {
                ctx.err(format!(
                    "{} takes no arguments, got {:?}",
                    ctx.cmd,
                    echo(rest.as_bytes())
                ));
                false
            }
        };
        match ctx.cmd.as_str() {
            "send" => self.send(ctx, rest).await,
            "send-to" => self.send_to(ctx, rest).await,
            "send-to-master" => match name_data(rest) {
                Some((name, data)) => {
                    match e.send_to_master(name, data.as_bytes().to_vec()).await {
                        Ok(id) => ctx.ok(json!({"name": name, "send": id.0})),
                        Err(err) => ctx.err(err),
                    }
                }
                None => ctx.err("usage: send-to-master NAME [DATA]"),
            },
            "request" => self.request(ctx, rest).await,
            "reply" => self.reply(ctx, rest).await,
            "join" | "leave" => match one_word(rest) {
                Some(name) => {
                    let r = if ctx.cmd == "join" {
                        e.join(name).await
                    } else {
                        e.leave(name).await
                    };
                    match r {
                        Ok(()) => ctx.ok(json!({ "name": name })),
                        Err(err) => ctx.err(err),
                    }
                }
                None => ctx.err(format!("usage: {} NAME", ctx.cmd)),
            },
            "nodes" | "members" if no_args(&ctx) => {
                let nodes: Vec<Value> = e.nodes().iter().map(member_json).collect();
                ctx.ok(json!({ "nodes": nodes }))
            }
            "master" if no_args(&ctx) => ctx.ok(json!({
                "master": e.master().as_ref().map(node_json),
                "is_master": e.is_master(),
            })),
            "promote" if no_args(&ctx) => match e.promote().await {
                Ok(()) => ctx.ok(json!({})),
                Err(err) => ctx.err(err),
            },
            "meta" => match one_word(rest).and_then(parse_kv) {
                Some((k, v)) => {
                    let mut m = e.node_info().metadata;
                    m.insert(k, v);
                    match e.set_metadata_map(m.clone()).await {
                        Ok(()) => ctx.ok(json!({ "metadata": m.as_map() })),
                        Err(err) => ctx.err(err),
                    }
                }
                None => ctx.err("usage: meta KEY=VALUE"),
            },
            "info" if no_args(&ctx) => ctx.ok(json!({ "node": node_json(&e.node_info()) })),
            "stats" if no_args(&ctx) => ctx.ok(json!({ "stats": e.stats() })),
            "monitor" if no_args(&ctx) => {
                ctx.ok(json!({}));
                return Flow::Monitor;
            }
            "quit" if no_args(&ctx) => {
                ctx.ok(json!({}));
                return Flow::Quit;
            }
            // A command that refused its arguments above, or (never) an unknown word.
            _ => {}
        }
        Flow::Next
    }

    /// `send [--confirm] NAME [DATA]`.
    async fn send(self: &Arc<Self>, ctx: Ctx, rest: &str) {
        let (confirm, rest) = match split_word(rest) {
            ("--confirm", r) => (true, r),
            _ => (false, rest),
        };
        let Some((name, data)) = name_data(rest) else {
            return ctx.err("usage: send [--confirm] NAME [DATA]");
        };
        let e = &self.espial;
        if !confirm {
            return match e.send(name, data.as_bytes().to_vec()).await {
                Ok(id) => ctx.ok(json!({"name": name, "send": id.0})),
                Err(err) => ctx.err(err),
            };
        }
        // Listen before sending so that the report cannot be missed; the send itself is
        // queued in order with the other commands, only the wait runs aside.
        let mut events = e.events();
        let id = match e.send(name, data.as_bytes().to_vec()).await {
            Ok(id) => id,
            Err(err) => return ctx.err(err),
        };
        let name = name.to_string();
        tokio::spawn(async move {
            let wait = async {
                while let Some(ev) = events.recv().await {
                    if let Event::SendOutcome(o) = ev {
                        if o.send == id {
                            return Some(o);
                        }
                    }
                }
                None
            };
            match tokio::time::timeout(CONFIRM_WAIT, wait).await {
                Ok(Some(o)) => ctx.ok(json!({
                    "name": name,
                    "send": id.0,
                    "delivered": ids(&o.delivered),
                    "failed": ids(&o.failed),
                })),
                _ => ctx.err(format!("send {}: no delivery report", id.0)),
            }
        });
    }

    /// `send-to ID[,ID..] NAME [DATA]`: ids, unique id prefixes or member names.
    async fn send_to(&self, ctx: Ctx, rest: &str) {
        let (keys, rest) = split_word(rest);
        let Some((name, data)) = name_data(rest).filter(|_| !keys.is_empty()) else {
            return ctx.err("usage: send-to ID[,ID..] NAME [DATA]");
        };
        let nodes = self.espial.nodes();
        let mut targets = Vec::new();
        for key in keys.split(',').filter(|s| !s.is_empty()) {
            match resolve(&nodes, key) {
                Ok(id) => targets.push(id),
                Err(err) => return ctx.err(err),
            }
        }
        match self
            .espial
            .send_to(targets, name, data.as_bytes().to_vec())
            .await
        {
            Ok(id) => ctx.ok(json!({"name": name, "send": id.0})),
            Err(err) => ctx.err(err),
        }
    }

    /// `request [--timeout MS] NAME [DATA]`: one line per reply as it comes
    /// (`"done": false`), then the summary (`"done": true`).
    async fn request(&self, ctx: Ctx, rest: &str) {
        let (timeout, rest) = match split_word(rest) {
            ("--timeout", r) => {
                let (t, r) = split_word(r);
                match parse_duration(t) {
                    Some(t) if t <= MAX_REQUEST_TIMEOUT => (t, r),
                    _ => {
                        return ctx.err(format!(
                            "--timeout: milliseconds (or 500ms, 2s), at most {} s",
                            MAX_REQUEST_TIMEOUT.as_secs()
                        ))
                    }
                }
            }
            _ => (DEFAULT_REQUEST_TIMEOUT, rest),
        };
        let Some((name, data)) = name_data(rest) else {
            return ctx.err("usage: request [--timeout MS] NAME [DATA]");
        };
        let e = &self.espial;
        let mut pending = match e
            .start_request(name, data.as_bytes().to_vec(), timeout)
            .await
        {
            Ok(p) => p,
            Err(err) => return ctx.err(err),
        };
        let rid = pending.id();
        let name = name.to_string();
        tokio::spawn(async move {
            // Replies come to this request only (never as `reply` events on stdout).
            let stream = async {
                while let Some((from, data)) = pending.next_reply().await {
                    let mut v = json!({
                        "name": name, "request": rid.0, "done": false,
                        "from": from.to_string(),
                    });
                    put_data(&mut v, &data);
                    ctx.ok(v);
                }
            };
            let _ = tokio::time::timeout(timeout + Duration::from_secs(5), stream).await;
            match pending.replies().await {
                Ok(r) => ctx.ok(json!({
                    "name": name,
                    "request": rid.0,
                    "done": true,
                    "answered": r.replies.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
                    "missing": ids(&r.missing),
                })),
                Err(err) => ctx.err(err),
            }
        });
    }

    /// `reply REQUEST DATA`: REQUEST is the `"request"` number of a custom event received,
    /// or `FROM/NUMBER` (FROM an id, unique id prefix or name) when several senders used
    /// the same number.
    async fn reply(&self, ctx: Ctx, rest: &str) {
        let (key, data) = split_word(rest);
        if key.is_empty() {
            return ctx.err("usage: reply REQUEST DATA");
        }
        let (from, num) = match key.split_once('/') {
            Some((f, n)) => (Some(f), n),
            None => (None, key),
        };
        let Ok(num) = num.parse::<u64>() else {
            return ctx.err(format!(
                "reply: {:?} is not a request number",
                echo(key.as_bytes())
            ));
        };
        let from = match from {
            Some(f) => match resolve(&self.espial.nodes(), f) {
                Ok(id) => Some(id),
                Err(err) => return ctx.err(err),
            },
            None => None,
        };
        let found: Vec<(NodeId, RequestId)> = self
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(f, r)| r.0 == num && from.is_none_or(|x| x == *f))
            .copied()
            .collect();
        let (to, request) = match found.as_slice() {
            [] => return ctx.err(format!("reply: no request {key} received")),
            [one] => *one,
            _ => {
                return ctx.err(format!(
                    "reply: several senders used request {num}; write FROM/{num}"
                ))
            }
        };
        match self
            .espial
            .reply_to(to, request, data.as_bytes().to_vec())
            .await
        {
            Ok(()) => ctx.ok(json!({"request": request.0, "to": to.to_string()})),
            Err(err) => ctx.err(err),
        }
    }
}

/// A member as printed by `nodes`: [`node_json`] plus its subscriptions.
fn member_json(n: &NodeInfo) -> Value {
    let mut v = node_json(n);
    v["subscriptions"] = json!(n.subscriptions);
    v
}

fn ids(v: &[NodeId]) -> Vec<String> {
    v.iter().map(|i| i.to_string()).collect()
}

fn put_data(v: &mut Value, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(s) => v["data"] = s.into(),
        Err(_) => {
            v["data"] = Value::Null;
            v["data_hex"] = data
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into();
        }
    }
}

/// `NAME [DATA]`: the name and everything after it.
fn name_data(rest: &str) -> Option<(&str, &str)> {
    let (name, data) = match rest.split_once(' ') {
        Some((n, d)) => (n, d),
        None => (rest, ""),
    };
    (!name.is_empty()).then_some((name, data))
}

/// Exactly one word.
fn one_word(rest: &str) -> Option<&str> {
    (!rest.is_empty() && !rest.contains(' ')).then_some(rest)
}

pub(crate) fn parse_kv(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

/// `500`, `500ms` or `2s`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(n) = s.strip_suffix("ms") {
        return n.parse().ok().map(Duration::from_millis);
    }
    if let Some(n) = s.strip_suffix('s') {
        return n.parse().ok().map(Duration::from_secs);
    }
    s.parse().ok().map(Duration::from_millis)
}

/// Fewest hex digits accepted as an id prefix (shorter ones match too many ids by chance).
pub(crate) const MIN_ID_PREFIX: usize = 4;

/// A live member by full id (32 hex digits), unique id prefix (at least
/// [`MIN_ID_PREFIX`] hex digits, any case) or exact name. A key that matches several
/// members (a prefix of several ids, or a name of one and a prefix of another's id) is an
/// error naming them; so is one that matches none.
pub(crate) fn resolve(nodes: &[NodeInfo], key: &str) -> Result<NodeId, String> {
    let shown = echo(key.as_bytes());
    let hex = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && key.len() == 32 {
        let id: NodeId = key
            .parse()
            .map_err(|e: espial::ParseNodeIdError| e.to_string())?;
        return match nodes.iter().any(|n| n.id == id) {
            true => Ok(id),
            false => Err(format!("node {id} is not a live member")),
        };
    }
    let lower = key.to_ascii_lowercase();
    let found: Vec<NodeId> = nodes
        .iter()
        .filter(|n| {
            n.name == key
                || (hex && key.len() >= MIN_ID_PREFIX && n.id.to_string().starts_with(&lower))
        })
        .map(|n| n.id)
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] if hex && key.len() < MIN_ID_PREFIX => Err(format!(
            "{shown:?} is too short for an id prefix (at least {MIN_ID_PREFIX} hex digits) \
             and is no member's name"
        )),
        [] => Err(format!(
            "no live member with id prefix or name {shown:?} (`nodes` lists them)"
        )),
        several => Err(format!(
            "{shown:?} is ambiguous: it matches {} members ({}); give more of the id",
            several.len(),
            several
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_values() {
        assert_eq!(parse_kv("a=b=c"), Some(("a".into(), "b=c".into())));
        assert_eq!(parse_kv("=x"), None);
        assert_eq!(name_data("jobs a b"), Some(("jobs", "a b")));
        assert_eq!(name_data("jobs"), Some(("jobs", "")));
        assert_eq!(one_word("a b"), None);
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
    }

    #[test]
    fn ids_by_unique_prefix_of_at_least_4_hex_digits_or_by_name() {
        let n = |i: u128, name: &str| {
            NodeInfo::new(NodeId(i << 104), name, "127.0.0.1:1".parse().unwrap())
        };
        // ids abcd01.., abcd02.., 1234ff..; names "a", "abcd01" (another node's id prefix),
        // "c".
        let nodes = [n(0xabcd01, "a"), n(0xabcd02, "abcd01"), n(0x1234ff, "c")];
        let full = |i: usize| nodes[i].id.to_string();
        assert_eq!(resolve(&nodes, "abcd02"), Ok(nodes[1].id));
        assert_eq!(resolve(&nodes, "ABCD02"), Ok(nodes[1].id));
        assert_eq!(resolve(&nodes, "1234"), Ok(nodes[2].id));
        assert_eq!(resolve(&nodes, &full(2)), Ok(nodes[2].id));
        assert_eq!(resolve(&nodes, &full(0).to_uppercase()), Ok(nodes[0].id));
        // Names: exact, any length.
        assert_eq!(resolve(&nodes, "a"), Ok(nodes[0].id));
        assert_eq!(resolve(&nodes, "c"), Ok(nodes[2].id));
        // Ambiguous: a prefix of two ids, each named in the error.
        let e = resolve(&nodes, "abcd").unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains(&full(0)) && e.contains(&full(1)),
            "{e}"
        );
        // Ambiguous: the name of one node and a prefix of another's id.
        let e = resolve(&nodes, "abcd01").unwrap_err();
        assert!(e.contains("ambiguous"), "{e}");
        // Too short: fewer than 4 hex digits, and no name.
        let e = resolve(&nodes, "123").unwrap_err();
        assert!(e.contains("too short") && e.contains("4 hex digits"), "{e}");
        // Unknown prefix, unknown name, unknown full id.
        let e = resolve(&nodes, "ffff").unwrap_err();
        assert!(e.contains("no live member") && e.contains("ffff"), "{e}");
        assert!(resolve(&nodes, "zed")
            .unwrap_err()
            .contains("no live member"));
        let e = resolve(&nodes, &"f".repeat(32)).unwrap_err();
        assert!(e.contains("not a live member"), "{e}");
    }
}
