//! What the host tells this plugin: the endpoint, bucket and region as
//! settings, the keys as secrets it can use but never read.

use storehost_sdk::capabilities::{objects, secrets};
use storehost_sdk::{Error, Settings, host_error};

/// Opens the bucket the settings name, with the granted keys.
pub fn open_bucket(settings: &Settings) -> Result<objects::Bucket, Error> {
    let endpoint = settings.require("endpoint")?;
    let bucket = settings.require("bucket")?;
    let region = settings.get_or("region", "us-east-1");
    let access_key = secrets::get("access_key").map_err(host_error)?;
    let secret_key = secrets::get("secret_key").map_err(host_error)?;
    objects::open(endpoint, bucket, region, &access_key, &secret_key).map_err(host_error)
}
