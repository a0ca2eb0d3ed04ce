//! Shared test support: the generated list of test guests, the conformance
//! kit, plugin loading helpers and log capture.

pub mod azure;
pub mod certs;
pub use storehost::conformance;
pub mod git;
pub mod links;
pub mod logs;
pub mod postgres;
pub mod s3;
pub mod scenarios;
pub mod tls_front;

/// Test guest components built by build.rs from `tests/guests/*`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/test_guests.rs"));
}

use std::path::Path;
use std::time::Duration;
use storehost::capabilities::Grants;
use storehost::runtime::plugin::GUEST_STORE_DIR;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};

/// Limits that make hostile tests quick.
pub fn tight_limits() -> Limits {
    Limits {
        memory_bytes: 32 * 1024 * 1024,
        call_deadline: Duration::from_millis(300),
    }
}

/// Loads a component with the given grants on the shared runtime.
pub fn load(name: &str, wasm: &[u8], grants: Grants, limits: Limits) -> Plugin {
    let spec = PluginSpec {
        name: name.into(),
        grants,
        limits,
        settings: Vec::new(),
    };
    Plugin::load(&Runtime::shared().expect("runtime"), spec, wasm).expect("loading plugin")
}

/// The built-in local plugin over `dir`.
pub fn local_plugin(dir: &Path) -> Plugin {
    directory_plugin("local", storehost::builtin::local(), dir)
}

/// The built-in local plugin granted `dir` (at `/store` in the guest),
/// with its `root` setting at `root`.
pub fn local_plugin_rooted(dir: &Path, root: &str) -> Plugin {
    directory_plugin_rooted("local", storehost::builtin::local(), dir, root)
}

/// The fault-injecting local backend over `dir` (see [`set_fault`]).
pub fn fault_plugin(dir: &Path) -> Plugin {
    directory_plugin("fault", guests::FAULT, dir)
}

/// A component granted `dir` as its store root.
fn directory_plugin(name: &str, wasm: &[u8], dir: &Path) -> Plugin {
    directory_plugin_rooted(name, wasm, dir, GUEST_STORE_DIR)
}

fn directory_plugin_rooted(name: &str, wasm: &[u8], dir: &Path, root: &str) -> Plugin {
    let spec = PluginSpec {
        name: name.into(),
        grants: Grants::minimal().with_directory(dir),
        limits: Limits::default(),
        settings: vec![("root".into(), root.into())],
    };
    Plugin::load(&Runtime::shared().expect("runtime"), spec, wasm)
        .unwrap_or_else(|e| panic!("loading the {name} plugin: {e}"))
}

/// The in-memory test backend.
pub fn memory_plugin() -> Plugin {
    load(
        "memory",
        guests::MEMORY,
        Grants::minimal(),
        Limits::default(),
    )
}

/// A mirrored host whose "remote" is the fault-injecting local backend on
/// `remote_dir`; write `.fault` there (see [`set_fault`]) to break it.
pub async fn fault_mirror(
    remote_dir: &Path,
    workspace: &Path,
    options: storehost::StorehostOptions,
) -> storehost::Storehost {
    std::fs::create_dir_all(remote_dir).unwrap();
    let plugin = storehost::CustomPlugin {
        name: "fault".into(),
        wasm: guests::FAULT.to_vec(),
        settings: vec![("root".into(), GUEST_STORE_DIR.into())],
        grants: Grants::minimal().with_directory(remote_dir),
    };
    storehost::Storehost::with_plugin(plugin, workspace, options)
        .await
        .expect("opening the fault mirror")
}

/// `unavailable`, `fail`, `delay:<ms>`, or `None` for healthy.
pub fn set_fault(remote_dir: &Path, fault: Option<&str>) {
    let control = remote_dir.join(".fault");
    match fault {
        Some(fault) => std::fs::write(control, fault).unwrap(),
        None => {
            let _ = std::fs::remove_file(control);
        }
    }
}

/// An auth file as the remote (a local-backend directory) holds it.
pub fn remote_auth(remote_dir: &Path, id: &str) -> Option<String> {
    std::fs::read_to_string(remote_dir.join("auths").join(id)).ok()
}

/// An auth file as the workspace holds it.
pub fn local_auth(workspace: &Path, id: &str) -> Option<String> {
    std::fs::read_to_string(workspace.join("auths").join(id)).ok()
}

/// Every file under `dir/auths`, as sorted ids.
pub fn auth_files(dir: &Path) -> Vec<String> {
    storehost_sdk_layout::collect_auth_ids(&dir.join("auths")).unwrap()
}

use storehost::sdk_layout as storehost_sdk_layout;

/// Polls `condition` until it holds, failing the test after `limit`;
/// returns how long it took.
pub async fn eventually(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Options for a mirrored test host on `workspace` that polls every `poll`.
/// Default options with a poll every 100 ms, so remote changes arrive fast.
pub fn quick_polls() -> storehost::StorehostOptions {
    storehost::StorehostOptions {
        mirror: storehost::MirrorOptions {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn polling_options(workspace: &Path, poll: Duration) -> storehost::StorehostOptions {
    storehost::StorehostOptions {
        workspace: Some(workspace.to_path_buf()),
        mirror: storehost::MirrorOptions {
            poll_interval: poll,
            // Quick tests look at everything now and then too.
            complete_pull_interval: poll * 30,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A host chosen from backend variables as users set them: `defaults`
/// (the test server's credentials) unless `vars` names them too.
pub async fn host_from_env(
    defaults: &[(&str, &str)],
    vars: &[(&str, &str)],
    workspace: &Path,
    poll: Duration,
) -> Result<storehost::Storehost, storehost::StorehostError> {
    let mut pairs = defaults.to_vec();
    pairs.retain(|(name, _)| !vars.iter().any(|(n, _)| n == name));
    pairs.extend_from_slice(vars);
    let environment = storehost::selection::Environment::from_pairs(pairs);
    let selection =
        storehost::selection::select(&environment, workspace).expect("valid backend variables");
    storehost::Storehost::from_selection(selection, polling_options(workspace, poll)).await
}

/// Whether a bench section runs: all of them without arguments, else
/// those whose name contains one of the words after `--`
/// (`cargo bench --bench postgres -- bootstrap`).
pub fn bench_selected(section: &str) -> bool {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    words.is_empty() || words.iter().any(|w| section.contains(w.as_str()))
}

/// Prints p50 and p99 of `samples` under `label` (for the benches) and
/// returns p50.
pub fn percentiles(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let pick = |q: f64| quantile_of_sorted(&samples, q);
    println!(
        "{label:<44} n={:<5} p50={:>9.2?} p99={:>9.2?}",
        samples.len(),
        pick(0.5),
        pick(0.99)
    );
    pick(0.5)
}

/// The `q` quantile (0 to 1) of `samples`, in any order.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    quantile_of_sorted(&sorted, q)
}

fn quantile_of_sorted(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

/// Saves an auth and waits until the backend has it (a save is
/// acknowledged once durable locally; the sync task pushes it).
pub async fn save_pushed(host: &storehost::Storehost, id: &str, content: &[u8]) {
    let saved = host.save_auth(id, content).await.expect("save_auth");
    assert!(
        host.wait_pushed(&saved, Duration::from_secs(30))
            .await
            .expect("waiting for the push"),
        "{id} was not pushed within 30 s"
    );
}

/// Saves `during-0.json` .. `during-{count-1}.json` while the backend is
/// down: each is acknowledged (queued locally) all the same.
pub async fn save_while_down(host: &storehost::Storehost, count: usize) {
    for i in 0..count {
        let saved = host
            .save_auth(
                &format!("during-{i}.json"),
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await
            .unwrap();
        assert!(
            matches!(saved, storehost::Saved::Queued(_)),
            "write {i} while the server is down"
        );
    }
}

/// Deletes an auth and waits until the backend has taken the deletion.
pub async fn delete_pushed(host: &storehost::Storehost, id: &str) {
    let saved = host.delete_auth(id).await.expect("delete_auth");
    assert!(
        host.wait_pushed(&saved, Duration::from_secs(30))
            .await
            .expect("waiting for the push"),
        "the deletion of {id} was not pushed within 30 s"
    );
}

/// A command for `bin` with a clean environment: no backend variables leak
/// in from the machine running the tests.
pub fn clean_command(bin: &str, cwd: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(bin);
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}
