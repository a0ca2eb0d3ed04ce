//! Per-backend checks of the variables of docs/design.md §5. Errors name the
//! variable and never quote a value, which may be a secret.

use super::{
    Environment, GitSettings, ObjectEndpoint, ObjectSettings, PostgresSettings, SelectionError,
};
use crate::capabilities::secrets::SecretValue;
use std::path::PathBuf;

fn malformed(variable: &'static str, reason: impl Into<String>) -> SelectionError {
    SelectionError::Malformed {
        variable,
        reason: reason.into(),
    }
}

fn required(
    env: &Environment,
    variable: &'static str,
    because: &'static str,
) -> Result<String, SelectionError> {
    env.get(variable)
        .ok_or(SelectionError::Missing { variable, because })
}

pub fn postgres(env: &Environment) -> Result<PostgresSettings, SelectionError> {
    let dsn = required(env, "PGSTORE_DSN", "PGSTORE_DSN")?;
    check_dsn(&dsn)?;
    let schema = env.get("PGSTORE_SCHEMA").unwrap_or_else(|| "public".into());
    if schema.len() > 63 || schema.contains('\0') {
        return Err(malformed(
            "PGSTORE_SCHEMA",
            "a schema name is at most 63 bytes and has no NUL",
        ));
    }
    Ok(PostgresSettings {
        dsn: SecretValue::new(dsn),
        schema,
    })
}

/// A URL (`postgres://` or `postgresql://`) or a keyword/value string
/// (`host=… user=…`), as libpq accepts.
fn check_dsn(dsn: &str) -> Result<(), SelectionError> {
    let lower = dsn.to_ascii_lowercase();
    if let Some((_, rest)) = dsn
        .split_once("://")
        .filter(|_| lower.starts_with("postgres://") || lower.starts_with("postgresql://"))
    {
        return check_dsn_hosts(rest);
    }
    if lower.contains("://") {
        return Err(malformed(
            "PGSTORE_DSN",
            "the URL scheme must be postgres:// or postgresql://",
        ));
    }
    crate::capabilities::pg_dsn::connect_options(dsn)
        .map(drop)
        .map_err(|problem| {
            malformed(
                "PGSTORE_DSN",
                format!(
                    "{problem}; expected postgresql://user:password@host:port/db or host=… user=… pairs"
                ),
            )
        })
}

/// The hosts of a DSN URL (after the scheme): each `host`, `host:port` or
/// `[v6]:port` with a numeric port, no spaces. An empty host (a socket
/// directory given as `?host=`) is fine. Messages never quote the DSN.
fn check_dsn_hosts(rest: &str) -> Result<(), SelectionError> {
    const VAR: &str = "PGSTORE_DSN";
    if rest.contains(char::is_whitespace) {
        return Err(malformed(
            VAR,
            "a DSN URL has no spaces (percent-encode them)",
        ));
    }
    let after_user = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let hosts = after_user.split(['/', '?']).next().unwrap_or_default();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        if !port_is_valid(host) {
            return Err(malformed(VAR, "the port is not a number from 1 to 65535"));
        }
    }
    Ok(())
}

pub fn object(env: &Environment) -> Result<ObjectSettings, SelectionError> {
    const TRIGGER: &str = "OBJECTSTORE_ENDPOINT";
    let endpoint = parse_endpoint(&required(env, TRIGGER, TRIGGER)?)?;
    let bucket = required(env, "OBJECTSTORE_BUCKET", TRIGGER)?;
    check_bucket(&bucket)?;
    let access_key = required(env, "OBJECTSTORE_ACCESS_KEY", TRIGGER)?;
    let secret_key = required(env, "OBJECTSTORE_SECRET_KEY", TRIGGER)?;
    let region = env
        .get("OBJECTSTORE_REGION")
        .unwrap_or_else(|| "us-east-1".into());
    Ok(ObjectSettings {
        endpoint,
        bucket,
        region,
        access_key: SecretValue::new(access_key),
        secret_key: SecretValue::new(secret_key),
    })
}

/// The scheme decides TLS (`http://` off, `https://` on; none means
/// HTTPS). A trailing slash is fine; a path, a query or a user is not.
pub fn parse_endpoint(value: &str) -> Result<ObjectEndpoint, SelectionError> {
    const VAR: &str = "OBJECTSTORE_ENDPOINT";
    let (tls, rest) = match value.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some(_) => return Err(malformed(VAR, "the scheme must be http:// or https://")),
        None => (true, value),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() {
        return Err(malformed(VAR, "no host"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(malformed(
            VAR,
            "an endpoint has no path or query; put the bucket in OBJECTSTORE_BUCKET",
        ));
    }
    if authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(malformed(
            VAR,
            "credentials or spaces in the endpoint; use OBJECTSTORE_ACCESS_KEY and OBJECTSTORE_SECRET_KEY",
        ));
    }
    if !port_is_valid(authority) {
        return Err(malformed(VAR, "the port is not a number"));
    }
    Ok(ObjectEndpoint {
        tls,
        authority: authority.to_string(),
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn port_is_valid(authority: &str) -> bool {
    let port = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, "")) => return true,
            Some((_, rest)) => match rest.strip_prefix(':') {
                Some(port) => port,
                None => return false,
            },
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((_, port)) => port,
            None => return true,
        },
    };
    port.parse::<u16>().is_ok_and(|port| port > 0)
}

/// S3 bucket naming rules, which every compatible service accepts.
fn check_bucket(bucket: &str) -> Result<(), SelectionError> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && ok_chars && ok_ends && !bucket.contains("..") {
        Ok(())
    } else {
        Err(malformed(
            "OBJECTSTORE_BUCKET",
            "3-63 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ))
    }
}

pub fn git(env: &Environment) -> Result<GitSettings, SelectionError> {
    const TRIGGER: &str = "GITSTORE_GIT_URL";
    let url = required(env, TRIGGER, TRIGGER)?;
    check_git_url(&url)?;
    let token = required(env, "GITSTORE_GIT_TOKEN", TRIGGER)?;
    let username = env
        .get("GITSTORE_GIT_USERNAME")
        .unwrap_or_else(|| "git".into());
    let branch = env.get("GITSTORE_GIT_BRANCH");
    if let Some(branch) = &branch {
        check_branch(branch)?;
    }
    let squash = match env.get("GITSTORE_SQUASH") {
        None => false,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            _ => return Err(malformed("GITSTORE_SQUASH", "must be true or false")),
        },
    };
    Ok(GitSettings {
        url,
        username,
        token: SecretValue::new(token),
        branch,
        squash,
    })
}

fn check_git_url(url: &str) -> Result<(), SelectionError> {
    const VAR: &str = "GITSTORE_GIT_URL";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| malformed(VAR, "must be an http:// or https:// URL"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed(VAR, "a URL has no spaces (percent-encode them)"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(malformed(
            VAR,
            "credentials in the URL would be stored in clear; use GITSTORE_GIT_USERNAME and GITSTORE_GIT_TOKEN",
        ));
    }
    if authority.is_empty() {
        return Err(malformed(VAR, "no host"));
    }
    if !port_is_valid(authority) {
        return Err(malformed(VAR, "the port is not a number from 1 to 65535"));
    }
    Ok(())
}

/// The subset of `git check-ref-format` rules that matter for a branch name.
fn check_branch(branch: &str) -> Result<(), SelectionError> {
    let bad = branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(malformed(
            "GITSTORE_GIT_BRANCH",
            "not a valid git branch name",
        ))
    } else {
        Ok(())
    }
}

pub fn path(variable: &'static str, value: &str) -> Result<PathBuf, SelectionError> {
    if value.contains('\0') {
        return Err(malformed(variable, "contains NUL"));
    }
    Ok(PathBuf::from(value))
}
