//! Test helper for the crash test: mirrors `WORKSPACE` to the
//! fault-injecting local backend on `REMOTE`, then writes auth files as
//! fast as it can, until killed: new ones, `<PREFIX>-<n>.json`, and
//! rewrites of four shared ones, `shared-<k>.json`, printing
//! `ack <id> <content>` after each write is acknowledged.

use std::io::Write;
use storehost::StorehostOptions;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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
    // The test checks the state the start left before writes begin.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    for n in 0.. {
        let content = format!("{{\"n\":{n},\"by\":\"{prefix}\"}}");
        let id = match n % 2 {
            0 => format!("{prefix}-{n:05}.json"),
            _ => format!("shared-{}.json", (n / 2) % 4),
        };
        let saved = host.save_auth(&id, content.as_bytes()).await?;
        // Acknowledged: durable in the ledger, whatever the backend does.
        anyhow::ensure!(
            matches!(saved, storehost::Saved::Queued(_)),
            "a mirrored write is queued"
        );
        writeln!(stdout, "ack {id} {content}")?;
        stdout.flush()?;
    }
    Ok(())
}
