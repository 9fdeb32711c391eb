//! In the browser: the page's own `fetch`, with a timeout (an `AbortSignal`), no redirects, no
//! cookies, no cache, no referrer, and the body cut off at the limit while it is read. TLS and
//! certificate checks are the browser's; `trust_only_roots_pem` and pins do not apply here.

use sessionkit_core::http::{HttpRequest, HttpResponse, Method};
use wasm_bindgen::prelude::*;

use super::{HttpOptions, KEPT_HEADERS, TransportError};

#[wasm_bindgen(module = "/src/http/web.js")]
extern "C" {
    #[wasm_bindgen(js_name = httpFetch, catch)]
    async fn http_fetch(
        method: &str,
        url: &str,
        headers: js_sys::Array,
        body: Option<String>,
        timeout_ms: f64,
        max_bytes: f64,
        kept_headers: js_sys::Array,
    ) -> Result<JsValue, JsValue>;
}

/// Nothing to keep between requests: the browser pools connections itself.
#[derive(Clone, Debug)]
pub(super) struct Io;

impl Io {
    pub(super) fn new(_options: &HttpOptions) -> Result<Self, TransportError> {
        Ok(Self)
    }

    pub(super) async fn send(
        &self,
        request: &HttpRequest,
        host: String,
        options: &HttpOptions,
    ) -> Result<HttpResponse, TransportError> {
        let method = match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let pair = |name: &str, value: &str| js_sys::Array::of2(&name.into(), &value.into());
        let headers: js_sys::Array = request.headers.iter().map(|(name, value)| pair(name, value)).collect();
        let kept: js_sys::Array = KEPT_HEADERS.iter().map(|name| JsValue::from_str(name)).collect();
        let limit = options.max_response_bytes;
        // The body leaves for the endpoint the core chose, over the browser's TLS.
        let body = request.body.as_ref().map(|body| body.expose().to_owned());
        let answer = http_fetch(
            method,
            request.url.as_str(),
            headers,
            body,
            options.timeout.as_millis() as f64,
            limit as f64,
            kept,
        )
        .await
        .map_err(|kind| match kind.as_string().as_deref() {
            Some("timeout") => TransportError::Timeout { host: host.clone() },
            Some("too_large") => TransportError::TooLarge { host: host.clone(), limit },
            // fetch reports refused connections, TLS failures and CORS refusals alike.
            _ => TransportError::Connect { host: host.clone() },
        })?;
        let answer = js_sys::Array::from(&answer);
        let status = answer.get(0).as_f64().map_or(0, |s| s as u16);
        let body = js_sys::Uint8Array::new(&answer.get(2)).to_vec();
        let mut response = HttpResponse::new(status, body);
        for header in js_sys::Array::from(&answer.get(1)).iter() {
            let header = js_sys::Array::from(&header);
            if let (Some(name), Some(value)) = (header.get(0).as_string(), header.get(1).as_string()) {
                response = response.with_header(&name, &value);
            }
        }
        Ok(response)
    }
}
