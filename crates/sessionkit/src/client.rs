//! [`SessionClient`]: the async driver of one session.
//!
//! It does what the core decides: sends its requests, keeps its records in the
//! [`SecureStore`](crate::store::SecureStore), runs its timer, and tells the app what happened
//! through [`SessionClient::subscribe`]. It decides nothing about sessions itself.
//!
//! - Sign-in (`login.rs`): [`SessionClient::login_with_browser`] (loopback redirect on
//!   127.0.0.1 with an ephemeral port, RFC 8252), the two steps [`SessionClient::begin_login`] /
//!   [`SessionClient::complete_login`] for apps that receive the redirect themselves, the
//!   redirect sign-in that survives the app going away, and the device flow.
//! - [`SessionClient::access_token`]: a fresh token from memory (no store access), or exactly one
//!   refresh however many callers ask at once (`refresh.rs`), whose outcome they all share.
//! - A background task refreshes ahead of expiry and enforces idle and absolute limits; the idle
//!   limit is decided on the activity of every context sharing the store.
//! - [`SessionClient::logout`]: local wipe, then revocation (retried durably if the endpoint
//!   fails), then the end-session URL for the app to open.
//! - Other processes sharing the store are noticed on the hot path through the lock's
//!   generation counter (a few bytes, read at most every 250 ms): a sign-out or refresh there
//!   is adopted before a token is handed out here.
//!
//! Every store access goes through the ordered writer (`shared.rs`); actions are performed by
//! the executor (`actions.rs`). Create the client inside a tokio runtime: it spawns its timer
//! task there. The task ends when the last clone of the client is dropped.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sessionkit_core::http::{HttpRequest, HttpResponse};
use sessionkit_core::oidc::authorize::PendingAuthorization;
use sessionkit_core::oidc::discovery::ProviderMetadata;
use sessionkit_core::oidc::dpop::{DpopError, asks_for_nonce};
use sessionkit_core::oidc::id_token::{IdTokenError, SignatureError, SignatureVerifier};
use sessionkit_core::oidc::logout::EndSessionRequest;
use sessionkit_core::url::Url;
use sessionkit_core::{CoreError, Keys, Now, Secret, Session, SessionEvent, SessionStatus, StoreChange, TokenState};
use tokio::sync::{Notify, broadcast};

use crate::clock::{Clock, SystemClock};
use crate::config::SessionConfig;
use crate::dpop::{AuthHeaders, Dpop, Server};
use crate::error::{self, Error};
use crate::http::{HttpClient, PlatformHttp, Transport, TransportError};
use crate::jwks::Jwks;
use crate::lock::ContextLock;
use crate::refresh::RefreshGate;
use crate::revocation::RevocationQueue;
use crate::shared::{SharedStore, Slots};

/// Why a token request got no answer: the network, or the DPoP key would not sign (then
/// nothing was sent).
#[derive(Debug)]
pub(crate) enum TokenSendError {
    Transport(TransportError),
    Proof(sessionkit_core::oidc::dpop::DpopError),
}

impl From<TokenSendError> for Error {
    fn from(failure: TokenSendError) -> Self {
        match failure {
            TokenSendError::Transport(e) => error::transport(e),
            TokenSendError::Proof(e) => CoreError::from(e).into(),
        }
    }
}

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 256;
/// Longest sleep of the timer task when nothing is scheduled.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// How long after a start from stored provider documents they are fetched again: the token is
/// out by then, and the first requests of the page or app have gone without competition.
const REVALIDATION_DELAY: Duration = Duration::from_secs(1);

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
    pub(crate) url: Url,
    pub(crate) pending: PendingAuthorization,
    /// Deletes the sign-in's DPoP key if the request is dropped without completing.
    pub(crate) unused_key: crate::dpop::UnusedKey,
}

impl LoginRequest {
    /// The authorization URL to open (it carries only public values: PKCE challenge, state, nonce).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

pub(crate) struct Inner {
    session: Mutex<Session>,
    pub(crate) transport: Transport,
    pub(crate) dpop: Dpop,
    jwks: Jwks,
    pub(crate) shared: SharedStore,
    pub(crate) revocations: RevocationQueue,
    pub(crate) gate: RefreshGate,
    pub(crate) events: broadcast::Sender<SessionEvent>,
    pub(crate) wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    /// Why the last wipe failed, if it did (a logout reports it).
    pub(crate) wipe_failure: Mutex<Option<String>>,
    /// The origin's other tabs sharing this session (browser only).
    #[cfg(target_arch = "wasm32")]
    pub(crate) tabs: Arc<crate::tabs::Tabs>,
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
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient").field("status", &self.status()).finish_non_exhaustive()
    }
}

/// The cross-context lock the configuration asks for: the app's, or the platform's.
pub(crate) fn context_lock(config: &SessionConfig, store_key: &str) -> Result<Arc<dyn ContextLock>, Error> {
    if let Some(lock) = &config.context_lock {
        return Ok(lock.clone());
    }
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(Arc::new(crate::lock::FileLock::new(config.lock_dir.as_deref(), store_key)?));
    #[cfg(target_arch = "wasm32")]
    return Ok(Arc::new(crate::lock::WebLock::new(store_key, config.web_store.clone())));
}

impl SessionClient {
    /// Discovers the provider, fetches its keys (or, offline, uses the copies cached at the last
    /// start), restores a stored session if there is one, and starts the timer. A store that
    /// cannot be read is an error; nothing is wiped.
    // In the browser the held Web Lock is a JS value (not `Send`); wasm32 has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn new(config: SessionConfig) -> Result<Self, Error> {
        let clock: Arc<dyn Clock> = config.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        let http: Arc<dyn HttpClient> = match &config.http_client {
            Some(client) => client.clone(),
            None => Arc::new(PlatformHttp::new(config.http.clone()).map_err(error::transport)?),
        };
        let transport = Transport::new(http, config.http.clone(), clock.clone());
        let store_key = config.store_key();
        let shared = SharedStore::new(config.store.clone(), Slots::new(&store_key), context_lock(&config, &store_key)?);
        let (metadata, jwks, source) =
            crate::discovery::load(&transport, &config.client.issuer, &shared, clock.now().wall).await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let session = Session::new(config.client.clone(), metadata, config.policy);
        // DPoP required and the provider lacks it: said now, not at the first sign-in.
        session.dpop_algorithm()?;
        #[cfg(target_arch = "wasm32")]
        let web_store = config.web_store.clone();
        let inner = Arc::new_cyclic(|_weak| Inner {
            #[cfg(target_arch = "wasm32")]
            tabs: Arc::new(crate::tabs::Tabs::join(&store_key, web_store, _weak.clone())),
            session: Mutex::new(session),
            dpop: Dpop::new(config.dpop_keys.clone().unwrap_or_else(crate::dpop::platform_keys)),
            revocations: RevocationQueue::new(transport.clone(), clock.clone()),
            transport,
            jwks,
            shared,
            gate: RefreshGate::new(),
            events,
            wake: Arc::new(Notify::new()),
            clock,
            wipe_failure: Mutex::new(None),
        });
        let client = Self { inner };
        client.restore().await?;
        // Activity another tab saw while this one started counts from now (at most seconds
        // late), as if heard now.
        #[cfg(target_arch = "wasm32")]
        if client.inner.tabs.take_activity_heard_while_starting() {
            crate::tabs::count_activity(Arc::downgrade(&client.inner));
        }
        client.spawn_timer();
        client.inner.revocations.retry_pending(&client.inner.shared).await;
        client.inner.wake.notify_one();
        if source == crate::discovery::Source::Stored {
            client.revalidate_provider_later(config.client.issuer.clone());
        }
        Ok(client)
    }

    /// Events: logged in, refreshed, expiring soon, expired, logged out, anomalies, storage
    /// problems. Each subscriber gets every event from the moment it subscribes.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// Whether `other` is a clone of this client (the same session in this process).
    pub(crate) fn same_session(&self, other: &SessionClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
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
    pub fn store_description(&self) -> String {
        self.inner.shared.describe()
    }

    /// The provider's metadata, as discovered.
    pub fn metadata(&self) -> ProviderMetadata {
        self.inner.session().metadata().clone()
    }

    /// A fresh access token. From memory when it is fresh (no store access, no I/O); otherwise
    /// one refresh runs for all concurrent callers and they share its outcome. A change made by
    /// another process sharing the store (a sign-out, a refresh) is adopted first.
    pub async fn access_token(&self) -> Result<Secret, Error> {
        // Bounded: a refresh or a sync that succeeds yields an answer on the next pass.
        for _ in 0..3 {
            if self.inner.shared.changed_elsewhere(self.inner.now().monotonic) {
                self.inner.sync_if_stale().await?;
            }
            match self.inner.token_answer() {
                TokenAnswer::Token(token) => return Ok(token),
                TokenAnswer::Ended(reason) => return Err(error::ended(reason)),
                TokenAnswer::Refresh => self.inner.refresh().await?,
                TokenAnswer::AskShared(_) => {
                    // Past a limit on this context's own activity: the shared record decides.
                    self.inner.sync().await?;
                    if let TokenAnswer::AskShared(reason) | TokenAnswer::Ended(reason) = self.inner.token_answer() {
                        return Err(error::ended(reason));
                    }
                }
            }
        }
        Err(Error::RetryLater {
            message: "the token could not be refreshed; try again shortly".into(),
            retry_after: None,
        })
    }

    /// The access token if it is fresh now, without waiting or any I/O beyond a glance at the
    /// lock's generation counter; `None` when a refresh, a sign-in or a look at the store is
    /// needed, in which case call [`access_token`](Self::access_token). For callers that cannot
    /// afford an async call on their hot path (the FFI bindings).
    pub fn fresh_access_token(&self) -> Option<Secret> {
        // One clock reading: this is the hot path (in the browser each reading crosses into JS).
        let now = self.inner.now();
        if self.inner.shared.changed_elsewhere(now.monotonic) {
            return None;
        }
        match self.inner.session().access_token(now) {
            TokenState::Fresh(token) => Some(token.clone()),
            _ => None,
        }
    }

    /// The headers for one request to the app's API: `Authorization: DPoP <token>` with a fresh
    /// `DPoP` proof for this method and URL (its `ath` binds it to the token) when the session
    /// is DPoP-bound, `Authorization: Bearer <token>` otherwise. The token is refreshed first
    /// when needed, as for [`access_token`](Self::access_token). Build headers per request: a
    /// proof is single-use. If the API answers 401 asking for a DPoP nonce, pass its answer to
    /// [`note_api_response`](Self::note_api_response) and send once more with new headers.
    pub async fn authorize(&self, method: &str, url: &str) -> Result<AuthHeaders, Error> {
        let target = Url::parse(url)
            .ok()
            .filter(|u| match (u.scheme(), u.host_str()) {
                ("https", Some(_)) => true,
                // The token never travels unencrypted, except to this machine (an IP literal:
                // a name such as 127.0.0.1.example could resolve anywhere).
                ("http", Some(host)) => u.is_loopback_ip() || host == "localhost",
                _ => false,
            })
            .ok_or_else(|| Error::InvalidInput {
                message: "the API URL must be an absolute https URL (http only to a loopback address); check the URL"
                    .into(),
            })?;
        let token_char = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        if method.is_empty() || method.len() > 32 || !method.bytes().all(token_char) {
            return Err(Error::InvalidInput {
                message: "the HTTP method is not a valid method name (for example GET or POST)".into(),
            });
        }
        let method = method.to_ascii_uppercase();
        // The token, its type and its key from one look at the session, so that a refresh or a
        // sign-in in between cannot pair one session's token with another's key. Bounded: a
        // change between the refresh and the look is rare, and the next pass sees it settled.
        let mut snapshot = None;
        for _ in 0..3 {
            self.access_token().await?;
            let session = self.inner.session();
            let now = self.inner.now();
            if let TokenState::Fresh(token) = session.access_token(now) {
                let bound = session.token_type() == Some("DPoP");
                snapshot =
                    Some((token.clone(), session.dpop_key().filter(|_| bound).cloned(), session.server_time(now)));
                break;
            }
        }
        let Some((token, bound_to, issued_at)) = snapshot else {
            return Err(Error::RetryLater {
                message: "the session changed while the request was being prepared; try again".into(),
                retry_after: None,
            });
        };
        let Some(key) = bound_to else {
            return Ok(AuthHeaders { authorization: Secret::new(format!("Bearer {}", token.expose())), dpop: None });
        };
        let proof = match self.inner.dpop.proof(&key, &method, &target, Some(&token), issued_at).await {
            Ok(proof) => proof,
            Err(DpopError::KeyMissing) => {
                // Another tab or process may have ended or replaced the session (deleting its
                // key) without this one knowing yet: the store says first.
                self.inner.sync().await?;
                let current = {
                    let session = self.inner.session();
                    (session.end_reason(), session.dpop_key() == Some(&key))
                };
                match current {
                    (Some(reason), _) => return Err(error::ended(reason)),
                    (None, false) => {
                        return Err(Error::RetryLater {
                            message: "the session changed (in another tab or process) while the request was being \
                                      prepared; try again"
                                .into(),
                            retry_after: None,
                        });
                    }
                    (None, true) => {}
                }
                // The tokens are bound to a key that is gone: the session cannot go on.
                self.inner.session().handle_dpop_key_lost(&key, self.inner.now());
                self.inner.process_now().await;
                self.inner.wake.notify_one();
                return Err(CoreError::Dpop(DpopError::KeyMissing).into());
            }
            Err(error) => return Err(CoreError::Dpop(error).into()),
        };
        Ok(AuthHeaders { authorization: Secret::new(format!("DPoP {}", token.expose())), dpop: Some(proof) })
    }

    /// Reads an API answer for DPoP: its `DPoP-Nonce` (if any) is kept for the next proof to
    /// that server, and the result says whether to send the request once more with fresh
    /// [`authorize`](Self::authorize) headers (a 401 whose `WWW-Authenticate` asks for the
    /// nonce, RFC 9449 section 9). Retry once only.
    pub fn note_api_response(
        &self,
        url: &str,
        status: u16,
        www_authenticate: Option<&str>,
        dpop_nonce: Option<&str>,
    ) -> bool {
        let Ok(url) = Url::parse(url) else { return false };
        let mut response = HttpResponse::new(status, Vec::new());
        for (name, value) in [("www-authenticate", www_authenticate), ("dpop-nonce", dpop_nonce)] {
            if let Some(value) = value {
                response = response.with_header(name, value);
            }
        }
        self.inner.dpop.remember_nonce(&url, Server::Resource, &response);
        asks_for_nonce(&response)
    }

    /// The token type for the `Authorization` header (`Bearer` or `DPoP`).
    pub fn token_type(&self) -> Option<String> {
        self.inner.session().token_type().map(str::to_owned)
    }

    /// Counts user activity for the idle timeout.
    pub async fn record_activity(&self) {
        #[cfg(target_arch = "wasm32")]
        self.inner.tabs.tell_activity();
        self.inner.note_activity().await;
    }

    /// Re-reads the store and adopts what another context sharing it (a browser tab, another
    /// process) wrote there: a refreshed token, a new sign-in, or a sign-out.
    pub async fn sync_from_store(&self) -> Result<(), Error> {
        self.inner.sync_shared().await
    }

    /// Signs out: wipes the session from memory and the store first, then revokes the refresh
    /// token (retried later if the provider cannot be reached), and returns the provider's
    /// end-session URL (with `id_token_hint` and `state`) for the app to open, if it has one.
    /// When it returns `Ok`, the store holds no session and no context of this process writes
    /// one again until a new sign-in; other processes stop handing out the token within a
    /// quarter of a second of their next call. If the store could not be wiped, the error says
    /// so: the session is over here, and calling `logout` again retries the wipe.
    pub async fn logout(&self) -> Result<Option<EndSessionRequest>, Error> {
        if self.inner.session().end_reason().is_some() {
            // Signed out here, but another context may have signed in since: adopt its session
            // so that it is signed out (wiped and revoked) like one of ours. If the store cannot
            // be read, what it holds cannot be signed out: the caller hears so and retries.
            self.inner.sync().await?;
        }
        let result = self.inner.session().logout(self.inner.now());
        // The wipe and the revocation run in their own task: a caller that stops waiting must
        // not leave a logout half done.
        let inner = self.inner.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        crate::runtime::spawn(async move {
            inner.process_now().await;
            let failure = inner.wipe_failure.lock().unwrap_or_else(PoisonError::into_inner).take();
            let _ = done.send(failure);
        });
        let failure = finished.await.unwrap_or(None);
        // In the browser the page may navigate to the end-session page next.
        self.inner.store_flushed().await;
        self.inner.wake.notify_one();
        if let Some(failure) = failure {
            return Err(Error::StorageUnavailable {
                message: format!(
                    "signed out here, but the session could not be removed from the store ({failure}); it is retried in the background, and signing out again retries at once"
                ),
            });
        }
        result.map_err(Error::from)
    }

    /// Started from stored provider documents: fetches them again in a task of its own, after
    /// [`REVALIDATION_DELAY`], so that the first token needs no request and the page's or app's
    /// first requests do not share the network with it (see `discovery.rs`).
    fn revalidate_provider_later(&self, issuer: sessionkit_core::oidc::client::Issuer) {
        let weak = Arc::downgrade(&self.inner);
        crate::runtime::spawn(async move {
            crate::runtime::sleep(REVALIDATION_DELAY).await;
            let Some(inner) = weak.upgrade() else { return };
            let keep_copies = || inner.session().end_reason().is_none();
            if !keep_copies() {
                return; // signed out meanwhile: the copies went with the session
            }
            let now = inner.now().wall;
            let in_use = inner.session().metadata().clone();
            crate::discovery::revalidate(
                &inner.transport,
                &issuer,
                &inner.shared,
                &in_use,
                &inner.jwks,
                now,
                keep_copies,
            )
            .await;
        });
    }

    fn spawn_timer(&self) {
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        crate::runtime::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let now = inner.now();
                let session_sleep = inner.session().time_until_timeout(now).unwrap_or(IDLE_TIMER);
                let sleep =
                    inner.revocations.time_until_retry(now.monotonic).map_or(session_sleep, |r| r.min(session_sleep));
                drop(inner);
                tokio::select! {
                    // Biased: the same order every time, so runs in virtual time repeat exactly.
                    biased;
                    () = wake.notified() => continue,
                    () = crate::runtime::sleep(sleep) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.on_timer().await;
            }
        });
    }

    /// Whether the store's view is as new as its backing storage for this session, reloading
    /// it if need be (the browser's mirror; elsewhere there is nothing to reload).
    async fn mirror_is_current_or_reloaded(&self) -> bool {
        #[cfg(target_arch = "wasm32")]
        if self.inner.tabs.heard_since_read() {
            return true;
        }
        self.inner.shared.reload_unlocked().await.is_ok()
    }

    async fn restore(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut turn = inner.shared.turn().await;
        // An empty store, or a record that restores live, is taken as read, without the
        // cross-context lock: nothing will be written or wiped from it, and a start does not
        // wait for another context's refresh (a refresh takes the lock and reads the store again
        // before sending, so a refresh token another context is rotating is never sent from
        // here). The browser's mirror is reloaded first, unless this tab heard every change
        // of the session since the mirror was read (`Tabs::heard_since_read`): it may be older
        // than a sign-out in another tab, and this tab hears of later ones (it joined the
        // tabs' channel before this point).
        if self.mirror_is_current_or_reloaded().await
            && let Ok(stored) = turn.load(&inner.shared.slots.session).await
        {
            let now = inner.now();
            let live = match &stored {
                None => true,
                Some(record) => inner.session().restores_live(record.expose().as_bytes(), now),
            };
            if live {
                if let Some(record) = stored {
                    let restored = inner.session().restore(record.expose().as_bytes(), now);
                    debug_assert!(restored.is_ok(), "a record that restores live restores");
                }
                inner.process(&mut turn).await;
                return Ok(());
            }
        }
        // Under the lock: a limit found reached on this record ends the session, and the wipe
        // that follows must find the same record (not one another process wrote since).
        if let Err(error) = turn.locked().await {
            tracing::warn!(%error, "starting without the session lock; an end found now is wiped only under it, later");
        }
        let record = turn.load(&inner.shared.slots.session).await.map_err(|e| error::store(&e))?;
        if let Some(record) = record {
            // An unreadable record is reported and left in place; the app starts signed out.
            let outcome = inner.session().restore(record.expose().as_bytes(), inner.now());
            if let Err(error) = outcome {
                tracing::warn!(%error, "the stored session could not be restored");
            }
        }
        inner.process(&mut turn).await;
        Ok(())
    }
}

/// What [`SessionClient::access_token`] does next.
enum TokenAnswer {
    Token(Secret),
    Refresh,
    /// The session is over, for this reason.
    Ended(sessionkit_core::EndReason),
    /// Unusable here for this reason, but still active: another context may keep it alive.
    AskShared(sessionkit_core::EndReason),
}

impl Inner {
    /// Counts activity in this context (the app's, or another tab's it heard of).
    pub(crate) async fn note_activity(&self) {
        self.session().record_activity(self.now());
        self.process_now().await;
        self.wake.notify_one();
    }

    /// Adopts what another context wrote to the store (see `sync_from_store`).
    pub(crate) async fn sync_shared(&self) -> Result<(), Error> {
        let _gate = self.gate.enter().await;
        let change = self.sync().await?;
        tracing::debug!(?change, "synchronised with the store");
        Ok(())
    }

    /// Waits until this context's store writes are durable: in the browser, in IndexedDB
    /// (before the page navigates away); elsewhere they are when `save` returns.
    pub(crate) async fn store_flushed(&self) {
        #[cfg(target_arch = "wasm32")]
        self.tabs.flushed().await;
    }

    fn token_answer(&self) -> TokenAnswer {
        let session = self.session();
        match session.access_token(self.now()) {
            TokenState::Fresh(token) => TokenAnswer::Token(token.clone()),
            TokenState::Renewable => TokenAnswer::Refresh,
            TokenState::Dead(reason) if session.end_reason().is_some() => TokenAnswer::Ended(reason),
            TokenState::Dead(reason) => TokenAnswer::AskShared(reason),
        }
    }

    pub(crate) fn session(&self) -> MutexGuard<'_, Session> {
        // The core never panics while the lock is held; a poisoned lock still holds a valid state.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a request to the token endpoint once (a code, a refresh token or a device code is
    /// never sent twice), with its DPoP proof if it names a key. A `use_dpop_nonce` challenge
    /// was refused before anything was used, so that one is answered with one retry.
    pub(crate) async fn send_token_request(&self, request: &HttpRequest) -> Result<HttpResponse, TokenSendError> {
        let mut response = None;
        for _ in 0..2 {
            let issued_at = self.session().server_time(self.now());
            let signed = self.dpop.signed(request, issued_at).await.map_err(TokenSendError::Proof)?;
            let answer = self.transport.send(&signed).await.map_err(TokenSendError::Transport)?;
            self.dpop.remember_nonce(&request.url, Server::Authorization, &answer);
            let retry = request.dpop.is_some() && asks_for_nonce(&answer);
            response = Some(answer);
            if !retry {
                break;
            }
            tracing::debug!("the token endpoint asked for a DPoP nonce; sending again with it");
        }
        // The loop ran at least once.
        response.ok_or(TokenSendError::Transport(TransportError::Other { host: String::new(), kind: "no attempt" }))
    }

    /// The time, from the configured clock.
    pub(crate) fn now(&self) -> Now {
        self.clock.now()
    }

    /// Reads the shared record under the lock and lets the core adopt what another context
    /// wrote (or decide a pending idle end on the shared activity); performs what follows.
    pub(crate) async fn sync(&self) -> Result<StoreChange, Error> {
        self.sync_with(false).await
    }

    /// As [`sync`](Self::sync), for a caller that saw a change elsewhere: skipped if, once this
    /// task has the turn, another read has caught up (after one change, a burst of calls makes
    /// one read under the lock, not one each).
    async fn sync_if_stale(&self) -> Result<(), Error> {
        self.sync_with(true).await.map(|_| ())
    }

    async fn sync_with(&self, only_if_stale: bool) -> Result<StoreChange, Error> {
        let mut turn = self.shared.turn().await;
        if only_if_stale && !self.shared.is_stale() {
            return Ok(StoreChange::Unchanged);
        }
        turn.locked().await?;
        let stored = turn.load(&self.shared.slots.session).await.map_err(|e| error::store(&e))?;
        let bytes = stored.as_ref().map(|record| record.expose().as_bytes());
        let change = self.session().handle_store_changed(bytes, self.now());
        self.process(&mut turn).await;
        drop(turn);
        self.wake.notify_one();
        change.map_err(Error::from)
    }

    /// Calls into the session with the cached keys; if the ID token names an unknown `kid`,
    /// refetches the JWKS once (rate-limited) and calls again. `response` is the token response
    /// whose ID token is checked (in the browser its signature is checked ahead, asynchronously,
    /// with WebCrypto).
    pub(crate) async fn with_keys(
        &self,
        response: &HttpResponse,
        call: impl Fn(&mut Session, &dyn SignatureVerifier, Keys, Now) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let keys = self.jwks.keys();
        let verifier = crate::jwks::verifier_for(&keys, response.body()).await;
        let first = call(&mut self.session(), &verifier, Keys::Cached, self.now());
        let stale_keys = matches!(
            first,
            Err(CoreError::IdToken(IdTokenError::Signature(SignatureError::UnknownKey | SignatureError::WeakKey)))
        );
        if !stale_keys {
            return first;
        }
        let keys = match self.jwks.refetch_for_unknown_kid(&self.transport).await {
            Some(Ok(keys)) => keys,
            Some(Err(error)) => {
                // The keys could not be fetched: that says nothing about the token. A refresh
                // waiting for this answer backs off and is retried; nothing is refused for good.
                tracing::warn!(%error, "refetching the provider's keys failed");
                let mut session = self.session();
                if session.refresh_in_flight() {
                    let _ = session.handle_refresh_failure(self.now());
                }
                return Err(CoreError::Transient { status: None, retry_after: None });
            }
            // Refetched moments ago (by this call's twin, whose fetch it waited for): the cache
            // is as fresh as it may be.
            None => self.jwks.keys(),
        };
        let verifier = crate::jwks::verifier_for(&keys, response.body()).await;
        call(&mut self.session(), &verifier, Keys::JustFetched, self.now())
    }
}
