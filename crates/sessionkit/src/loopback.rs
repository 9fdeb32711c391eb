//! The loopback redirect listener for native sign-in (RFC 8252 section 7.3).
//!
//! It listens on 127.0.0.1 (or [::1] when the configured redirect URI says so) on an ephemeral
//! port. Each connection is served in a task of its own, so a client that connects and sends
//! nothing stalls nobody; the connections served at once (64), the size of each request and the time
//! to read it are bounded, and the listener lives only as long as the sign-in waits for it (the
//! caller's timeout). There is no cap on connections in all: a local process could use it to
//! end the user's sign-in. Requests to other paths get a 404 (browsers ask for `/favicon.ico`).
//!
//! A request to the redirect path is handed to the sign-in flow as a [`Callback`], and the
//! browser's connection stays open until the flow says what happened: the page then tells the
//! real outcome (signed in, refused and why, or the provider's error), never "signed in" before
//! the code was exchanged and the tokens checked. A callback that is not this sign-in's own (a
//! wrong `state`, another path, garbage) is answered as such and the listener keeps waiting: any
//! local process can reach the port, and must not be able to abort the user's sign-in.
//! The callback URL holds the code: it is kept as a [`Secret`], its buffer zeroized, never logged.

use std::sync::Arc;
use std::time::Duration;

use sessionkit_core::Secret;
use sessionkit_core::oidc::client::RedirectUri;
use sessionkit_core::url::{Host, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use zeroize::Zeroizing;

use crate::error::Error;

const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Connections served at once; more wait for a free slot. Generous: a browser opens a few, and
/// a local process holding many silent ones should not shut the browser out.
const MAX_CONCURRENT: usize = 64;
/// How long a client may take to send its request (a browser sends it at once).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the browser's connection waits for the outcome (the code exchange included).
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(120);

/// What the browser is told at the end of the redirect.
pub(crate) enum Page {
    /// The sign-in is complete.
    SignedIn,
    /// This request is not the response to the sign-in in progress; the sign-in goes on.
    NotThisSignIn,
    /// The sign-in failed, for this reason (a message fit for people, no secrets).
    Failed(String),
}

impl Page {
    fn render(&self) -> (&'static str, String) {
        let (status, title, text) = match self {
            Self::SignedIn => (
                "200 OK",
                "Signed in",
                "You are signed in. You can close this window and return to the app.".to_owned(),
            ),
            Self::NotThisSignIn => (
                "400 Bad Request",
                "Not this sign-in",
                "This page was not reached from the sign-in in progress, so it was ignored. If you are signing \
                 in, finish in the window the app opened."
                    .to_owned(),
            ),
            Self::Failed(reason) => (
                "400 Bad Request",
                "Sign-in failed",
                format!("The sign-in did not complete: {reason}. Return to the app to try again."),
            ),
        };
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{}</p>",
            escape_html(&text)
        );
        (status, body)
    }
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// How long [`Callback::answer`] waits for the page to reach the browser.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A request that reached the redirect path. Dropping it without [`answer`](Self::answer)
/// tells the browser the sign-in failed.
pub(crate) struct Callback {
    /// The full callback URL (it holds the code).
    pub(crate) url: Secret,
    reply: oneshot::Sender<(Page, oneshot::Sender<()>)>,
}

impl Callback {
    /// Sends the page and waits (briefly) until it is written, so that an app that exits right
    /// after the sign-in does not leave the browser with a reset connection.
    pub(crate) async fn answer(self, page: Page) {
        let (written, done) = oneshot::channel();
        if self.reply.send((page, written)).is_ok() {
            let _ = tokio::time::timeout(ANSWER_TIMEOUT, done).await;
        }
    }
}

pub(crate) struct Listener {
    listener: TcpListener,
    redirect_uri: RedirectUri,
    path: String,
}

/// The callbacks a serving listener receives; the listener stops when this is dropped.
pub(crate) struct Callbacks {
    receiver: mpsc::Receiver<Callback>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Callbacks {
    /// The next request to the redirect path; `None` once the listener gave up (its socket
    /// failed).
    pub(crate) async fn next(&mut self) -> Option<Callback> {
        self.receiver.recv().await
    }
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

    /// Starts serving: every request to the redirect path arrives as a [`Callback`].
    pub(crate) fn serve(self) -> Callbacks {
        let (sender, receiver) = mpsc::channel(MAX_CONCURRENT);
        let server = tokio::spawn(self.accept_loop(sender));
        Callbacks { receiver, server }
    }

    async fn accept_loop(self, callbacks: mpsc::Sender<Callback>) {
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
        let origin: Arc<str> = self.redirect_uri.as_str().trim_end_matches(&self.path).into();
        let path: Arc<str> = self.path.into();
        // Bounded by the sign-in's timeout: dropping `Callbacks` aborts this loop.
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "the redirect listener could not accept a connection");
                    return;
                }
            };
            let (callbacks, origin, path) = (callbacks.clone(), origin.clone(), path.clone());
            tokio::spawn(async move {
                serve_connection(stream, &origin, &path, &callbacks).await;
                drop(slot);
            });
        }
    }
}

/// Reads one request; answers it at once (another path, unreadable) or once the sign-in flow
/// has decided (the redirect path).
async fn serve_connection(mut stream: TcpStream, origin: &str, path: &str, callbacks: &mpsc::Sender<Callback>) {
    let target = match tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream)).await {
        Ok(Some(target)) => target,
        _ => return respond(&mut stream, "400 Bad Request", "bad request".into()).await,
    };
    if target.expose().split('?').next() != Some(path) {
        return respond(&mut stream, "404 Not Found", "not found".into()).await;
    }
    let (reply, outcome) = oneshot::channel();
    let url = Secret::new(format!("{origin}{}", target.expose()));
    let answer = match callbacks.send(Callback { url, reply }).await {
        Ok(()) => tokio::time::timeout(OUTCOME_TIMEOUT, outcome).await.ok().and_then(Result::ok),
        Err(_) => None,
    };
    let (page, written) = match answer {
        Some((page, written)) => (page, Some(written)),
        None => (Page::Failed("the app is no longer waiting for this sign-in".into()), None),
    };
    let (status, body) = page.render();
    respond(&mut stream, status, body).await;
    if let Some(written) = written {
        let _ = written.send(());
    }
}

/// The request target of a `GET` (path and query), from a head read up to its blank line.
async fn read_target(stream: &mut TcpStream) -> Option<Secret> {
    // Room for the largest request up front: a reallocation would leave a copy of the code behind.
    let mut buffer = Zeroizing::new(Vec::with_capacity(MAX_REQUEST_BYTES + 1024));
    let mut chunk = Zeroizing::new([0u8; 1024]);
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        if buffer.len() >= MAX_REQUEST_BYTES {
            return None;
        }
        match stream.read(&mut chunk[..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let line_end = buffer.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&buffer[..line_end]).ok()?;
    let target = line.strip_prefix("GET ")?.split(' ').next()?;
    Some(Secret::new(target.to_owned()))
}

async fn respond(stream: &mut TcpStream, status: &str, body: String) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_quote() {
        let (status, body) =
            Page::Failed("the provider refused the sign-in: x (<script>alert(1)</script>)".into()).render();
        assert_eq!(status, "400 Bad Request");
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{body}");
        assert!(!body.contains("<script>"));
    }
}
