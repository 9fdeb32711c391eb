//! Natively: reqwest with rustls (timeouts, https only, same-origin redirects only, at most 3,
//! optional SPKI pins, the body cut off at the limit while it is read).

use std::time::Duration;

use sessionkit_core::http::{HttpRequest, HttpResponse, Method};

use super::{HttpOptions, KEPT_HEADERS, TransportError};

/// The reqwest client.
#[derive(Clone, Debug)]
pub(super) struct Io {
    client: reqwest::Client,
}

fn classify(error: &reqwest::Error, host: String) -> TransportError {
    let connect = error.is_connect();
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
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.to_string().contains(super::pinning::PIN_MISMATCH) {
            return true;
        }
        cause = current.source();
    }
    false
}

impl Io {
    pub(super) fn new(options: &HttpOptions) -> Result<Self, TransportError> {
        let builder = Self::builder(options)?;
        let client = builder.build().map_err(|_| TransportError::Setup("TLS backend unavailable"))?;
        Ok(Self { client })
    }

    fn builder(options: &HttpOptions) -> Result<reqwest::ClientBuilder, TransportError> {
        let builder = reqwest::Client::builder()
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
        // Our own rustls configuration, pins or not: its crypto provider is chosen in one place.
        let tls = super::tls::client_config(&options.trust_only_roots_pem, &options.spki_pins)?;
        Ok(builder.tls_backend_preconfigured(tls))
    }

    /// Sends once; the body is read in chunks and cut off at the limit.
    pub(super) async fn send(
        &self,
        request: &HttpRequest,
        host: String,
        options: &HttpOptions,
    ) -> Result<HttpResponse, TransportError> {
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
        let mut response = builder.send().await.map_err(|e| classify(&e, host.clone()))?;
        let limit = options.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit as u64) {
            return Err(TransportError::TooLarge { host, limit });
        }
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, host.clone()))? {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::TooLarge { host, limit });
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(status, body);
        for (name, value) in &headers {
            out = out.with_header(name, value);
        }
        Ok(out)
    }
}
