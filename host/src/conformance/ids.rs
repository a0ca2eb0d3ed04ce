use super::{Case, CaseFuture, check, err, expect_backend_error, put, same};
use crate::runtime::{BackendError, Plugin};
use crate::{Key, Kind, Precondition};

pub const CASES: &[(&str, Case)] = &[
    ("unicode and nested ids round-trip", unicode_and_nested_ids),
    (
        "ids that escape the layout are refused",
        escaping_ids_refused,
    ),
    ("the config has exactly one id", config_has_one_id),
];

fn unicode_and_nested_ids(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let ids = [
            "日本/ключ-🔑.json",
            "team/sub/x@y.com.json",
            "with space.json",
            "..dots.json",
        ];
        for id in ids {
            put(
                plugin,
                &Key::auth(id),
                format!("{{\"id\":{id:?}}}").as_bytes(),
                Precondition::Any,
            )
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        }
        let mut listed: Vec<String> = plugin
            .list()
            .await
            .map_err(err)?
            .into_iter()
            .map(|e| e.key.id)
            .collect();
        listed.sort();
        let mut expected: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        expected.sort();
        check(listed == expected, || format!("listed {listed:?}"))?;
        for id in ids {
            let document = plugin
                .read_one(&Key::auth(id))
                .await
                .map_err(err)?
                .ok_or_else(|| format!("{id} missing"))?;
            check(
                same(
                    &Key::auth(id),
                    &document.content,
                    format!("{{\"id\":{id:?}}}").as_bytes(),
                ),
                || format!("{id}: content differs"),
            )?;
        }
        Ok(())
    })
}

fn escaping_ids_refused(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        for id in [
            "../x.json",
            "a/../../x.json",
            "/etc/passwd",
            "a\0b.json",
            "a\\..\\x.json",
            "",
            "a//b.json",
        ] {
            let key = Key::auth(id);
            let outcome = put(plugin, &key, b"{}", Precondition::Any).await;
            expect_backend_error(outcome, &format!("put {id:?}"), |e| {
                matches!(e, BackendError::Invalid(_))
            })?;
            let read = plugin.read(std::slice::from_ref(&key)).await;
            expect_backend_error(read, &format!("read {id:?}"), |e| {
                matches!(e, BackendError::Invalid(_))
            })?;
        }
        let listed = plugin.list().await.map_err(err)?;
        check(listed.is_empty(), || {
            format!("refused ids left documents: {listed:?}")
        })
    })
}

fn config_has_one_id(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key {
            kind: Kind::Config,
            id: "other.yaml".into(),
        };
        let outcome = put(plugin, &key, b"a: 1\n", Precondition::Any).await;
        expect_backend_error(outcome, "config with another id", |e| {
            matches!(e, BackendError::Invalid(_))
        })
    })
}
