//! The `espial` command line without any socket: help, the bench slot, bad arguments.

use std::process::Command;

fn espial(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_espial"))
        .args(args)
        .output()
        .expect("run espial")
}

#[test]
fn bench_has_help() {
    // `espial bench` itself runs the benchmarks (inside a namespace); only its help here.
    let out = espial(&["bench", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("bench"));
}

#[test]
fn help_lists_the_subcommands_and_agent_commands() {
    let out = espial(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "agent", "bench"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = espial(&["agent", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--peers",
        "--multicast",
        "--meta",
        "--join",
        "--psk-file",
        "--profile",
        "--quorum",
    ] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}

#[test]
fn bad_arguments_fail_before_any_socket() {
    let out = espial(&["demo", "--nodes", "99"]);
    assert!(!out.status.success());
    let out = espial(&["agent", "--bind", "not-an-address"]);
    assert!(!out.status.success());
}
