use super::{Case, CaseFuture, check, err, expect_backend_error, put, remove, same};
use crate::runtime::{BackendError, Plugin};
use crate::{Change, Key, Precondition};

pub const CASES: &[(&str, Case)] = &[
    ("absent: creates once, then conflicts", absent_precondition),
    (
        "matches: current version wins, stale conflicts",
        matches_precondition,
    ),
    ("versions change with content", versions_change),
    (
        "remove deletes, is idempotent, honours preconditions",
        remove_semantics,
    ),
    (
        "a batch with a failing precondition changes nothing",
        failing_batch_changes_nothing,
    ),
    (
        "a batch answers every change in order",
        batch_answers_in_order,
    ),
];

fn absent_precondition(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key::auth("new.json");
        put(plugin, &key, b"{}", Precondition::Absent)
            .await
            .map_err(err)?;
        let again = put(plugin, &key, b"{\"v\":2}", Precondition::Absent).await;
        expect_backend_error(again, "second absent put", |e| {
            *e == BackendError::Conflict(key.clone())
        })?;
        let document = plugin.read_one(&key).await.map_err(err)?.ok_or("missing")?;
        check(same(&key, &document.content, b"{}"), || {
            "the conflicting put changed the document".into()
        })
    })
}

fn matches_precondition(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key::auth("m.json");
        let first = put(plugin, &key, b"{\"v\":1}", Precondition::Any)
            .await
            .map_err(err)?;
        let second = put(
            plugin,
            &key,
            b"{\"v\":2}",
            Precondition::Matches(first.version.clone()),
        )
        .await
        .map_err(err)?;
        let stale = put(
            plugin,
            &key,
            b"{\"v\":3}",
            Precondition::Matches(first.version.clone()),
        )
        .await;
        expect_backend_error(
            stale,
            "put on a stale version",
            |e| matches!(e, BackendError::Conflict(k) if *k == key),
        )?;
        let missing = put(
            plugin,
            &Key::auth("never.json"),
            b"{}",
            Precondition::Matches(second.version.clone()),
        )
        .await;
        expect_backend_error(missing, "matches on a missing document", |e| {
            matches!(e, BackendError::Conflict(_))
        })?;
        let document = plugin.read_one(&key).await.map_err(err)?.ok_or("missing")?;
        check(same(&key, &document.content, b"{\"v\":2}"), || {
            "a stale write got through".into()
        })
    })
}

fn versions_change(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key::auth("v.json");
        let a = put(plugin, &key, b"{\"v\":1}", Precondition::Any)
            .await
            .map_err(err)?;
        let b = put(plugin, &key, b"{\"v\":2}", Precondition::Any)
            .await
            .map_err(err)?;
        check(a.version != b.version, || {
            format!("version {} did not change", a.version)
        })
    })
}

fn remove_semantics(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key::auth("r.json");
        let first = put(plugin, &key, b"{\"v\":1}", Precondition::Any)
            .await
            .map_err(err)?;
        put(plugin, &key, b"{\"v\":2}", Precondition::Any)
            .await
            .map_err(err)?;
        let stale = remove(plugin, &key, Precondition::Matches(first.version)).await;
        expect_backend_error(stale, "remove on a stale version", |e| {
            matches!(e, BackendError::Conflict(_))
        })?;
        check(plugin.read_one(&key).await.map_err(err)?.is_some(), || {
            "a stale remove deleted the document".into()
        })?;
        remove(plugin, &key, Precondition::Any).await.map_err(err)?;
        check(plugin.read_one(&key).await.map_err(err)?.is_none(), || {
            "remove left the document".into()
        })?;
        remove(plugin, &key, Precondition::Any)
            .await
            .map_err(|e| format!("removing a missing document: {e}"))?;
        let absent = remove(plugin, &Key::auth("gone.json"), Precondition::Absent).await;
        absent.map_err(|e| format!("remove with `absent` on a missing document: {e}"))
    })
}

fn failing_batch_changes_nothing(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let existing = Key::auth("exists.json");
        put(plugin, &existing, b"{\"v\":1}", Precondition::Any)
            .await
            .map_err(err)?;
        let batch = vec![
            Change::Put {
                key: Key::auth("fresh.json"),
                content: b"{}".to_vec(),
                precondition: Precondition::Any,
            },
            Change::Put {
                key: existing.clone(),
                content: b"{\"v\":2}".to_vec(),
                precondition: Precondition::Absent,
            },
        ];
        let outcome = plugin.apply(batch, "conformance: failing batch").await;
        expect_backend_error(
            outcome,
            "batch with a failing precondition",
            |e| matches!(e, BackendError::Conflict(k) if *k == existing),
        )?;
        let fresh = plugin
            .read_one(&Key::auth("fresh.json"))
            .await
            .map_err(err)?;
        check(fresh.is_none(), || "the batch was partly applied".into())
    })
}

fn batch_answers_in_order(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        put(plugin, &Key::auth("old.json"), b"{}", Precondition::Any)
            .await
            .map_err(err)?;
        let batch = vec![
            Change::Put {
                key: Key::auth("one.json"),
                content: b"{\"n\":1}".to_vec(),
                precondition: Precondition::Absent,
            },
            Change::Remove {
                key: Key::auth("old.json"),
                precondition: Precondition::Any,
            },
            Change::Put {
                key: Key::config(),
                content: b"a: 1\n".to_vec(),
                precondition: Precondition::Any,
            },
        ];
        let answers = plugin
            .apply(batch, "conformance: batch")
            .await
            .map_err(err)?;
        let shape: Vec<Option<Key>> = answers.into_iter().map(|a| a.map(|e| e.key)).collect();
        check(
            shape == vec![Some(Key::auth("one.json")), None, Some(Key::config())],
            || format!("answers {shape:?}"),
        )
    })
}
