//! The local backend with faults on command: before every call it reads
//! `<root>/.fault`. `unavailable` fails the call as transient, `fail` as an
//! internal error, `delay:<ms>` waits first; no file means healthy. Tests
//! write that file to take the "remote" down and bring it back. Faults
//! that break the contract: `wrong-apply-count` answers one entry too many
//! and applies nothing; `lying-apply` answers as if it applied them
//! and stores nothing; `spin-watch` claims the watch feature and spins in
//! `wait-for-change`, ignoring its timeout.

use std::time::Duration;
use storehost_plugin_local::LocalStore;
use storehost_sdk::{
    Backend, Change, Document, Entry, Error, Features, Info, Key, Settings, Snapshot,
};

pub struct Fault {
    inner: LocalStore,
    control: String,
}

impl Fault {
    fn command(&self) -> String {
        let command = std::fs::read_to_string(&self.control).unwrap_or_default();
        command.trim().to_string()
    }

    fn gate(&self) -> Result<(), Error> {
        let command = self.command();
        let command = command.as_str();
        if command == "unavailable" {
            return Err(Error::Unavailable("fault injected: backend down".into()));
        }
        if command == "fail" {
            return Err(Error::Internal("fault injected: failure".into()));
        }
        if let Some(ms) = command
            .strip_prefix("delay:")
            .and_then(|ms| ms.parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    }
}

impl Backend for Fault {
    fn open(settings: Settings) -> Result<Self, Error> {
        let control = format!("{}/.fault", settings.get_or("root", "/store"));
        Ok(Fault {
            inner: LocalStore::open(settings)?,
            control,
        })
    }

    fn info(&self) -> Info {
        let inner = self.inner.info();
        let features = match self.command().as_str() {
            "spin-watch" => inner.features | Features::WATCH,
            _ => inner.features,
        };
        Info {
            name: "fault".into(),
            features,
            ..inner
        }
    }

    fn wait_for_change(&self, _timeout_ms: u32) -> Result<bool, Error> {
        if self.command() == "spin-watch" {
            loop {
                std::hint::spin_loop();
            }
        }
        Ok(false)
    }

    fn prepare(&self) -> Result<(), Error> {
        self.gate()?;
        self.inner.prepare()
    }

    fn check(&self) -> Result<(), Error> {
        self.gate()?;
        self.inner.check()
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        self.gate()?;
        self.inner.list()
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        self.gate()?;
        self.inner.read(keys)
    }

    fn pull(&self, cursor: Option<String>) -> Result<Snapshot, Error> {
        self.gate()?;
        self.inner.pull(cursor)
    }

    fn apply(&self, changes: Vec<Change>, message: String) -> Result<Vec<Option<Entry>>, Error> {
        self.gate()?;
        match self.command().as_str() {
            "wrong-apply-count" => Ok(vec![None; changes.len() + 1]),
            "lying-apply" => Ok(changes
                .into_iter()
                .map(|change| match change {
                    Change::Put(put) => Some(Entry {
                        key: put.key,
                        version: "lie".into(),
                        size: 0,
                        modified_ms: None,
                    }),
                    Change::Remove(_) => None,
                })
                .collect()),
            _ => self.inner.apply(changes, message),
        }
    }
}

storehost_sdk::export_backend!(Fault);
