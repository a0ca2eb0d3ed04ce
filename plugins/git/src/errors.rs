//! What a push's answer means: `rejected` is the branch moving under us
//! (another writer got there first), which each caller settles its own
//! way; every other error maps as the SDK says.

use storehost_sdk::{Error, HostError, host_error};

pub enum Push {
    Done,
    /// The branch moved; the reason the server gave.
    BranchMoved(String),
}

pub fn push_outcome(answer: Result<(), HostError>) -> Result<Push, Error> {
    match answer {
        Ok(()) => Ok(Push::Done),
        Err(HostError::Rejected(why)) => Ok(Push::BranchMoved(why)),
        Err(other) => Err(host_error(other)),
    }
}
