use super::{Case, CaseFuture, check, err, put, remove, same};
use crate::runtime::Plugin;
use crate::{Key, Precondition};
use std::collections::BTreeMap;

pub const CASES: &[(&str, Case)] = &[("pull without a cursor is the whole store", full_pull)];

fn full_pull(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        put(plugin, &Key::config(), b"a: 1\n", Precondition::Any)
            .await
            .map_err(err)?;
        put(
            plugin,
            &Key::auth("p.json"),
            b"{\"p\":1}",
            Precondition::Any,
        )
        .await
        .map_err(err)?;
        put(plugin, &Key::auth("gone.json"), b"{}", Precondition::Any)
            .await
            .map_err(err)?;
        remove(plugin, &Key::auth("gone.json"), Precondition::Any)
            .await
            .map_err(err)?;
        let snapshot = plugin.pull(None).await.map_err(err)?;
        check(snapshot.complete, || {
            "a pull without cursor must be complete".into()
        })?;
        let documents: BTreeMap<Key, Vec<u8>> = snapshot
            .documents
            .into_iter()
            .map(|d| (d.entry.key, d.content))
            .collect();
        let expected = BTreeMap::from([
            (Key::config(), b"a: 1\n".to_vec()),
            (Key::auth("p.json"), b"{\"p\":1}".to_vec()),
        ]);
        let keys_match = documents.keys().eq(expected.keys());
        let contents_match = documents
            .iter()
            .zip(&expected)
            .all(|((key, a), (_, b))| same(key, a, b));
        check(keys_match && contents_match, || {
            format!("pulled {:?}", documents.keys().collect::<Vec<_>>())
        })
    })
}
