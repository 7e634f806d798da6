//! `espial agent` as a tool (docs/AGENT.md): input read as bytes (invalid UTF-8, long
//! lines, extra arguments), client ids, request/reply, send-to-master, confirmed sends,
//! the control socket and its client subcommands, event handlers, the config file. Real
//! agent processes on 127.0.6x.y, inside the private network namespace.

use espial_tests::agent::Agents;
use espial_tests::{addr, require_netns};
use serde_json::Value;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_espial-cli");
const T: Duration = Duration::from_secs(15);

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Agents a1..aN on 127.0.<net>.h:port, static peers, local profile, plus `extra(h)` flags;
/// waits until every agent sees the others.
async fn start(net: u8, port: u16, n: u8, extra: impl Fn(u8) -> Vec<String>) -> Agents {
    let peers: Vec<String> = (1..=n).map(|h| addr(net, h, port).to_string()).collect();
    let mut a = Agents::new();
    for h in 1..=n {
        let mut args = s(&["--profile", "local", "--bind"]);
        args.push(addr(net, h, port).to_string());
        args.push("--peers".into());
        args.push(peers.join(","));
        args.extend(extra(h));
        a.spawn(BIN, &format!("a{h}"), &args);
    }
    let want = usize::from(n) - 1;
    a.wait("agents joined", T, |a| {
        a.agents.iter().all(|x| {
            x.id().is_some()
                && x.events("added_node").count() >= want
                && x.master_by_events().is_some()
        })
    })
    .await;
    a
}

fn err_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v["ok"] == false).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_bytes_with_a_line_limit_and_strict_arguments() {
    require_netns!();
    let mut a = start(60, 27400, 1, |_| Vec::new()).await;
    // Invalid UTF-8: an error, and the agent keeps reading.
    a.write(0, b"nodes \xff\xfe\n").await;
    // A 2 MiB line: refused (limit 1 MiB + 1 KiB), echo cut to 64 bytes.
    let mut long = b"send jobs ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 2 << 20));
    long.push(b'\n');
    a.write(0, &long).await;
    // An unknown 100 KB command: its echo is cut too.
    a.cmd(0, &format!("@big frobnicate{}", "y".repeat(100_000)))
        .await;
    a.cmd(0, "@extra nodes everything").await;
    a.cmd(0, "@two join a b").await;
    a.cmd(0, "@m master").await;
    a.wait("errors then the master reply", T, |a| {
        a.agents[0].reply_to("m").is_some_and(|v| v["ok"] == true)
    })
    .await;
    let lines = &a.agents[0].lines;
    let errs = err_lines(lines);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0]["error"].as_str().unwrap().contains("invalid UTF-8"));
    assert_eq!(errs[0]["reply"], Value::Null);
    assert!(errs[1]["error"].as_str().unwrap().contains("refused"));
    assert_eq!(errs[2]["id"], "big");
    assert_eq!(errs[2]["reply"], Value::Null);
    assert!(errs[2]["error"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    for e in &errs[..3] {
        let input = e["input"].as_str().unwrap_or("");
        assert!(
            input.len() <= 64 + 3,
            "echo not truncated: {} bytes",
            input.len()
        );
        assert!(e.to_string().len() < 1000, "error line too long: {e}");
    }
    assert_eq!(
        (errs[3]["id"].as_str(), errs[3]["reply"].as_str()),
        (Some("extra"), Some("nodes"))
    );
    assert_eq!(
        (errs[4]["id"].as_str(), errs[4]["reply"].as_str()),
        (Some("two"), Some("join"))
    );
    // `quit` still works after all that.
    a.cmd(0, "@q quit").await;
    let status = a.wait_exit(0, T).await;
    assert!(status.success());
    a.pump();
    assert!(a.agents[0].reply_to("q").is_some_and(|v| v["ok"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_send_to_master_and_confirmed_send() {
    require_netns!();
    let mut a = start(61, 27410, 2, |h| {
        if h == 2 {
            s(&["--join", "jobs", "--not-eligible"])
        } else {
            Vec::new()
        }
    })
    .await;
    let id1 = a.agents[0].id().unwrap();
    let id2 = a.agents[1].id().unwrap();
    a.wait(
        "a2 sees a1 as master and a1 sees a2's subscription",
        T,
        |a| a.agents[1].master_by_events().as_deref() == Some(id1.as_str()),
    )
    .await;
    // Subscriptions are gossiped: retry the confirmed send until a2 is a target.
    let mut delivered = false;
    for k in 0..50 {
        a.cmd(0, &format!("@c{k} send --confirm jobs hello")).await;
        let tag = format!("c{k}");
        a.wait("confirmed send", T, |a| {
            a.agents[0].reply_to(&tag).is_some()
        })
        .await;
        let r = a.agents[0].reply_to(&tag).unwrap().clone();
        assert_eq!(r["ok"], true, "{r}");
        if r["delivered"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == id2.as_str()))
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "a2 never acknowledged a confirmed send");

    // Request from a1; a2 answers by hand with `reply N DATA`.
    a.cmd(0, "@r request --timeout 5s jobs ping").await;
    a.wait("a2 receives the request", T, |a| {
        a.agents[1]
            .events("custom")
            .any(|v| v["data"] == "ping" && v["request"].is_u64())
    })
    .await;
    let n = a.agents[1]
        .events("custom")
        .find(|v| v["data"] == "ping")
        .unwrap()["request"]
        .as_u64()
        .unwrap();
    a.cmd(1, &format!("@p reply {n} pong")).await;
    a.wait("reply streamed then summary", T, |a| {
        a.agents[0].reply_to("r").is_some_and(|v| v["done"] == true)
    })
    .await;
    let req: Vec<&Value> = a.agents[0]
        .lines
        .iter()
        .filter(|v| v["id"] == "r")
        .collect();
    assert_eq!(req.len(), 2, "{req:#?}");
    assert_eq!(req[0]["done"], false);
    assert_eq!(req[0]["data"], "pong");
    assert_eq!(req[0]["from"], id2.as_str());
    assert_eq!(req[1]["answered"], serde_json::json!([id2]));
    assert_eq!(req[1]["missing"], serde_json::json!([]));
    // Delivered once: the reply answered the `request` command, it is not also an event.
    assert_eq!(a.agents[0].events("reply").count(), 0);
    assert_eq!(a.agents[0].events("request_done").count(), 0);
    a.wait("a2's reply acknowledged", T, |a| {
        a.agents[1].reply_to("p").is_some()
    })
    .await;
    assert_eq!(a.agents[1].reply_to("p").unwrap()["ok"], true);
    // A reply to a request nobody sent is an error.
    a.cmd(1, "@bad reply 999999 x").await;
    a.wait("bad reply refused", T, |a| {
        a.agents[1].reply_to("bad").is_some()
    })
    .await;
    assert_eq!(a.agents[1].reply_to("bad").unwrap()["ok"], false);

    // send-to-master from a2 reaches a1; send-to by a unique id prefix reaches a2 (the
    // shortest unique one, at least 4 hex digits, in capitals too), and so does the full id.
    a.cmd(1, "@sm send-to-master ops to-the-master").await;
    let unique = (4..=32).find(|&k| id1[..k] != id2[..k]).unwrap();
    a.cmd(
        0,
        &format!("@st send-to {} direct by-prefix", &id2[..unique]),
    )
    .await;
    a.cmd(
        0,
        &format!(
            "@su send-to {} direct by-caps",
            id2[..unique].to_uppercase()
        ),
    )
    .await;
    a.cmd(0, &format!("@sf send-to {id2} direct by-full-id"))
        .await;
    a.wait("directed sends", T, |a| {
        a.agents[0]
            .events("custom")
            .any(|v| v["data"] == "to-the-master")
            && ["by-prefix", "by-caps", "by-full-id"]
                .iter()
                .all(|d| a.agents[1].events("custom").any(|v| v["data"] == *d))
    })
    .await;
    // Too short, unknown, and a full id that is no member: clear errors, nothing sent.
    let unknown = (0..16u8)
        .map(|c| format!("{c:x}").repeat(6))
        .find(|p| !id1.starts_with(p.as_str()) && !id2.starts_with(p.as_str()))
        .unwrap();
    a.cmd(0, &format!("@e1 send-to {} direct x", &id2[..3]))
        .await;
    a.cmd(0, &format!("@e2 send-to {unknown} direct x")).await;
    a.cmd(0, &format!("@e3 send-to {} direct x", "0".repeat(32)))
        .await;
    a.wait("the three refusals", T, |a| {
        ["e1", "e2", "e3"]
            .iter()
            .all(|t| a.agents[0].reply_to(t).is_some())
    })
    .await;
    let err = |t: &str| {
        let r = a.agents[0].reply_to(t).unwrap();
        assert_eq!(r["ok"], false, "{r}");
        r["error"].as_str().unwrap().to_string()
    };
    let e1 = err("e1");
    assert!(
        e1.contains("too short") && e1.contains("4 hex digits"),
        "{e1}"
    );
    let e2 = err("e2");
    assert!(
        e2.contains("no live member") && e2.contains(&unknown),
        "{e2}"
    );
    assert!(err("e3").contains("not a live member"));
    a.quit_all().await;
}

/// Runs `espial ARGS` (a client subcommand) and returns (success, JSON lines).
async fn client(args: &[&str]) -> (bool, Vec<Value>) {
    let out = tokio::time::timeout(T, tokio::process::Command::new(BIN).args(args).output())
        .await
        .expect("client ends")
        .expect("run client");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("client prints JSON lines"))
        .collect();
    (out.status.success(), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_and_client_subcommands() {
    require_netns!();
    let dir = std::env::temp_dir().join(format!("espial-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("unix:{}", dir.join("a1.sock").display());
    let sock2 = sock.clone();
    let mut a = start(62, 27420, 2, move |h| match h {
        1 => vec!["--rpc".to_string(), sock2.clone()],
        _ => s(&["--join", "jobs"]),
    })
    .await;
    let id2 = a.agents[1].id().unwrap();

    let (ok, lines) = client(&["members", "--rpc", &sock]).await;
    assert!(ok);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reply"], "nodes");
    assert_eq!(lines[0]["nodes"].as_array().map(Vec::len), Some(2));

    // monitor: a long-lived client that sees events.
    let mut monitor = tokio::process::Command::new(BIN)
        .args(["monitor", "--rpc", &sock])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut mon_out = tokio::io::BufReader::new(monitor.stdout.take().unwrap());
    // Its first line acknowledges `monitor`: from then on it sees every event.
    let mut first = String::new();
    tokio::time::timeout(
        T,
        tokio::io::AsyncBufReadExt::read_line(&mut mon_out, &mut first),
    )
    .await
    .expect("monitor acknowledged")
    .unwrap();
    let ack: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (ack["reply"].as_str(), ack["ok"].as_bool()),
        (Some("monitor"), Some(true))
    );

    // send through the socket until a2 (subscriber) gets it.
    let mut got = false;
    for k in 0..50 {
        let data = format!("via-rpc-{k}");
        let (ok, lines) = client(&["send", "--rpc", &sock, "--confirm", "jobs", &data]).await;
        assert!(ok, "{lines:?}");
        if lines[0]["delivered"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == id2.as_str()))
        {
            got = true;
            break;
        }
    }
    assert!(got, "a confirmed send through the socket never reached a2");
    a.wait("a2 got the event sent through the socket", T, |a| {
        a.agents[1].events("custom").any(|v| {
            v["data"]
                .as_str()
                .is_some_and(|d| d.starts_with("via-rpc-"))
        })
    })
    .await;

    // The monitor printed a send_outcome event for those sends.
    let seen = tokio::time::timeout(T, async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        loop {
            line.clear();
            if mon_out.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            let v: Value = serde_json::from_str(&line).expect("monitor prints JSON");
            if v["event"] == "send_outcome" {
                return true;
            }
        }
    })
    .await;
    assert_eq!(seen, Ok(true), "monitor showed no send_outcome event");
    let _ = monitor.start_kill();

    // request through the socket: nobody answers, the summary lists a2 as missing.
    let (ok, lines) = client(&["request", "--rpc", &sock, "--timeout", "300ms", "jobs", "q"]).await;
    assert!(ok, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["missing"], serde_json::json!([id2]));

    // An error from the agent makes the client fail; so does a missing socket.
    let (ok, lines) = client(&["request", "--rpc", &sock, "--timeout", "9999s", "jobs"]).await;
    assert!(!ok);
    assert_eq!(lines[0]["ok"], false);
    let (ok, _) = client(&["members", "--rpc", "unix:/nonexistent/espial.sock"]).await;
    assert!(!ok);
    a.quit_all().await;
    assert!(
        !dir.join("a1.sock").exists(),
        "the socket file is removed when the agent stops"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_handlers_run_and_failing_or_hanging_ones_are_reported() {
    require_netns!();
    let dir = std::env::temp_dir().join(format!("espial-handlers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seen = dir.join("seen.jsonl");
    let pidfile = dir.join("hang.pid");
    let ok_cmd = format!("custom:jobs=cat >> {}", seen.display());
    let hang_cmd = format!("custom:hang=echo $$ > {}; sleep 30", pidfile.display());
    let mut a = start(63, 27430, 2, move |h| match h {
        2 => vec![
            "--join".into(),
            "jobs".into(),
            "--join".into(),
            "fail".into(),
            "--join".into(),
            "hang".into(),
            "--on-event".into(),
            ok_cmd.clone(),
            "--on-event".into(),
            "custom:fail=exit 3".into(),
            "--on-event".into(),
            hang_cmd.clone(),
            "--on-event-timeout".into(),
            "700".into(),
        ],
        _ => Vec::new(),
    })
    .await;
    // Retry a confirmed send until a1 knows a2's subscriptions, then one event of each kind.
    let mut k = 0;
    loop {
        a.cmd(0, &format!("@s{k} send --confirm hang h")).await;
        let tag = format!("s{k}");
        a.wait("confirmed", T, |a| a.agents[0].reply_to(&tag).is_some())
            .await;
        if a.agents[0].reply_to(&tag).unwrap()["delivered"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            break;
        }
        k += 1;
        assert!(k < 50, "a2's subscriptions never reached a1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.cmd(0, "send jobs job-1").await;
    a.cmd(0, "send fail f").await;
    a.wait("handler reports", T, |a| {
        a.agents[1]
            .events("handler_failed")
            .any(|v| v["status"] == 3)
            && a.agents[1].events("handler_timeout").next().is_some()
    })
    .await;
    let t = a.agents[1]
        .events("handler_timeout")
        .next()
        .unwrap()
        .clone();
    assert_eq!(t["for"], "custom");
    assert_eq!(t["timeout_ms"], 700);
    // The hung handler was killed with its process group (its shell and its `sleep`).
    let pgid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered asynchronously: allow the kernel a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !live_in_group(pgid).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        live_in_group(pgid),
        Vec::<u32>::new(),
        "the hanging handler still runs"
    );
    // The successful handler got the event's JSON line on stdin.
    let deadline = std::time::Instant::now() + T;
    let line = loop {
        let text = std::fs::read_to_string(&seen).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "handler output missing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["data"].as_str()),
        (Some("custom"), Some("job-1"))
    );
    a.quit_all().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_is_equivalent_to_flags() {
    require_netns!();
    let dir = std::env::temp_dir().join(format!("espial-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    std::fs::write(
        &conf,
        format!(
            "bind = \"{}\"\npeers = [\"{}\"]\nprofile = \"local\"\nmeta = [\"role=worker\", \"zone=b\"]\njoin = [\"jobs\"]\npriority = 7\n",
            addr(64, 1, 27440),
            addr(64, 2, 27440)
        ),
    )
    .unwrap();
    let mut a = Agents::new();
    // --meta on the command line replaces the file's list; the rest comes from the file.
    a.spawn(
        BIN,
        "c1",
        &[
            "--config".to_string(),
            conf.display().to_string(),
            "--meta".into(),
            "role=flag".into(),
        ],
    );
    a.cmd(0, "@i info").await;
    a.cmd(0, "@n nodes").await;
    a.wait("info and nodes", T, |a| a.agents[0].reply_to("n").is_some())
        .await;
    let info = a.agents[0].reply_to("i").unwrap().clone();
    assert_eq!(info["node"]["addr"], addr(64, 1, 27440).to_string());
    assert_eq!(
        info["node"]["metadata"],
        serde_json::json!({"role": "flag"})
    );
    // `join` from the file reaches the node's task asynchronously: ask until it shows.
    for k in 0..100 {
        let tag = format!("n{k}");
        a.cmd(0, &format!("@{tag} nodes")).await;
        a.wait("nodes", T, |a| a.agents[0].reply_to(&tag).is_some())
            .await;
        let nodes = a.agents[0].reply_to(&tag).unwrap().clone();
        if nodes["nodes"][0]["subscriptions"] == serde_json::json!(["jobs"]) {
            break;
        }
        assert!(k < 99, "--config join never applied: {nodes}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.quit_all().await;

    // An unknown key is an error before any socket.
    std::fs::write(&conf, "bind = \"127.0.64.1:27441\"\nfrobnicate = 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processes (not zombies) whose process group is `pgid`.
fn live_in_group(pgid: u32) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": fields after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string() {
            live.push(pid);
        }
    }
    live
}

/// `GET path` on `addr`; returns the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to --metrics");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut body))
        .await
        .expect("response")
        .unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_in_prometheus_format() {
    require_netns!();
    let maddr = addr(65, 1, 27459);
    let m = maddr.to_string();
    let mut a = start(65, 27450, 2, move |h| match h {
        1 => vec!["--metrics".to_string(), m.clone()],
        _ => s(&["--join", "jobs"]),
    })
    .await;
    // Confirmed sends until a2's subscription is known, then enough sends for the latency
    // sample (one send in 16) to have reports.
    let mut k = 0;
    loop {
        a.cmd(0, &format!("@s{k} send --confirm jobs x")).await;
        let tag = format!("s{k}");
        a.wait("confirmed", T, |a| a.agents[0].reply_to(&tag).is_some())
            .await;
        if a.agents[0].reply_to(&tag).unwrap()["delivered"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            break;
        }
        k += 1;
        assert!(k < 50, "a2's subscription never reached a1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for j in 0..40 {
        a.cmd(0, &format!("@m{j} send --confirm jobs m{j}")).await;
    }
    a.wait("40 delivery reports", T, |a| {
        a.agents[0].reply_to("m39").is_some()
    })
    .await;
    let deadline = std::time::Instant::now() + T;
    let body = loop {
        let r = http_get(maddr, "/metrics").await;
        if r.contains("espial_members{node=\"a1\"} 2")
            && r.contains("espial_delivery_latency_seconds_count{node=\"a1\"}")
            && !r.contains("espial_delivery_latency_seconds_count{node=\"a1\"} 0")
        {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never complete:\n{r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"));
    for series in [
        "# TYPE espial_bytes_out_total counter",
        "espial_handshakes_completed_total{node=\"a1\"}",
        "espial_dropped_total{node=\"a1\",reason=\"replays\"}",
        "espial_events_sent_total{node=\"a1\"}",
        "espial_event_deliveries_total{node=\"a1\"}",
        "espial_is_master{node=\"a1\"}",
        "# TYPE espial_delivery_latency_seconds histogram",
        "espial_delivery_latency_seconds_bucket{node=\"a1\",le=\"+Inf\"}",
    ] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
    assert!(http_get(maddr, "/other").await.starts_with("HTTP/1.0 404"));
    a.quit_all().await;
}
