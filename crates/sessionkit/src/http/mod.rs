//! HTTP for the driver, configured for OAuth endpoints: natively reqwest with rustls
//! (`native.rs`), in the browser its own `fetch` (`web.rs`; reqwest's wasm build would cost
//! about 100 KB gzipped for the same requests).
//!
//! Every request has a timeout; only `https` URLs are sent (the core builds no other, and
//! [`Transport::send`] checks again); redirects are followed only within the same origin, at
//! most 3; response bodies are capped at [`HttpOptions::max_response_bytes`] while they are
//! read, so an oversized body never fills memory. [`Transport::send_idempotent`] retries
//! connection failures and transient answers (429, 5xx) with capped backoff honouring `Retry-After`; it is
//! used for discovery, JWKS and revocation, never for the token endpoint (a lost answer there
//! may carry a rotated refresh token, and the core decides what to do about that).
//!
//! The network itself sits behind a small trait, [`HttpClient`] (send one request, get one
//! response), so that an app can bring its own HTTP stack and tests can script a provider
//! (faults, lost answers, virtual time) without sockets. [`Transport`] keeps the rules above
//! whatever the client: https only, retries only for idempotent requests.
//!
//! What can go wrong: a [`TransportError`] never contains a URL's query or a body.

use std::sync::Arc;
use std::time::Duration;

use sessionkit_core::http::{HttpRequest, HttpResponse};
use sessionkit_core::url::Url;

/// Transport settings.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Trust only these PEM root certificates instead of the platform's (tests, private PKI).
    pub trust_only_roots_pem: Vec<Vec<u8>>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// The largest response body read.
    pub max_response_bytes: usize,
    /// Attempts for idempotent requests (at least 1).
    pub max_attempts: u32,
    /// The longest wait between attempts (a longer `Retry-After` ends the retries).
    pub max_retry_wait: Duration,
    /// Public-key pins for the app's own hosts (native only; see [`pinning`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub spki_pins: Vec<pinning::HostPins>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            trust_only_roots_pem: Vec::new(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 256 * 1024,
            max_attempts: 3,
            max_retry_wait: Duration::from_secs(10),
            #[cfg(not(target_arch = "wasm32"))]
            spki_pins: Vec::new(),
        }
    }
}

/// Why a request got no usable response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL is not `https`.
    #[error("refused to send a request to a non-https URL")]
    Insecure,
    /// Could not connect (refused, unreachable, DNS).
    #[error("could not connect to {host}")]
    Connect {
        /// The host (no path or query).
        host: String,
    },
    /// The server's certificate chain carries none of the host's pinned keys: an interception,
    /// or a key rotation the app was not prepared for.
    #[error("the certificate of {host} does not match its pinned public keys")]
    PinMismatch {
        /// The host.
        host: String,
    },
    /// The request or connection timed out.
    #[error("the request to {host} timed out")]
    Timeout {
        /// The host.
        host: String,
    },
    /// The response body was larger than allowed.
    #[error("the response from {host} is larger than {limit} bytes")]
    TooLarge {
        /// The host.
        host: String,
        /// The limit.
        limit: usize,
    },
    /// Anything else (TLS failure, reset connection, protocol error).
    #[error("the request to {host} failed: {kind}")]
    Other {
        /// The host.
        host: String,
        /// What kind of failure, without detail that could carry data.
        kind: &'static str,
    },
    /// The HTTP client could not be built (bad root certificate).
    #[error("the HTTP client could not be configured: {0}")]
    Setup(&'static str),
}

impl TransportError {
    /// Whether trying again later may work (the network, a timeout, a reset), as opposed to a
    /// failure the same request will always meet (an insecure URL, a pin mismatch, an oversized
    /// answer, a broken configuration).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Timeout { .. } | Self::Other { .. })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub mod pinning;
#[cfg(not(target_arch = "wasm32"))]
mod tls;
#[cfg(not(target_arch = "wasm32"))]
use native as imp;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
use web as imp;

/// The response headers the core reads (the rest are dropped).
const KEPT_HEADERS: [&str; 5] = ["date", "retry-after", "content-type", "www-authenticate", "dpop-nonce"];

/// Sends one request and returns its response: the network under the driver.
///
/// The default is the platform's ([`PlatformHttp`]: reqwest with rustls natively, `fetch` in
/// the browser). Another implementation must keep the same promises: a timeout on every
/// request, response bodies cut off at a size limit while read, no redirect to another origin,
/// and errors that never carry a query or a body. It is only ever given `https` URLs.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` once.
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> crate::runtime::BoxFuture<'a, Result<HttpResponse, TransportError>>;
}

/// The platform's HTTP client, configured by [`HttpOptions`].
#[derive(Debug)]
pub struct PlatformHttp {
    io: imp::Io,
    options: HttpOptions,
}

impl PlatformHttp {
    /// Builds the client (trust roots, pins, timeouts, size limit).
    pub fn new(options: HttpOptions) -> Result<Self, TransportError> {
        Ok(Self { io: imp::Io::new(&options)?, options })
    }
}

impl HttpClient for PlatformHttp {
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> crate::runtime::BoxFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(self.io.send(request, host_of(&request.url), &self.options))
    }
}

/// Sends [`HttpRequest`]s built by the core, through the configured [`HttpClient`].
#[derive(Clone)]
pub(crate) struct Transport {
    client: Arc<dyn HttpClient>,
    options: HttpOptions,
    clock: Arc<dyn crate::clock::Clock>,
}

fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

impl Transport {
    pub(crate) fn new(client: Arc<dyn HttpClient>, options: HttpOptions, clock: Arc<dyn crate::clock::Clock>) -> Self {
        Self { client, options, clock }
    }

    /// Sends once (only to `https` URLs).
    pub(crate) async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if request.url.scheme() != "https" {
            return Err(TransportError::Insecure);
        }
        self.client.send(request).await
    }

    /// Sends an idempotent request, retrying connection failures and transient answers (429, 5xx) with capped
    /// exponential backoff that honours `Retry-After`. The last response or error is returned.
    pub(crate) async fn send_idempotent(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.send(request).await;
            let wait = match &result {
                Ok(response) if response.is_transient() => {
                    let now = self.clock.now().wall;
                    response.retry_after(now).unwrap_or_else(|| backoff(attempt))
                }
                Err(TransportError::Connect { .. } | TransportError::Timeout { .. } | TransportError::Other { .. }) => {
                    backoff(attempt)
                }
                _ => return result,
            };
            if attempt >= attempts || wait > self.options.max_retry_wait {
                return result;
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying an idempotent request");
            crate::runtime::sleep(wait).await;
        }
    }
}

/// 250 ms doubling per attempt, capped at 4 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.saturating_sub(1).min(4))
}
