//! The `storehost` binary: `serve` runs the host; `plugin inspect` checks a
//! component.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
