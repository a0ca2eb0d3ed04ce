//! Azure Storage SharedKey signing (Blob, Queue and File services,
//! version 2009-09-19 and later): an HMAC-SHA256 of the canonical request
//! with the account key, computed by the host.

use super::credential::CredentialError;
use crate::capabilities::secrets::SecretValue;
use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::{Request, Uri};
use secrecy::{ExposeSecret, SecretSlice};
use std::collections::BTreeMap;

const X_MS_DATE: &str = "x-ms-date";

/// The account key's bytes, wiped when dropped.
pub fn decode_key(key: &SecretValue) -> Result<SecretSlice<u8>, CredentialError> {
    base64::engine::general_purpose::STANDARD
        .decode(key.expose().trim())
        .map(SecretSlice::from)
        .map_err(|_| CredentialError::AccountKey)
}

/// Dates the request (unless the plugin did) and sets its `Authorization`.
pub fn sign<B>(
    request: &mut Request<B>,
    account: &str,
    key: &SecretValue,
) -> Result<(), CredentialError> {
    if !request.headers().contains_key(X_MS_DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        let now = HeaderValue::from_str(&now).expect("an HTTP date is a header value");
        request.headers_mut().insert(X_MS_DATE, now);
    }
    let to_sign = string_to_sign(
        request.method().as_str(),
        request.headers(),
        request.uri(),
        account,
    );
    let key = decode_key(key)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.expose_secret());
    let tag = ring::hmac::sign(&key, to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    let mut value = HeaderValue::from_str(&format!("SharedKey {account}:{signature}"))
        .map_err(|_| CredentialError::HeaderValue(AUTHORIZATION.to_string()))?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// The string the signature covers.
pub fn string_to_sign(method: &str, headers: &HeaderMap, uri: &Uri, account: &str) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_length = match header("content-length").as_str() {
        "0" => String::new(),
        other => other.to_string(),
    };
    // With x-ms-date the Date line stays empty.
    let date = match headers.contains_key(X_MS_DATE) {
        true => String::new(),
        false => header("date"),
    };
    let lines = [
        method.to_string(),
        header("content-encoding"),
        header("content-language"),
        content_length,
        header("content-md5"),
        header("content-type"),
        date,
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&canonical_headers(headers));
    text.push_str(&canonical_resource(uri, account));
    text
}

/// Every `x-ms-` header, by name, `name:value\n`.
fn canonical_headers(headers: &HeaderMap) -> String {
    let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if name.as_str().starts_with("x-ms-") {
            let value = String::from_utf8_lossy(value.as_bytes());
            let folded = value.split_whitespace().collect::<Vec<_>>().join(" ");
            by_name.entry(name.as_str()).or_default().push(folded);
        }
    }
    by_name
        .into_iter()
        .map(|(name, values)| format!("{name}:{}\n", values.join(",")))
        .collect()
}

/// `/account/path` and each query parameter on its own line, by name,
/// its values decoded and sorted.
fn canonical_resource(uri: &Uri, account: &str) -> String {
    let mut text = format!("/{account}{}", uri.path());
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        params
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in params {
        values.sort();
        text.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_documented_layout() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-version", "2021-08-06".parse().unwrap());
        headers.insert(
            "x-ms-date",
            "Fri, 26 Jun 2015 23:39:12 GMT".parse().unwrap(),
        );
        headers.insert("x-ms-blob-type", "BlockBlob".parse().unwrap());
        headers.insert("content-length", "11".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("if-none-match", "*".parse().unwrap());
        headers.insert("date", "ignored".parse().unwrap());
        let uri: Uri =
            "https://acct.blob.core.windows.net/tokens/auths/a.json?timeout=30&comp=Block&comp=a"
                .parse()
                .unwrap();
        let text = string_to_sign("PUT", &headers, &uri, "acct");
        assert_eq!(
            text,
            "PUT\n\n\n11\n\napplication/json\n\n\n\n*\n\n\n\
             x-ms-blob-type:BlockBlob\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2021-08-06\n\
             /acct/tokens/auths/a.json\ncomp:Block,a\ntimeout:30"
        );
    }

    #[test]
    fn a_zero_content_length_signs_as_empty() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", "0".parse().unwrap());
        let uri: Uri = "https://a.example/c".parse().unwrap();
        assert!(string_to_sign("GET", &headers, &uri, "a").starts_with("GET\n\n\n\n"));
    }

    #[test]
    fn signing_sets_a_shared_key_authorization_and_a_date() {
        // Azurite's published development key.
        let key = SecretValue::new(
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        );
        let mut request = Request::builder()
            .method("GET")
            .uri("http://127.0.0.1:10000/devstoreaccount1/c?restype=container")
            .header("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT")
            .body(())
            .unwrap();
        sign(&mut request, "devstoreaccount1", &key).unwrap();
        // Computed independently (Python's hmac over the documented layout).
        assert_eq!(
            request.headers()[AUTHORIZATION].to_str().unwrap(),
            "SharedKey devstoreaccount1:Tf3ybgEGsiWOPqfa/VW7ifj2Mt0fi6wZWiYiOdRpGyo="
        );
        assert!(request.headers()[AUTHORIZATION].is_sensitive());

        let mut undated = Request::builder()
            .uri("https://a.example/c")
            .body(())
            .unwrap();
        sign(&mut undated, "a", &key).unwrap();
        assert!(undated.headers().contains_key(X_MS_DATE));
    }

    #[test]
    fn a_key_that_is_not_base64_is_refused() {
        assert!(decode_key(&SecretValue::new("not base64!")).is_err());
    }
}
