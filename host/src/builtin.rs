//! Built-in plugin components, compiled by build.rs and embedded, and the
//! one table of what each is granted and told: the embedding API, the
//! tests and the conformance runner all build a built-in's spec here.

mod components {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

use crate::capabilities::{Capability, Grants};
use crate::runtime::plugin::GUEST_STORE_DIR;
use crate::runtime::{Limits, PluginSpec};
use crate::selection::{BackendChoice, BackendKind};
use std::path::Path;

/// The embedded component of a backend, if this build has one.
pub fn component(kind: BackendKind) -> Option<&'static [u8]> {
    match kind {
        BackendKind::Local => Some(components::LOCAL),
        BackendKind::Postgres => Some(components::POSTGRES),
        BackendKind::Object => Some(components::OBJECT),
        BackendKind::Git => Some(components::GIT),
    }
}

/// The local plugin's component.
pub fn local() -> &'static [u8] {
    components::LOCAL
}

/// Where a built-in keeps things on this machine; each backend uses only
/// its own: the local backend stores in `store`, the git backend keeps its
/// repository cache in `git_cache`.
#[derive(Debug, Clone, Copy)]
pub struct Places<'a> {
    pub store: &'a Path,
    pub git_cache: &'a Path,
}

impl Places<'static> {
    /// For backends that keep nothing on this machine (PostgreSQL, object
    /// storage).
    pub fn none() -> Places<'static> {
        Places {
            store: Path::new(""),
            git_cache: Path::new(""),
        }
    }
}

/// The built-in plugin for `choice`: its capability, endpoint and secrets
/// as grants, and its settings, with default limits.
pub fn spec(choice: &BackendChoice, places: Places<'_>) -> PluginSpec {
    let (grants, settings) = grants_and_settings(choice, places);
    PluginSpec {
        name: choice.kind().name().into(),
        grants,
        limits: Limits::default(),
        settings: settings
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    }
}

fn grants_and_settings(
    choice: &BackendChoice,
    places: Places<'_>,
) -> (Grants, Vec<(&'static str, String)>) {
    match choice {
        BackendChoice::Local => (
            Grants::minimal().with_directory(places.store),
            vec![("root", GUEST_STORE_DIR.to_string())],
        ),
        BackendChoice::Postgres(pg) => (
            Grants::minimal()
                .with_capability(Capability::Sql)
                .with_secret("dsn", pg.dsn.clone()),
            vec![("schema", pg.schema.clone())],
        ),
        BackendChoice::Object(object) => (
            Grants::minimal()
                .with_capability(Capability::Objects)
                .with_endpoint(object.endpoint.url())
                .with_secret("access_key", object.access_key.clone())
                .with_secret("secret_key", object.secret_key.clone()),
            vec![
                ("endpoint", object.endpoint.url()),
                ("bucket", object.bucket.clone()),
                ("region", object.region.clone()),
            ],
        ),
        BackendChoice::Git(git) => (
            Grants::minimal()
                .with_capability(Capability::Git)
                .with_endpoint(&git.url)
                .with_git_dir(places.git_cache)
                .with_secret("token", git.token.clone()),
            vec![
                ("url", git.url.clone()),
                ("branch", git.branch.clone().unwrap_or_default()),
                ("username", git.username.clone()),
                ("squash", git.squash.to_string()),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    /// One shape for plugins: a reader who knows one built-in finds the
    /// same pieces in the same files in every other.
    #[test]
    fn every_built_in_plugin_has_the_same_file_set() {
        let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let expected = [
            "errors.rs",
            "feed.rs",
            "layout.rs",
            "lib.rs",
            "settings.rs",
            "writes.rs",
        ];
        // A backend's own piece, named here so the rule stays exact.
        let own: &[(&str, &str)] = &[("postgres", "cooldown.rs")];
        for plugin in ["local", "postgres", "object", "git"] {
            let mut files: Vec<String> = std::fs::read_dir(plugins.join(plugin).join("src"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|file| !own.contains(&(plugin, file.as_str())))
                .collect();
            files.sort();
            assert_eq!(files, expected, "plugins/{plugin}/src");
        }
    }
}
