use espial_core::rng::Rng;
use espial_sim::schedule::{run_case, Case, Op};
use std::time::{Duration, Instant};
fn main() {
    let mut r = Rng::new(99);
    let t = Instant::now();
    let mut fails = 0;
    let mut worst = 0f64;
    for _ in 0..256 {
        let steps = (0..r.below(14))
            .map(|_| {
                let gap = 20 + r.below(1480) as u64;
                let op = match r.below(10) {
                    0 => Op::Crash(r.below(64)),
                    1 => Op::Restart(r.below(64)),
                    2 => Op::Leave(r.below(64)),
                    3 => Op::Join,
                    4 => Op::Pause(r.below(64), 100 + r.below(1900) as u64),
                    5 => Op::Partition(r.next_u64() as u32),
                    6 => Op::Heal,
                    7 => Op::LossBurst(5 + r.below(55) as u8, 200 + r.below(2800) as u64),
                    8 => Op::Promote(r.below(64)),
                    _ => Op::Metadata(r.below(64), r.below(60000) as u16),
                };
                (gap, op)
            })
            .collect();
        let c = Case {
            seed: r.next_u64(),
            nodes: 3 + r.below(18),
            ineligible: 0,
            quorum: r.below(7) == 0,
            drift: 0,
            steps,
        };
        let t1 = Instant::now();
        let (_, v) = run_case(&c, false, Duration::from_secs(40), &[]);
        worst = worst.max(t1.elapsed().as_secs_f64());
        if !v.is_empty() {
            fails += 1;
            if fails <= 8 {
                println!("FAIL {}\n  {}", c.to_json(), v[0]);
            }
        }
    }
    println!(
        "256 cases in {:.1}s, worst {:.2}s, {fails} failing",
        t.elapsed().as_secs_f64(),
        worst
    );
}
