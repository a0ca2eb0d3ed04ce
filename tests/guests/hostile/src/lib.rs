//! A hostile plugin. `read` of one auth id picks the misbehaviour:
//! `spin` loops forever, `bomb` allocates without end, `panic` panics,
//! `secret:<name>` asks for a secret, `sql`/`objects`/`git` use a
//! capability, `snoop` looks for anything outside
//! its sandbox and reports what it found. Everything else behaves.

use storehost_sdk::capabilities::{git, objects, secrets, sql};
use storehost_sdk::{Backend, Change, Document, Entry, Error, Features, Info, Key, Settings};

pub struct Hostile;

impl Backend for Hostile {
    fn open(_settings: Settings) -> Result<Self, Error> {
        Ok(Hostile)
    }

    fn info(&self) -> Info {
        Info {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::empty(),
        }
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        let key = keys
            .first()
            .cloned()
            .ok_or_else(|| Error::Invalid("no key".into()))?;
        let content = match key.id.as_str() {
            "spin" => spin(),
            "bomb" => bomb(),
            "panic" => panic!("hostile plugin panics on purpose"),
            "snoop" => snoop(),
            "sql" | "objects" | "git" => use_capability(&key.id)?,
            id => match id.strip_prefix("secret:") {
                Some(name) => ask_for_secret(name)?,
                None => return Ok(keys.iter().map(|_| None).collect()),
            },
        };
        let entry = Entry {
            key,
            version: "1".into(),
            size: content.len() as u64,
            modified_ms: None,
        };
        Ok(vec![Some(Document { entry, content })])
    }

    fn apply(&self, _changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        Err(Error::Denied("hostile plugin stores nothing".into()))
    }
}

#[allow(clippy::empty_loop)]
fn spin() -> Vec<u8> {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn bomb() -> Vec<u8> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn ask_for_secret(name: &str) -> Result<Vec<u8>, Error> {
    match secrets::get(name) {
        Ok(secret) => Ok(format!("granted:{}", secret.name()).into_bytes()),
        Err(e) => Err(Error::Denied(format!("{e:?}"))),
    }
}

/// Uses a capability with a granted secret; the host decides whether the
/// capability itself was granted.
fn use_capability(which: &str) -> Result<Vec<u8>, Error> {
    let secret = secrets::get("granted").map_err(|e| Error::Denied(format!("{e:?}")))?;
    let outcome = match which {
        "sql" => sql::connect(&secret).map(drop),
        "objects" => objects::open(
            "http://127.0.0.1:1",
            "bucket",
            "us-east-1",
            &secret,
            &secret,
        )
        .map(drop),
        _ => git::open("http://127.0.0.1:1/r.git", None, "git", &secret).map(drop),
    };
    match outcome {
        Ok(()) => Ok(b"opened".to_vec()),
        Err(e) => Err(Error::Denied(format!("{e:?}"))),
    }
}

/// What the sandbox let through, as `name=outcome` lines.
fn snoop() -> Vec<u8> {
    let mut report = Vec::new();
    report.push(format!("env={}", std::env::vars_os().count()));
    report.push(format!("args={}", std::env::args_os().count()));
    report.push(format!(
        "canary={}",
        std::env::var("STOREHOST_TEST_CANARY").is_ok()
    ));
    for path in [
        "/etc/passwd",
        "/store/../outside.txt",
        "../outside.txt",
        "/outside.txt",
    ] {
        report.push(format!("read {path}={}", std::fs::read(path).is_ok()));
    }
    for dir in ["/", "/store/..", "/tmp"] {
        report.push(format!("list {dir}={}", std::fs::read_dir(dir).is_ok()));
    }
    report.push(format!(
        "write /store/../escape.txt={}",
        std::fs::write("/store/../escape.txt", b"x").is_ok()
    ));
    report.join("\n").into_bytes()
}

storehost_sdk::export_backend!(Hostile);
