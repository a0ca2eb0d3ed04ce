//! Blob properties, from a listing page (XML) or a response's headers.
//! Everything here comes from the network and is checked, not trusted.

use crate::http::Response;
use storehost_sdk::Error;

/// A blob's name and the properties the host cares about. The ETag is
/// kept without its quotes: the version a document carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub etag: String,
    pub size: u64,
    pub modified_ms: Option<i64>,
}

/// One page of `List Blobs`.
pub struct Page {
    pub blobs: Vec<BlobInfo>,
    pub next_marker: Option<String>,
}

/// Parses a `List Blobs` answer. A blob entry without a name or ETag is
/// skipped (it could not be a document); XML that does not parse is an
/// error for the whole page.
pub fn parse(xml: &[u8]) -> Result<Page, Error> {
    let text = std::str::from_utf8(xml)
        .map_err(|_| Error::Internal("a blob listing was not UTF-8".into()))?;
    let document = roxmltree::Document::parse(text.trim_start_matches('\u{feff}'))
        .map_err(|e| Error::Internal(format!("a blob listing was not XML: {e}")))?;
    let root = document.root_element();
    let child_text = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(str::to_string)
    };
    let blobs = root
        .children()
        .filter(|n| n.has_tag_name("Blobs"))
        .flat_map(|blobs| blobs.children().filter(|n| n.has_tag_name("Blob")))
        .filter_map(|blob| {
            let properties = blob.children().find(|n| n.has_tag_name("Properties"))?;
            let name = blob.children().find(|n| n.has_tag_name("Name"))?;
            // A name the service had to percent-encode holds characters
            // XML cannot carry; no such name is a document id.
            if name.attribute("Encoded") == Some("true") {
                return None;
            }
            Some(BlobInfo {
                name: name.text()?.to_string(),
                etag: unquoted(&child_text(properties, "Etag")?),
                size: child_text(properties, "Content-Length")
                    .and_then(|length| length.parse().ok())
                    .unwrap_or(0),
                modified_ms: child_text(properties, "Last-Modified")
                    .as_deref()
                    .and_then(http_date_ms),
            })
        })
        .collect();
    let next_marker = child_text(root, "NextMarker").filter(|marker| !marker.is_empty());
    Ok(Page { blobs, next_marker })
}

impl BlobInfo {
    /// From the headers of a get or put of `name`.
    pub fn from_headers(name: &str, response: &Response) -> Result<BlobInfo, Error> {
        let etag = response
            .header("etag")
            .map(unquoted)
            .filter(|etag| !etag.is_empty())
            .ok_or_else(|| Error::Internal("the storage service sent no ETag".into()))?;
        Ok(BlobInfo {
            name: name.to_string(),
            etag,
            size: response
                .header("content-length")
                .and_then(|length| length.parse().ok())
                .unwrap_or(response.body.len() as u64),
            modified_ms: response.header("last-modified").and_then(http_date_ms),
        })
    }
}

fn unquoted(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

fn http_date_ms(text: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_gives_names_etags_and_the_next_marker() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1/acct" ContainerName="tokens">
  <Prefix>auths/</Prefix><MaxResults>2</MaxResults>
  <Blobs>
    <Blob><Name>auths/a@b.json</Name><Properties>
      <Last-Modified>Fri, 04 Dec 2026 10:00:00 GMT</Last-Modified>
      <Etag>0x8DC1</Etag><Content-Length>12</Content-Length></Properties></Blob>
    <Blob><Name>auths/no-etag.json</Name><Properties><Content-Length>1</Content-Length></Properties></Blob>
    <Blob><Name Encoded="true">auths%2Fctl%01.json</Name><Properties><Etag>0x1</Etag></Properties></Blob>
    <Blob><Name>auths/c.json</Name><Properties><Etag>"0x8DC2"</Etag></Properties></Blob>
  </Blobs>
  <NextMarker>2!64!YXV0aHMvYy5qc29u</NextMarker>
</EnumerationResults>"#;
        let page = parse(xml).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("2!64!YXV0aHMvYy5qc29u"));
        let names: Vec<(&str, &str, u64)> = page
            .blobs
            .iter()
            .map(|b| (b.name.as_str(), b.etag.as_str(), b.size))
            .collect();
        assert_eq!(
            names,
            [
                ("auths/a@b.json", "0x8DC1", 12),
                ("auths/c.json", "0x8DC2", 0)
            ]
        );
        assert_eq!(page.blobs[0].modified_ms, Some(1_796_378_400_000));
    }

    #[test]
    fn the_last_page_has_no_marker_and_garbage_is_an_error() {
        let last =
            parse(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert!(last.blobs.is_empty() && last.next_marker.is_none());
        assert!(parse(b"<EnumerationResults><Blobs>").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
