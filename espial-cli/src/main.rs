//! The `espial` command: `demo`, `agent` and `bench`. See `espial --help`.
#![forbid(unsafe_code)]

mod cli;

/// The binary's allocator. The espial libraries allocate per event (queues, frames, events)
/// from several threads; glibc's malloc spends much of that time in its arena locks and
/// consolidation, mimalloc does not (`espial bench events`: 1.3-1.4x the deliveries/s,
/// see docs/BENCHMARKS.md). Applications that embed espial choose their own allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
