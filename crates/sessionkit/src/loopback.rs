//! The loopback redirect listener for native sign-in (RFC 8252 section 7.3).
//!
//! It listens on 127.0.0.1 (or [::1] when the configured redirect URI says so) on an ephemeral
//! port, and waits for the browser to arrive at the redirect path. Requests to other paths get a
//! 404 (browsers ask for `/favicon.ico`); the number of connections and the size of each request
//! are bounded, and so is the wait. The callback URL (it holds the code) is returned as a
//! [`Secret`] and never logged.

use std::time::Duration;

use sessionkit_core::Secret;
use sessionkit_core::oidc::client::RedirectUri;
use sessionkit_core::url::{Host, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::Error;

const MAX_REQUEST_BYTES: usize = 8 * 1024;
const MAX_CONNECTIONS: usize = 32;

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<p>You are signed in. You can close this window and return to the app.</p>";

pub(crate) struct Listener {
    listener: TcpListener,
    redirect_uri: RedirectUri,
    path: String,
}

impl Listener {
    /// Binds an ephemeral port on the loopback address of the configured redirect URI.
    pub(crate) async fn bind(configured: &Url) -> Result<Self, Error> {
        let ipv6 = matches!(configured.host(), Some(Host::Ipv6(_)));
        let address = if ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| Error::Misconfigured { message: format!("could not listen on {address}: {e}") })?;
        let port = listener.local_addr().map_err(|e| Error::Misconfigured { message: e.to_string() })?.port();
        let host = if ipv6 { "[::1]" } else { "127.0.0.1" };
        let path = configured.path().to_owned();
        let redirect_uri = RedirectUri::parse(&format!("http://{host}:{port}{path}"))
            .map_err(|e| Error::Misconfigured { message: e.to_string() })?;
        Ok(Self { listener, redirect_uri, path })
    }

    pub(crate) fn redirect_uri(&self) -> &RedirectUri {
        &self.redirect_uri
    }

    /// Waits for the browser's redirect and returns the full callback URL.
    pub(crate) async fn wait_for_callback(self, timeout: Duration) -> Result<Secret, Error> {
        tokio::time::timeout(timeout, self.accept_callback()).await.unwrap_or_else(|_| {
            Err(Error::RetryLater { message: "the sign-in was not completed in time".into(), retry_after: None })
        })
    }

    async fn accept_callback(&self) -> Result<Secret, Error> {
        let failed = |e: std::io::Error| Error::RetryLater {
            message: format!("the redirect listener failed: {e}"),
            retry_after: None,
        };
        for _ in 0..MAX_CONNECTIONS {
            let (mut stream, _) = self.listener.accept().await.map_err(failed)?;
            let mut buffer = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && buffer.len() < MAX_REQUEST_BYTES {
                match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buffer);
            let target = head
                .lines()
                .next()
                .and_then(|line| line.strip_prefix("GET "))
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or("");
            let on_path = target.split('?').next() == Some(self.path.as_str());
            let (status, body) = if on_path { ("200 OK", DONE_PAGE) } else { ("404 Not Found", "not found") };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
            if on_path {
                let origin = self.redirect_uri.as_str().trim_end_matches(&self.path);
                return Ok(Secret::new(format!("{origin}{target}")));
            }
        }
        Err(Error::InvalidInput {
            message: "too many requests reached the redirect listener without a callback".into(),
        })
    }
}
