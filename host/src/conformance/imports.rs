//! Every capability a component imports must be granted: an ungranted one
//! loads, but each of its calls answers `denied`.

use super::Outcome;
use crate::capabilities::{Capability, Grants};
use crate::runtime::bindings::CONTRACT_PACKAGE;
use crate::runtime::inspect::Inspection;

pub fn check(inspection: &Inspection, grants: &Grants) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = inspection
        .capabilities
        .iter()
        .map(|capability| {
            let name = format!("import {CONTRACT_PACKAGE}/{}", capability.interface());
            match (grants.allows(*capability), capability) {
                (true, Capability::Secrets) => {
                    let names: Vec<&str> = grants.secret_names().collect();
                    Outcome::pass("imports", name, format!("granted: {}", names.join(", ")))
                }
                (true, _) => Outcome::pass("imports", name, "granted".to_string()),
                (false, Capability::Secrets) => Outcome::fail(
                    "imports",
                    name,
                    "no secret granted: every lookup would answer `denied`; name them under \
                     `grants.secrets` in the manifest"
                        .to_string(),
                ),
                (false, _) => Outcome::fail(
                    "imports",
                    name,
                    "not granted: every call would answer `denied`; grant it with \
                     `grants.capabilities` in the manifest"
                        .to_string(),
                ),
            }
        })
        .collect();
    match &inspection.loadable {
        Ok(()) => outcomes.extend(inspection.other_imports.iter().map(|import| {
            let name = format!("import {import}");
            match (import.starts_with("wasi:http/"), grants.http()) {
                (true, Some(http)) => {
                    let rules: Vec<String> = http.rules().map(|r| r.prefix.to_string()).collect();
                    Outcome::pass("imports", name, format!("granted: {}", rules.join(", ")))
                }
                (true, None) => Outcome::fail(
                    "imports",
                    name,
                    "not granted: the plugin would not link; allow URLs under `grants.http` \
                     in the manifest"
                        .to_string(),
                ),
                (false, _) if import.starts_with("wasi:") => {
                    Outcome::pass("imports", name, "WASI, provided by the host".to_string())
                }
                (false, _) => Outcome::pass("imports", name, "provided by the host".to_string()),
            }
        })),
        Err(why) => outcomes.push(Outcome::fail("imports", "the component loads", why.clone())),
    }
    outcomes
}
