//! Sign-in flows of [`SessionClient`]: the loopback browser sign-in, the two-step sign-in for
//! apps that receive the redirect themselves, the redirect sign-in that survives the app going
//! away (its pending PKCE verifier, `state` and `nonce` kept in the store, under the session
//! lock like every write), and the device flow (RFC 8628).
//!
//! Every flow ends the same way: the core checks the answer and, on success, starts a fresh
//! session; the executor then writes it (a sign-in here wins over whatever the store held) and
//! revokes the previous session's tokens.

use std::time::Duration;

use sessionkit_core::CoreError;
use sessionkit_core::oidc::authorize::{AuthorizationCode, AuthorizeOptions, CallbackError, PendingAuthorization};
use sessionkit_core::oidc::device::{DeviceAuthorization, DeviceError, DevicePoll};

use crate::client::{DeviceCode, LoginRequest, SessionClient, TokenSendError};
use crate::dpop::UnusedKey;
use crate::error::{self, Error};

impl SessionClient {
    /// Starts a sign-in whose redirect the app receives itself (a custom-scheme or claimed
    /// https redirect). Nothing changes until [`complete_login`](Self::complete_login).
    ///
    /// When the session will be DPoP-bound (see [`DpopPolicy`](sessionkit_core::DpopPolicy)), a
    /// fresh key is made here and the authorization code is bound to it (`dpop_jkt`).
    pub async fn begin_login(&self, options: &AuthorizeOptions) -> Result<LoginRequest, Error> {
        let dpop_key = self.new_dpop_key().await?;
        let unused_key = UnusedKey::new(&self.inner.dpop.keys, dpop_key.as_ref());
        let (url, pending) = self.inner.session().begin_login(options, dpop_key, self.inner.now())?;
        Ok(LoginRequest { url, pending, unused_key })
    }

    /// A fresh key for a new sign-in, when the policy and the provider call for DPoP.
    async fn new_dpop_key(&self) -> Result<Option<sessionkit_core::oidc::dpop::DpopKey>, Error> {
        let algorithm = self.inner.session().dpop_algorithm()?;
        match algorithm {
            Some(algorithm) => Ok(Some(self.inner.dpop.keys.create(algorithm).await.map_err(CoreError::from)?)),
            None => Ok(None),
        }
    }

    /// Completes a sign-in with the redirect URL the browser was sent to. On success a fresh
    /// session replaces any previous one; on failure the previous session is untouched.
    pub async fn complete_login(&self, request: LoginRequest, callback_url: &str) -> Result<(), Error> {
        let LoginRequest { pending, unused_key, .. } = request;
        let result = self.complete(pending, callback_url).await;
        // Used by the session, or deleted by `complete` when the sign-in failed.
        unused_key.keep();
        result
    }

    /// Starts a sign-in that must survive the app going away while the user is at the provider
    /// (a web page navigating there, a mobile app killed in the background): the pending login
    /// (PKCE verifier, state, nonce) is kept in the store, sealed like the session, for
    /// [`MAX_PENDING_AGE`](sessionkit_core::oidc::authorize::MAX_PENDING_AGE). Returns the URL
    /// to open. A newer call replaces an older pending login.
    pub async fn begin_redirect_login(&self, options: &AuthorizeOptions) -> Result<String, Error> {
        let LoginRequest { pending, unused_key, url } = self.begin_login(options).await?;
        let record = pending.to_record();
        let mut turn = self.inner.shared.turn().await;
        turn.locked().await?;
        let slot = &self.inner.shared.slots.pending;
        // The sign-in this one replaces will never complete: its key goes.
        let replaced = turn.load(slot).await.ok().flatten();
        turn.save(slot, record).await.map_err(|e| error::store(&e))?;
        if let Some(key) = replaced.and_then(|old| PendingAuthorization::dpop_key_in_record(old.expose().as_bytes())) {
            self.inner.dpop.keys.delete(&key).await;
        }
        // The stored pending sign-in holds the key now.
        unused_key.keep();
        drop(turn);
        // In the browser the page navigates away next: the pending sign-in must be on disk.
        self.inner.store_flushed().await;
        Ok(url.as_str().to_owned())
    }

    /// Completes a sign-in started by [`begin_redirect_login`](Self::begin_redirect_login),
    /// possibly in an earlier life of the app. A callback that is not this sign-in's own (a
    /// wrong `state`, another redirect URI, garbage) is refused and the pending sign-in stays
    /// for the real one; once a callback is accepted, the pending sign-in is removed before the
    /// code is exchanged, so a callback is used once whatever its outcome.
    pub async fn complete_redirect_login(&self, callback_url: &str) -> Result<(), Error> {
        let result = self.redirect_callback(callback_url).await;
        // In the browser the page moves on next: what this wrote (or removed) must be on disk.
        self.inner.store_flushed().await;
        result
    }

    async fn redirect_callback(&self, callback_url: &str) -> Result<(), Error> {
        let (pending, code) = {
            let mut turn = self.inner.shared.turn().await;
            turn.locked().await?;
            let slot = &self.inner.shared.slots.pending;
            let Some(record) = turn.load(slot).await.map_err(|e| error::store(&e))? else {
                return Err(CoreError::from(CallbackError::NoLoginInProgress).into());
            };
            let now = self.inner.now().wall;
            let restored = {
                let session = self.inner.session();
                PendingAuthorization::from_record(record.expose().as_bytes(), session.client(), session.metadata(), now)
            };
            let mut pending = match restored {
                Ok(pending) => pending,
                Err(error) => {
                    // Expired or unreadable: it can never complete, so it goes, with its key.
                    let _ = turn.delete(slot).await;
                    if let Some(key) = PendingAuthorization::dpop_key_in_record(record.expose().as_bytes()) {
                        self.inner.dpop.keys.delete(&key).await;
                    }
                    return Err(CoreError::from(error).into());
                }
            };
            let accepted = match pending.accept_callback(callback_url) {
                Err(
                    error @ (CallbackError::StateMismatch | CallbackError::WrongRedirect | CallbackError::Malformed),
                ) => {
                    return Err(CoreError::from(error).into());
                }
                accepted => accepted,
            };
            // This sign-in's own answer: used once. If it cannot be removed, nothing is sent
            // (the code stays good for a retry once the store works).
            turn.delete(slot).await.map_err(|e| error::store(&e))?;
            match accepted {
                Ok(code) => (pending, code),
                // The provider's refusal (or a callback without a code) ends this sign-in.
                Err(refusal) => {
                    self.forget_key_of(&pending).await;
                    return Err(CoreError::from(refusal).into());
                }
            }
        };
        self.exchange(&pending, &code).await
    }

    async fn complete(&self, mut pending: PendingAuthorization, callback_url: &str) -> Result<(), Error> {
        match pending.accept_callback(callback_url) {
            Ok(code) => self.exchange(&pending, &code).await,
            Err(refusal) => {
                // The request is consumed: this sign-in cannot be completed, so its key goes.
                self.forget_key_of(&pending).await;
                Err(CoreError::from(refusal).into())
            }
        }
    }

    /// Forgets the DPoP key of a sign-in that ended without a session (a no-op without one).
    async fn forget_key_of(&self, pending: &PendingAuthorization) {
        if let Some(key) = pending.dpop_key() {
            self.inner.dpop.keys.delete(key).await;
        }
    }

    /// Exchanges the code of an accepted callback and lets the core check the answer.
    async fn exchange(&self, pending: &PendingAuthorization, code: &AuthorizationCode) -> Result<(), Error> {
        let exchange = pending.token_request(code);
        // Never retried: a code is single-use.
        let response = match self.inner.send_token_request(&exchange).await {
            Ok(response) => response,
            Err(failure) => {
                // The code was sent, or could not be: either way this sign-in is over.
                self.forget_key_of(pending).await;
                return Err(failure.into());
            }
        };
        let result = self
            .inner
            .with_keys(&response, |session, keys, which, now| {
                session.handle_login_response(pending, &response, keys, which, now)
            })
            .await;
        self.inner.process_now().await;
        self.inner.wake.notify_one();
        if result.is_err() {
            // The sign-in is over (its code is spent) and started nothing: its key goes.
            self.forget_key_of(pending).await;
        }
        result.map_err(Error::from)
    }

    /// Signs in through the system browser and a loopback redirect listener on 127.0.0.1 with
    /// an ephemeral port (native only: a web page receives its redirect itself). `open` receives
    /// the authorization URL (launch the browser there, or print it). The browser's page says
    /// how the sign-in really ended, once the tokens are checked; a request that is not this
    /// sign-in's callback (a wrong `state`) is refused and the wait goes on. Gives up after
    /// `timeout`.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn login_with_browser(
        &self,
        mut options: AuthorizeOptions,
        open: impl FnOnce(&str) -> std::io::Result<()>,
        timeout: Duration,
    ) -> Result<(), Error> {
        use crate::loopback::Page;

        let configured = self.inner.session().client().redirect_uri.url().clone();
        let listener = crate::loopback::Listener::bind(&configured).await?;
        options.redirect_uri = Some(listener.redirect_uri().clone());
        let mut request = self.begin_login(&options).await?;
        let result = async {
            let mut callbacks = listener.serve();
            open(request.url())
                .map_err(|e| Error::Misconfigured { message: format!("could not open the browser: {e}") })?;
            // The timeout bounds the wait for the browser, not the code exchange: once a code is
            // accepted, the exchange runs to its end (the transport has its own timeouts), so a
            // sign-in finished near the deadline is neither cut in half nor misreported.
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let callback = match tokio::time::timeout_at(deadline, callbacks.next()).await {
                    Ok(Some(callback)) => callback,
                    Ok(None) => {
                        return Err(Error::RetryLater {
                            message: "the redirect listener stopped (its socket failed); start the sign-in again"
                                .into(),
                            retry_after: None,
                        });
                    }
                    Err(_) => {
                        return Err(Error::RetryLater {
                            message: format!(
                                "the sign-in was not completed in the browser within {} s; start it again",
                                timeout.as_secs()
                            ),
                            retry_after: None,
                        });
                    }
                };
                match request.pending.accept_callback(callback.url.expose()) {
                    Ok(code) => {
                        let result = self.exchange(&request.pending, &code).await;
                        let page = match &result {
                            Ok(()) => Page::SignedIn,
                            Err(error) => Page::Failed(error.to_string()),
                        };
                        callback.answer(page).await;
                        return result;
                    }
                    // Not this sign-in's response (anyone on this machine can reach the port).
                    Err(CallbackError::StateMismatch | CallbackError::WrongRedirect | CallbackError::Malformed) => {
                        tracing::info!("a request to the redirect listener was not this sign-in's callback; ignored");
                        callback.answer(Page::NotThisSignIn).await;
                    }
                    // This sign-in's own response, and it says no (or is wrong): the sign-in is over.
                    Err(refusal) => {
                        let error = Error::from(CoreError::from(refusal));
                        callback.answer(Page::Failed(error.to_string())).await;
                        return Err(error);
                    }
                }
            }
        }
        .await;
        if result.is_err() {
            // The sign-in is over (given up, refused, or its exchange failed): its key goes.
            self.forget_key_of(&request.pending).await;
        }
        // Used by the new session, or deleted just above.
        request.unused_key.keep();
        result
    }

    /// Signs in with the device authorization grant (RFC 8628): `show` receives the code and
    /// the URL for the user to visit on another device; this then polls at the provider's
    /// interval (slower on `slow_down`) until the user approves, refuses, or the code expires.
    /// An answer that can never become a sign-in (refused, malformed, oversized) ends the flow
    /// at once with its cause; an unreachable provider is polled less and less often, and
    /// five failures in a row end the flow, saying so.
    pub async fn login_with_device(&self, show: impl FnOnce(&DeviceCode)) -> Result<(), Error> {
        let (start, client, metadata) = {
            let session = self.inner.session();
            let start = DeviceAuthorization::request(session.client(), session.metadata());
            (start, session.client().clone(), session.metadata().clone())
        };
        let start = start.map_err(CoreError::from)?;
        let response = self.inner.transport.send_idempotent(&start.request).await.map_err(error::transport)?;
        let device =
            DeviceAuthorization::from_response(&client, &metadata, &response, start.pkce, self.inner.now().wall)
                .map_err(CoreError::from)?;
        let mut device = device.with_dpop_key(self.new_dpop_key().await?);
        // Deletes the key if this future is dropped while waiting for the user.
        let unused_key = UnusedKey::new(&self.inner.dpop.keys, device.dpop_key());
        let result = self.poll_device(&mut device, show).await;
        if result.is_err()
            && let Some(key) = device.dpop_key()
        {
            // The sign-in is over and started nothing: its key goes.
            self.inner.dpop.keys.delete(key).await;
        }
        unused_key.keep();
        result
    }

    /// Shows the code, then polls until the user approves, refuses, or the code expires.
    async fn poll_device(&self, device: &mut DeviceAuthorization, show: impl FnOnce(&DeviceCode)) -> Result<(), Error> {
        show(&DeviceCode {
            user_code: device.user_code().to_owned(),
            verification_uri: device.verification_uri().to_owned(),
            verification_uri_complete: device.verification_uri_complete().map(str::to_owned),
            expires_at: device.expires_at(),
        });
        let mut wait = device.interval();
        let mut unreachable = 0u32;
        // Bounded by the code's lifetime (checked by `handle_poll`), the unreachable limit, and a hard cap.
        for _ in 0..10_000 {
            crate::runtime::sleep(wait).await;
            let response = match self.inner.send_token_request(&device.poll_request()).await {
                Ok(response) => response,
                Err(TokenSendError::Transport(transport_error)) if transport_error.is_transient() => {
                    unreachable += 1;
                    tracing::info!(error = %transport_error, unreachable, "device flow poll failed");
                    let expired = self.inner.now().wall >= device.expires_at();
                    if unreachable >= MAX_UNREACHABLE_POLLS || expired {
                        return Err(Error::RetryLater {
                            message: format!(
                                "the device sign-in stopped: the provider could not be reached {unreachable} times \
                                 in a row while waiting for approval ({transport_error}); start the sign-in again"
                            ),
                            retry_after: None,
                        });
                    }
                    // Backing off: the interval doubled per failure, up to a minute.
                    wait = device.interval().saturating_mul(1 << unreachable.min(4)).min(MAX_UNREACHABLE_WAIT);
                    continue;
                }
                Err(failure) => {
                    let error = Error::from(failure);
                    return Err(match error {
                        Error::InvalidInput { message } => Error::InvalidInput {
                            message: format!("the device sign-in failed while waiting for approval: {message}"),
                        },
                        other => other,
                    });
                }
            };
            unreachable = 0;
            match device.handle_poll(&response, self.inner.now().wall) {
                DevicePoll::Wait(next) => wait = next,
                DevicePoll::Approved => {
                    let result = self
                        .inner
                        .with_keys(&response, |session, keys, which, now| {
                            session.handle_device_login_response(device, &response, keys, which, now)
                        })
                        .await;
                    self.inner.process_now().await;
                    self.inner.wake.notify_one();
                    return result.map_err(Error::from);
                }
                DevicePoll::Failed(error) => return Err(CoreError::Device(error).into()),
            }
        }
        Err(CoreError::Device(DeviceError::Expired).into())
    }
}

/// Polls in a row that may fail to reach the provider before the device flow gives up.
pub(crate) const MAX_UNREACHABLE_POLLS: u32 = 5;
/// The longest wait between polls while the provider is unreachable.
const MAX_UNREACHABLE_WAIT: Duration = Duration::from_secs(60);
