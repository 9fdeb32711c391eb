//! SessionKit for Kotlin and Swift, generated with UniFFI from these thin wrappers over the
//! `sessionkit` crate. Nothing here decides anything about sessions: each item translates
//! (records, a flat error, callback interfaces) and forwards.
//!
//! - [`SessionClient`]: async methods (Kotlin `suspend`, Swift `async`) run on tokio.
//! - [`AccountList`]: several users on one device, one [`SessionClient`] each.
//! - [`SessionKitError`]: one variant per action the app can take.
//! - [`EventListener`]: receives every [`SessionEvent`]; [`EventStream`] lets the app pull them
//!   instead (Kotlin: `client.events()`, a `Flow`).
//! - [`DpopSigner`]: an app's own key store for the session's DPoP key (Secure Enclave, Android
//!   Keystore); without one the key is kept with the session in the store.
//! - [`ForeignStore`]: an app's own Keychain/Keystore store; any failure it reports reaches the
//!   core as "unavailable", never as "empty", so a failing store never signs the user out.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sessionkit::store::{SecureStore, StoreError};
// Defined once, in the core, with their UniFFI derives (Kotlin package `uniffi.sessionkit_core`).
pub use sessionkit_core::{Anomaly, EndReason, ExpiryReason, SessionEvent, SessionStatus, StorageProblem};

uniffi::setup_scaffolding!();

mod accounts;
mod dpop;
#[cfg(not(target_os = "ios"))]
mod jvm_read;
mod signin;
pub use accounts::AccountList;
use dpop::ForeignDpopKeys;
pub use dpop::{AuthHeaders, DpopMode, DpopPublicKeyInfo, DpopSigner};
pub use signin::{DeviceCode, DeviceCodeDisplay, LoginOptions};

/// What went wrong, as the action the app should take. Messages carry no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SessionKitError {
    /// Sign the user in again.
    #[error("sign-in required: {detail}")]
    ReauthenticationRequired {
        /// What happened.
        detail: String,
    },
    /// Try again later (after `retry_after_ms` when given); the session is kept.
    #[error("temporarily unavailable: {detail}")]
    RetryLater {
        /// What happened.
        detail: String,
        /// The wait the provider or the backoff asks for, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// The secure store is unavailable; nothing was lost.
    #[error("secure storage unavailable: {detail}")]
    StorageUnavailable {
        /// What happened.
        detail: String,
    },
    /// The configuration or the provider's setup is wrong.
    #[error("misconfigured: {detail}")]
    Misconfigured {
        /// What happened.
        detail: String,
    },
    /// Input (a callback URL, a provider answer) was invalid or possibly forged.
    #[error("invalid input: {detail}")]
    InvalidInput {
        /// What happened.
        detail: String,
    },
}

impl From<sessionkit::Error> for SessionKitError {
    fn from(error: sessionkit::Error) -> Self {
        use sessionkit::Error as E;
        let detail = error.to_string();
        match error {
            E::ReauthenticationRequired { .. } => Self::ReauthenticationRequired { detail },
            E::RetryLater { retry_after, .. } => Self::RetryLater {
                detail,
                retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
            E::StorageUnavailable { .. } => Self::StorageUnavailable { detail },
            E::Misconfigured { .. } => Self::Misconfigured { detail },
            _ => Self::InvalidInput { detail },
        }
    }
}

/// The client's configuration.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientSettings {
    /// The provider's issuer URL (https).
    pub issuer: String,
    /// The public client's id.
    pub client_id: String,
    /// The redirect URI registered for the app (a private-use scheme or a claimed https link).
    pub redirect_uri: String,
    /// Scopes beyond `openid`.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser after sign-out, if registered.
    pub post_logout_redirect_uri: Option<String>,
    /// Idle timeout in seconds.
    pub idle_timeout_seconds: u64,
    /// Absolute lifetime in seconds.
    pub absolute_lifetime_seconds: u64,
    /// How long before either limit the "expiring soon" event comes, in seconds.
    pub warning_lead_seconds: u64,
    /// Refresh ahead of expiry in the background (true), or only when a token is asked for.
    pub background_refresh: bool,
    /// Trust only this PEM root (tests, private PKI) instead of the platform's.
    pub trust_only_root_pem: Option<String>,
    /// The directory of the cross-process lock, shared by every process that shares the
    /// session: on iOS the app group container (so an app and its extension exclude each
    /// other), on Android `context.filesDir` (Android has no per-user runtime directory).
    /// Null: `$XDG_RUNTIME_DIR/sessionkit`, else the user's cache directory.
    #[uniffi(default)]
    pub lock_dir: Option<String>,
    /// Public-key pins (SPKI SHA-256, base64) for the provider's or the API's hosts: each host
    /// needs two pins at least (the current key and a backup). Empty: no pinning.
    #[uniffi(default)]
    pub pins: Vec<PinnedHost>,
    /// Whether sessions are bound to a DPoP key (RFC 9449). Null: when the provider offers it.
    #[uniffi(default)]
    pub dpop: Option<DpopMode>,
    /// iOS: the keychain access group of the default store, shared by the app and its
    /// extensions (with `lock_dir` in the app group container). Null: the app's own group.
    /// Ignored with an app-supplied `store` and on other platforms.
    #[uniffi(default)]
    pub keychain_access_group: Option<String>,
}

/// A subscription to the session's events (see [`SessionClient::subscribe`]): pull them with
/// [`next`](Self::next). In Kotlin, `client.events()` wraps it in a `Flow`; in Swift, in an
/// `AsyncStream`.
#[derive(uniffi::Object)]
pub struct EventStream {
    events: tokio::sync::Mutex<tokio::sync::broadcast::Receiver<sessionkit::SessionEvent>>,
    /// Set by [`cancel`](Self::cancel): a waiting `next` returns null at once.
    cancelled: tokio::sync::watch::Sender<bool>,
}

#[uniffi::export(async_runtime = "tokio")]
impl EventStream {
    /// The next event, waiting for it; null once the client is gone or the stream is cancelled.
    /// A reader too slow to keep up misses the oldest events (more than 256 behind) and goes on.
    pub async fn next(&self) -> Option<SessionEvent> {
        let mut cancelled = self.cancelled.subscribe();
        let mut events = self.events.lock().await;
        loop {
            tokio::select! {
                biased;
                _ = cancelled.wait_for(|cancelled| *cancelled) => return None,
                received = events.recv() => match received {
                    Ok(event) => return Some(event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Ends the subscription: a waiting or later `next` returns null. For languages whose task
    /// cancellation does not reach Rust (Swift's `AsyncStream` calls it when iteration ends).
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }
}

/// The provider's end-session page, from `logout`. An object, not a record, so that its URL
/// (it carries the ID token as `id_token_hint`) never shows in a `toString()` or a log.
#[derive(uniffi::Object)]
pub struct EndSession {
    url: sessionkit::Secret,
    state: String,
}

impl std::fmt::Debug for EndSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndSession").finish_non_exhaustive()
    }
}

impl EndSession {
    fn from_request(end: sessionkit::EndSessionRequest) -> Arc<Self> {
        // The state is compared with the redirect's by the app; it guards nothing else.
        Arc::new(Self { url: end.url, state: end.state.expose().to_owned() })
    }
}

#[uniffi::export]
impl EndSession {
    /// The URL to open in the browser (it carries `id_token_hint`).
    pub fn url(&self) -> String {
        // Handed to the app to open in the browser, which is what it is for.
        self.url.expose().to_owned()
    }

    /// The `state` sent with it: the post-logout redirect must carry it back; compare before
    /// trusting that redirect.
    pub fn state(&self) -> String {
        self.state.clone()
    }
}

/// The pins of one host (see `ClientSettings.pins`).
#[derive(Debug, Clone, uniffi::Record)]
pub struct PinnedHost {
    /// The host name or IP literal, as in the URL.
    pub host: String,
    /// Base64 SHA-256 hashes of SubjectPublicKeyInfo (`sha256/` prefix optional), two or more:
    /// a key of the server's certificate chain (its own, an intermediate it sends, or a root
    /// given in `trust_only_root_pem`) and a backup key.
    pub pins: Vec<String>,
}

/// Receives session events; implemented in Kotlin or Swift.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// Called for every event, in order, on a background thread.
    fn on_event(&self, event: SessionEvent);
}

/// The app's own store failed (locked Keychain, Keystore error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StoreFailure {
    /// The store cannot be used right now.
    #[error("the app's store failed: {detail}")]
    Failed {
        /// What happened (no stored value in it).
        detail: String,
    },
    /// A `DpopSigner` no longer has the key it was asked to sign with (invalidated by the
    /// Keystore, lost with a device restore): its session ends; the user signs in again.
    #[error("the app's key store no longer has the key: {detail}")]
    KeyMissing {
        /// What happened.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StoreFailure {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { detail: error.reason }
    }
}

/// A store implemented by the app (Keychain, EncryptedSharedPreferences...). Values are the
/// session's encoded records: secret, keep them only in a hardware-backed store.
#[uniffi::export(with_foreign)]
pub trait ForeignStore: Send + Sync {
    /// The value under `key`, or null when there is none.
    fn load(&self, key: String) -> Result<Option<String>, StoreFailure>;
    /// Replaces the value under `key`.
    fn save(&self, key: String, value: String) -> Result<(), StoreFailure>;
    /// Removes the value under `key` (absent is fine).
    fn delete(&self, key: String) -> Result<(), StoreFailure>;
}

/// Adapts a foreign store: every failure is "unavailable", never "empty".
struct ForeignStoreAdapter(Arc<dyn ForeignStore>);

fn unavailable(failure: StoreFailure) -> StoreError {
    StoreError::Unavailable(failure.to_string())
}

impl SecureStore for ForeignStoreAdapter {
    fn load(&self, key: &str) -> Result<Option<sessionkit::Secret>, StoreError> {
        self.0.load(key.to_owned()).map(|value| value.map(sessionkit::Secret::new)).map_err(unavailable)
    }

    fn save(&self, key: &str, value: &sessionkit::Secret) -> Result<(), StoreError> {
        // Handed to the app's secure store, which is where it belongs.
        self.0.save(key.to_owned(), value.expose().to_owned()).map_err(unavailable)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key.to_owned()).map_err(unavailable)
    }

    fn describe(&self) -> String {
        "the app's own store".into()
    }
}

/// A sign-in in progress: open [`LoginRequest::url`] (Custom Tabs, ASWebAuthenticationSession),
/// then pass the redirect to [`SessionClient::complete_login`]. Single use.
#[derive(uniffi::Object)]
pub struct LoginRequest {
    url: String,
    request: Mutex<Option<sessionkit::LoginRequest>>,
    runtime: tokio::runtime::Handle,
}

impl Drop for LoginRequest {
    fn drop(&mut self) {
        // A sign-in the app dropped deletes its DPoP key in the background: that needs the
        // runtime, and Kotlin's cleaner or Swift's deinit may run on any thread.
        let _entered = self.runtime.enter();
        drop(self.request.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

#[uniffi::export]
impl LoginRequest {
    /// The authorization URL to open.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

/// The `sessionkit` configuration for `settings`, with the app's store and key store if given.
fn session_config(
    settings: ClientSettings,
    store: Option<Arc<dyn ForeignStore>>,
    dpop_signer: Option<Arc<dyn DpopSigner>>,
) -> Result<sessionkit::SessionConfig, SessionKitError> {
    let policy = sessionkit::SessionPolicy::builder()
        .dpop(settings.dpop.unwrap_or(DpopMode::WhenSupported).into())
        .idle_timeout(Duration::from_secs(settings.idle_timeout_seconds))
        .absolute_lifetime(Duration::from_secs(settings.absolute_lifetime_seconds))
        .warning_lead(Duration::from_secs(settings.warning_lead_seconds))
        .background_refresh(settings.background_refresh)
        .build()
        .map_err(|e| SessionKitError::Misconfigured { detail: e.to_string() })?;
    let store: Arc<dyn SecureStore> = match store {
        Some(foreign) => Arc::new(ForeignStoreAdapter(foreign)),
        None => sessionkit::store::platform_default("sessionkit", settings.keychain_access_group.as_deref())
            .map_err(|e| SessionKitError::StorageUnavailable { detail: e.to_string() })?,
    };
    let mut http = sessionkit::http::HttpOptions::default();
    if let Some(pem) = settings.trust_only_root_pem {
        http.trust_only_roots_pem = vec![pem.into_bytes()];
    }
    http.spki_pins = settings
        .pins
        .into_iter()
        .map(|pinned| sessionkit::pinning::HostPins { host: pinned.host, pins: pinned.pins })
        .collect();
    let scopes: Vec<&str> = settings.scopes.iter().map(String::as_str).collect();
    let mut config = sessionkit::SessionConfig::builder(&settings.issuer, &settings.client_id)
        .redirect_uri(&settings.redirect_uri)
        .scopes(&scopes)
        .policy(policy)
        .store(store)
        .http(http);
    if let Some(uri) = &settings.post_logout_redirect_uri {
        config = config.post_logout_redirect_uri(uri);
    }
    if let Some(dir) = settings.lock_dir {
        config = config.lock_dir(dir.into());
    }
    if let Some(signer) = dpop_signer {
        config = config.dpop_keys(Arc::new(ForeignDpopKeys(signer)));
    }
    Ok(config.build()?)
}

/// One user's session with one provider.
#[derive(uniffi::Object)]
pub struct SessionClient {
    inner: sessionkit::SessionClient,
    runtime: tokio::runtime::Handle,
    /// Its number for the JNI token read (`jvm_read.rs`); 0 where there is no JVM.
    reader: u64,
}

impl Drop for SessionClient {
    fn drop(&mut self) {
        #[cfg(not(target_os = "ios"))]
        jvm_read::unregister(self.reader);
    }
}

impl SessionClient {
    fn wrap(inner: sessionkit::SessionClient) -> Arc<Self> {
        #[cfg(not(target_os = "ios"))]
        let reader = jvm_read::register(&inner);
        #[cfg(target_os = "ios")]
        let reader = 0;
        Arc::new(Self { inner, runtime: tokio::runtime::Handle::current(), reader })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl SessionClient {
    /// Discovers the provider, restores a stored session, starts the timer. `store`: the app's
    /// own store, or null for the platform's (iOS Keychain, Android Keystore).
    /// `dpop_signer`: the app's own store for the session's DPoP key (the Secure Enclave, the
    /// Android Keystore), or null to keep it with the session in `store`.
    #[uniffi::constructor(default(dpop_signer = None))]
    pub async fn create(
        settings: ClientSettings,
        store: Option<Arc<dyn ForeignStore>>,
        dpop_signer: Option<Arc<dyn DpopSigner>>,
    ) -> Result<Arc<Self>, SessionKitError> {
        let inner = sessionkit::boxed::new_client(session_config(settings, store, dpop_signer)?).await?;
        Ok(Self::wrap(inner))
    }

    /// Starts a sign-in (with step-up or account-choice `options`, if given).
    #[uniffi::method(default(options = None))]
    pub async fn begin_login(&self, options: Option<LoginOptions>) -> Result<Arc<LoginRequest>, SessionKitError> {
        let request = sessionkit::boxed::begin_login(&self.inner, &signin::authorize_options(options)).await?;
        Ok(Arc::new(LoginRequest {
            url: request.url().to_owned(),
            request: Mutex::new(Some(request)),
            runtime: self.runtime.clone(),
        }))
    }

    /// Completes a sign-in with the redirect URL the browser came back with.
    pub async fn complete_login(
        &self,
        request: Arc<LoginRequest>,
        callback_url: String,
    ) -> Result<(), SessionKitError> {
        let taken = request.request.lock().unwrap_or_else(PoisonError::into_inner).take();
        let request =
            taken.ok_or(SessionKitError::InvalidInput { detail: "this sign-in was already completed".into() })?;
        Ok(sessionkit::boxed::complete_login(&self.inner, request, &callback_url).await?)
    }

    /// Starts a sign-in that survives the app being killed while the user is at the provider:
    /// the pending sign-in (PKCE verifier, state, nonce) is sealed in the store. Returns the URL
    /// to open; pass the redirect to [`complete_redirect_login`](Self::complete_redirect_login),
    /// from this or a later run of the app.
    #[uniffi::method(default(options = None))]
    pub async fn begin_redirect_login(&self, options: Option<LoginOptions>) -> Result<String, SessionKitError> {
        Ok(sessionkit::boxed::begin_redirect_login(&self.inner, &signin::authorize_options(options)).await?)
    }

    /// Completes a sign-in started by [`begin_redirect_login`](Self::begin_redirect_login), in
    /// any run of the app; the redirect is used once.
    pub async fn complete_redirect_login(&self, callback_url: String) -> Result<(), SessionKitError> {
        Ok(sessionkit::boxed::complete_redirect_login(&self.inner, &callback_url).await?)
    }

    /// Signs in with the device flow (RFC 8628): `display` shows the code, then this waits
    /// (polling the provider) until the user approves on another device, refuses, or the code
    /// expires.
    pub async fn login_with_device(&self, display: Arc<dyn DeviceCodeDisplay>) -> Result<(), SessionKitError> {
        Ok(self.inner.login_with_device(signin::show_with(display)).await?)
    }

    /// A fresh access token (refreshed once for all concurrent callers when needed).
    pub async fn access_token(&self) -> Result<String, SessionKitError> {
        // Handed to the app, whose job is to put it in an Authorization header.
        Ok(sessionkit::boxed::access_token(&self.inner).await?.expose().to_owned())
    }

    /// The access token if it is fresh now, without suspending (no I/O); null when
    /// [`access_token`](Self::access_token) must be awaited (a refresh is due, or another
    /// process changed the session and this one has not read it yet). The cheap call for hot
    /// paths.
    pub fn fresh_access_token(&self) -> Option<String> {
        // Handed to the app, whose job is to put it in an Authorization header.
        self.inner.fresh_access_token().map(|token| token.expose().to_owned())
    }

    /// The headers for one request to the app's API (refreshing the token first when needed):
    /// `Authorization`, and a fresh `DPoP` proof for this method and URL when the session is
    /// DPoP-bound. One per request. If the API answers 401 asking for a DPoP nonce, pass the
    /// answer to [`note_api_response`](Self::note_api_response) and send once more.
    pub async fn authorize(&self, method: String, url: String) -> Result<Arc<AuthHeaders>, SessionKitError> {
        Ok(Arc::new(AuthHeaders { inner: sessionkit::boxed::authorize(&self.inner, &method, &url).await? }))
    }

    /// Reads an API answer for DPoP (its `DPoP-Nonce`); true when the request should be sent
    /// once more with fresh [`authorize`](Self::authorize) headers.
    pub fn note_api_response(
        &self,
        url: String,
        status: u16,
        www_authenticate: Option<String>,
        dpop_nonce: Option<String>,
    ) -> bool {
        self.inner.note_api_response(&url, status, www_authenticate.as_deref(), dpop_nonce.as_deref())
    }

    /// The number of this client for the JNI token read (Kotlin: `client.tokenReader()`, which
    /// calls this once); 0 where there is no JVM.
    pub fn token_reader_id(&self) -> u64 {
        self.reader
    }

    /// How the token is presented: `DPoP` (bound to the session's key), `Bearer`, or null.
    pub fn token_type(&self) -> Option<String> {
        self.inner.token_type()
    }

    /// Counts user activity for the idle timeout.
    pub async fn record_activity(&self) {
        sessionkit::boxed::record_activity(&self.inner).await;
    }

    /// Re-reads the store and adopts what another process sharing it (the app's extension)
    /// wrote there: a refreshed token, a new sign-in, or a sign-out.
    pub async fn sync_from_store(&self) -> Result<(), SessionKitError> {
        Ok(sessionkit::boxed::sync_from_store(&self.inner).await?)
    }

    /// Signs out (wipe, revoke, end-session); returns the provider's end-session page to open,
    /// if it has one, with the `state` its post-logout redirect must carry back.
    pub async fn logout(&self) -> Result<Option<Arc<EndSession>>, SessionKitError> {
        Ok(sessionkit::boxed::logout(&self.inner).await?.map(EndSession::from_request))
    }

    /// The session's identity and times, or null when signed out.
    pub fn status(&self) -> Option<SessionStatus> {
        self.inner.status()
    }

    /// Every event from now on, pulled one at a time (Kotlin: `client.events()`, a `Flow`);
    /// closing the stream ends the subscription.
    pub fn subscribe(&self) -> Arc<EventStream> {
        Arc::new(EventStream {
            events: tokio::sync::Mutex::new(self.inner.subscribe()),
            cancelled: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Delivers every event from now on to `listener`, until the client is dropped.
    pub fn set_listener(&self, listener: Arc<dyn EventListener>) {
        let mut events = self.inner.subscribe();
        self.runtime.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => listener.on_event(event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
