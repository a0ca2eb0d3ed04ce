//! PostgreSQL DSNs in both forms existing deployments hand to pgx: a URL
//! (`postgresql://user:pw@host:5432/db?sslmode=require`) and libpq's
//! `key=value` list (`host=/run/pg dbname=app user=app password='p w'`).
//!
//! sqlx reads only URLs and logs the value of any query parameter it does
//! not know, so parameters it would ignore are dropped here first and only
//! their names are logged. No error quotes a value.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    #[error("the DSN is not a valid PostgreSQL connection string")]
    Malformed,
    #[error("the DSN's `{0}` has an invalid value")]
    BadValue(String),
}

/// URL query parameters sqlx understands.
const URL_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

pub fn connect_options(dsn: &str) -> Result<PgConnectOptions, DsnError> {
    let dsn = dsn.trim();
    let lower = dsn.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        from_url(dsn)
    } else {
        from_keywords(dsn)
    }
}

fn from_url(dsn: &str) -> Result<PgConnectOptions, DsnError> {
    // `user:pw@/db?host=/socket` (Cloud SQL's form) has an empty host,
    // which URL parsers refuse; the `host` parameter decides anyway.
    let mut url = url::Url::parse(dsn)
        .or_else(|_| url::Url::parse(&dsn.replacen("@/", "@localhost/", 1)))
        .map_err(|_| DsnError::Malformed)?;
    let (kept, dropped): (Vec<_>, Vec<_>) = url
        .query_pairs()
        .into_owned()
        .partition(|(key, _)| known_url_parameter(key));
    for (key, _) in &dropped {
        tracing::warn!(parameter = %key, "ignoring a DSN parameter storehost does not use");
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    PgConnectOptions::from_str(url.as_str()).map_err(|_| DsnError::Malformed)
}

fn known_url_parameter(key: &str) -> bool {
    URL_PARAMETERS.contains(&key) || (key.starts_with("options[") && key.ends_with(']'))
}

fn from_keywords(dsn: &str) -> Result<PgConnectOptions, DsnError> {
    let pairs = keyword_pairs(dsn)?;
    if pairs.is_empty() {
        return Err(DsnError::Malformed);
    }
    let mut options = PgConnectOptions::new();
    for (key, value) in pairs {
        let bad = || DsnError::BadValue(key.clone());
        options = match key.as_str() {
            "host" if value.starts_with('/') => options.socket(&value),
            "host" | "hostaddr" => options.host(&value),
            "port" => options.port(value.parse().map_err(|_| bad())?),
            "dbname" => options.database(&value),
            "user" => options.username(&value),
            "password" => options.password(&value),
            "sslmode" => options.ssl_mode(PgSslMode::from_str(&value).map_err(|_| bad())?),
            "sslrootcert" => options.ssl_root_cert(value.as_str()),
            "sslcert" => options.ssl_client_cert(value.as_str()),
            "sslkey" => options.ssl_client_key(value.as_str()),
            "application_name" => options.application_name(&value),
            _ => {
                tracing::warn!(parameter = %key, "ignoring a DSN parameter storehost does not use");
                options
            }
        };
    }
    Ok(options)
}

/// Splits libpq's `key = value` list; values may be single-quoted, with
/// `\'` and `\\` escapes.
fn keyword_pairs(dsn: &str) -> Result<Vec<(String, String)>, DsnError> {
    let mut chars = dsn.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(DsnError::Malformed);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next().ok_or(DsnError::Malformed)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or(DsnError::Malformed)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(if c == '\\' {
                    chars.next().ok_or(DsnError::Malformed)?
                } else {
                    c
                });
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_lists_parse_like_libpq() {
        let pairs =
            keyword_pairs(r"host=/run/pg  port = 5433 password='it\'s x' user=a\ b").unwrap();
        assert_eq!(
            pairs,
            [
                ("host", "/run/pg"),
                ("port", "5433"),
                ("password", "it's x"),
                ("user", "a b")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        for malformed in ["host", "=x", "password='open", "a=b c"] {
            assert_eq!(
                keyword_pairs(malformed).unwrap_err(),
                DsnError::Malformed,
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn keyword_dsns_become_connect_options() {
        let options = connect_options(
            "host=/var/run/postgresql port=5433 dbname=app user=me sslmode=disable",
        )
        .unwrap();
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_database(), Some("app"));
        assert_eq!(options.get_username(), "me");
        assert_eq!(
            options.get_socket().map(|p| p.display().to_string()),
            Some("/var/run/postgresql".into())
        );
        let error = connect_options("host=h port=secret-ish").unwrap_err();
        assert_eq!(error.to_string(), "the DSN's `port` has an invalid value");
        assert!(connect_options("").is_err());
    }

    #[test]
    fn url_parameters_sqlx_ignores_are_dropped_not_logged_with_values() {
        let options = connect_options(
            "postgresql://u:pw@db.example:6000/app?connect_timeout=5&sslpassword=canary-77&sslmode=require",
        )
        .unwrap();
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 6000);
        assert!(matches!(options.get_ssl_mode(), PgSslMode::Require));
        let socket = connect_options("postgresql://u:pw@/app?host=/cloudsql/p:r:i").unwrap();
        assert_eq!(
            socket.get_socket().map(|p| p.display().to_string()),
            Some("/cloudsql/p:r:i".into())
        );
        assert_eq!(
            connect_options("postgresql://u:pw@[bad").unwrap_err(),
            DsnError::Malformed
        );
    }
}
