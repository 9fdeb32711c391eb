//! HTTP as values: the core builds [`HttpRequest`]s and reads [`HttpResponse`]s; the
//! driver moves the bytes (reqwest natively, `fetch` in the browser).
//!
//! Request bodies carry codes, verifiers and refresh tokens, so they are [`Secret`]s;
//! response bodies carry tokens, so [`HttpResponse`] zeroizes its body and its `Debug`
//! shows only the status and the body's length. The helpers here read the two headers
//! the session rules need: `Date` (server-time offset) and `Retry-After` (backoff).

use std::fmt;
use std::time::Duration;

use crate::oidc::dpop::DpopKey;
use crate::url::Url;
use zeroize::Zeroizing;

use crate::{Secret, UnixTime};

/// Form-encoded bodies: the only request body type OAuth endpoints take.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The HTTP methods the protocol uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: discovery, JWKS.
    Get,
    /// `POST`: token, revocation, device authorization.
    Post,
}

/// A request for the driver to send. Every URL here is `https` (checked at discovery).
/// `Debug` shows header names only: a `DPoP` proof is single-use but still a credential.
#[derive(Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL, with any query already encoded. Never secret.
    pub url: Url,
    /// Extra headers beyond the driver's defaults, lower-case names.
    pub headers: Vec<(&'static str, String)>,
    /// The form body, if any; it may hold codes or tokens.
    pub body: Option<Secret>,
    /// Sign this request with this DPoP key: the driver adds the `DPoP` proof header (RFC 9449)
    /// and answers a `use_dpop_nonce` challenge once. `None`: no proof.
    pub dpop: Option<DpopKey>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body", &self.body)
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl HttpRequest {
    /// A `GET` asking for JSON.
    pub fn get_json(url: Url) -> Self {
        Self { method: Method::Get, url, headers: vec![("accept", "application/json".into())], body: None, dpop: None }
    }

    /// A form `POST` asking for JSON.
    pub fn post_form(url: Url, pairs: &[(&str, &str)]) -> Self {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            serializer.append_pair(name, value);
        }
        Self {
            method: Method::Post,
            url,
            headers: vec![("content-type", FORM_CONTENT_TYPE.into()), ("accept", "application/json".into())],
            body: Some(Secret::new(serializer.finish())),
            dpop: None,
        }
    }
}

/// A response as received by the driver: status, the headers that matter, and the body.
#[derive(Clone)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Zeroizing<Vec<u8>>,
}

/// The one rule for "the server is busy or failing, try again later": 429 and every 5xx.
/// Everything else is an answer (a success, or a refusal that retrying would not change).
pub const fn is_transient_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status <= 599)
}

impl HttpResponse {
    /// A response with a status and body and no headers yet.
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Self { status, headers: Vec::new(), body: Zeroizing::new(body) }
    }

    /// Adds a header (names are compared case-insensitively).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Whether the answer is transient (see [`is_transient_status`]): retry later, keep state.
    pub fn is_transient(&self) -> bool {
        is_transient_status(self.status)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The server's clock from the `Date` header, if present and well-formed.
    pub fn server_date(&self) -> Option<UnixTime> {
        let value = self.header("date")?;
        let time = httpdate::parse_http_date(value).ok()?;
        let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(UnixTime::from_millis(crate::time::duration_millis(since_epoch)))
    }

    /// How long `Retry-After` asks to wait (delta-seconds or an HTTP date), if present.
    pub fn retry_after(&self, now: UnixTime) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let time = httpdate::parse_http_date(value).ok()?;
        let at = time.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(UnixTime::from_millis(crate::time::duration_millis(at)).saturating_duration_since(now))
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_post_encodes_and_hides_the_body() {
        let url = Url::parse("https://idp.example/token").expect("url");
        let request = HttpRequest::post_form(url, &[("grant_type", "refresh_token"), ("refresh_token", "a b&c")]);
        let body = request.body.as_ref().expect("body");
        assert_eq!(body.expose(), "grant_type=refresh_token&refresh_token=a+b%26c");
        assert!(!format!("{request:?}").contains("a+b"));
        assert_eq!(request.method, Method::Post);
    }

    #[test]
    fn response_debug_hides_body() {
        let response = HttpResponse::new(200, b"{\"access_token\":\"SECRET\"}".to_vec());
        let debug = format!("{response:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("200"));
    }

    #[test]
    fn date_and_retry_after_are_read() {
        let response = HttpResponse::new(503, Vec::new())
            .with_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT")
            .with_header("Retry-After", "120");
        assert_eq!(response.server_date(), Some(UnixTime::from_secs(784_111_777)));
        assert_eq!(response.retry_after(UnixTime::EPOCH), Some(Duration::from_secs(120)));

        let dated = HttpResponse::new(429, Vec::new()).with_header("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(dated.retry_after(UnixTime::from_secs(784_111_777 - 30)), Some(Duration::from_secs(30)));

        let junk =
            HttpResponse::new(429, Vec::new()).with_header("retry-after", "soon").with_header("date", "yesterday");
        assert_eq!(junk.retry_after(UnixTime::EPOCH), None);
        assert_eq!(junk.server_date(), None);
    }
}
