//! Seed sweeps of the election fault families (`espial_sim::families`): partitions with the
//! master on either side, one-way links and mutes, pauses of the master, slow nodes and
//! clock-rate drift. In quorum mode two nodes must never act as master at the same instant
//! (checked after every simulator step); after the faults stop the settle invariants must
//! hold. 256 seeds per family in CI; `ESPIAL_LONG=1` runs 10,000 (or `ESPIAL_SIM_SEEDS=N`).

use espial_sim::families::{family_case, FAMILIES};
use espial_sim::schedule::run_case;
use std::time::Duration;

fn seeds() -> u64 {
    if let Some(n) = std::env::var("ESPIAL_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("ESPIAL_LONG").as_deref() == Ok("1") {
        10_000
    } else {
        256
    }
}

fn sweep(family: &str) {
    let mut failures = Vec::new();
    for seed in 0..seeds() {
        let c = family_case(family, seed);
        let (_, v) = run_case(&c, false, Duration::from_secs(30), &[]);
        if !v.is_empty() {
            failures.push(format!(
                "family {family} seed {seed} (nodes {} quorum {}): {}\n  replay: cargo run -p espial-sim --example replay -- '{}'",
                c.nodes,
                c.quorum,
                v[..v.len().min(3)].join(" | "),
                c.to_json()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seed(s):\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

macro_rules! family_test {
    ($name:ident, $family:expr) => {
        #[test]
        fn $name() {
            assert!(FAMILIES.contains(&$family));
            sweep($family);
        }
    };
}

family_test!(family_partition, "partition");
family_test!(family_one_way, "one-way");
family_test!(family_pause, "pause");
family_test!(family_slow, "slow");
family_test!(family_drift, "drift");
family_test!(family_mixed, "mixed");
family_test!(family_large, "large");
