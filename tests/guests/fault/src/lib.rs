//! The local backend with faults on command: before every call it reads
//! `<root>/.fault`. `unavailable` fails the call as transient, `fail` as an
//! internal error, `delay:<ms>` waits first; no file means healthy. Tests
//! write that file to take the "remote" down and bring it back.

use std::time::Duration;
use storehost_plugin_local::LocalStore;
use storehost_sdk::{Backend, Change, Document, Entry, Error, Info, Key, Settings, Snapshot};

pub struct Fault {
    inner: LocalStore,
    control: String,
}

impl Fault {
    fn gate(&self) -> Result<(), Error> {
        let command = std::fs::read_to_string(&self.control).unwrap_or_default();
        let command = command.trim();
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
        Info {
            name: "fault".into(),
            ..self.inner.info()
        }
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
        self.inner.apply(changes, message)
    }
}

storehost_sdk::export_backend!(Fault);
