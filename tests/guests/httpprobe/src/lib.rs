//! Exercises outbound HTTP (`wasi:http`) for the host's tests. `read` of
//! one auth id runs a scenario against the URLs in its settings and returns
//! what it saw: the status and body, or the error code.

use storehost_sdk::{Backend, Change, Document, Entry, Error, Features, Info, Key, Settings};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

pub struct HttpProbe {
    base: String,
    outside: String,
    /// Hex of a string XOR 0x55: the probe looks for it in its own memory
    /// without ever writing the plain bytes there.
    needles: Vec<(String, Vec<u8>)>,
}

impl Backend for HttpProbe {
    fn open(settings: Settings) -> Result<Self, Error> {
        let get = |name: &str| settings.get(name).unwrap_or_default().to_string();
        let needles = ["secret", "control"]
            .into_iter()
            .map(|name| (name.to_string(), unhex(&get(&format!("needle-{name}")))))
            .collect();
        Ok(HttpProbe {
            base: get("base"),
            outside: get("outside"),
            needles,
        })
    }

    fn info(&self) -> Info {
        Info {
            name: "httpprobe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features: Features::empty(),
        }
    }

    fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }

    fn read(&self, keys: Vec<Key>) -> Result<Vec<Option<Document>>, Error> {
        let key = keys
            .first()
            .cloned()
            .ok_or_else(|| Error::Invalid("no key".into()))?;
        let content = self.run(&key.id).into_bytes();
        let entry = Entry {
            key,
            version: "1".into(),
            size: content.len() as u64,
            modified_ms: None,
        };
        Ok(vec![Some(Document { entry, content })])
    }

    fn apply(&self, _changes: Vec<Change>, _message: String) -> Result<Vec<Option<Entry>>, Error> {
        Err(Error::Denied("read-only".into()))
    }
}

impl HttpProbe {
    fn run(&self, scenario: &str) -> String {
        let base = &self.base;
        let outcome = match scenario {
            "get" => send(Method::Get, &format!("{base}/echo?x=1"), &[], None),
            "put" => send(
                Method::Put,
                &format!("{base}/echo"),
                &[
                    ("content-type", "application/json"),
                    ("content-length", "9"),
                ],
                Some(b"{\"put\":1}"),
            ),
            "outside" => send(Method::Get, &self.outside, &[], None),
            "authorization" => send(
                Method::Get,
                &format!("{base}/echo"),
                &[("authorization", "Bearer guest-made")],
                None,
            ),
            "injected" => send(
                Method::Get,
                &format!("{base}/echo"),
                &[("x-api-key", "guest-made")],
                None,
            ),
            "trace" => send(Method::Trace, &format!("{base}/echo"), &[], None),
            "redirect" => send(Method::Get, &format!("{base}/redirect"), &[], None),
            "big" => send(Method::Get, &format!("{base}/big"), &[], None),
            other => match other.strip_prefix("scan-") {
                Some(name) => Ok(self.scan(name)),
                None => Err(format!("unknown scenario {other}")),
            },
        };
        outcome.unwrap_or_else(|error| format!("error: {error}"))
    }

    fn scan(&self, name: &str) -> String {
        let Some((_, needle)) = self.needles.iter().find(|(n, _)| n == name) else {
            return "no such needle".into();
        };
        match memory_holds(needle) {
            true => "found".into(),
            false => "absent".into(),
        }
    }
}

/// Whether linear memory holds `encoded` XOR 0x55 anywhere, comparing a
/// byte at a time so the decoded needle never sits in memory itself.
#[cfg(target_arch = "wasm32")]
fn memory_holds(encoded: &[u8]) -> bool {
    let size = core::arch::wasm32::memory_size(0) * 65536;
    let needle_start = encoded.as_ptr() as usize;
    (1..size.saturating_sub(encoded.len())).any(|start| {
        // The encoded copy is not the secret; skip over it.
        start != needle_start
            && encoded.iter().enumerate().all(|(i, byte)| {
                let at = (start + i) as *const u8;
                // SAFETY: every address below memory_size is readable.
                unsafe { core::ptr::read_volatile(at) == byte ^ 0x55 }
            })
    })
}

/// Clippy's native build of the workspace; the probe runs only as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn memory_holds(_: &[u8]) -> bool {
    unreachable!("the probe runs only as a component")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    request.set_method(&method).map_err(|()| "method")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let outgoing = request.body().map_err(|()| "body")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    if let Some(body) = body {
        let stream = outgoing.write().map_err(|()| "write")?;
        stream
            .blocking_write_and_flush(body)
            .map_err(|e| format!("{e:?}"))?;
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "consume")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut content = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => content.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let code = wasip2::http::types::http_error_code(&e);
                return Err(format!("body: {code:?}"));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(format!("{status}\n{}", String::from_utf8_lossy(&content)))
}

storehost_sdk::export_backend!(HttpProbe);
