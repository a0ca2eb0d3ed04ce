// Builds WebAssembly guest crates of this workspace for wasm32-wasip2 with a
// nested cargo in its own target directory (so it never waits on the outer
// build's lock), and reports where the components are.
//
// Shared by host/build.rs (built-in plugins) and tests/build.rs (test
// guests) through `#[path]`, so both build guests the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";
pub const PROFILE: &str = "plugin";

/// The workspace root, from a crate directory one or two levels below it.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists() || dir.join("rust-toolchain.toml").exists())
        .expect("workspace root above the crate")
        .to_path_buf()
}

/// Builds `packages` as components and returns each one's `.wasm` path,
/// in order. Guest crates are plain libraries (so `cargo clippy
/// --workspace` checks them natively); the cdylib is asked for here.
pub fn build_guests(root: &Path, packages: &[&str]) -> Vec<PathBuf> {
    ensure_target_installed();
    let target_dir = guest_target_dir(root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in packages {
        let mut command = Command::new(&cargo);
        command
            .current_dir(root)
            .args([
                "rustc",
                "--lib",
                "--crate-type",
                "cdylib",
                "--target",
                TARGET,
                "--profile",
                PROFILE,
                "-p",
                package,
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        // The outer build's flags and wrappers (clippy, coverage) are for
        // the host, not for the guests.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC_WRAPPER",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
        ] {
            command.env_remove(var);
        }
        let status = command.status().expect("running cargo for the wasm guests");
        assert!(status.success(), "building wasm guest {package} failed");
    }
    packages
        .iter()
        .map(|package| {
            target_dir
                .join(TARGET)
                .join(PROFILE)
                .join(format!("{}.wasm", package.replace('-', "_")))
        })
        .collect()
}

fn guest_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-guests"),
        None => root.join("target").join("wasm-guests"),
    }
}

/// Installs the wasm target when rustup is there; otherwise stops with the
/// command to run.
fn ensure_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("running rustc");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !matches!(added, Ok(status) if status.success()) {
        panic!("the {TARGET} target is missing: run `rustup target add {TARGET}`");
    }
}

/// Tells cargo to rebuild when guest sources, the SDK or the contract change.
pub fn rerun_if_changed(root: &Path, dirs: &[&str]) {
    for dir in [
        "wit",
        "sdk/src",
        "sdk/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .chain(dirs)
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
}
