//! The third-party Azure Blob plugin (`plugins/azure-blob`, SDK plus
//! wasi:http), loaded through a manifest, against a real Azurite on
//! loopback: the conformance kit with SharedKey and with a SAS, a lost race
//! as a conflict, a wrong key as `denied`, requests outside the rules
//! refused, and the mirror's promises with several hosts on one container.

use storehost::model::{Change, Key, Precondition};
use storehost::runtime::BackendError;
use storehost_tests::azure::{Azurite, Credential};
use storehost_tests::conformance;

fn put(id: &str, content: &str, precondition: Precondition) -> Change {
    Change::Put {
        key: Key::auth(id),
        content: content.as_bytes().to_vec(),
        precondition,
    }
}

#[tokio::test]
async fn the_conformance_kit_passes_with_shared_key_and_with_a_sas() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    for (name, credential) in [("key", server.shared_key()), ("sas", server.sas())] {
        let plugin = server.plugin(
            &scratch.path().join(name),
            &format!("kit-{name}"),
            &credential,
        );
        conformance::run(&plugin).await.assert_all_passed();
    }
}

#[tokio::test]
async fn a_lost_race_is_a_conflict() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    let credential = server.shared_key();
    let a = server.plugin(&scratch.path().join("a"), "race", &credential);
    let b = server.plugin(&scratch.path().join("b"), "race", &credential);
    a.prepare().await.unwrap();
    b.prepare().await.unwrap();
    let first = a
        .apply(
            vec![put("x.json", "{\"by\":\"a\"}", Precondition::Absent)],
            "a",
        )
        .await
        .unwrap();
    let version = first[0].as_ref().unwrap().version.clone();
    let second = b
        .apply(
            vec![put("x.json", "{\"by\":\"b\"}", Precondition::Absent)],
            "b",
        )
        .await;
    let conflict = second.as_ref().err().and_then(|e| e.backend());
    assert!(
        matches!(conflict, Some(BackendError::Conflict(_))),
        "{second:?}"
    );
    b.apply(
        vec![put(
            "x.json",
            "{\"by\":\"b\"}",
            Precondition::Matches(version.clone()),
        )],
        "b",
    )
    .await
    .unwrap();
    let stale = a
        .apply(
            vec![put(
                "x.json",
                "{\"by\":\"a2\"}",
                Precondition::Matches(version),
            )],
            "a",
        )
        .await;
    let conflict = stale.as_ref().err().and_then(|e| e.backend());
    assert!(
        matches!(conflict, Some(BackendError::Conflict(_))),
        "{stale:?}"
    );
    let stored = a.read_one(&Key::auth("x.json")).await.unwrap().unwrap();
    assert_eq!(stored.content, b"{\"by\":\"b\"}");
}

#[tokio::test]
async fn a_wrong_key_or_sas_is_denied_and_names_no_secret() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let wrong_sas = server.account_sas(wrong_key).unwrap();
    for (name, credential) in [
        ("key", Credential::SharedKey(wrong_key.into())),
        ("sas", Credential::Sas(wrong_sas.clone())),
    ] {
        let plugin = server.plugin(&scratch.path().join(name), "denied", &credential);
        let error = plugin.prepare().await.unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(
            matches!(error.backend(), Some(BackendError::Denied(_))),
            "{name}: {text}"
        );
        assert!(text.contains("403"), "{name}: {text}");
        for secret in [wrong_key, &wrong_sas, server.key()] {
            assert!(!text.contains(secret), "{name}: {text}");
        }
    }
}
