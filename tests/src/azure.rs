//! Azure Blob Storage for tests: Azurite started by the product's own
//! harness ([`storehost::test_servers::AzuriteServer`]), and the
//! third-party azure-blob plugin loaded through a manifest as a user would
//! write it. Install Azurite with `bash .ci/install.sh` (`npm install -g
//! azurite`).

use crate::guests;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;
use storehost::manifest::{LoadedPlugin, Manifest};
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};
use storehost::test_servers::AzuriteServer;
use storehost::{CustomPlugin, Storehost};

pub struct Azurite(AzuriteServer);

/// The plugin file the shipped example manifest names.
pub const EXAMPLE_PLUGIN_FILE: &str = "storehost_plugin_azure_blob.wasm";

impl Deref for Azurite {
    type Target = AzuriteServer;
    fn deref(&self) -> &AzuriteServer {
        &self.0
    }
}

impl DerefMut for Azurite {
    fn deref_mut(&mut self) -> &mut AzuriteServer {
        &mut self.0
    }
}

/// How the host authenticates the plugin's requests.
#[derive(Clone)]
pub enum Credential {
    /// SharedKey signing with this (base64) account key.
    SharedKey(String),
    /// This SAS appended to every request.
    Sas(String),
}

impl Azurite {
    pub fn start() -> Azurite {
        Azurite(AzuriteServer::start().unwrap_or_else(|e| panic!("{e}")))
    }

    pub fn resume(&mut self) {
        self.0.resume().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The account key, as a SharedKey credential.
    pub fn shared_key(&self) -> Credential {
        Credential::SharedKey(self.key().to_string())
    }

    /// An account SAS signed with the account key.
    pub fn sas(&self) -> Credential {
        Credential::Sas(self.account_sas(self.key()).unwrap())
    }

    /// The example manifest shipped in `plugins/azure-blob/`, with this
    /// server's account edited in, as a user would; it names the plugin
    /// file [`EXAMPLE_PLUGIN_FILE`] beside it and takes the key from
    /// `AZURE_STORAGE_KEY`.
    pub fn edited_example_manifest(&self) -> String {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/azure-blob/storehost.yaml");
        let text = std::fs::read_to_string(example).unwrap();
        assert!(
            text.contains(&format!("file: ./{EXAMPLE_PLUGIN_FILE}")),
            "{text}"
        );
        text.replace(
            "https://myaccount.blob.core.windows.net",
            &self.account_url(),
        )
        .replace(
            "account: myaccount",
            &format!("account: {}", self.account()),
        )
    }

    /// A manifest for the plugin on `container` in `dir` (the secret in a
    /// file beside it), as a user would write one.
    pub fn manifest(&self, dir: &Path, container: &str, credential: &Credential) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let (secret, credential_yaml) = match credential {
            Credential::SharedKey(key) => (
                key,
                format!(
                    "azure_shared_key: {{ account: {}, key: {{ file: ./secret }} }}",
                    self.account()
                ),
            ),
            Credential::Sas(sas) => (sas, "query: { token: { file: ./secret } }".to_string()),
        };
        std::fs::write(dir.join("secret"), secret).unwrap();
        let account_url = self.account_url();
        let text = format!(
            "plugin:\n  file: {plugin}\n\
             settings:\n  endpoint: {account_url}\n  container: {container}\n\
             grants:\n  http:\n    - url: {account_url}/{container}\n      credential:\n        {credential_yaml}\n",
            plugin = guests::AZURE_BLOB_PATH,
        );
        let path = dir.join("storehost.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The plugin, loaded from [`Azurite::manifest`].
    pub fn plugin(&self, dir: &Path, container: &str, credential: &Credential) -> Plugin {
        self.plugin_on(&Runtime::shared().unwrap(), dir, container, credential)
    }

    /// The same on `runtime` (e.g. an audited one).
    pub fn plugin_on(
        &self,
        runtime: &Runtime,
        dir: &Path,
        container: &str,
        credential: &Credential,
    ) -> Plugin {
        plugin_from(runtime, &self.manifest(dir, container, credential))
    }

    /// A host mirroring `workspace` to `container` through the plugin,
    /// polling every `poll`.
    pub async fn host(&self, workspace: &Path, container: &str, poll: Duration) -> Storehost {
        let dir = workspace.with_extension("manifest");
        let loaded = load(&self.manifest(&dir, container, &self.shared_key()));
        let plugin = CustomPlugin {
            name: loaded.name,
            wasm: loaded.wasm,
            settings: loaded.settings,
            grants: loaded.grants,
        };
        let options = storehost::StorehostOptions {
            mirror: storehost::MirrorOptions {
                poll_interval: poll,
                complete_pull_interval: poll * 30,
                ..Default::default()
            },
            ..Default::default()
        };
        Storehost::with_plugin(plugin, workspace, options)
            .await
            .unwrap()
    }
}

/// The plugin a manifest file names, with what it grants, on `runtime`.
pub fn plugin_from(runtime: &Runtime, manifest: &Path) -> Plugin {
    let loaded = load(manifest);
    let spec = PluginSpec {
        name: loaded.name,
        grants: loaded.grants,
        limits: Limits::default(),
        settings: loaded.settings,
    };
    Plugin::load(runtime, spec, &loaded.wasm).unwrap()
}

/// What a manifest file names and grants, loaded (secrets read).
pub fn load(manifest: &Path) -> LoadedPlugin {
    Manifest::read(manifest)
        .and_then(|manifest| manifest.load_plugin())
        .unwrap_or_else(|e| panic!("{e}"))
}
