//! What the host tells this plugin: the remote, branch and user as
//! settings, the token as a secret it can use but never read, and whether
//! to keep history.

use storehost_sdk::capabilities::{git, secrets};
use storehost_sdk::{Error, Settings, host_error};

pub struct Opened {
    pub repo: git::Repository,
    pub squash: bool,
}

/// Opens the repository the settings name, with the granted token.
pub fn open_repository(settings: &Settings) -> Result<Opened, Error> {
    let url = settings.require("url")?;
    let branch = settings.get("branch").filter(|b| !b.is_empty());
    let username = settings.get_or("username", "git");
    let squash = squash(settings)?;
    let token = secrets::get("token").map_err(host_error)?;
    let repo = git::open(url, branch, username, &token).map_err(host_error)?;
    Ok(Opened { repo, squash })
}

fn squash(settings: &Settings) -> Result<bool, Error> {
    match settings.get_or("squash", "false") {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::Invalid(format!(
            "setting `squash` must be true or false, not {other:?}"
        ))),
    }
}
