//! Two instances of one plugin on one store, as two hosts on one backend
//! are: of two writes made with the same precondition, exactly one wins.

use super::{Case, CaseFuture, check, err, put, same};
use crate::runtime::{BackendError, Plugin, PluginError};
use crate::{Entry, Key, Precondition};

pub const CASES: &[(&str, Case)] = &[(
    "two instances contending on one key: one wins, the other conflicts",
    two_instances_contend,
)];

fn two_instances_contend(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let other = plugin.fork();
        let key = Key::auth("contended.json");
        let (first, second) = (&b"{\"by\":\"a\"}"[..], &b"{\"by\":\"b\"}"[..]);
        let (a, b) = tokio::join!(
            put_until_answered(plugin, &key, first, Precondition::Absent),
            put_until_answered(&other, &key, second, Precondition::Absent),
        );
        let (content, entry) = one_winner(&key, "creating", [(first, a), (second, b)])?;
        expect_content(&other, &key, &content).await?;

        let matches = Precondition::Matches(entry.version.clone());
        let (first, second) = (&b"{\"by\":\"a2\"}"[..], &b"{\"by\":\"b2\"}"[..]);
        let (a, b) = tokio::join!(
            put_until_answered(plugin, &key, first, matches.clone()),
            put_until_answered(&other, &key, second, matches),
        );
        let (content, _) = one_winner(&key, "replacing", [(first, a), (second, b)])?;
        expect_content(plugin, &key, &content).await
    })
}

/// A write retried while it answers `unavailable`, as the host retries it:
/// a backend may make one writer wait for the other (a lock held), and then
/// the retry must meet the other's write as a conflict.
async fn put_until_answered(
    plugin: &Plugin,
    key: &Key,
    content: &[u8],
    precondition: Precondition,
) -> Result<Entry, PluginError> {
    let mut attempts = 0;
    loop {
        let outcome = put(plugin, key, content, precondition.clone()).await;
        match &outcome {
            Err(e)
                if matches!(e.backend(), Some(BackendError::Unavailable(_))) && attempts < 20 =>
            {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ => return outcome,
        }
    }
}

type Attempt<'a> = (&'a [u8], Result<Entry, PluginError>);

/// Exactly one attempt succeeded and the other met a conflict on `key`.
fn one_winner(
    key: &Key,
    what: &str,
    attempts: [Attempt<'_>; 2],
) -> Result<(Vec<u8>, Entry), String> {
    let mut winners = Vec::new();
    for (content, outcome) in attempts {
        match outcome {
            Ok(entry) => winners.push((content.to_vec(), entry)),
            Err(PluginError::Backend {
                error: BackendError::Conflict(conflicted),
                ..
            }) if conflicted == *key => {}
            Err(other) => {
                return Err(format!(
                    "{what}: the losing write failed otherwise: {other}"
                ));
            }
        }
    }
    match winners.len() {
        1 => Ok(winners.remove(0)),
        n => Err(format!(
            "{what}: {n} of two writes with one precondition succeeded"
        )),
    }
}

async fn expect_content(plugin: &Plugin, key: &Key, content: &[u8]) -> Result<(), String> {
    let document = plugin
        .read_one(key)
        .await
        .map_err(err)?
        .ok_or("the document is missing")?;
    check(same(key, &document.content, content), || {
        "the stored document is not the winning write".into()
    })
}
