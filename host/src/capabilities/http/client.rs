//! The host's HTTP client for one rule: pooled connections, rustls with the
//! system's roots (and the rule's own CA file), a resolver that refuses
//! private addresses the rule did not name, and a response body held to
//! the rule's size cap and between-bytes timeout.

use super::rule::{HttpLimits, HttpRule, is_public};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Why a rule's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("the CA file {0} holds no certificate")]
    NoCertificate(String),
    #[error("TLS setup: {0}")]
    Tls(String),
}

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

pub struct RuleClient {
    client: Client<Connector, WasiBody>,
    limits: HttpLimits,
}

impl RuleClient {
    pub fn new(rule: &HttpRule) -> Result<RuleClient, ClientError> {
        let resolver = GuardedResolver {
            allow_private: rule.prefix.names_address(),
        };
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(rule.limits.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(rule.ca_file.as_deref())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
        Ok(RuleClient {
            client,
            limits: rule.limits,
        })
    }

    /// Sends `request` under the rule's limits (narrowed by the plugin's
    /// own options, never widened). Redirects come back as they are.
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let limits = narrowed(self.limits, options);
        let response = tokio::time::timeout(
            limits.connect_timeout + limits.first_byte_timeout,
            self.client.request(request),
        )
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(|e| classify(&e))?;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limits.max_response_bytes) {
            return Err(HttpError::HttpResponseBodySize(declared));
        }
        Ok(response.map(|incoming| CappedBody::new(incoming, limits).boxed_unsync()))
    }
}

const POOL_IDLE: Duration = Duration::from_secs(30);

fn narrowed(limits: HttpLimits, options: Option<RequestOptions>) -> HttpLimits {
    let Some(options) = options else {
        return limits;
    };
    let min = |ours: Duration, theirs: Option<Duration>| theirs.map_or(ours, |t| t.min(ours));
    HttpLimits {
        connect_timeout: min(limits.connect_timeout, options.connect_timeout),
        first_byte_timeout: min(limits.first_byte_timeout, options.first_byte_timeout),
        between_bytes_timeout: min(limits.between_bytes_timeout, options.between_bytes_timeout),
        max_response_bytes: limits.max_response_bytes,
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let display = path.display().to_string();
        let read_error = |e: rustls_pki_types::pem::Error| ClientError::CaFile {
            path: display.clone(),
            message: e.to_string(),
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(read_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ClientError::NoCertificate(display));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The system's roots, read once; none (a minimal container) only means
/// that https needs a rule's CA file.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// Resolves names, keeping only public addresses unless the rule named a
/// private one itself: a name cannot be pointed at the host's own network
/// (DNS rebinding, cloud metadata).
#[derive(Clone)]
struct GuardedResolver {
    allow_private: bool,
}

/// The resolver's refusal, found again in the error chain to answer
/// `destination-ip-prohibited`.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to private, loopback or link-local addresses, which a rule must name")]
struct PrivateAddress(String);

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    PrivateAddress(host),
                ));
            }
            Ok(found.into_iter())
        })
    }
}

/// The WASI error code for a failed request, from its cause.
fn classify(error: &hyper_util::client::legacy::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<PrivateAddress>().is_some() {
            return HttpError::DestinationIpProhibited;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<PrivateAddress>())
            {
                return HttpError::DestinationIpProhibited;
            }
            if let Some(code) = io_code(io) {
                return code;
            }
        }
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return HttpError::TlsCertificateError;
        }
        source = cause.source();
    }
    match error.is_connect() {
        true => HttpError::ConnectionRefused,
        false => HttpError::HttpProtocolError,
    }
}

fn io_code(io: &std::io::Error) -> Option<HttpError> {
    use std::io::ErrorKind::*;
    Some(match io.kind() {
        ConnectionRefused => HttpError::ConnectionRefused,
        TimedOut => HttpError::ConnectionTimeout,
        ConnectionReset | ConnectionAborted | UnexpectedEof => HttpError::ConnectionTerminated,
        _ => return None,
    })
}

/// A response body that fails once it passes the size cap or stalls
/// longer than the between-bytes timeout.
struct CappedBody {
    inner: hyper::body::Incoming,
    read: u64,
    limits: HttpLimits,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl CappedBody {
    fn new(inner: hyper::body::Incoming, limits: HttpLimits) -> CappedBody {
        CappedBody {
            inner,
            read: 0,
            limits,
            idle: Box::pin(tokio::time::sleep(limits.between_bytes_timeout)),
        }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let length = frame.data_ref().map_or(0, |data| data.len() as u64);
                this.read += length;
                if this.read > this.limits.max_response_bytes {
                    return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                        this.read,
                    )))));
                }
                let next = tokio::time::Instant::now() + this.limits.between_bytes_timeout;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::Hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
