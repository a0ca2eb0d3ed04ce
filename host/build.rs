//! Compiles the built-in plugins for wasm32-wasip2 and embeds them, so one
//! binary runs on a fresh machine.

#[path = "build_support/guests.rs"]
mod guests;

use std::path::PathBuf;

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
    let version = guests::newest_contract_version(&root);
    println!("cargo:rustc-env=STOREHOST_CONTRACT_VERSION={version}");
}
