//! HTTP for the driver: reqwest with rustls, configured for OAuth endpoints.
//!
//! Every request has a timeout; only `https` URLs are sent (the core builds no other, and
//! [`Transport::send`] checks again); redirects are followed only within the same origin, at
//! most 3; response bodies are capped at [`HttpOptions::max_response_bytes`] while they are
//! read, so an oversized body never fills memory. [`Transport::send_idempotent`] retries
//! connection failures, 429 and 502/503/504 with capped backoff honouring `Retry-After`; it is
//! used for discovery, JWKS and revocation, never for the token endpoint (a lost answer there
//! may carry a rotated refresh token, and the core decides what to do about that).
//!
//! What can go wrong: a [`TransportError`] never contains a URL's query or a body.

use std::time::Duration;

use sessionkit_core::http::{HttpRequest, HttpResponse, Method};
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
    /// Public-key pins for the app's own hosts (native only; see [`crate::pinning`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub spki_pins: Vec<crate::pinning::HostPins>,
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

/// Sends [`HttpRequest`]s built by the core.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    options: HttpOptions,
}

fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn classify(error: &reqwest::Error, host: String) -> TransportError {
    #[cfg(not(target_arch = "wasm32"))]
    let connect = error.is_connect();
    #[cfg(target_arch = "wasm32")]
    let connect = false;
    if pin_mismatch(error) {
        TransportError::PinMismatch { host }
    } else if error.is_timeout() {
        TransportError::Timeout { host }
    } else if connect {
        TransportError::Connect { host }
    } else if error.is_body() || error.is_decode() {
        TransportError::Other { host, kind: "the response body could not be read" }
    } else if error.is_redirect() {
        TransportError::Other { host, kind: "too many redirects" }
    } else {
        TransportError::Other { host, kind: "connection or protocol error" }
    }
}

/// Whether a pin mismatch is somewhere in the error's causes (rustls reports it through hyper).
fn pin_mismatch(error: &reqwest::Error) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = cause {
            if current.to_string().contains(crate::pinning::PIN_MISMATCH) {
                return true;
            }
            cause = current.source();
        }
    }
    let _ = error;
    false
}

impl Transport {
    pub(crate) fn new(options: HttpOptions) -> Result<Self, TransportError> {
        let builder = reqwest::Client::builder();
        // In the browser, fetch owns timeouts, TLS, pooling and redirects (the page's origin
        // policy applies); natively they are set here.
        #[cfg(not(target_arch = "wasm32"))]
        let builder = Self::native(builder, &options)?;
        let client = builder.build().map_err(|_| TransportError::Setup("TLS backend unavailable"))?;
        Ok(Self { client, options })
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn native(
        builder: reqwest::ClientBuilder,
        options: &HttpOptions,
    ) -> Result<reqwest::ClientBuilder, TransportError> {
        let mut builder = builder
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .https_only(true)
            // Shorter than the common 5 s server keep-alive, so a pooled connection is never
            // reused just as the server closes it (a spurious reset).
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("sessionkit/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt.previous().first().is_some_and(|first| {
                    first.scheme() == attempt.url().scheme()
                        && first.host_str() == attempt.url().host_str()
                        && first.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if attempt.previous().len() > 3 || !same_origin { attempt.stop() } else { attempt.follow() }
            }));
        if !options.spki_pins.is_empty() {
            return Ok(builder.tls_backend_preconfigured(crate::pinning::client_config(
                &options.trust_only_roots_pem,
                &options.spki_pins,
            )?));
        }
        if !options.trust_only_roots_pem.is_empty() {
            let mut roots = Vec::new();
            for pem in &options.trust_only_roots_pem {
                roots.push(
                    reqwest::Certificate::from_pem(pem).map_err(|_| TransportError::Setup("bad root certificate"))?,
                );
            }
            builder = builder.tls_certs_only(roots);
        }
        Ok(builder)
    }

    /// Sends once.
    pub(crate) async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if request.url.scheme() != "https" {
            return Err(TransportError::Insecure);
        }
        let host = host_of(&request.url);
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            // The body leaves the process here, over TLS, to the endpoint the core chose.
            builder = builder.body(body.expose().to_owned());
        }
        #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
        let mut response = builder.send().await.map_err(|e| classify(&e, host.clone()))?;
        let limit = self.options.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit as u64) {
            return Err(TransportError::TooLarge { host, limit });
        }
        let status = response.status().as_u16();
        let keep = ["date", "retry-after", "content-type", "www-authenticate"];
        let headers: Vec<(String, String)> = keep
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect();
        // Natively the body is read in chunks and cut off at the limit; fetch in the browser
        // hands it over whole, so there the limit is checked after.
        let mut body = Vec::new();
        #[cfg(not(target_arch = "wasm32"))]
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, host.clone()))? {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::TooLarge { host, limit });
            }
            body.extend_from_slice(&chunk);
        }
        #[cfg(target_arch = "wasm32")]
        body.extend_from_slice(&response.bytes().await.map_err(|e| classify(&e, host.clone()))?);
        if body.len() > limit {
            return Err(TransportError::TooLarge { host, limit });
        }
        let mut out = HttpResponse::new(status, body);
        for (name, value) in &headers {
            out = out.with_header(name, value);
        }
        Ok(out)
    }

    /// Sends an idempotent request, retrying connection failures, 429 and 502-504 with capped
    /// exponential backoff that honours `Retry-After`. The last response or error is returned.
    pub(crate) async fn send_idempotent(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.send(request).await;
            let wait = match &result {
                Ok(response) if matches!(response.status(), 429 | 502 | 503 | 504) => {
                    let now = crate::runtime::now().wall;
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
