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

/// The plugin granted one container while its settings point at another.
fn outside_the_rule(
    runtime: &storehost::runtime::Runtime,
    server: &Azurite,
    dir: &std::path::Path,
    credential: &Credential,
) -> storehost::runtime::Plugin {
    let manifest = server.manifest(dir, "granted", credential);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace("  container: granted\n", "  container: elsewhere\n");
    std::fs::write(&manifest, text).unwrap();
    storehost_tests::azure::plugin_from(runtime, &manifest)
}

/// What a secret looks like anywhere it could leak: as given, and the
/// bytes it stands for (a decoded key, a SAS's decoded signature).
fn forms_of(credential: &Credential) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    match credential {
        Credential::SharedKey(key) => vec![key.as_bytes().to_vec(), base64.decode(key).unwrap()],
        Credential::Sas(sas) => {
            let signature = sas.split("sig=").nth(1).unwrap();
            let signature = percent_decode(signature);
            vec![
                sas.as_bytes().to_vec(),
                signature.as_bytes().to_vec(),
                base64.decode(&signature).unwrap(),
            ]
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn contains(haystack: &str, needle: &[u8]) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w == needle)
}

/// A whole session (prepare, writes, a conflict, pulls, reads, a denied
/// request) on an audited runtime, with SharedKey and with a SAS: the
/// secret in none of its forms is in the host's logs, the errors, the
/// plugin's `Debug`, or any linear memory the plugin had; a marker the
/// plugin did handle is found there, so the scan sees guest memory.
// One thread: the requests run in spawned tasks, and the log capture is
// per thread.
#[tokio::test(flavor = "current_thread")]
async fn the_key_and_the_sas_never_reach_logs_errors_or_guest_memory() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    for (name, credential) in [("key", server.shared_key()), ("sas", server.sas())] {
        let (_guard, captured) = storehost_tests::logs::capture();
        let (runtime, audit) = storehost::runtime::Runtime::audited().unwrap();
        let marker = format!("memory-marker-{name}-5150");
        let container = format!("audit-{name}");
        let plugin = server.plugin_on(
            &runtime,
            &scratch.path().join(name),
            &container,
            &credential,
        );
        plugin.prepare().await.unwrap();
        let puts = (0..20)
            .map(|i| {
                put(
                    &format!("a{i}.json"),
                    &format!("{{\"m\":\"{marker}\"}}"),
                    Precondition::Absent,
                )
            })
            .collect();
        plugin.apply(puts, "session").await.unwrap();
        let conflict = plugin
            .apply(vec![put("a0.json", "{}", Precondition::Absent)], "again")
            .await
            .unwrap_err();
        let snapshot = plugin.pull(None).await.unwrap();
        assert_eq!(snapshot.documents.len(), 20);
        plugin.pull(Some(&snapshot.cursor)).await.unwrap();
        plugin.read(&[Key::auth("a1.json")]).await.unwrap();
        let outside = outside_the_rule(
            &runtime,
            &server,
            &scratch.path().join(format!("{name}-out")),
            &credential,
        );
        let denied = outside.list().await.unwrap_err();
        assert!(
            matches!(denied.backend(), Some(BackendError::Denied(_))),
            "{denied}"
        );
        drop(outside);
        let texts = format!(
            "{}\n{conflict} {conflict:?}\n{denied} {denied:?}\n{:?}",
            captured.text(),
            plugin.grants()
        );
        assert!(audit.memory_count() > 0);
        assert!(
            audit.contains(marker.as_bytes()),
            "{name}: the scan must see guest memory"
        );
        for (form, secret) in forms_of(&credential).iter().enumerate() {
            assert!(
                !contains(&texts, secret),
                "{name}: form {form} of the secret is in {texts}"
            );
            assert!(
                !audit.contains(secret),
                "{name}: form {form} of the secret is in guest memory"
            );
        }
    }
}

/// A guest that tries to sign its own requests, or to reach past the rule,
/// is refused; what it sends inside the rule arrives signed by the host
/// (Azurite answers 404 for a container that is not there, not 403).
#[tokio::test]
async fn a_guest_cannot_set_authorization_or_leave_the_rule() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    let manifest = server.manifest(scratch.path(), "probe", &server.shared_key());
    let text = std::fs::read_to_string(&manifest).unwrap();
    let probe_path = scratch.path().join("probe.wasm");
    std::fs::write(&probe_path, storehost_tests::guests::HTTPPROBE).unwrap();
    let account_url = server.account_url();
    let text = text
        .replace(storehost_tests::guests::AZURE_BLOB_PATH, "./probe.wasm")
        .replace(
            "settings:\n",
            &format!("settings:\n  base: {account_url}/probe\n  outside: {account_url}/other/x\n"),
        );
    std::fs::write(&manifest, text).unwrap();
    let plugin = storehost_tests::azure::plugin_from(
        &storehost::runtime::Runtime::shared().unwrap(),
        &manifest,
    );
    plugin.prepare().await.unwrap();
    let run = |scenario: &'static str| {
        let plugin = &plugin;
        async move {
            let document = plugin
                .read_one(&Key::auth(scenario))
                .await
                .unwrap()
                .unwrap();
            String::from_utf8(document.content).unwrap()
        }
    };
    let signed = run("get").await;
    assert!(
        signed.starts_with("404\n") && signed.contains("ContainerNotFound"),
        "{signed}"
    );
    let own = run("authorization").await;
    assert!(
        own.contains("header authorization: HeaderError::Forbidden"),
        "{own}"
    );
    let outside = run("outside").await;
    assert!(outside.contains("HttpRequestDenied"), "{outside}");
}

/// Listings page by `NextMarker` (7 blobs a page here), and a pull with
/// the cursor it handed out brings only what changed and what went.
#[tokio::test]
async fn listings_follow_next_marker_and_pulls_bring_only_changes() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    let manifest = server.manifest(scratch.path(), "pages", &server.shared_key());
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("settings:\n", "settings:\n  page_size: 7\n"),
    )
    .unwrap();
    let plugin = storehost_tests::azure::plugin_from(
        &storehost::runtime::Runtime::shared().unwrap(),
        &manifest,
    );
    plugin.prepare().await.unwrap();
    let puts = (0..20)
        .map(|i| {
            put(
                &format!("team/p{i:02}.json"),
                &format!("{{\"n\":{i}}}"),
                Precondition::Absent,
            )
        })
        .collect();
    plugin.apply(puts, "fill").await.unwrap();
    assert_eq!(plugin.list().await.unwrap().len(), 20);
    let first = plugin.pull(None).await.unwrap();
    assert!(first.complete);
    assert_eq!(first.documents.len(), 20);

    plugin
        .apply(
            vec![
                put("team/p03.json", "{\"n\":33}", Precondition::Any),
                Change::Remove {
                    key: Key::auth("team/p04.json"),
                    precondition: Precondition::Any,
                },
            ],
            "change",
        )
        .await
        .unwrap();
    let delta = plugin.pull(Some(&first.cursor)).await.unwrap();
    assert!(!delta.complete);
    let changed: Vec<&str> = delta
        .documents
        .iter()
        .map(|d| d.entry.key.id.as_str())
        .collect();
    assert_eq!(changed, ["team/p03.json"]);
    let removed: Vec<&str> = delta.removed.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(removed, ["team/p04.json"]);
}

/// A document larger than the host takes in one write (1 MiB) is streamed
/// after the request is handed over, and arrives whole.
#[tokio::test]
async fn a_body_larger_than_one_write_is_streamed_whole() {
    let server = Azurite::start();
    let scratch = tempfile::tempdir().unwrap();
    let plugin = server.plugin(scratch.path(), "large", &server.shared_key());
    plugin.prepare().await.unwrap();
    let filler = "x".repeat(3 * 1024 * 1024 / 2);
    let content = format!("{{\"filler\":\"{filler}\"}}");
    plugin
        .apply(
            vec![put("large.json", &content, Precondition::Absent)],
            "large",
        )
        .await
        .unwrap();
    let stored = plugin
        .read_one(&Key::auth("large.json"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.content.len(), content.len());
    assert!(stored.content == content.as_bytes());
}
