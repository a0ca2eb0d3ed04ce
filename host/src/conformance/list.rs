use super::{Case, CaseFuture, check, err, put};
use crate::runtime::Plugin;
use crate::{Key, Precondition};

pub const CASES: &[(&str, Case)] = &[
    ("list of an empty store is empty", list_empty),
    (
        "list shows every put with its version and size",
        list_shows_puts,
    ),
];

fn list_empty(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let entries = plugin.list().await.map_err(err)?;
        check(entries.is_empty(), || {
            format!("expected nothing, got {entries:?}")
        })
    })
}

fn list_shows_puts(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let documents: [(Key, &[u8]); 3] = [
            (Key::config(), b"port: 8317\n"),
            (Key::auth("a.json"), b"{\"a\":1}"),
            (Key::auth("team/b.json"), b"{\"b\":22}"),
        ];
        let mut written = Vec::new();
        for (key, content) in &documents {
            written.push(
                put(plugin, key, content, Precondition::Any)
                    .await
                    .map_err(err)?,
            );
        }
        let mut listed = plugin.list().await.map_err(err)?;
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        written.sort_by(|a, b| a.key.cmp(&b.key));
        check(listed.len() == written.len(), || {
            format!("listed {listed:?}, wrote {written:?}")
        })?;
        for (listed, written) in listed.iter().zip(&written) {
            check(
                listed.key == written.key
                    && listed.version == written.version
                    && listed.size == written.size,
                || format!("list entry {listed:?} differs from the put's {written:?}"),
            )?;
        }
        Ok(())
    })
}
