//! Sign-in flows of [`SessionClient`]: the loopback browser sign-in, the two-step sign-in for
//! apps that receive the redirect themselves, the redirect sign-in that survives the app going
//! away (its pending PKCE verifier, `state` and `nonce` kept in the store, under the session
//! lock like every write), and the device flow (RFC 8628).
//!
//! Every flow ends the same way: the core checks the answer and, on success, starts a fresh
//! session; the executor then writes it (a sign-in here wins over whatever the store held) and
//! revokes the previous session's tokens.

#[cfg(not(target_arch = "wasm32"))]
use std::time::Duration;

use sessionkit_core::CoreError;
use sessionkit_core::oidc::authorize::{AuthorizeOptions, CallbackError, PendingAuthorization};
use sessionkit_core::oidc::device::{DeviceAuthorization, DeviceError, DevicePoll};

use crate::client::{DeviceCode, LoginRequest, SessionClient};
use crate::error::{self, Error};

impl SessionClient {
    /// Starts a sign-in whose redirect the app receives itself (a custom-scheme or claimed
    /// https redirect). Nothing changes until [`complete_login`](Self::complete_login).
    pub fn begin_login(&self, options: &AuthorizeOptions) -> Result<LoginRequest, Error> {
        let (url, pending) = self.inner.session().begin_login(options, self.inner.now())?;
        Ok(LoginRequest { url, pending })
    }

    /// Completes a sign-in with the redirect URL the browser was sent to. On success a fresh
    /// session replaces any previous one; on failure the previous session is untouched.
    pub async fn complete_login(&self, request: LoginRequest, callback_url: &str) -> Result<(), Error> {
        self.complete(request.pending, callback_url).await
    }

    /// Starts a sign-in that must survive the app going away while the user is at the provider
    /// (a web page navigating there, a mobile app killed in the background): the pending login
    /// (PKCE verifier, state, nonce) is kept in the store, sealed like the session, for
    /// [`MAX_PENDING_AGE`](sessionkit_core::oidc::authorize::MAX_PENDING_AGE). Returns the URL
    /// to open. A newer call replaces an older pending login.
    pub async fn begin_redirect_login(&self, options: &AuthorizeOptions) -> Result<String, Error> {
        let request = self.begin_login(options)?;
        let record = request.pending.to_record();
        let mut turn = self.inner.shared.turn().await;
        turn.locked().await?;
        turn.save(&self.inner.shared.slots.pending, record).await.map_err(|e| error::store(&e))?;
        Ok(request.url().to_owned())
    }

    /// Completes a sign-in started by [`begin_redirect_login`](Self::begin_redirect_login),
    /// possibly in an earlier life of the app. The pending login is removed first: a callback is
    /// used once, whatever its outcome.
    pub async fn complete_redirect_login(&self, callback_url: &str) -> Result<(), Error> {
        let record = {
            let mut turn = self.inner.shared.turn().await;
            turn.locked().await?;
            let slot = &self.inner.shared.slots.pending;
            let record = turn.load(slot).await.map_err(|e| error::store(&e))?;
            turn.delete(slot).await.map_err(|e| error::store(&e))?;
            record
        };
        let Some(record) = record else {
            return Err(CoreError::from(CallbackError::NoLoginInProgress).into());
        };
        let pending = {
            let session = self.inner.session();
            PendingAuthorization::from_record(
                record.expose().as_bytes(),
                session.client(),
                session.metadata(),
                self.inner.now().wall,
            )
            .map_err(CoreError::from)?
        };
        self.complete(pending, callback_url).await
    }

    async fn complete(&self, mut pending: PendingAuthorization, callback_url: &str) -> Result<(), Error> {
        let code = pending.accept_callback(callback_url).map_err(CoreError::from)?;
        let exchange = pending.token_request(&code);
        // Never retried: a code is single-use.
        let response = self.inner.transport.send(&exchange).await.map_err(error::transport)?;
        let result = self
            .inner
            .with_keys(&response, |session, keys, which, now| {
                session.handle_login_response(&pending, &response, keys, which, now)
            })
            .await;
        self.inner.process_now().await;
        self.inner.wake.notify_one();
        result.map_err(Error::from)
    }

    /// Signs in through the system browser and a loopback redirect listener on 127.0.0.1 with
    /// an ephemeral port (native only: a web page receives its redirect itself). `open` receives the authorization URL (launch the browser there, or
    /// print it). Gives up after `timeout`.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn login_with_browser(
        &self,
        mut options: AuthorizeOptions,
        open: impl FnOnce(&str) -> std::io::Result<()>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let configured = self.inner.session().client().redirect_uri.url().clone();
        let listener = crate::loopback::Listener::bind(&configured).await?;
        options.redirect_uri = Some(listener.redirect_uri().clone());
        let request = self.begin_login(&options)?;
        open(request.url())
            .map_err(|e| Error::Misconfigured { message: format!("could not open the browser: {e}") })?;
        let callback = listener.wait_for_callback(timeout).await?;
        self.complete_login(request, callback.expose()).await
    }

    /// Signs in with the device authorization grant (RFC 8628): `show` receives the code and
    /// the URL for the user to visit on another device; this then polls at the provider's
    /// interval (slower on `slow_down`) until the user approves, refuses, or the code expires.
    pub async fn login_with_device(&self, show: impl FnOnce(&DeviceCode)) -> Result<(), Error> {
        let (request, client, metadata) = {
            let session = self.inner.session();
            let request = DeviceAuthorization::request(session.client(), session.metadata());
            (request, session.client().clone(), session.metadata().clone())
        };
        let request = request.map_err(CoreError::from)?;
        let response = self.inner.transport.send_idempotent(&request).await.map_err(error::transport)?;
        let mut device = DeviceAuthorization::from_response(&client, &metadata, &response, self.inner.now().wall)
            .map_err(CoreError::from)?;
        show(&DeviceCode {
            user_code: device.user_code().to_owned(),
            verification_uri: device.verification_uri().to_owned(),
            verification_uri_complete: device.verification_uri_complete().map(str::to_owned),
            expires_at: device.expires_at(),
        });
        let mut wait = device.interval();
        // Bounded by the code's lifetime (checked by `handle_poll`) and by a hard cap.
        for _ in 0..10_000 {
            crate::runtime::sleep(wait).await;
            let response = match self.inner.transport.send(&device.poll_request()).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::info!(%error, "device flow poll failed; polling on");
                    if self.inner.now().wall >= device.expires_at() {
                        return Err(CoreError::Device(DeviceError::Expired).into());
                    }
                    wait = device.interval();
                    continue;
                }
            };
            match device.handle_poll(&response, self.inner.now().wall) {
                DevicePoll::Wait(next) => wait = next,
                DevicePoll::Approved => {
                    let result = self
                        .inner
                        .with_keys(&response, |session, keys, which, now| {
                            session.handle_device_login_response(&response, keys, which, now)
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
