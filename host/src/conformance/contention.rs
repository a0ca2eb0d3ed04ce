//! Two instances of one plugin on one store, as two hosts on one backend
//! are: of two writes made with the same precondition, exactly one wins.

use super::{Case, CaseFuture, StoreTraits, check, err, put, same};
use crate::runtime::{BackendError, Plugin, PluginError};
use crate::{Entry, Key, Precondition};

const NAME: &str = "two instances contending on one key: one wins, the other conflicts";

/// Rounds tried on a store whose conditional writes are not atomic: each
/// can be raced through, but a plugin that enforces its preconditions
/// shows a conflict in one of them.
const ROUNDS_ON_A_RACY_STORE: usize = 5;

pub fn cases(traits: StoreTraits) -> Vec<(&'static str, Case)> {
    let case: Case = if traits.atomic_conditional_writes {
        two_instances_contend
    } else {
        two_instances_contend_on_a_racy_store
    };
    vec![(NAME, case)]
}

fn two_instances_contend(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let other = plugin.fork();
        match contend(plugin, &other, &Key::auth("contended.json")).await? {
            Round::OneWinnerEach => Ok(()),
            Round::BothWon(what) => Err(both_won(what)),
        }
    })
}

fn two_instances_contend_on_a_racy_store(plugin: &Plugin) -> CaseFuture<'_> {
    Box::pin(async move {
        let other = plugin.fork();
        let mut raced = Vec::new();
        for round in 0..ROUNDS_ON_A_RACY_STORE {
            let key = Key::auth(format!("contended-{round}.json"));
            match contend(plugin, &other, &key).await? {
                Round::OneWinnerEach => return Ok(()),
                Round::BothWon(what) => raced.push(what),
            }
        }
        Err(format!(
            "in each of {ROUNDS_ON_A_RACY_STORE} rounds both writes with one precondition \
             succeeded ({}): the plugin does not enforce preconditions",
            raced.join(", ")
        ))
    })
}

fn both_won(what: &str) -> String {
    format!("{what}: 2 of two writes with one precondition succeeded")
}

enum Round {
    OneWinnerEach,
    /// Both writes of this step succeeded; the store holds one of them.
    BothWon(&'static str),
}

/// Two instances create `key` at once, then replace the winner at once.
async fn contend(plugin: &Plugin, other: &Plugin, key: &Key) -> Result<Round, String> {
    let (first, second) = (&b"{\"by\":\"a\"}"[..], &b"{\"by\":\"b\"}"[..]);
    let (a, b) = tokio::join!(
        put_until_answered(plugin, key, first, Precondition::Absent),
        put_until_answered(other, key, second, Precondition::Absent),
    );
    let entry = match one_winner(key, "creating", [(first, a), (second, b)])? {
        Winners::One(content, entry) => {
            expect_content(other, key, &[&content]).await?;
            entry
        }
        Winners::Both => {
            expect_content(other, key, &[first, second]).await?;
            return Ok(Round::BothWon("creating"));
        }
    };

    let matches = Precondition::Matches(entry.version.clone());
    let (first, second) = (&b"{\"by\":\"a2\"}"[..], &b"{\"by\":\"b2\"}"[..]);
    let (a, b) = tokio::join!(
        put_until_answered(plugin, key, first, matches.clone()),
        put_until_answered(other, key, second, matches),
    );
    match one_winner(key, "replacing", [(first, a), (second, b)])? {
        Winners::One(content, _) => {
            expect_content(plugin, key, &[&content]).await?;
            Ok(Round::OneWinnerEach)
        }
        Winners::Both => {
            expect_content(plugin, key, &[first, second]).await?;
            Ok(Round::BothWon("replacing"))
        }
    }
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

enum Winners {
    One(Vec<u8>, Entry),
    Both,
}

/// One attempt succeeded and the other met a conflict on `key`, or both
/// succeeded; anything else is a failure.
fn one_winner(key: &Key, what: &str, attempts: [Attempt<'_>; 2]) -> Result<Winners, String> {
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
        1 => {
            let (content, entry) = winners.remove(0);
            Ok(Winners::One(content, entry))
        }
        2 => Ok(Winners::Both),
        _ => Err(format!(
            "{what}: neither of two writes with one precondition succeeded"
        )),
    }
}

/// The store holds one of `winners`.
async fn expect_content(plugin: &Plugin, key: &Key, winners: &[&[u8]]) -> Result<(), String> {
    let document = plugin
        .read_one(key)
        .await
        .map_err(err)?
        .ok_or("the document is missing")?;
    let stored = |content: &&[u8]| same(key, &document.content, content);
    check(winners.iter().any(stored), || {
        "the stored document is not the winning write".into()
    })
}
