//! Compiles the built-in plugins for wasm32-wasip2 and embeds them, so one
//! binary runs on a fresh machine.

#[path = "build_support/guests.rs"]
mod guests;

use std::path::{Path, PathBuf};

/// (package, constant name) of every built-in plugin.
const BUILTINS: &[(&str, &str)] = &[
    ("storehost-plugin-local", "LOCAL"),
    ("storehost-plugin-postgres", "POSTGRES"),
    ("storehost-plugin-object", "OBJECT"),
    ("storehost-plugin-git", "GIT"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = guests::workspace_root(&manifest_dir);
    guests::rerun_if_changed(&root, &["plugins"]);
    let packages: Vec<&str> = BUILTINS.iter().map(|(package, _)| *package).collect();
    let wasm_paths = guests::build_guests(&root, &packages);
    let mut code = String::new();
    for ((package, constant), path) in BUILTINS.iter().zip(wasm_paths) {
        code.push_str(&format!(
            "/// The `{package}` component.\npub const {constant}: &[u8] = include_bytes!({:?});\n",
            path.display().to_string()
        ));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    std::fs::write(out, code).unwrap();
    let version = newest_contract_version(&root);
    println!("cargo:rustc-env=STOREHOST_CONTRACT_VERSION={version}");
}

/// The newest `wit/<version>/` folder, checked against the package line of
/// its `storehost.wit` (a folder must hold the version it is named after).
pub fn newest_contract_version(root: &Path) -> String {
    let wit = root.join("wit");
    let mut versions: Vec<(Vec<u64>, String)> = std::fs::read_dir(&wit)
        .expect("reading wit/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            let parts: Option<Vec<u64>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((parts?, name))
        })
        .collect();
    versions.sort();
    let (_, newest) = versions.pop().expect("wit/ holds no <version>/ folder");
    let text = std::fs::read_to_string(wit.join(&newest).join("storehost.wit"))
        .expect("reading the newest contract");
    let declared = format!("package storehost:plugin@{newest};");
    assert!(
        text.lines().any(|line| line.trim() == declared),
        "wit/{newest}/storehost.wit must declare `{declared}`"
    );
    newest
}
