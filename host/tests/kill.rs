//! Several `storehost serve` processes on one real backend, each with the
//! workspace of its own proxy, which writes plain files into it (tmp +
//! rename, or in place) and deletes some. The processes are killed with
//! SIGKILL at random moments, during their start too, and started again
//! by a supervisor, while the proxies go on writing; the backend is stopped
//! for a while in the middle (a process started then waits for it: none
//! may end by itself). Afterwards every workspace holds each
//! document's last write, or lacks it when that was a deletion, and no
//! workspace holds a conflict copy: each document has one writer, and a
//! crash is not a conflict.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use storehost_tests::azure::{Azurite, EXAMPLE_PLUGIN_FILE};
use storehost_tests::git::{self, GitServer};
use storehost_tests::postgres::PostgresServer;
use storehost_tests::s3::{self, S3Server};

const BIN: &str = env!("CARGO_BIN_EXE_storehost");
const INSTANCES: usize = 3;
/// Documents each proxy writes; no other proxy writes them.
const IDS_PER_PROXY: usize = 5;
const POLL_MS: &str = "150";
/// How long the proxies write while processes are killed.
const WRITING: Duration = Duration::from_secs(7);
/// When, within [`WRITING`], the backend is stopped, and for how long.
const OUTAGE_AT: Duration = Duration::from_secs(2);
const OUTAGE_FOR: Duration = Duration::from_millis(1500);
const CONVERGE_WITHIN: Duration = Duration::from_secs(90);

/// A small xorshift generator; the seed is printed so a failure can be
/// looked at again (timing still varies between runs).
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let seed = std::env::var("KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(nanos | 1);
        eprintln!("kill test seed: KILL_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// How every instance of one deployment is started: the backend's
/// environment, files beside it (a manifest), the workspace it keeps, and
/// the secrets that must stay out of its log.
struct Deployment {
    env: Vec<(&'static str, String)>,
    files: Vec<(&'static str, Vec<u8>)>,
    workspace: &'static str,
    secrets: Vec<String>,
}

/// One `storehost serve` process, started again after each kill, with its
/// log appended to `serve.log` in its directory.
struct Instance {
    dir: PathBuf,
    child: Option<Child>,
    /// Processes that ended without being killed.
    ended_by_themselves: usize,
}

impl Instance {
    fn start(&mut self, deployment: &Deployment) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap();
        let child = storehost_tests::clean_command(BIN, &self.dir)
            .envs(deployment.env.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .args(["--poll-interval-ms", POLL_MS])
            // Deletions made while a host was down add up, among a few
            // documents, to what the guard takes for a wipe (its own tests
            // cover that); here every deletion is meant.
            .args(["--max-delete-share", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// Whether no process runs (killed, or ended by itself, which is
    /// counted: a start during the outage waits for the backend); a
    /// supervisor starts it again.
    fn not_running(&mut self) -> bool {
        let Some(child) = &mut self.child else {
            return true;
        };
        let ended = child.try_wait().unwrap().is_some();
        if ended {
            self.ended_by_themselves += 1;
            self.child = None;
        }
        ended
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    fn readies(&self) -> usize {
        self.log().matches("storehost ready").count()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the proxies wrote last: per workspace and document, the content,
/// or `None` after a deletion.
type Expected = BTreeMap<(usize, String), Option<String>>;

/// The proxies: each writes only its own documents into its own workspace.
struct Proxies {
    workspaces: Vec<PathBuf>,
    expected: Expected,
    config: Option<String>,
    writes: usize,
}

impl Proxies {
    fn act(&mut self, rng: &mut Rng) {
        let proxy = rng.below(INSTANCES as u64) as usize;
        let auths = self.workspaces[proxy].join("auths");
        self.writes += 1;
        if proxy == 0 && rng.below(12) == 0 {
            let content = format!("port: {}\n", 9000 + self.writes);
            replace(&self.workspaces[0].join("config/config.yaml"), &content);
            self.config = Some(content);
            return;
        }
        let id = format!("p{proxy}-{}.json", rng.below(IDS_PER_PROXY as u64));
        let path = auths.join(&id);
        let known = self.expected.get(&(proxy, id.clone())).cloned().flatten();
        let content = match rng.below(8) {
            0 if known.is_some() => {
                std::fs::remove_file(&path).unwrap();
                None
            }
            1 | 2 => {
                let content = format!("{{\"by\":\"p{proxy}\",\"n\":{}}}", self.writes);
                // As the file store rewrites an existing file: in place.
                let mut file = File::create(&path).unwrap();
                file.write_all(content.as_bytes()).unwrap();
                Some(content)
            }
            _ => {
                let content = format!("{{\"by\":\"p{proxy}\",\"n\":{}}}", self.writes);
                replace(&path, &content);
                Some(content)
            }
        };
        self.expected.insert((proxy, id), content);
    }

    /// Where a workspace differs from what its proxies wrote last.
    fn differences(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (n, workspace) in self.workspaces.iter().enumerate() {
            for ((_, id), want) in &self.expected {
                let have = std::fs::read_to_string(workspace.join("auths").join(id)).ok();
                if !same_json(have.as_deref(), want.as_deref()) {
                    found.push(format!("workspace {n}: {id} is {have:?}, wrote {want:?}"));
                }
            }
            if let Some(config) = &self.config {
                let have = std::fs::read_to_string(workspace.join("config/config.yaml")).ok();
                if have.as_ref() != Some(config) {
                    found.push(format!(
                        "workspace {n}: config is {have:?}, wrote {config:?}"
                    ));
                }
            }
        }
        found
    }

    fn conflict_copies(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for workspace in &self.workspaces {
            for dir in ["auths", "config"] {
                let Ok(entries) = std::fs::read_dir(workspace.join(dir)) else {
                    continue;
                };
                found.extend(
                    entries
                        .map(|entry| entry.unwrap().path())
                        .filter(|path| path.to_string_lossy().contains(".conflict-")),
                );
            }
        }
        found
    }
}

/// Equal as JSON: PostgreSQL keeps auths as `jsonb`, which re-serialises
/// them (key order, spacing) for the other workspaces.
fn same_json(have: Option<&str>, want: Option<&str>) -> bool {
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    match (have, want) {
        (Some(have), Some(want)) => parse(have).is_some() && parse(have) == parse(want),
        (None, None) => true,
        _ => false,
    }
}

/// As the remote-backed stores save: write `<path>.tmp`, then rename.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Kills a random instance at random moments and starts it again after a
/// random pause. Returns the kills.
fn supervise(
    instances: Arc<Mutex<Vec<Instance>>>,
    deployment: Arc<Deployment>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> usize {
    let mut kills = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(rng.millis(100, 500));
        let victim = rng.below(INSTANCES as u64) as usize;
        instances.lock().unwrap()[victim].kill();
        kills += 1;
        // The proxy goes on writing while no host runs.
        std::thread::sleep(rng.millis(0, 300));
        restart_ended(&mut instances.lock().unwrap(), &deployment);
    }
    kills
}

fn restart_ended(instances: &mut [Instance], deployment: &Deployment) {
    for instance in instances.iter_mut() {
        if instance.not_running() {
            instance.start(deployment);
        }
    }
}

/// A running backend whose server can be stopped and resumed.
enum Server {
    Postgres(PostgresServer),
    Object(S3Server),
    Git(GitServer),
    Azure(Azurite),
}

impl Server {
    fn stop(&mut self) {
        match self {
            Server::Postgres(server) => server.stop(),
            Server::Object(server) => server.stop(),
            Server::Git(server) => server.stop(),
            Server::Azure(server) => server.stop(),
        }
    }

    fn resume(&mut self) {
        match self {
            Server::Postgres(server) => server.resume(),
            Server::Object(server) => server.resume(),
            Server::Git(server) => server.resume(),
            Server::Azure(server) => server.resume(),
        }
    }
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > within {
            eprintln!("timed out waiting for: {what}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn run(mut server: Server, deployment: Deployment) {
    let root = tempfile::tempdir().unwrap();
    let deployment = Arc::new(deployment);
    let mut instances = Vec::new();
    let mut workspaces = Vec::new();
    for n in 0..INSTANCES {
        let dir = root.path().join(format!("instance-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, content) in &deployment.files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        workspaces.push(dir.join(deployment.workspace));
        instances.push(Instance {
            dir,
            child: None,
            ended_by_themselves: 0,
        });
    }
    // All start together on an empty backend.
    for instance in &mut instances {
        instance.start(&deployment);
    }
    let all_ready = wait_until("every instance ready", Duration::from_secs(60), || {
        instances.iter().all(|i| i.readies() >= 1)
    });
    assert!(all_ready, "{}", logs(&instances));
    let instances = Arc::new(Mutex::new(instances));

    let mut rng = Rng::from_clock();
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = {
        let (instances, deployment, stop) = (instances.clone(), deployment.clone(), stop.clone());
        let rng = Rng(rng.next() | 1);
        std::thread::spawn(move || supervise(instances, deployment, stop, rng))
    };
    let mut proxies = Proxies {
        workspaces,
        expected: Expected::new(),
        config: None,
        writes: 0,
    };
    let started = Instant::now();
    let mut backend_down = false;
    while started.elapsed() < WRITING {
        let elapsed = started.elapsed();
        let outage = elapsed >= OUTAGE_AT && elapsed < OUTAGE_AT + OUTAGE_FOR;
        if outage != backend_down {
            if outage {
                server.stop();
            } else {
                server.resume();
            }
            backend_down = outage;
        }
        proxies.act(&mut rng);
        std::thread::sleep(rng.millis(2, 15));
    }
    if backend_down {
        server.resume();
    }
    stop.store(true, Ordering::Relaxed);
    let kills = supervisor.join().unwrap();
    let mut instances = Arc::try_unwrap(instances)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap();

    let converged = wait_until("the workspaces converge", CONVERGE_WITHIN, || {
        restart_ended(&mut instances, &deployment);
        proxies.differences().is_empty()
    });
    assert!(
        converged,
        "after {kills} kills and {} writes:\n{}\n{}",
        proxies.writes,
        proxies.differences().join("\n"),
        logs(&instances)
    );
    // Still so a few polls later: nothing comes back.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(proxies.differences(), Vec::<String>::new());
    assert_eq!(
        proxies.conflict_copies(),
        Vec::<PathBuf>::new(),
        "a crash is not a conflict\n{}",
        logs(&instances)
    );
    assert!(kills >= 8, "the test killed too rarely: {kills}");
    let starts: usize = instances.iter().map(Instance::readies).sum();
    let waits: usize = instances
        .iter()
        .map(|i| i.log().matches("storehost tries again").count())
        .sum();
    eprintln!(
        "{kills} kills, {starts} starts that got ready, {waits} waits for the backend at start, {} writes",
        proxies.writes
    );
    assert!(starts > INSTANCES, "instances got ready again after kills");
    let ended: usize = instances.iter().map(|i| i.ended_by_themselves).sum();
    assert_eq!(ended, 0, "a process ended by itself\n{}", logs(&instances));
    for instance in &instances {
        let log = instance.log();
        // What went wrong on the way, for whoever reads the output.
        for line in log.lines().filter(|l| l.contains(" ERROR ")) {
            eprintln!("logged: {}", line.chars().take(240).collect::<String>());
        }
        for secret in &deployment.secrets {
            assert!(!log.contains(secret.as_str()), "a secret in the log");
        }
    }
}

fn logs(instances: &[Instance]) -> String {
    instances
        .iter()
        .enumerate()
        .map(|(n, instance)| {
            let log = instance.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- instance {n}, last lines:\n{}", tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_instances_killed_at_random_lose_nothing() {
    let server = PostgresServer::start();
    let deployment = Deployment {
        env: vec![
            ("PGSTORE_DSN", server.dsn()),
            ("PGSTORE_SCHEMA", "killed".into()),
        ],
        files: vec![],
        workspace: "pgstore",
        secrets: vec![server.password().to_string()],
    };
    run(Server::Postgres(server), deployment);
}

#[test]
fn object_storage_instances_killed_at_random_lose_nothing() {
    let server = S3Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        s3::client(&server.endpoint())
            .create_bucket()
            .bucket("killed")
            .send()
            .await
            .unwrap();
    });
    let deployment = Deployment {
        env: vec![
            ("OBJECTSTORE_ENDPOINT", format!("{}/", server.endpoint())),
            ("OBJECTSTORE_BUCKET", "killed".into()),
            ("OBJECTSTORE_ACCESS_KEY", s3::ACCESS_KEY.into()),
            ("OBJECTSTORE_SECRET_KEY", s3::SECRET_KEY.into()),
        ],
        files: vec![],
        workspace: "objectstore",
        secrets: vec![s3::SECRET_KEY.into()],
    };
    run(Server::Object(server), deployment);
}

#[test]
fn git_instances_killed_at_random_lose_nothing() {
    let server = GitServer::start();
    let url = server.create_repo("killed");
    let deployment = Deployment {
        env: vec![
            ("GITSTORE_GIT_URL", url),
            ("GITSTORE_GIT_USERNAME", git::USERNAME.into()),
            ("GITSTORE_GIT_TOKEN", git::TOKEN.into()),
        ],
        files: vec![],
        workspace: "gitstore",
        secrets: vec![git::TOKEN.into()],
    };
    run(Server::Git(server), deployment);
}

#[test]
fn azure_blob_instances_killed_at_random_lose_nothing() {
    let server = Azurite::start();
    let manifest = server.edited_example_manifest();
    let deployment = Deployment {
        env: vec![("AZURE_STORAGE_KEY", server.key().to_string())],
        files: vec![
            ("storehost.yaml", manifest.into_bytes()),
            (
                EXAMPLE_PLUGIN_FILE,
                storehost_tests::guests::AZURE_BLOB.to_vec(),
            ),
        ],
        workspace: "workspace",
        secrets: vec![server.key().to_string()],
    };
    run(Server::Azure(server), deployment);
}
