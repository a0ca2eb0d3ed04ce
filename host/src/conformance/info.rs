use super::{Case, CaseFuture, check, err};
use crate::runtime::Plugin;
use std::time::Duration;

pub const CASES: &[(&str, Case)] = &[
    ("info names the backend", info_names_the_backend),
    (
        "prepare and check are idempotent",
        prepare_and_check_are_idempotent,
    ),
    (
        "wait-for-change returns within its timeout",
        wait_returns_within_timeout,
    ),
];

fn info_names_the_backend(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let info = plugin.info().await.map_err(err)?;
        check(!info.name.is_empty() && !info.version.is_empty(), || {
            format!("empty name or version: {info:?}")
        })
    })
}

fn prepare_and_check_are_idempotent(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        plugin.prepare().await.map_err(err)?;
        plugin.prepare().await.map_err(err)?;
        plugin.check().await.map_err(err)
    })
}

fn wait_returns_within_timeout(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let started = std::time::Instant::now();
        plugin
            .wait_for_change(Duration::from_millis(50))
            .await
            .map_err(err)?;
        check(started.elapsed() < Duration::from_secs(5), || {
            format!("took {:?}", started.elapsed())
        })
    })
}
