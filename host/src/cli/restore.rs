//! `storehost restore`: bring back a workspace file the host replaced or
//! deleted, from the trash.

use super::status::{format_ms, workspace_dir};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use storehost::mirror::ledger::Ledger;
use storehost::mirror::{Workspace, trash};

#[derive(Args)]
pub struct RestoreArgs {
    /// The trash entry to restore (see --list).
    #[arg(required_unless_present = "list")]
    id: Option<u64>,
    /// List the trash instead.
    #[arg(long)]
    list: bool,
    /// Workspace directory (default: the one the environment selects).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

pub fn run(args: RestoreArgs) -> ExitCode {
    super::print_or_fail(restore(args))
}

fn restore(args: RestoreArgs) -> anyhow::Result<String> {
    let (dir, _) = workspace_dir(args.workspace)?;
    let workspace = Workspace::new(dir);
    match args.id {
        Some(id) if !args.list => {
            let key = trash::restore(&workspace, id)?;
            Ok(format!(
                "restored trash entry {id} as {key}; the host pushes it like any other write\n"
            ))
        }
        _ => list(&workspace),
    }
}

/// The trash entries, then any file in the trash directory that no entry
/// lists (kept by an older storehost, whose names carry no document path):
/// those are recovered by hand, but never hidden.
fn list(workspace: &Workspace) -> anyhow::Result<String> {
    let ledger = Ledger::open(&workspace.state_dir())?;
    let mut text = String::new();
    for entry in ledger.trash()? {
        text.push_str(&format!(
            "{:>6}  {}  {} bytes  {}  ({})\n",
            entry.id,
            entry.path,
            entry.size,
            entry.reason,
            format_ms(entry.at_ms)
        ));
    }
    let mut unlisted = trash::unlisted_in(workspace, &ledger)?;
    unlisted.sort();
    if !unlisted.is_empty() {
        text.push_str(&format!(
            "files in {} with no entry (no document path in their names; copy one back by hand):\n",
            workspace.trash_dir().display()
        ));
    }
    for (file, size) in unlisted {
        text.push_str(&format!("        {}  {size} bytes\n", file.escape_debug()));
    }
    if text.is_empty() {
        text.push_str("the trash is empty\n");
    }
    Ok(text)
}
