//! A small HTTP client over `wasi:http/outgoing-handler`. Requests carry no
//! credentials: the host adds them after matching its rules. Several
//! requests go out at once (the host sends each on its own task), and the
//! answers are read in order.

use wasip2::http::outgoing_handler::{self, FutureIncomingResponse};
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// How many requests are in flight at once.
const IN_FLIGHT: usize = 32;

pub struct Request {
    pub method: Method,
    pub https: bool,
    pub authority: String,
    /// Path and query, already percent-encoded.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}

/// Why no response arrived: the host's error code, as wasi:http names it.
#[derive(Debug)]
pub struct Failure(pub ErrorCode);

impl Failure {
    pub fn denied(&self) -> bool {
        matches!(self.0, ErrorCode::HttpRequestDenied)
    }
}

/// Sends one request and reads its whole answer.
pub fn send(request: Request) -> Result<Response, Failure> {
    send_all(vec![request])
        .pop()
        .expect("one answer per request")
}

/// Sends every request, up to [`IN_FLIGHT`] at once; one answer each, in order.
pub fn send_all(requests: Vec<Request>) -> Vec<Result<Response, Failure>> {
    let mut answers = Vec::with_capacity(requests.len());
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let started: Vec<(Method, Result<FutureIncomingResponse, Failure>)> = requests
            .by_ref()
            .take(IN_FLIGHT)
            .map(|request| (request.method.clone(), start(request)))
            .collect();
        answers.extend(
            started
                .into_iter()
                .map(|(method, future)| future.and_then(|f| finish(f, &method))),
        );
    }
    answers
}

fn internal(what: &str) -> Failure {
    Failure(ErrorCode::InternalError(Some(what.to_string())))
}

/// Hands the request to the host and writes its body.
fn start(request: Request) -> Result<FutureIncomingResponse, Failure> {
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    // One host call for all headers, not one per header.
    let fields =
        Fields::from_list(&entries).map_err(|e| internal(&format!("request headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let scheme = if request.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = outgoing.set_method(&request.method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&request.authority)).is_ok()
        && outgoing.set_path_with_query(Some(&request.path)).is_ok();
    if !set {
        return Err(internal("the request's URL was refused"));
    }
    let body = outgoing.body().map_err(|()| internal("no request body"))?;
    let content = request.body.unwrap_or_default();
    let stream = body.write().map_err(|()| internal("no body stream"))?;
    // A body the host takes in one write goes in before the request is
    // handed over, so the host sends head and body together and nothing
    // waits; a larger one is streamed while the host sends.
    if stream
        .check_write()
        .is_ok_and(|permit| permit >= content.len() as u64)
    {
        if !content.is_empty() {
            stream.write(&content).map_err(broken)?;
        }
        stream.flush().map_err(broken)?;
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        return outgoing_handler::handle(outgoing, None).map_err(Failure);
    }
    let future = outgoing_handler::handle(outgoing, None).map_err(Failure)?;
    // A failed write means the host gave up on the request; the response
    // future says why.
    if stream_body(&stream, &content).is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
    Ok(future)
}

fn broken(_: StreamError) -> Failure {
    internal("the request body stream closed")
}

/// Writes `content` as fast as the host takes it, then waits for the flush.
fn stream_body(stream: &OutputStream, content: &[u8]) -> Result<(), Failure> {
    let mut rest = content;
    while !rest.is_empty() {
        let permit = stream.check_write().map_err(broken)? as usize;
        if permit == 0 {
            stream.subscribe().block();
            continue;
        }
        let (now, later) = rest.split_at(permit.min(rest.len()));
        stream.write(now).map_err(broken)?;
        rest = later;
    }
    stream.blocking_flush().map_err(broken)
}

/// Waits for the response and takes what this plugin reads of it: the
/// body of a GET only (no other answer's body is used), and the headers
/// [`wanted_headers`] names.
fn finish(future: FutureIncomingResponse, method: &Method) -> Result<Response, Failure> {
    future.subscribe().block();
    let response = future
        .get()
        .ok_or_else(|| internal("no response"))?
        .map_err(|()| internal("response already taken"))?
        .map_err(Failure)?;
    let status = response.status();
    let fields = response.headers();
    let headers = wanted_headers(method, status)
        .iter()
        .filter_map(|name| {
            let value = fields.get(name).into_iter().next()?;
            Some((name.to_string(), value))
        })
        .collect();
    drop(fields);
    let body = match (method, status) {
        (Method::Get, 200..=299) => read_body(response)?,
        // Dropped unread: the host discards it (an empty one keeps the
        // connection for the next request).
        _ => Vec::new(),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The response headers this plugin reads, by method and status. Each
/// header copied into the guest costs host calls and allocations, on a
/// path every request takes.
fn wanted_headers(method: &Method, status: u16) -> &'static [&'static str] {
    match (status, method) {
        (200..=299, Method::Head) => &["etag", "last-modified", "content-length"],
        (200..=299, _) => &["etag", "last-modified"],
        _ => &["x-ms-error-code"],
    }
}

/// Reads a response body to its end, waiting only when nothing is ready.
fn read_body(response: IncomingResponse) -> Result<Vec<u8>, Failure> {
    let body = response
        .consume()
        .map_err(|()| internal("no response body"))?;
    let stream = body.stream().map_err(|()| internal("no body stream"))?;
    let mut content = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => stream.subscribe().block(),
            Ok(chunk) => content.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                let code = wasip2::http::types::http_error_code(&error);
                return Err(Failure(code.unwrap_or(ErrorCode::InternalError(Some(
                    "the response body broke off".into(),
                )))));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(content)
}
