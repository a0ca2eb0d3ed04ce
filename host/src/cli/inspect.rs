use std::path::Path;
use std::process::ExitCode;
use storehost::runtime::{Runtime, inspect};

pub fn run(file: &Path) -> ExitCode {
    let wasm = match std::fs::read(file) {
        Ok(wasm) => wasm,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let runtime = match Runtime::new(None) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match inspect::inspect(&runtime, &file.display().to_string(), &wasm) {
        Ok(inspection) => {
            print!("{inspection}");
            if inspection.loadable.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
