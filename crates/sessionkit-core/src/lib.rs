//! SessionKit's sans-IO core: every rule of a secure client-side session, and no I/O.
//!
//! This crate decides; it never acts. It reads no clock (time comes in as [`Now`]), opens no
//! socket (requests go out as [`http::HttpRequest`] values, responses come back as
//! [`http::HttpResponse`]), touches no keystore (it asks for [`Action::Persist`] and
//! [`Action::Wipe`]) and spawns nothing. The `sessionkit` crate drives it natively and in the
//! browser; the bindings wrap that. Every platform therefore behaves the same.
//!
//! Where to start:
//! - [`Session`]: the state machine for one signed-in user (see its module guide for the rules).
//! - [`oidc`]: discovery, the authorization request and callback, token and ID token parsing.
//! - [`SessionPolicy`]: idle and absolute limits, refresh lead, leeway, warning lead.
//! - [`Secret`]: how tokens are held (redacted, zeroized).
//! - [`SessionError`]: the flat error apps see; [`CoreError`] the detailed one inside.
//!
//! A sketch of a driver's loop:
//! ```
//! # use sessionkit_core::{Session, Now, TokenState, Action};
//! # fn send(_: &sessionkit_core::http::HttpRequest) {}
//! fn drive(session: &mut Session, now: Now) {
//!     match session.access_token(now) {
//!         TokenState::Fresh(_token) => { /* use it */ }
//!         TokenState::Renewable => { session.request_refresh(now); }
//!         TokenState::Dead(_reason) => { /* ask the user to sign in */ }
//!     }
//!     while let Some(action) = session.poll_action() {
//!         match action {
//!             Action::Refresh(request) => send(&request),
//!             _ => { /* persist, wipe, revoke */ }
//!         }
//!     }
//! }
//! ```

// The `uniffi` feature's generated scaffolding is the only unsafe code (UniFFI's own).
#![cfg_attr(not(feature = "uniffi"), forbid(unsafe_code))]

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("sessionkit_core");

pub mod error;
pub mod http;
pub mod oidc;
pub mod pkce;
pub mod policy;
pub mod random;
pub mod secret;
pub mod session;
pub mod time;
pub mod url;

pub use error::{CoreError, SessionError};
pub use policy::{DpopPolicy, PolicyError, SessionPolicy, SessionPolicyBuilder};
pub use secret::Secret;
pub use session::{
    Action, Anomaly, EndReason, ExpiryReason, Keys, PendingWrite, RefreshStart, Revocation, RevocationOutcome, Session,
    SessionEvent, SessionRecord, SessionStatus, StorageProblem, StoreChange, TokenKind, TokenState,
};
pub use time::{Now, UnixTime};
