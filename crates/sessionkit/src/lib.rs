//! SessionKit for Rust apps: sign a user in against any OpenID Connect provider, keep the
//! tokens in the OS keystore, refresh them, enforce idle and absolute timeouts, and sign out
//! completely.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sessionkit::Error> {
//! use sessionkit::{SessionClient, SessionConfig, store};
//!
//! // The platform's keystore (on Linux the Secret Service): Keychain, Keystore, Credential Manager.
//! let store = store::platform_default("my-app", None).map_err(|e| sessionkit::Error::StorageUnavailable { message: e.to_string() })?;
//! let config = SessionConfig::builder("https://login.example.com", "my-app").store(store).build()?;
//! let client = SessionClient::new(config).await?;
//! client.login_with_browser(Default::default(), |url| { println!("open {url}"); Ok(()) },
//!     std::time::Duration::from_secs(300)).await?;
//! let token = client.access_token().await?; // refreshed when needed, once for all callers
//! let mut events = client.subscribe();       // logged in, refreshed, expiring soon, ...
//! client.logout().await?;                   // wipe, revoke, end-session URL
//! # let _ = (token, events.try_recv()); Ok(()) }
//! ```
//!
//! Every session rule lives in `sessionkit-core`; this crate does the I/O it asks for. See
//! [`SessionClient`] for the guarantees (single-flight refresh, durable revocation, no secret in
//! logs) and [`store`] for where tokens are kept.
#![forbid(unsafe_code)]

mod accounts;
mod actions;
#[doc(hidden)]
pub mod boxed;
mod client;
pub mod clock;
mod config;
mod discovery;
pub mod dpop;
mod error;
pub mod http;
mod jwks;
pub mod lock;
mod login;
#[cfg(not(target_arch = "wasm32"))]
mod loopback;
mod refresh;
mod revocation;
mod runtime;
mod shared;
pub mod store;
#[cfg(target_arch = "wasm32")]
mod tabs;

#[cfg(not(target_arch = "wasm32"))]
pub use http::pinning;

/// Entry points for the fuzz targets (`fuzz/`) into parsers that are not public API. Not for
/// apps; nothing here is stable.
#[doc(hidden)]
pub mod __fuzz {
    /// Parses a JWKS document as the client does; the number of usable keys.
    pub fn parse_jwks(document: &[u8]) -> Option<usize> {
        crate::jwks::KeySet::parse(document).ok().map(|keys| keys.len())
    }
}
pub use runtime::{BoxFuture, MaybeSend};

pub use accounts::{Accounts, MAX_ACCOUNTS};
pub use client::{DeviceCode, LoginRequest, SessionClient};
pub use config::{SessionConfig, SessionConfigBuilder};
pub use dpop::AuthHeaders;
pub use error::Error;
pub use sessionkit_core::oidc::authorize::AuthorizeOptions;
pub use sessionkit_core::oidc::logout::EndSessionRequest;
pub use sessionkit_core::{
    Anomaly, DpopPolicy, EndReason, ExpiryReason, Secret, SessionEvent, SessionPolicy, SessionStatus, StorageProblem,
    UnixTime,
};
