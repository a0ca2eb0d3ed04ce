//! `storehost accept-remote-deletions`: an operator says the backend was
//! emptied on purpose, so the guard lets the next wipe-sized pull through.

use super::status::workspace_dir;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use storehost::mirror::ledger::{Ledger, MetaName};
use storehost::mirror::remote_guard::ACCEPTANCE_VALID_MS;

#[derive(Args)]
pub struct AcceptArgs {
    /// Workspace directory (default: the one the environment selects).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

pub fn run(args: AcceptArgs) -> ExitCode {
    super::print_or_fail(accept(args))
}

fn accept(args: AcceptArgs) -> anyhow::Result<String> {
    let (workspace, _) = workspace_dir(args.workspace)?;
    let state_dir = workspace.join(".storehost");
    anyhow::ensure!(
        Ledger::exists(&state_dir),
        "{} was never mirrored; there is nothing to accept",
        workspace.display()
    );
    let mut ledger = Ledger::open(&state_dir)?;
    let now = storehost::mirror::now_ms().to_string();
    ledger.write(|tx| tx.set_meta(MetaName::AcceptRemoteDeletions, Some(&now)))?;
    Ok(format!(
        "accepted: the next pull that deletes many documents at once, within {} minutes, is mirrored into the workspace \
         (the files go to the trash). If the host already wrote them back, delete them on the backend again.\n",
        ACCEPTANCE_VALID_MS / 60_000
    ))
}
