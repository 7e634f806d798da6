//! The membership and election scenarios with the real cipher (X25519 + HKDF + AES-128-GCM,
//! `--cipher aes128gcm`) pass exactly as with the test cipher (issue 4 acceptance).

use espial_sim::{run_scenario, CipherKind, Params};

fn run(scenario: &str, nodes: usize, seed: u64) {
    let mut p = Params::new(scenario, nodes, seed);
    p.cipher = CipherKind::Aes128Gcm;
    let r = run_scenario(&p).expect("scenario runs");
    assert!(
        r.ok(),
        "{scenario} with aes128gcm, seed {seed}: {:?}; reproduce with: {}",
        r.violations,
        p.command()
    );
    assert_eq!(
        r.json.get("cipher").and_then(|c| c.as_str()),
        Some("aes128gcm")
    );
}

#[test]
fn steady_with_aes128gcm() {
    run("steady", 5, 1);
}

#[test]
fn master_crash_with_aes128gcm() {
    run("master-crash", 5, 2);
}

#[test]
fn partition_heal_with_aes128gcm() {
    run("partition-heal", 5, 3);
}
