//! Builds every test guest under `tests/guests/` and generates the list the
//! tests iterate, so no guest is built and forgotten.

#[path = "../host/build_support/guests.rs"]
mod guests;

use std::path::PathBuf;

const AZURE_BLOB: &str = "storehost-plugin-azure-blob";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = guests::workspace_root(&manifest_dir);
    // The fault guest builds on the local plugin, the azure bench on its plugin.
    guests::rerun_if_changed(&root, &["tests/guests", "plugins"]);
    let mut names: Vec<String> = std::fs::read_dir(manifest_dir.join("guests"))
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("Cargo.toml")
                .exists()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let packages: Vec<String> = names
        .iter()
        .map(|name| format!("storehost-guest-{name}"))
        .collect();
    let mut package_refs: Vec<&str> = packages.iter().map(String::as_str).collect();
    // The third-party plugin, loaded by the tests through its manifest.
    package_refs.push(AZURE_BLOB);
    let mut paths = guests::build_guests(&root, &package_refs);
    let azure_blob = paths.pop().unwrap();
    let mut code = String::from(
        "/// Every test guest: (name, component bytes).\npub const ALL: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in names.iter().zip(&paths) {
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    for (name, path) in names.iter().zip(&paths) {
        code.push_str(&format!(
            "/// The `{name}` test guest.\npub const {}: &[u8] = include_bytes!({:?});\n",
            name.to_uppercase().replace('-', "_"),
            path.display().to_string()
        ));
    }
    code.push_str(&format!(
        "/// The Azure Blob plugin (`plugins/azure-blob`), built as its author would.\n\
         pub const AZURE_BLOB: &[u8] = include_bytes!({0:?});\n\
         /// Where that component is, for a manifest's `plugin.file`.\n\
         pub const AZURE_BLOB_PATH: &str = {0:?};\n",
        azure_blob.display().to_string()
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("test_guests.rs");
    std::fs::write(out, code).unwrap();
}
