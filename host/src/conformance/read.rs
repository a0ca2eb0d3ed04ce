use super::{Case, CaseFuture, check, err, put, same};
use crate::runtime::Plugin;
use crate::{Key, Precondition};

pub const CASES: &[(&str, Case)] = &[
    ("read returns what was put", read_returns_put),
    (
        "read answers every key in order, none for missing",
        read_in_order_with_missing,
    ),
];

fn read_returns_put(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let key = Key::auth("claude-a@b.com.json");
        let entry = put(plugin, &key, br#"{"type":"claude"}"#, Precondition::Any)
            .await
            .map_err(err)?;
        check(entry.size > 0 && !entry.version.is_empty(), || {
            format!("bad entry {entry:?}")
        })?;
        let document = plugin
            .read_one(&key)
            .await
            .map_err(err)?
            .ok_or("the document is missing")?;
        check(
            same(&key, &document.content, br#"{"type":"claude"}"#),
            || "content differs".into(),
        )?;
        check(document.entry.size == document.content.len() as u64, || {
            "size is not the content's length".into()
        })?;
        check(document.entry.version == entry.version, || {
            format!("version {} != {}", document.entry.version, entry.version)
        })
    })
}

fn read_in_order_with_missing(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        put(
            plugin,
            &Key::auth("x.json"),
            b"{\"x\":1}",
            Precondition::Any,
        )
        .await
        .map_err(err)?;
        put(
            plugin,
            &Key::auth("y.json"),
            b"{\"y\":2}",
            Precondition::Any,
        )
        .await
        .map_err(err)?;
        let keys = [
            Key::auth("y.json"),
            Key::auth("missing.json"),
            Key::auth("x.json"),
            Key::config(),
        ];
        let answers = plugin.read(&keys).await.map_err(err)?;
        let expected = [Some(&b"{\"y\":2}"[..]), None, Some(&b"{\"x\":1}"[..]), None];
        check(answers.len() == expected.len(), || {
            format!("{} answers", answers.len())
        })?;
        for ((answer, expected), key) in answers.iter().zip(expected).zip(&keys) {
            let right = match (answer, expected) {
                (Some(document), Some(expected)) => same(key, &document.content, expected),
                (None, None) => true,
                _ => false,
            };
            check(right, || format!("answer for {key} is wrong: {answer:?}"))?;
        }
        Ok(())
    })
}
