//! [`SessionConfig`]: everything a [`SessionClient`](crate::SessionClient) needs, checked once.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use sessionkit::{SessionConfig, store::MemoryStore};
//! let config = SessionConfig::builder("https://login.example.com", "my-app")
//!     .redirect_uri("http://127.0.0.1/callback")
//!     .scopes(&["offline_access", "profile"])
//!     .store(Arc::new(MemoryStore::new()))
//!     .build()?;
//! # Ok::<(), sessionkit::Error>(())
//! ```
//! Issuer, redirect URI and scopes are validated by the core's rules (https issuer; loopback-only
//! `http` redirects; `openid` always requested).

#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
use std::sync::Arc;

use sessionkit_core::oidc::client::{ClientConfig, Issuer, RedirectUri};
use sessionkit_core::{CoreError, SessionError, SessionPolicy};

use crate::clock::Clock;
use crate::dpop::DpopKeys;
use crate::http::{HttpClient, HttpOptions};
use crate::lock::ContextLock;
use crate::store::{MemoryStore, SecureStore};

/// A validated client configuration.
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) client: ClientConfig,
    pub(crate) policy: SessionPolicy,
    pub(crate) store: Arc<dyn SecureStore>,
    pub(crate) http: HttpOptions,
    pub(crate) http_client: Option<Arc<dyn HttpClient>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) context_lock: Option<Arc<dyn ContextLock>>,
    pub(crate) dpop_keys: Option<Arc<dyn DpopKeys>>,
    /// Which of the device's accounts this session is (see [`crate::Accounts`]).
    pub(crate) account: Option<String>,
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) lock_dir: Option<PathBuf>,
    /// The browser store, when it is the store: the cross-tab lock keeps it in step.
    #[cfg(target_arch = "wasm32")]
    pub(crate) web_store: Option<Arc<crate::store::WebStore>>,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// Starts a configuration for `issuer` and `client_id`.
    pub fn builder(issuer: &str, client_id: &str) -> SessionConfigBuilder {
        SessionConfigBuilder {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: "http://127.0.0.1/callback".to_owned(),
            post_logout_redirect_uri: None,
            scopes: vec!["offline_access".to_owned()],
            policy: SessionPolicy::default(),
            store: None,
            http: HttpOptions::default(),
            http_client: None,
            clock: None,
            context_lock: None,
            dpop_keys: None,
            account: None,
            #[cfg(not(target_arch = "wasm32"))]
            lock_dir: None,
            #[cfg(target_arch = "wasm32")]
            web_store: None,
        }
    }

    /// The key under which this session is stored: one per issuer and client, and per account
    /// when there are several.
    pub(crate) fn store_key(&self) -> String {
        let base = format!("{}|{}", self.client.issuer.as_str(), self.client.client_id);
        match &self.account {
            Some(account) => format!("{base}|account|{account}"),
            None => base,
        }
    }

    /// This configuration for account `name` (see [`crate::Accounts`]).
    pub fn for_account(&self, name: &str) -> Result<SessionConfig, SessionError> {
        let mut config = self.clone();
        config.account = Some(checked_account(name)?);
        Ok(config)
    }

    /// The account this session is, if the app keeps several.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Where this session is kept, for status displays.
    pub fn store_description(&self) -> String {
        self.store.describe()
    }
}

/// Builds a [`SessionConfig`].
#[must_use]
pub struct SessionConfigBuilder {
    issuer: String,
    client_id: String,
    redirect_uri: String,
    post_logout_redirect_uri: Option<String>,
    scopes: Vec<String>,
    policy: SessionPolicy,
    store: Option<Arc<dyn SecureStore>>,
    http: HttpOptions,
    http_client: Option<Arc<dyn HttpClient>>,
    clock: Option<Arc<dyn Clock>>,
    context_lock: Option<Arc<dyn ContextLock>>,
    dpop_keys: Option<Arc<dyn DpopKeys>>,
    account: Option<String>,
    #[cfg(not(target_arch = "wasm32"))]
    lock_dir: Option<PathBuf>,
    #[cfg(target_arch = "wasm32")]
    web_store: Option<Arc<crate::store::WebStore>>,
}

impl SessionConfigBuilder {
    /// The redirect URI registered for this client (default `http://127.0.0.1/callback`; the
    /// loopback sign-in replaces the port with its listener's).
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        uri.clone_into(&mut self.redirect_uri);
        self
    }

    /// Where the provider sends the browser after sign-out.
    pub fn post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.post_logout_redirect_uri = Some(uri.to_owned());
        self
    }

    /// Scopes beyond `openid` (default: `offline_access`, for a refresh token).
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Idle and absolute limits and the rest (default: [`SessionPolicy::default`]).
    pub fn policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Where tokens are kept (default: an in-memory store; pass a
    /// [`KeyringStore`](crate::store::KeyringStore) to persist them in the OS keystore).
    pub fn store(mut self, store: Arc<dyn SecureStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps the session in the browser's encrypted IndexedDB store, shared by the origin's tabs
    /// under a Web Lock (one refresh between them).
    #[cfg(target_arch = "wasm32")]
    pub fn web_store(mut self, store: Arc<crate::store::WebStore>) -> Self {
        self.store = Some(store.clone());
        self.web_store = Some(store);
        self
    }

    /// HTTP settings (timeouts, trust roots, size limits).
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// The directory for the cross-process lock: a private directory of this user, created
    /// 0700 if missing (default: `$XDG_RUNTIME_DIR/sessionkit`, else the user's cache
    /// directory). Processes sharing a session must name the same one: on iOS the app group
    /// container shared by an app and its extension, on Android the app's files directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn lock_dir(mut self, dir: PathBuf) -> Self {
        self.lock_dir = Some(dir);
        self
    }

    /// The network under the driver (default: [`PlatformHttp`](crate::http::PlatformHttp) built
    /// from [`http`](Self::http)'s options). For an app's own HTTP stack, and for tests that
    /// script a provider.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Where the driver reads the time (default: [`SystemClock`](crate::clock::SystemClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The lock shared by every context using this store (default: a
    /// [`FileLock`](crate::lock::FileLock) in [`lock_dir`](Self::lock_dir) natively, a Web Lock
    /// in the browser).
    pub fn context_lock(mut self, lock: Arc<dyn ContextLock>) -> Self {
        self.context_lock = Some(lock);
        self
    }

    /// Where DPoP keys are made and used (default: the platform's, see
    /// [`platform_keys`](crate::dpop::platform_keys)): for a key in the Secure Enclave or the
    /// Android Keystore, or a hardware token. Whether sessions use DPoP is the policy's
    /// [`dpop`](sessionkit_core::SessionPolicyBuilder::dpop) setting.
    pub fn dpop_keys(mut self, keys: Arc<dyn DpopKeys>) -> Self {
        self.dpop_keys = Some(keys);
        self
    }

    /// Makes this session one of several accounts on the device ("work", "personal"): its
    /// store slots and lock are keyed by `name`, beside the other accounts'. This alone does not
    /// list the account: apps that list and switch accounts use [`crate::Accounts`], which sets
    /// this. A lock given with [`context_lock`](Self::context_lock) is shared by every account
    /// (they then wait on each other's store writes).
    pub fn account(mut self, name: &str) -> Self {
        self.account = Some(name.to_owned());
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<SessionConfig, SessionError> {
        let wrap = |e: sessionkit_core::oidc::client::ConfigError| SessionError::from(CoreError::Config(e));
        let issuer = Issuer::parse(&self.issuer).map_err(wrap)?;
        let redirect = RedirectUri::parse(&self.redirect_uri).map_err(wrap)?;
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let mut client = ClientConfig::new(issuer, &self.client_id, redirect, &scopes).map_err(wrap)?;
        client.post_logout_redirect_uri =
            self.post_logout_redirect_uri.as_deref().map(RedirectUri::parse).transpose().map_err(wrap)?;
        Ok(SessionConfig {
            client,
            policy: self.policy,
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            http: self.http,
            http_client: self.http_client,
            clock: self.clock,
            context_lock: self.context_lock,
            dpop_keys: self.dpop_keys,
            account: self.account.as_deref().map(checked_account).transpose()?,
            #[cfg(not(target_arch = "wasm32"))]
            lock_dir: self.lock_dir,
            #[cfg(target_arch = "wasm32")]
            web_store: self.web_store,
        })
    }
}

/// Whether `name` can name an account: 1 to 64 lowercase letters, digits, `.`, `_` or `-`. It
/// goes into store keys, lock file names and channel names: one spelling per account (some
/// keystores compare names without case), and no email address in plain store keys.
pub(crate) fn valid_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn checked_account(name: &str) -> Result<String, SessionError> {
    if valid_account_name(name) {
        Ok(name.to_owned())
    } else {
        Err(CoreError::Config(sessionkit_core::oidc::client::ConfigError::Invalid(
            "an account name is 1 to 64 lowercase letters, digits, '.', '_' or '-' (a stable id such as \"work\", not an email address)",
        ))
        .into())
    }
}
