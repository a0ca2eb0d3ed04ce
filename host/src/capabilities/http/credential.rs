//! Credentials the host applies to a request after its rule matched; the
//! plugin sends a URL and headers without them and never reads them.

use super::shared_key;
use crate::capabilities::secrets::SecretValue;
use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{Request, Uri};
use secrecy::zeroize::Zeroizing;

/// How a rule authenticates its requests. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A header from a secret, e.g. `Authorization: Bearer …`.
    Header {
        name: HeaderName,
        prefix: String,
        value: SecretValue,
    },
    Basic {
        username: SecretValue,
        password: SecretValue,
    },
    /// A query string (an Azure SAS) appended to every request's URL.
    Query { token: SecretValue },
    /// Azure Storage SharedKey: the host signs the canonical request.
    AzureSharedKey { account: String, key: SecretValue },
}

/// Why a credential could not be applied; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the secret for header `{0}` is not a valid header value")]
    HeaderValue(String),
    #[error("the request's query sets `{0}`, which the host's query credential sets")]
    QueryClash(String),
    #[error("the request's URL cannot take the query credential")]
    Uri,
    #[error("the Azure account key is not base64")]
    AccountKey,
}

impl Credential {
    /// Header names a guest may not set because this credential sets them.
    pub fn injected_header(&self) -> Option<HeaderName> {
        match self {
            Credential::Header { name, .. } => Some(name.clone()),
            Credential::Basic { .. } | Credential::AzureSharedKey { .. } => Some(AUTHORIZATION),
            Credential::Query { .. } => None,
        }
    }

    /// Checks what can be checked before any request (the key's encoding).
    pub fn validate(&self) -> Result<(), CredentialError> {
        match self {
            Credential::AzureSharedKey { key, .. } => shared_key::decode_key(key).map(|_| ()),
            Credential::Header {
                name,
                prefix,
                value,
            } => secret_header(&format!("{prefix}{}", value.expose()), name).map(|_| ()),
            Credential::Basic { .. } | Credential::Query { .. } => Ok(()),
        }
    }

    pub fn apply<B>(&self, request: &mut Request<B>) -> Result<(), CredentialError> {
        match self {
            Credential::Header {
                name,
                prefix,
                value,
            } => {
                let value = secret_header(&header_text(prefix, value), name)?;
                request.headers_mut().insert(name.clone(), value);
            }
            Credential::Basic { username, password } => {
                let pair = Zeroizing::new(format!("{}:{}", username.expose(), password.expose()));
                let encoded =
                    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
                let value = secret_header(
                    &Zeroizing::new(format!("Basic {}", *encoded)),
                    &AUTHORIZATION,
                )?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Credential::Query { token } => {
                *request.uri_mut() = with_query(request.uri(), token.expose())?;
            }
            Credential::AzureSharedKey { account, key } => {
                shared_key::sign(request, account, key)?;
            }
        }
        Ok(())
    }
}

/// The header's text; wiped when dropped, like the secret it holds.
fn header_text(prefix: &str, value: &SecretValue) -> Zeroizing<String> {
    Zeroizing::new(format!("{prefix}{}", value.expose()))
}

fn secret_header(text: &str, name: &HeaderName) -> Result<HeaderValue, CredentialError> {
    let mut value =
        HeaderValue::from_str(text).map_err(|_| CredentialError::HeaderValue(name.to_string()))?;
    // Kept out of hyper's and http's Debug output.
    value.set_sensitive(true);
    Ok(value)
}

/// `uri` with `token` appended to its query; a parameter the token sets
/// may not come from the guest too.
fn with_query(uri: &Uri, token: &str) -> Result<Uri, CredentialError> {
    let token = token.trim_start_matches('?');
    let guest_query = uri.query().unwrap_or_default();
    let names = |query: &str| -> Vec<String> {
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect()
    };
    let guest_names = names(guest_query);
    if let Some(clash) = names(token).into_iter().find(|n| guest_names.contains(n)) {
        return Err(CredentialError::QueryClash(clash));
    }
    let query = match guest_query.is_empty() {
        true => token.to_string(),
        false => format!("{guest_query}&{token}"),
    };
    let mut parts = uri.clone().into_parts();
    let path_and_query = format!("{}?{query}", uri.path());
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| CredentialError::Uri)?);
    Uri::from_parts(parts).map_err(|_| CredentialError::Uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request<()> {
        Request::builder().uri(uri).body(()).unwrap()
    }

    #[test]
    fn a_header_credential_sets_its_header_and_hides_it() {
        let credential = Credential::Header {
            name: AUTHORIZATION,
            prefix: "Bearer ".into(),
            value: SecretValue::new("tok-3141"),
        };
        let mut req = request("https://h/x");
        credential.apply(&mut req).unwrap();
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok-3141");
        assert!(!format!("{req:?} {credential:?}").contains("tok-3141"));
    }

    #[test]
    fn basic_auth_is_base64_of_the_pair() {
        let credential = Credential::Basic {
            username: SecretValue::new("aladdin"),
            password: SecretValue::new("opensesame"),
        };
        let mut req = request("https://h/x");
        credential.apply(&mut req).unwrap();
        assert_eq!(
            req.headers()[AUTHORIZATION],
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
        );
    }

    #[test]
    fn a_query_credential_is_appended_and_cannot_be_overridden() {
        let credential = Credential::Query {
            token: SecretValue::new("?sv=2021&sig=abc%2B"),
        };
        let mut req = request("https://h/c?restype=container&comp=list");
        credential.apply(&mut req).unwrap();
        assert_eq!(
            req.uri().to_string(),
            "https://h/c?restype=container&comp=list&sv=2021&sig=abc%2B"
        );
        let mut bare = request("https://h/c/b");
        credential.apply(&mut bare).unwrap();
        assert_eq!(bare.uri().query(), Some("sv=2021&sig=abc%2B"));
        let mut clash = request("https://h/c?SIG=mine");
        assert_eq!(
            credential.apply(&mut clash),
            Err(CredentialError::QueryClash("sig".into()))
        );
    }

    #[test]
    fn a_header_secret_that_is_no_header_value_is_refused_without_showing_it() {
        let credential = Credential::Header {
            name: HeaderName::from_static("x-api-key"),
            prefix: String::new(),
            value: SecretValue::new("bad\nvalue-2718"),
        };
        let error = credential.validate().unwrap_err();
        assert!(!error.to_string().contains("2718"));
        assert!(error.to_string().contains("x-api-key"));
    }
}
