//! First contact between a workspace and a backend.
//!
//! Switching backends migrates and never wipes: remote documents are
//! written to the workspace, documents only the workspace has are uploaded,
//! and where both differ the remote wins while the local copy is kept
//! beside it as a conflict file.

use super::workspace::{Workspace, normalize_config, validate_auth};
use crate::error::StorehostError;
use crate::model::{Change, Document, Key, Kind, Precondition};
use crate::runtime::Plugin;
use std::collections::BTreeMap;
use std::path::Path;

/// What a bootstrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    pub pulled: usize,
    pub uploaded: usize,
    pub conflicts: Vec<String>,
    pub config_seeded: bool,
}

/// Direct mode: the plugin's directory is the workspace. Seeds a missing
/// config; there is nothing to mirror.
pub async fn direct(
    plugin: &Plugin,
    workspace: &Workspace,
    example_config: Option<&Path>,
) -> Result<BootstrapReport, StorehostError> {
    workspace.create()?;
    plugin.prepare().await?;
    let mut report = BootstrapReport::default();
    if plugin.read_one(&Key::config()).await?.is_none() {
        let seed = seed_config(None, example_config)?;
        plugin
            .apply(
                vec![Change::Put {
                    key: Key::config(),
                    content: seed,
                    precondition: Precondition::Absent,
                }],
                "Seed config",
            )
            .await?;
        report.config_seeded = true;
    }
    workspace.secure(&Key::config())?;
    Ok(report)
}

/// Mirrored mode: the backend is remote; reconcile it with the workspace.
pub async fn mirrored(
    plugin: &Plugin,
    workspace: &Workspace,
    example_config: Option<&Path>,
) -> Result<BootstrapReport, StorehostError> {
    workspace.create()?;
    plugin.prepare().await?;
    let snapshot = plugin.pull(None).await?;
    let remote: BTreeMap<Key, Document> = snapshot
        .documents
        .into_iter()
        .map(|d| (d.entry.key.clone(), d))
        .collect();
    let mut report = BootstrapReport::default();
    let mut uploads = Vec::new();

    for (key, document) in &remote {
        if let Some(local) = workspace.read(key)?
            && local != document.content
        {
            keep_conflict_copy(workspace, key, &local)?;
            report.conflicts.push(key.to_string());
        }
        workspace.write(key, &document.content)?;
        report.pulled += 1;
    }

    if !remote.contains_key(&Key::config()) {
        let local = workspace.read(&Key::config())?;
        let seed = seed_config(local, example_config)?;
        workspace.write(&Key::config(), &seed)?;
        uploads.push(Change::Put {
            key: Key::config(),
            content: seed,
            precondition: Precondition::Absent,
        });
        report.config_seeded = true;
    }

    for id in workspace.auth_ids()? {
        let key = Key::auth(&id);
        if remote.contains_key(&key) {
            continue;
        }
        let Some(content) = workspace.read(&key)? else {
            continue;
        };
        match validate_auth(&id, &content) {
            Ok(()) => uploads.push(Change::Put {
                key,
                content,
                precondition: Precondition::Absent,
            }),
            Err(e) => {
                tracing::warn!("not uploading {id}: {e}; fix the file and it will be picked up")
            }
        }
    }
    report.uploaded = uploads.len();
    if !uploads.is_empty() {
        plugin
            .apply(uploads, "Bootstrap: upload workspace documents")
            .await?;
    }
    Ok(report)
}

/// The config to start from: the workspace's own, else the example, else
/// an empty file.
fn seed_config(local: Option<Vec<u8>>, example: Option<&Path>) -> Result<Vec<u8>, StorehostError> {
    let content = match (local, example) {
        (Some(local), _) => local,
        (None, Some(path)) => {
            std::fs::read(path).map_err(|source| StorehostError::ExampleConfig {
                path: path.display().to_string(),
                source,
            })?
        }
        (None, None) => Vec::new(),
    };
    Ok(normalize_config(&content)?)
}

fn keep_conflict_copy(
    workspace: &Workspace,
    key: &Key,
    local: &[u8],
) -> Result<(), StorehostError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let conflict_key = match key.kind {
        Kind::Auth => Key::auth(format!("{}.conflict-{stamp}", key.id)),
        Kind::Config => {
            let path = workspace
                .config_path()
                .with_file_name(format!("config.yaml.conflict-{stamp}"));
            crate::fsutil::write_atomic(&path, local).map_err(|source| StorehostError::Io {
                path: path.display().to_string(),
                source,
            })?;
            tracing::warn!(path = %path.display(), "config differs from the remote; remote wins, local copy kept");
            return Ok(());
        }
    };
    workspace.write(&conflict_key, local)?;
    tracing::warn!(%key, kept = %conflict_key, "document differs from the remote; remote wins, local copy kept");
    Ok(())
}
