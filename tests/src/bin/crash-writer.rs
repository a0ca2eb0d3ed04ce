//! Test helper for the crash test: mirrors `WORKSPACE` to the
//! fault-injecting local backend on `REMOTE`, then writes auth files `<PREFIX>-<n>.json` as fast as it
//! can, printing `ack <id> pushed|queued` after each write is acknowledged, until killed.

use std::io::Write;
use storehost::StorehostOptions;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [remote, workspace, prefix] = args.as_slice() else {
        anyhow::bail!("usage: crash-writer REMOTE WORKSPACE PREFIX");
    };
    let host = storehost_tests::fault_mirror(
        remote.as_ref(),
        workspace.as_ref(),
        StorehostOptions::default(),
    )
    .await;
    host.bootstrap().await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    for n in 0.. {
        let id = format!("{prefix}-{n:05}.json");
        let saved = host
            .save_auth(&id, format!("{{\"n\":{n}}}").as_bytes())
            .await?;
        let how = if saved == storehost::Saved::Queued {
            "queued"
        } else {
            "pushed"
        };
        writeln!(stdout, "ack {id} {how}")?;
        stdout.flush()?;
    }
    Ok(())
}
