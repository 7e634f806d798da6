//! Prints the crypto microbenchmark: our AES-GCM record wrapper next to raw aws-lc-rs.
//! Opens no sockets.
//!
//! ```text
//! cargo run --release -p espial-crypto --example crypto_bench [-- --quick] [--json]
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let report = espial_crypto::bench::run(quick);
    if json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    if report.errors > 0 {
        std::process::exit(1);
    }
}
