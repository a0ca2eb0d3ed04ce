//! The Blob service REST calls this plugin makes, on one container:
//! create it, list a prefix page by page, get, head, put and delete a blob,
//! each with the precondition it carries.

use crate::errors::{Answer, refused};
use crate::http::{self, Failure, Request, Response};
use crate::listing::{self, BlobInfo};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use storehost_sdk::{Error, Settings};
use wasip2::http::types::Method;

/// The service version every request asks for.
const API_VERSION: &str = "2021-08-06";
/// Blobs per listing page unless the setting `page_size` says otherwise
/// (the service's own cap is 5000).
const PAGE: usize = 2000;

/// Characters a blob name keeps unencoded in a path: unreserved, `/`
/// between segments, and `@`, which ids often hold.
const PATH_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'@');

/// A blob as read: its properties and content.
pub struct Blob {
    pub info: BlobInfo,
    pub content: Vec<u8>,
}

/// What a write must find.
pub enum Condition<'a> {
    None,
    /// `If-Match` this ETag.
    Matches(&'a str),
    /// `If-None-Match: *`.
    Absent,
}

pub struct Container {
    https: bool,
    authority: String,
    /// `/<account>/<container>` (path style) or `/<container>`.
    path: String,
    page: usize,
}

impl Container {
    /// From the settings `endpoint` (the account's URL, e.g.
    /// `https://acct.blob.core.windows.net`) and `container`.
    pub fn open(settings: &Settings) -> Result<Container, Error> {
        let endpoint = settings.require("endpoint")?;
        let container = settings.require("container")?;
        check_container_name(container)?;
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
            Error::Invalid(format!("setting `endpoint`: {endpoint:?} is not a URL"))
        })?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => {
                return Err(Error::Invalid(
                    "setting `endpoint`: the scheme must be https or http".into(),
                ));
            }
        };
        let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || base.contains(['?', '#']) {
            return Err(Error::Invalid(format!(
                "setting `endpoint`: {endpoint:?} is not an account URL"
            )));
        }
        let base = base.trim_end_matches('/');
        let path = match base.is_empty() {
            true => format!("/{container}"),
            false => format!("/{base}/{container}"),
        };
        Ok(Container {
            https,
            authority: authority.to_string(),
            path,
            page: page_size(settings)?,
        })
    }

    fn request(&self, method: Method, path_and_query: String) -> Request {
        Request {
            method,
            https: self.https,
            authority: self.authority.clone(),
            path: path_and_query,
            headers: vec![("x-ms-version", API_VERSION.to_string())],
            body: None,
        }
    }

    fn blob_path(&self, name: &str) -> String {
        format!("{}/{}", self.path, utf8_percent_encode(name, PATH_KEEPS))
    }

    /// Creates the container; one that exists already is fine.
    pub fn create(&self) -> Result<(), Error> {
        let request = self.request(Method::Put, format!("{}?restype=container", self.path));
        let response = answer(http::send(with_empty_body(request)))?;
        match response.status {
            201 => Ok(()),
            409 if response.error_code() == Some("ContainerAlreadyExists") => Ok(()),
            _ => Err(refused("creating the container", &response)),
        }
    }

    /// Whether the container answers (it exists and the credentials work).
    pub fn check(&self) -> Result<(), Error> {
        let request = self.request(Method::Head, format!("{}?restype=container", self.path));
        let response = answer(http::send(request))?;
        match response.status {
            200 => Ok(()),
            _ => Err(refused("reading the container", &response)),
        }
    }

    /// Every blob under `prefix`, following `NextMarker` page by page.
    pub fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, Error> {
        let mut blobs = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = format!(
                "{}?restype=container&comp=list&maxresults={}&prefix={}",
                self.path,
                self.page,
                utf8_percent_encode(prefix, NON_ALPHANUMERIC)
            );
            if !marker.is_empty() {
                query.push_str(&format!(
                    "&marker={}",
                    utf8_percent_encode(&marker, NON_ALPHANUMERIC)
                ));
            }
            let response = answer(http::send(self.request(Method::Get, query)))?;
            if response.status != 200 {
                return Err(refused("listing the container", &response));
            }
            let page = listing::parse(&response.body)?;
            blobs.extend(page.blobs);
            match page.next_marker {
                Some(next) if next != marker => marker = next,
                _ => return Ok(blobs),
            }
        }
    }

    /// Each blob's content and properties, `None` where it does not exist;
    /// many at once.
    pub fn get_many(&self, names: &[String]) -> Result<Vec<Option<Blob>>, Error> {
        self.fetch_many(Method::Get, names)
    }

    /// Each blob's properties, `None` where it does not exist.
    pub fn head_many(&self, names: &[String]) -> Result<Vec<Option<BlobInfo>>, Error> {
        let found = self.fetch_many(Method::Head, names)?;
        Ok(found
            .into_iter()
            .map(|blob| blob.map(|blob| blob.info))
            .collect())
    }

    fn fetch_many(&self, method: Method, names: &[String]) -> Result<Vec<Option<Blob>>, Error> {
        let requests = names
            .iter()
            .map(|name| self.request(method.clone(), self.blob_path(name)))
            .collect();
        let mut blobs = Vec::with_capacity(names.len());
        for (name, answered) in names.iter().zip(http::send_all(requests)) {
            let response = answer(answered)?;
            blobs.push(match response.status {
                200 => Some(Blob {
                    info: BlobInfo::from_headers(name, &response)?,
                    content: response.body,
                }),
                404 => None,
                _ => return Err(refused("reading a blob", &response)),
            });
        }
        Ok(blobs)
    }

    /// Writes blobs, many at once; one answer each: the new properties, or
    /// whether its condition failed.
    pub fn put_many(
        &self,
        blobs: Vec<(String, Vec<u8>, &'static str, Condition<'_>)>,
    ) -> Result<Vec<Answer<BlobInfo>>, Error> {
        let names: Vec<String> = blobs.iter().map(|(name, ..)| name.clone()).collect();
        let requests = blobs
            .into_iter()
            .map(|(name, content, content_type, condition)| {
                let mut request = self.request(Method::Put, self.blob_path(&name));
                request.headers.push(("x-ms-blob-type", "BlockBlob".into()));
                request.headers.push(("content-type", content_type.into()));
                with_condition(&mut request, &condition);
                request.body = Some(content);
                with_length(request)
            })
            .collect();
        let mut answers = Vec::with_capacity(names.len());
        for (name, answered) in names.iter().zip(http::send_all(requests)) {
            let response = answer(answered)?;
            answers.push(match response.status {
                201 => Answer::Done(BlobInfo::from_headers(name, &response)?),
                412 => Answer::ConditionFailed,
                409 if response.error_code() == Some("BlobAlreadyExists") => {
                    Answer::ConditionFailed
                }
                _ => return Err(refused("writing a blob", &response)),
            });
        }
        Ok(answers)
    }

    /// Deletes a blob; whether its condition held. Deleting what is already
    /// gone unconditionally succeeds.
    pub fn delete(&self, name: &str, condition: &Condition<'_>) -> Result<Answer<()>, Error> {
        let mut request = self.request(Method::Delete, self.blob_path(name));
        with_condition(&mut request, condition);
        let response = answer(http::send(request))?;
        match (response.status, condition) {
            (202, _) => Ok(Answer::Done(())),
            (404, Condition::None) => Ok(Answer::Done(())),
            (404, _) | (412, _) => Ok(Answer::ConditionFailed),
            _ => Err(refused("deleting a blob", &response)),
        }
    }
}

fn with_condition(request: &mut Request, condition: &Condition<'_>) {
    match condition {
        Condition::None => {}
        Condition::Matches(etag) => request.headers.push(("if-match", format!("\"{etag}\""))),
        Condition::Absent => request.headers.push(("if-none-match", "*".into())),
    }
}

/// The service wants a length on every write, an empty body included.
fn with_length(mut request: Request) -> Request {
    let length = request.body.as_ref().map_or(0, Vec::len);
    request.headers.push(("content-length", length.to_string()));
    request
}

fn with_empty_body(mut request: Request) -> Request {
    request.body = Some(Vec::new());
    with_length(request)
}

/// A response, or what its absence means to the host.
fn answer(answered: Result<Response, Failure>) -> Result<Response, Error> {
    answered.map_err(|failure| match failure.denied() {
        true => {
            Error::Denied("the host's http grant does not cover this storage account's URL".into())
        }
        false => Error::Unavailable(format!(
            "the storage service did not answer: {:?}",
            failure.0
        )),
    })
}

fn page_size(settings: &Settings) -> Result<usize, Error> {
    let Some(text) = settings.get("page_size") else {
        return Ok(PAGE);
    };
    text.parse()
        .ok()
        .filter(|size| (1..=5000).contains(size))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "setting `page_size`: {text:?} is not a number from 1 to 5000"
            ))
        })
}

/// Container names: 3 to 63 lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit.
fn check_container_name(name: &str) -> Result<(), Error> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    match valid {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "setting `container`: {name:?} is not a container name (3-63 lowercase letters, digits, hyphens)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, container: &str) -> Settings {
        Settings::from(vec![
            ("endpoint".to_string(), endpoint.to_string()),
            ("container".to_string(), container.to_string()),
        ])
    }

    #[test]
    fn account_urls_of_both_styles_name_the_container() {
        let hosted =
            Container::open(&settings("https://acct.blob.core.windows.net/", "tokens")).unwrap();
        assert_eq!(
            (
                hosted.https,
                hosted.authority.as_str(),
                hosted.path.as_str()
            ),
            (true, "acct.blob.core.windows.net", "/tokens")
        );
        let emulated = Container::open(&settings(
            "http://127.0.0.1:10000/devstoreaccount1",
            "tokens",
        ))
        .unwrap();
        assert_eq!(emulated.path, "/devstoreaccount1/tokens");
        assert_eq!(
            emulated.blob_path("auths/team/a b@c.json"),
            "/devstoreaccount1/tokens/auths/team/a%20b@c.json"
        );
    }

    #[test]
    fn the_page_size_is_checked() {
        let mut pairs = vec![
            ("endpoint".to_string(), "https://acct".to_string()),
            ("container".to_string(), "tokens".to_string()),
        ];
        assert_eq!(
            Container::open(&Settings::from(pairs.clone()))
                .unwrap()
                .page,
            PAGE
        );
        pairs.push(("page_size".into(), "7".into()));
        assert_eq!(
            Container::open(&Settings::from(pairs.clone()))
                .unwrap()
                .page,
            7
        );
        for bad in ["0", "5001", "many"] {
            pairs.push(("page_size".into(), bad.into()));
            assert!(
                Container::open(&Settings::from(pairs.clone())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_settings_are_invalid() {
        for (endpoint, container) in [
            ("acct.blob.core.windows.net", "tokens"),
            ("ftp://acct", "tokens"),
            ("https://acct/x?sig=1", "tokens"),
            ("https://acct", "To"),
            ("https://acct", "has--two"),
            ("https://acct", "../up"),
        ] {
            assert!(
                matches!(
                    Container::open(&settings(endpoint, container)),
                    Err(Error::Invalid(_))
                ),
                "{endpoint} {container}"
            );
        }
    }
}
