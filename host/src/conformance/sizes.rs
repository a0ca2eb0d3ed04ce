use super::{Case, CaseFuture, check, err, put, same};
use crate::runtime::Plugin;
use crate::{Key, Precondition};

pub const CASES: &[(&str, Case)] = &[
    ("an empty document round-trips", empty_document),
    ("a 1 MiB document round-trips", one_mebibyte_document),
];

fn empty_document(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let entry = put(plugin, &Key::config(), b"", Precondition::Any)
            .await
            .map_err(err)?;
        check(entry.size == 0, || format!("size {}", entry.size))?;
        let document = plugin
            .read_one(&Key::config())
            .await
            .map_err(err)?
            .ok_or("empty config missing")?;
        check(document.content.is_empty(), || "content not empty".into())
    })
}

fn one_mebibyte_document(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let filler = "x".repeat(1024 * 1024 - 12);
        let content = format!("{{\"pad\":\"{filler}\"}}").into_bytes();
        let key = Key::auth("big.json");
        let entry = put(plugin, &key, &content, Precondition::Any)
            .await
            .map_err(err)?;
        check(entry.size > 0, || format!("size {}", entry.size))?;
        let document = plugin
            .read_one(&key)
            .await
            .map_err(err)?
            .ok_or("big document missing")?;
        check(same(&key, &document.content, &content), || {
            "content differs".into()
        })?;
        check(document.entry.size == document.content.len() as u64, || {
            "size is not the content's length".into()
        })
    })
}
