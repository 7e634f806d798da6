//! The workspace's `rust-version` is honest: no locked dependency needs a newer Rust.
//! (Clippy's `incompatible_msrv` lint checks our own code against the same number.)
//! Runs `cargo metadata --offline` on the lock file; no socket.

use serde_json::Value;
use std::process::Command;

fn version(s: &str) -> Vec<u64> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_ours() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &target])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let used: Vec<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let mut ours = None;
    let mut too_new = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let Some(rv) = p["rust_version"].as_str() else {
            continue;
        };
        if members.contains(&id) {
            let o = ours.get_or_insert_with(|| rv.to_string());
            assert_eq!(o, rv, "every crate inherits the workspace rust-version");
        } else if used.contains(&id) {
            too_new.push((rv.to_string(), p["name"].as_str().unwrap().to_string()));
        }
    }
    let ours = ours.expect("the workspace crates declare rust-version");
    too_new.retain(|(rv, _)| version(rv) > version(&ours));
    assert!(
        too_new.is_empty(),
        "locked dependencies need a newer Rust than rust-version = {ours}: {too_new:?}; \
         raise [workspace.package] rust-version (and the README) or pin older versions"
    );
}
