//! `storehost plugin new NAME`: a plugin crate that builds outside this
//! repository, passes `storehost plugin test` as generated, and comes with
//! a README and a manifest.

use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct NewArgs {
    /// The crate's name (lowercase letters, digits, `-` and `_`).
    name: String,
    /// Where to write it (default: ./NAME); must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A local checkout of the SDK (`sdk/` of the storehost repository),
    /// used until the SDK is on the crate registry.
    #[arg(long)]
    sdk: Option<PathBuf>,
}

/// (file written, template); `{{name}}`, `{{crate}}` and `{{sdk}}` are filled in.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.in")),
    ("src/lib.rs", include_str!("scaffold/lib.rs.in")),
    ("README.md", include_str!("scaffold/README.md.in")),
    ("storehost.yaml", include_str!("scaffold/storehost.yaml.in")),
    (".gitignore", include_str!("scaffold/gitignore.in")),
];

pub fn run(args: NewArgs) -> ExitCode {
    let target = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = match check_inputs(&args, &target) {
        Ok(sdk) => sdk,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match write_crate(&args.name, &target, &sdk) {
        Ok(()) => {
            print!("{}", next_steps(&args.name, &target));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The name, the target and the SDK path are checked before anything is
/// written; answers the SDK dependency line.
fn check_inputs(args: &NewArgs, target: &Path) -> anyhow::Result<String> {
    check_name(&args.name)?;
    if target.exists() {
        let empty = std::fs::read_dir(target)
            .with_context(|| format!("{} exists and cannot be read", target.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists and is not empty: choose another --dir",
                target.display()
            );
        }
    }
    let version = format!("version = \"{}\"", env!("CARGO_PKG_VERSION"));
    let Some(sdk) = &args.sdk else {
        return Ok(version);
    };
    let manifest = sdk.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("--sdk {}: no Cargo.toml there", sdk.display()))?;
    if !text.contains("name = \"storehost-sdk\"") {
        bail!("--sdk {}: not the storehost-sdk crate", sdk.display());
    }
    let absolute =
        std::fs::canonicalize(sdk).with_context(|| format!("--sdk {}", sdk.display()))?;
    Ok(format!(
        "{version}, path = {:?}",
        absolute.display().to_string()
    ))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !starts_with_letter || !allowed || name.len() > 64 {
        bail!(
            "{name:?} is not a crate name: use lowercase letters, digits, `-` and `_`, \
             starting with a letter, at most 64 characters"
        );
    }
    Ok(())
}

fn write_crate(name: &str, target: &Path, sdk: &str) -> anyhow::Result<()> {
    let crate_name = name.replace('-', "_");
    for (file, template) in TEMPLATES {
        let path = target.join(file);
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", sdk);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::create_dir_all(target.join("data"))
        .with_context(|| format!("creating {}", target.join("data").display()))?;
    Ok(())
}

fn next_steps(name: &str, target: &Path) -> String {
    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    format!(
        "created {name} in {dir}\n\
         next:\n  cd {dir}\n  cargo build --release --target wasm32-wasip2\n  \
         storehost plugin test {wasm}\n  storehost serve --manifest storehost.yaml\n",
        dir = target.display()
    )
}
