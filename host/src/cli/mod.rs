//! Command-line parsing and the exit-code policy: 0 on success, 1 when
//! serving fails, 2 for a bad plugin file or bad arguments.

mod accept;
mod inspect;
mod numbers;
mod plugin_new;
mod plugin_test;
mod restore;
mod serve;
mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "storehost",
    version,
    about = "Keeps an API proxy's config and tokens in a workspace, mirrored to a backend plugin."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bootstrap the workspace and keep it in step with the backend until SIGINT/SIGTERM.
    Serve(Box<serve::ServeArgs>),
    /// Show backend, workspace, lineage, last sync, outbox length and conflicts.
    Status(status::StatusArgs),
    /// Bring back a workspace file the host replaced or deleted (`--list` shows the trash).
    Restore(restore::RestoreArgs),
    /// Let the next pull that deletes many documents at once through (within an hour), once.
    AcceptRemoteDeletions(accept::AcceptArgs),
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print the contract version, every import and export and loadability of a
    /// component; with --manifest, which imports it grants.
    Inspect(inspect::InspectArgs),
    /// Run the conformance kit against a component: behaviour, two contending
    /// instances, the memory cap and deadline, and a line per import.
    Test(Box<plugin_test::TestArgs>),
    /// Write a new plugin crate (an example backend, a README and a manifest)
    /// that builds for wasm32-wasip2 and passes `plugin test` as generated.
    New(plugin_new::NewArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    storehost::logging::init();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Status(args) => status::run(args),
        Command::Restore(args) => restore::run(args),
        Command::AcceptRemoteDeletions(args) => accept::run(args),
        Command::Plugin {
            command: PluginCommand::Inspect(args),
        } => inspect::run(args),
        Command::Plugin {
            command: PluginCommand::Test(args),
        } => plugin_test::run(*args),
        Command::Plugin {
            command: PluginCommand::New(args),
        } => plugin_new::run(args),
    }
}

/// Prints a command's text and exits 0, or its error and exits 1.
fn print_or_fail(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
