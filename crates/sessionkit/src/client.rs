//! [`SessionClient`]: the async driver of one session.
//!
//! It does what the core decides: sends its requests, keeps its records in the
//! [`SecureStore`](crate::store::SecureStore), runs its timer, and tells the app what happened
//! through [`SessionClient::subscribe`]. It decides nothing about sessions itself.
//!
//! - Sign-in: [`SessionClient::login_with_browser`] (loopback redirect on 127.0.0.1 with an
//!   ephemeral port, RFC 8252), or the two steps [`SessionClient::begin_login`] /
//!   [`SessionClient::complete_login`] for apps that receive the redirect themselves.
//! - [`SessionClient::access_token`]: a fresh token from memory (no store access), or exactly one
//!   refresh however many callers ask at once (single-flight), whose result they all share.
//! - A background task refreshes ahead of expiry and enforces idle and absolute limits.
//! - [`SessionClient::logout`]: local wipe, then revocation (retried durably if the endpoint
//!   fails), then the end-session URL for the app to open.
//!
//! Create it inside a tokio runtime: it spawns its timer task there. The task ends when the
//! last clone of the client is dropped.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sessionkit_core::http::{HttpRequest, HttpResponse};
use sessionkit_core::oidc::authorize::{AuthorizeOptions, CallbackError, PendingAuthorization};
use sessionkit_core::oidc::device::{DeviceAuthorization, DeviceError, DevicePoll};
use sessionkit_core::oidc::discovery::ProviderMetadata;
use sessionkit_core::oidc::id_token::{IdTokenError, SignatureError};
use sessionkit_core::oidc::logout::EndSessionRequest;
use sessionkit_core::url::Url;
use sessionkit_core::{
    Action, CoreError, Keys, RefreshStart, Revocation, Secret, Session, SessionEvent, SessionStatus, StoreChange,
    TokenState,
};
use tokio::sync::{Notify, broadcast};
use tracing::Instrument as _;

use crate::config::SessionConfig;
use crate::error::{self, Error};
use crate::http::Transport;
use crate::jwks::Jwks;
use crate::revocation::RevocationQueue;
use crate::runtime;
use crate::store::SecureStore;

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 256;
/// Longest sleep of the timer task when nothing is scheduled.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// What to show the user during a device sign-in ([`SessionClient::login_with_device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// The code to type.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The same URL with the code filled in (for a link or QR code), if the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// When the code stops working.
    pub expires_at: sessionkit_core::UnixTime,
}

/// A sign-in started by [`SessionClient::begin_login`]: open [`LoginRequest::url`] in the
/// system browser, then pass the redirect to [`SessionClient::complete_login`].
#[derive(Debug)]
pub struct LoginRequest {
    url: Url,
    pending: PendingAuthorization,
}

impl LoginRequest {
    /// The authorization URL to open (it carries only public values: PKCE challenge, state, nonce).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

pub(crate) struct Inner {
    session: Mutex<Session>,
    transport: Transport,
    jwks: Jwks,
    store: Arc<dyn SecureStore>,
    store_key: String,
    revocations: RevocationQueue,
    /// Held by whoever is refreshing (a caller's refresh task or the timer).
    refresh_gate: Arc<tokio::sync::Mutex<()>>,
    /// Bumped each time the gate is released: callers that found it held wait for this, then all
    /// look at the new token at once instead of queueing through the gate one by one.
    gate_released: tokio::sync::watch::Sender<u64>,
    events: broadcast::Sender<SessionEvent>,
    wake: Arc<Notify>,
    store_description: String,
    lock: crate::lock::LockTarget,
}

/// The held refresh gate: on drop (done, failed or cancelled) it releases the gate and then
/// tells the waiting callers, in that order, so that none of them can miss the release.
struct Gate<'a> {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    released: &'a tokio::sync::watch::Sender<u64>,
}

impl<'a> Gate<'a> {
    fn held(guard: tokio::sync::OwnedMutexGuard<()>, released: &'a tokio::sync::watch::Sender<u64>) -> Self {
        Self { guard: Some(guard), released }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.released.send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// Marks a refresh as failed if it is dropped before its answer was fed to the session.
struct AbandonedRefresh<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl AbandonedRefresh<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonedRefresh<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!("a refresh was abandoned by its caller; it counts as a transient failure");
            let _ = self.inner.session().handle_refresh_failure(runtime::now());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the timer task notice the client is gone.
        self.wake.notify_one();
    }
}

/// One user's session with one provider. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct SessionClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient").field("status", &self.status()).finish_non_exhaustive()
    }
}

impl SessionClient {
    /// Discovers the provider, fetches its keys (or, offline, uses the copies cached at the last
    /// start), restores a stored session if there is one, and starts the timer. A store that
    /// cannot be read is an error; nothing is wiped.
    pub async fn new(config: SessionConfig) -> Result<Self, Error> {
        let transport = Transport::new(config.http.clone()).map_err(error::transport)?;
        let store_key = config.store_key();
        let (metadata, jwks) =
            crate::discovery::load(&transport, &config.client.issuer, &config.store, &format!("{store_key}|provider"))
                .await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let inner = Arc::new(Inner {
            revocations: RevocationQueue::new(format!("{store_key}|revocations")),
            session: Mutex::new(Session::new(config.client.clone(), metadata, config.policy)),
            transport,
            jwks,
            store_description: config.store.describe(),
            lock: crate::lock::LockTarget::new(&config, &store_key),
            store: config.store,
            store_key,
            refresh_gate: Arc::new(tokio::sync::Mutex::new(())),
            gate_released: tokio::sync::watch::Sender::new(0),
            events,
            wake: Arc::new(Notify::new()),
        });
        let client = Self { inner };
        client.restore().await?;
        client.spawn_timer();
        client.inner.revocations.retry_pending(&client.inner).await;
        client.inner.wake.notify_one();
        Ok(client)
    }

    /// Events: logged in, refreshed, expiring soon, expired, logged out, anomalies, storage
    /// problems. Each subscriber gets every event from the moment it subscribes.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// The session's identity and times, or `None` when signed out. No secrets.
    pub fn status(&self) -> Option<SessionStatus> {
        self.inner.session().status()
    }

    /// Why there is no session, or `None` while one is active.
    pub fn end_reason(&self) -> Option<sessionkit_core::EndReason> {
        self.inner.session().end_reason()
    }

    /// Where the session is kept, for status displays.
    pub fn store_description(&self) -> &str {
        &self.inner.store_description
    }

    /// The provider's metadata, as discovered.
    pub fn metadata(&self) -> ProviderMetadata {
        self.inner.session().metadata().clone()
    }

    /// A fresh access token. From memory when it is fresh (no store access, no I/O); otherwise
    /// one refresh runs for all concurrent callers and they share its result.
    pub async fn access_token(&self) -> Result<Secret, Error> {
        // Bounded: a refresh that succeeds yields a fresh token on the next pass.
        for _ in 0..3 {
            match self.inner.session().access_token(runtime::now()) {
                TokenState::Fresh(token) => return Ok(token.clone()),
                TokenState::Dead(reason) => return Err(error::ended(reason)),
                TokenState::Renewable => {}
            }
            self.inner.refresh().await?;
        }
        Err(Error::RetryLater { message: "the token could not be refreshed".into(), retry_after: None })
    }

    /// The access token if it is fresh now, without waiting or any I/O; `None` when a refresh
    /// (or a sign-in) is needed, in which case call [`access_token`](Self::access_token). For
    /// callers that cannot afford an async call on their hot path (the FFI bindings).
    pub fn fresh_access_token(&self) -> Option<Secret> {
        match self.inner.session().access_token(runtime::now()) {
            TokenState::Fresh(token) => Some(token.clone()),
            _ => None,
        }
    }

    /// The token type for the `Authorization` header (`Bearer` or `DPoP`).
    pub fn token_type(&self) -> Option<String> {
        self.inner.session().token_type().map(str::to_owned)
    }

    /// Counts user activity for the idle timeout.
    pub async fn record_activity(&self) {
        self.inner.session().record_activity(runtime::now());
        self.inner.process().await;
    }

    /// Starts a sign-in whose redirect the app receives itself (a custom-scheme or claimed
    /// https redirect). Nothing changes until [`complete_login`](Self::complete_login).
    pub fn begin_login(&self, options: &AuthorizeOptions) -> Result<LoginRequest, Error> {
        let (url, pending) = self.inner.session().begin_login(options, runtime::now())?;
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
        let key = self.inner.pending_key();
        self.inner
            .store_call_with(move |store| store.save(&key, &record), self.inner.store())
            .await
            .map_err(|e| error::store(&e))?;
        Ok(request.url().to_owned())
    }

    /// Completes a sign-in started by [`begin_redirect_login`](Self::begin_redirect_login),
    /// possibly in an earlier life of the app. The pending login is removed first: a callback is
    /// used once, whatever its outcome.
    pub async fn complete_redirect_login(&self, callback_url: &str) -> Result<(), Error> {
        self.inner.lock.reload_store().await.map_err(|e| error::store(&e))?;
        let key = self.inner.pending_key();
        let record = self
            .inner
            .store_call_with(
                move |store| {
                    let record = store.load(&key)?;
                    store.delete(&key)?;
                    Ok(record)
                },
                self.inner.store(),
            )
            .await
            .map_err(|e| error::store(&e))?;
        let Some(record) = record else {
            return Err(CoreError::from(CallbackError::NoLoginInProgress).into());
        };
        let pending = {
            let session = self.inner.session();
            PendingAuthorization::from_record(
                record.expose().as_bytes(),
                session.client(),
                session.metadata(),
                runtime::now().wall,
            )
            .map_err(CoreError::from)?
        };
        self.complete(pending, callback_url).await
    }

    /// Re-reads the store and adopts what another context sharing it (a browser tab, another
    /// process) wrote there: a refreshed token, a new sign-in, or a sign-out.
    pub async fn sync_from_store(&self) -> Result<(), Error> {
        let _gate = Gate::held(self.inner.refresh_gate.clone().lock_owned().await, &self.inner.gate_released);
        self.inner.lock.reload_store().await.map_err(|e| error::store(&e))?;
        let change = self.inner.adopt_from_store().await;
        self.inner.process().await;
        self.inner.wake.notify_one();
        tracing::debug!(?change, "synchronised with the store");
        Ok(())
    }

    async fn complete(&self, mut pending: PendingAuthorization, callback_url: &str) -> Result<(), Error> {
        let code = pending.accept_callback(callback_url).map_err(CoreError::from)?;
        let exchange = pending.token_request(&code);
        // Never retried: a code is single-use.
        let response = self.inner.transport.send(&exchange).await.map_err(error::transport)?;
        let result = self
            .inner
            .with_keys(&response, |session, keys, which| {
                session.handle_login_response(&pending, &response, keys, which, runtime::now())
            })
            .await;
        self.inner.process().await;
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
        let mut device = DeviceAuthorization::from_response(&client, &metadata, &response, runtime::now().wall)
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
            runtime::sleep(wait).await;
            let response = match self.inner.transport.send(&device.poll_request()).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::info!(%error, "device flow poll failed; polling on");
                    if runtime::now().wall >= device.expires_at() {
                        return Err(CoreError::Device(DeviceError::Expired).into());
                    }
                    wait = device.interval();
                    continue;
                }
            };
            match device.handle_poll(&response, runtime::now().wall) {
                DevicePoll::Wait(next) => wait = next,
                DevicePoll::Approved => {
                    let result = self
                        .inner
                        .with_keys(&response, |session, keys, which| {
                            session.handle_device_login_response(&response, keys, which, runtime::now())
                        })
                        .await;
                    self.inner.process().await;
                    self.inner.wake.notify_one();
                    return result.map_err(Error::from);
                }
                DevicePoll::Failed(error) => return Err(CoreError::Device(error).into()),
            }
        }
        Err(CoreError::Device(DeviceError::Expired).into())
    }

    /// Signs out: wipes the session from memory and the store first, then revokes the refresh
    /// token (retried later if the provider cannot be reached), and returns the provider's
    /// end-session URL (with `id_token_hint` and `state`) for the app to open, if it has one.
    pub async fn logout(&self) -> Result<Option<EndSessionRequest>, Error> {
        let result = self.inner.session().logout(runtime::now());
        // The wipe and the revocation run in their own task: a caller that stops waiting must
        // not leave a logout half done.
        let inner = self.inner.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        runtime::spawn(async move {
            inner.process().await;
            let _ = done.send(());
        });
        let _ = finished.await;
        self.inner.wake.notify_one();
        result.map_err(Error::from)
    }

    fn spawn_timer(&self) {
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        runtime::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let session_sleep = inner.session().time_until_timeout(runtime::now()).unwrap_or(IDLE_TIMER);
                let sleep = inner.revocations.time_until_retry().map_or(session_sleep, |r| r.min(session_sleep));
                drop(inner);
                tokio::select! {
                    () = runtime::sleep(sleep) => {}
                    () = wake.notified() => continue,
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.on_timer().await;
            }
        });
    }

    async fn restore(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let record = inner.store_call(|store, key| store.load(key)).await.map_err(|e| error::store(&e))?;
        if let Some(record) = record {
            // An unreadable record is reported and left in place; the app starts signed out.
            let outcome = inner.session().restore(record.expose().as_bytes(), runtime::now());
            if let Err(error) = outcome {
                tracing::warn!(%error, "the stored session could not be restored");
            }
        }
        inner.process().await;
        Ok(())
    }
}

impl Inner {
    pub(crate) fn session(&self) -> MutexGuard<'_, Session> {
        // The core never panics while the lock is held; a poisoned lock still holds a valid state.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a pending redirect sign-in is kept.
    fn pending_key(&self) -> String {
        format!("{}|pending", self.store_key)
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Runs a store call on a blocking thread (keystores talk D-Bus or XPC).
    pub(crate) async fn store_call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SecureStore, &str) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, crate::store::StoreError> {
        let store = self.store.clone();
        let key = self.store_key.clone();
        self.store_call_with(move |s| call(s, &key), store).await
    }

    pub(crate) async fn store_call_with<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SecureStore) -> Result<T, crate::store::StoreError> + Send + 'static,
        store: Arc<dyn SecureStore>,
    ) -> Result<T, crate::store::StoreError> {
        runtime::run_blocking(move || call(store.as_ref()))
            .await
            .unwrap_or_else(|| Err(crate::store::StoreError::Failed("the store call panicked".into())))
    }

    pub(crate) fn store(&self) -> Arc<dyn SecureStore> {
        self.store.clone()
    }

    /// Calls into the session with the cached keys; if the ID token names an unknown `kid`,
    /// refetches the JWKS once (rate-limited) and calls again.
    /// `response` is the token response whose ID token is checked (in the browser its
    /// signature is checked ahead, asynchronously, with WebCrypto).
    async fn with_keys(
        &self,
        response: &HttpResponse,
        call: impl Fn(&mut Session, &dyn sessionkit_core::oidc::id_token::SignatureVerifier, Keys) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let keys = self.jwks.keys();
        let verifier = crate::jwks::verifier_for(&keys, response.body()).await;
        let first = call(&mut self.session(), &verifier, Keys::Cached);
        if first != Err(CoreError::IdToken(IdTokenError::Signature(SignatureError::UnknownKey))) {
            return first;
        }
        let keys = match self.jwks.refetch_for_unknown_kid(&self.transport).await {
            Some(Ok(keys)) => keys,
            Some(Err(error)) => {
                tracing::warn!(%error, "refetching the provider's keys failed");
                self.jwks.keys()
            }
            None => self.jwks.keys(),
        };
        let verifier = crate::jwks::verifier_for(&keys, response.body()).await;
        call(&mut self.session(), &verifier, Keys::JustFetched)
    }

    /// The single-flight refresh: the first caller starts it; the others wait until it is done
    /// and then look at the token again (all at once), finding the fresh one or the backoff.
    /// The refresh runs in a task of its own, so a caller that stops waiting (a cancelled
    /// coroutine, a dropped future) does not abandon a rotated refresh token on the wire: the
    /// answer is still fed to the session and persisted.
    async fn refresh(self: &Arc<Self>) -> Result<(), Error> {
        // Subscribed before trying the gate, so a release after a failed try is never missed.
        let mut released = self.gate_released.subscribe();
        let Ok(gate) = self.refresh_gate.clone().try_lock_owned() else {
            let _ = released.changed().await;
            return Ok(());
        };
        let inner = self.clone();
        let (done, outcome) = tokio::sync::oneshot::channel();
        runtime::spawn(async move {
            let _gate = Gate::held(gate, &inner.gate_released);
            let _ = done.send(inner.refresh_holding_gate().await);
        });
        outcome.await.unwrap_or_else(|_| {
            Err(Error::RetryLater { message: "the refresh task stopped".into(), retry_after: None })
        })
    }

    /// The refresh itself, by the holder of the gate.
    async fn refresh_holding_gate(&self) -> Result<(), Error> {
        let now = runtime::now();
        let start = {
            let mut session = self.session();
            match session.access_token(now) {
                TokenState::Fresh(_) => return Ok(()),
                TokenState::Dead(reason) => return Err(error::ended(reason)),
                TokenState::Renewable => session.request_refresh(now),
            }
        };
        match start {
            RefreshStart::Started | RefreshStart::InFlight => {}
            RefreshStart::BackingOff { until } => {
                let retry_after = until.saturating_duration_since(now.wall);
                return Err(Error::RetryLater {
                    message: "the provider failed recently".into(),
                    retry_after: Some(retry_after),
                });
            }
            RefreshStart::Impossible(reason) => return Err(error::ended(reason)),
        }
        let result = self.run_refresh().await;
        self.wake.notify_one();
        result
    }

    /// Sends the queued refresh (the gate is held) and feeds the answer back.
    async fn run_refresh(&self) -> Result<(), Error> {
        let Some(request) = self.process().await else { return Ok(()) };
        // If this future is dropped all the same (the timer's, or a runtime shutting down), the
        // refresh counts as failed, so the session is not left waiting for an answer that will
        // never be fed back.
        let abandoned = AbandonedRefresh { inner: self, armed: true };
        // Another process sharing the store may have refreshed already: take the lock, then
        // look at the store before spending the refresh token.
        let _lock = match crate::lock::acquire(&self.lock).await {
            Ok(lock) => lock,
            Err(error) => {
                let _ = self.session().handle_refresh_failure(runtime::now());
                self.process().await;
                return Err(error);
            }
        };
        match self.adopt_from_store().await {
            Some(StoreChange::Adopted) => {
                tracing::debug!("another process refreshed; adopted its tokens");
                self.process().await;
                return Ok(());
            }
            Some(StoreChange::Ended) => {
                self.process().await;
                return Err(error::ended(sessionkit_core::EndReason::Revoked));
            }
            _ => {}
        }
        let outcome = async {
            match self.transport.send(&request).await {
                Ok(response) => self.feed_refresh(&response).await,
                Err(transport_error) => {
                    tracing::info!(error = %transport_error, "refresh failed; the session is kept and retried later");
                    let wait = self.session().handle_refresh_failure(runtime::now());
                    let message = error::transport(transport_error).to_string();
                    let retry_after = match wait {
                        CoreError::Transient { retry_after, .. } => retry_after,
                        _ => None,
                    };
                    Err(Error::RetryLater { message, retry_after })
                }
            }
        }
        .instrument(tracing::debug_span!("refresh"))
        .await;
        abandoned.disarm();
        self.process().await;
        outcome
    }

    /// Reads the store and lets the session adopt what another process wrote there.
    async fn adopt_from_store(&self) -> Option<StoreChange> {
        match self.store_call(|store, key| store.load(key)).await {
            Ok(record) => {
                let bytes = record.as_ref().map(|r| r.expose().as_bytes());
                match self.session().handle_store_changed(bytes, runtime::now()) {
                    Ok(change) => Some(change),
                    Err(error) => {
                        tracing::warn!(%error, "the stored session could not be read; refreshing anyway");
                        None
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the store could not be read before refreshing; refreshing anyway");
                None
            }
        }
    }

    async fn feed_refresh(&self, response: &HttpResponse) -> Result<(), Error> {
        self.with_keys(response, |session, keys, which| {
            session.handle_refresh_response(response, keys, which, runtime::now())
        })
        .await
        .map_err(Error::from)
    }

    async fn on_timer(&self) {
        if self.revocations.time_until_retry().is_some_and(|wait| wait.is_zero()) {
            self.revocations.retry_pending(self).await;
        }
        let _gate = Gate::held(self.refresh_gate.clone().lock_owned().await, &self.gate_released);
        self.session().handle_timeout(runtime::now());
        if let Err(error) = self.run_refresh().await {
            tracing::debug!(%error, "background refresh did not succeed");
        }
    }

    /// Performs queued actions in order and publishes events. Returns a queued refresh
    /// request for the caller holding the gate (only `request_refresh` and `handle_timeout`
    /// queue one, and both are called with the gate held).
    pub(crate) async fn process(&self) -> Option<HttpRequest> {
        let mut refresh = None;
        // Bounded: each pass drains what the previous one queued; persistence failures queue
        // an event, not more work.
        for _ in 0..4 {
            let actions: Vec<Action> = {
                let mut session = self.session();
                std::iter::from_fn(|| session.poll_action()).collect()
            };
            if actions.is_empty() {
                break;
            }
            // Actions first, events after: when the app hears "refreshed" or "expired", the
            // store already holds the rotated token or no longer holds the session.
            for action in actions {
                match action {
                    Action::Persist(record) => {
                        if let Err(error) = self.store_call(move |store, key| store.save(key, &record)).await {
                            tracing::warn!(%error, "could not write the session to the store; kept in memory");
                            self.session().handle_persist_failed(runtime::now());
                        }
                    }
                    Action::Wipe => {
                        // The session record, and the provider copies kept for offline start-up:
                        // with no session left there is nothing to restore offline.
                        let wiped = self
                            .store_call(|store, key| {
                                store.delete(key)?;
                                store.delete(&format!("{key}|provider"))
                            })
                            .await;
                        if let Err(error) = wiped {
                            tracing::warn!(%error, "could not delete the session from the store");
                        }
                    }
                    Action::Refresh(request) => refresh = Some(request),
                    Action::Revoke(revocation) => self.revoke(revocation).await,
                    _ => {}
                }
            }
        }
        let events: Vec<SessionEvent> = {
            let mut session = self.session();
            std::iter::from_fn(|| session.poll_event()).collect()
        };
        for event in events {
            tracing::info!(event = ?event, "session event");
            let _ = self.events.send(event);
        }
        refresh
    }

    async fn revoke(&self, revocation: Revocation) {
        self.revocations.revoke_now_or_queue(self, revocation).await;
    }
}
