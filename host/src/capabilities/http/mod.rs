//! `wasi:http/outgoing-handler` for plugins granted HTTP: a request goes
//! out only when a rule of the grant covers its URL, with the rule's
//! credential applied by the host (the plugin never reads it) and the
//! rule's limits.

mod client;
mod credential;
mod rule;
mod shared_key;

pub use client::ClientError;
pub use credential::{Credential, CredentialError};
pub use rule::{HttpLimits, HttpRule, PrefixError, UrlPrefix, is_public};

use super::HostState;
use client::RuleClient;
use http::header::{AUTHORIZATION, HeaderName, PROXY_AUTHORIZATION};
use http::{Method, Request, Response};
use std::fmt;
use std::sync::Arc;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// Why a plugin's HTTP grant cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HttpGrantError {
    #[error("rule {index} ({prefix}): {source}")]
    Credential {
        index: usize,
        prefix: String,
        source: CredentialError,
    },
    #[error("rule {index} ({prefix}): {source}")]
    Client {
        index: usize,
        prefix: String,
        source: ClientError,
    },
}

/// The rules a plugin's requests must match, each with its own client.
pub struct HttpGrant {
    rules: Vec<(HttpRule, RuleClient)>,
    forbidden: Arc<Vec<HeaderName>>,
}

impl fmt::Debug for HttpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|(rule, _)| rule))
            .finish()
    }
}

impl HttpGrant {
    pub fn new(rules: Vec<HttpRule>) -> Result<HttpGrant, HttpGrantError> {
        let mut forbidden = vec![AUTHORIZATION, PROXY_AUTHORIZATION];
        let mut built = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            let prefix = rule.prefix.to_string();
            if let Some(credential) = &rule.credential {
                credential
                    .validate()
                    .map_err(|source| HttpGrantError::Credential {
                        index,
                        prefix: prefix.clone(),
                        source,
                    })?;
                forbidden.extend(credential.injected_header());
            }
            let client = RuleClient::new(&rule).map_err(|source| HttpGrantError::Client {
                index,
                prefix,
                source,
            })?;
            built.push((rule, client));
        }
        Ok(HttpGrant {
            rules: built,
            forbidden: Arc::new(forbidden),
        })
    }

    pub fn rules(&self) -> impl Iterator<Item = &HttpRule> {
        self.rules.iter().map(|(rule, _)| rule)
    }

    /// Headers a plugin may not set: the transport's own, `authorization`
    /// and whatever a rule's credential sets.
    pub fn is_forbidden(&self, name: &HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name) || self.forbidden.contains(name)
    }

    /// Sends a plugin's request if a rule covers it, with the rule's
    /// credential. A refusal is logged once, naming the host only (a query
    /// string may carry a token).
    pub async fn send(
        &self,
        plugin: &str,
        mut request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let host = request.uri().host().unwrap_or_default().to_string();
        if matches!(*request.method(), Method::TRACE | Method::CONNECT) {
            tracing::warn!(plugin, host, method = %request.method(), "HTTP request refused: method not allowed");
            return Err(HttpError::HttpRequestMethodInvalid);
        }
        let Some((rule, client)) = self
            .rules
            .iter()
            .find(|(rule, _)| rule.prefix.matches(request.uri()))
        else {
            tracing::warn!(
                plugin,
                host,
                "HTTP request denied: no rule of the grant covers it"
            );
            return Err(HttpError::HttpRequestDenied);
        };
        for name in self.forbidden.iter() {
            request.headers_mut().remove(name);
        }
        if let Some(credential) = &rule.credential {
            credential.apply(&mut request).map_err(|error| {
                tracing::warn!(plugin, host, "HTTP request denied: {error}");
                HttpError::HttpRequestDenied
            })?;
        }
        client.send(request, options).await
    }
}

impl HttpGrant {
    /// A request the host makes itself under this grant: the same rule
    /// match, credential and pooled client a plugin's request gets, the
    /// response read whole (within the rule's size cap). For benchmarks
    /// and diagnostics that compare a plugin with the host alone.
    pub async fn send_direct(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, HttpError> {
        use http_body_util::BodyExt as _;
        let request = request.map(|body| {
            http_body_util::Full::new(bytes::Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync()
        });
        let response = self.send("host", request, None).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, bytes.to_vec()))
    }
}

/// The `wasi:http` hooks of one plugin instance.
pub struct HttpHooks {
    pub plugin: Arc<str>,
    pub grant: Option<Arc<HttpGrant>>,
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl HttpHooks {
    fn forbids(grant: Option<&HttpGrant>, name: &HeaderName) -> bool {
        match grant {
            Some(grant) => grant.is_forbidden(name),
            None => DEFAULT_FORBIDDEN_HEADERS.contains(name) || *name == AUTHORIZATION,
        }
    }
}

impl WasiHttpHooks for HttpHooks {
    // Asked once per header on every request and response: answered
    // in place, without the closure (and its allocation) the default
    // builds from `forbidden_header_filter`.
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        Self::forbids(self.grant.as_deref(), name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let grant = self.grant.clone();
        Arc::new(move |name| Self::forbids(grant.as_deref(), name))
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        let grant = self.grant.clone();
        let plugin = self.plugin.clone();
        Box::new(async move {
            let Some(grant) = grant else {
                return Err(HttpError::HttpRequestDenied);
            };
            let response = grant.send(&plugin, request, options).await?;
            // The pooled client drives the connection itself.
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}
