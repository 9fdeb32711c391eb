//! OAuth 2.0 and OpenID Connect messages, built and checked without I/O.
//!
//! - [`client`]: the configuration (issuer, client id, redirect URI, scopes) and its rules.
//! - [`discovery`]: provider metadata, validated against the configured issuer.
//! - [`authorize`]: the authorization URL (PKCE, `state`, `nonce`) and the callback.
//! - [`token`]: token endpoint requests and strict, size-bounded response parsing.
//! - [`id_token`]: ID token signature (through [`id_token::SignatureVerifier`]) and claims.
//! - [`device`]: the device authorization grant (RFC 8628).
//! - [`dpop`]: DPoP proofs (RFC 9449) signed through a platform key store (not wired yet).
//! - [`logout`]: the RP-initiated logout URL.
//!
//! The session state machine ([`crate::Session`]) uses all of these; apps and drivers use
//! them directly only for flows the session does not own (discovery, the callback).

pub mod authorize;
pub mod client;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod id_token;
pub mod logout;
pub mod token;
