//! The `espial` command: `demo`, `agent` and `bench`. See `espial --help`.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
