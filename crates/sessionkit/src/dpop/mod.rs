//! DPoP in the driver (RFC 9449): the platform's key store for the session's key, the latest
//! server nonce per origin, and the one place that signs a request and answers a nonce
//! challenge.
//!
//! The core decides which requests carry a proof (a request's `dpop` names the key) and what a
//! token answer's type means; here the proof is signed and sent. [`DpopKeys`] makes, uses and
//! forgets keys whose private half stays in the platform's store: natively [`SoftwareKeys`]
//! (a P-256 key whose private half lives only in the session record, which the keystore holds,
//! never in a file), in the browser a non-extractable WebCrypto key kept in IndexedDB, on
//! mobile an app-supplied store (the Secure Enclave, the Android Keystore) through the FFI.
//!
//! Nonces: every answer's `DPoP-Nonce` is remembered per server and the next proof to that
//! server carries it; a `use_dpop_nonce` challenge is answered by exactly one retry with the
//! nonce it gave. A server is an origin (scheme, host, port) in one role: the authorization
//! server (token requests) or a resource server (API calls, whose proofs carry `ath`), as the
//! two keep separate nonces even on one origin (RFC 9449 sections 8 and 9).

use std::sync::{Arc, Mutex};

use sessionkit_core::http::{HttpRequest, HttpResponse};
pub use sessionkit_core::oidc::dpop::{DpopAlgorithm, DpopError, DpopKey, DpopPublicKey};
use sessionkit_core::oidc::dpop::{ProofFor, UnsignedProof, server_nonce};
use sessionkit_core::url::Url;
use sessionkit_core::{Secret, UnixTime};

use crate::runtime::BoxFuture;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::SoftwareKeys;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::{DPOP_DATABASE, WebCryptoKeys};

/// Makes, uses and forgets DPoP keys whose private half never leaves the platform's store.
pub trait DpopKeys: Send + Sync + 'static {
    /// Makes a new key pair for a new session; the handle in the answer names the private half.
    fn create(&self, algorithm: DpopAlgorithm) -> BoxFuture<'_, Result<DpopKey, DpopError>>;
    /// Signs `input` with the private half of `key`: for ES256 the 64-byte `r || s`.
    fn sign<'a>(&'a self, key: &'a DpopKey, input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, DpopError>>;
    /// Forgets a key whose session ended (best effort: a key left behind signs nothing, as its
    /// tokens are gone).
    fn delete<'a>(&'a self, key: &'a DpopKey) -> BoxFuture<'a, ()>;
}

/// The platform's default key store.
pub fn platform_keys() -> Arc<dyn DpopKeys> {
    #[cfg(not(target_arch = "wasm32"))]
    return Arc::new(SoftwareKeys::default());
    #[cfg(target_arch = "wasm32")]
    return Arc::new(WebCryptoKeys::default());
}

/// The headers for one request to the app's API: `Authorization`, and `DPoP` when the session
/// is DPoP-bound. Both hold secrets; `Debug` shows neither.
#[derive(Clone)]
pub struct AuthHeaders {
    /// `DPoP <token>` or `Bearer <token>`.
    pub authorization: Secret,
    /// The proof for this request (single-use), when the token is DPoP-bound.
    pub dpop: Option<Secret>,
}

impl std::fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeaders").field("dpop", &self.dpop.is_some()).finish_non_exhaustive()
    }
}

/// The session's DPoP state in the driver: the key store and the latest nonces.
/// A sign-in's DPoP key while the sign-in runs. Dropped without [`keep`](Self::keep) (the app
/// dropped the sign-in, or the future that ran it), the key is deleted from its store in the
/// background: a key no session will use must not stay behind in a platform key store.
pub(crate) struct UnusedKey {
    keys: Arc<dyn DpopKeys>,
    key: Option<DpopKey>,
}

impl UnusedKey {
    pub(crate) fn new(keys: &Arc<dyn DpopKeys>, key: Option<&DpopKey>) -> Self {
        Self { keys: keys.clone(), key: key.cloned() }
    }

    /// The sign-in ended and dealt with its key (a session uses it, a stored pending sign-in
    /// holds it, or it was deleted already).
    pub(crate) fn keep(mut self) {
        self.key = None;
    }
}

impl std::fmt::Debug for UnusedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnusedKey").field("armed", &self.key.is_some()).finish_non_exhaustive()
    }
}

impl Drop for UnusedKey {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let keys = self.keys.clone();
        if !crate::runtime::try_spawn(async move { keys.delete(&key).await }) {
            tracing::debug!("a dropped sign-in's DPoP key could not be deleted here (no runtime)");
        }
    }
}

pub(crate) struct Dpop {
    pub(crate) keys: Arc<dyn DpopKeys>,
    /// The latest `DPoP-Nonce` per server, as (server, nonce). An app talks to a handful of
    /// servers: a list (cleared past [`MAX_REMEMBERED_NONCES`]) beats a map on code size.
    nonces: Mutex<Vec<(String, String)>>,
}

/// Origins whose nonce is remembered at once (an app talks to a handful of servers).
const MAX_REMEMBERED_NONCES: usize = 32;

/// Which nonces a request uses: the authorization server's, or a resource server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Server {
    Authorization,
    Resource,
}

fn server_key(url: &Url, role: Server) -> String {
    let role = match role {
        Server::Authorization => "as",
        Server::Resource => "rs",
    };
    let (scheme, host) = (url.scheme(), url.host_str().unwrap_or_default());
    format!("{role} {scheme}://{host}:{}", url.port_or_known_default().unwrap_or(0))
}

impl Dpop {
    pub(crate) fn new(keys: Arc<dyn DpopKeys>) -> Self {
        Self { keys, nonces: Mutex::new(Vec::new()) }
    }

    /// A fresh proof for `method url`, with `ath` when an access token is presented and the
    /// origin's latest nonce. `issued_at` is the provider's time.
    pub(crate) async fn proof(
        &self,
        key: &DpopKey,
        method: &str,
        url: &Url,
        access_token: Option<&Secret>,
        issued_at: UnixTime,
    ) -> Result<Secret, DpopError> {
        let role = if access_token.is_some() { Server::Resource } else { Server::Authorization };
        let nonce = self.nonce_for(url, role);
        let request = ProofFor { method, url, access_token, nonce: nonce.as_deref(), issued_at };
        let unsigned = UnsignedProof::new(key.algorithm, &key.public_key, &request)?;
        let signature = self.keys.sign(key, unsigned.signing_input()).await?;
        unsigned.finish(&signature)
    }

    fn nonce_for(&self, url: &Url, role: Server) -> Option<String> {
        let key = server_key(url, role);
        let nonces = self.nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        nonces.iter().find(|(server, _)| *server == key).map(|(_, nonce)| nonce.clone())
    }

    /// Remembers the nonce an answer from the server at `url` in `role` carried, if any.
    pub(crate) fn remember_nonce(&self, url: &Url, role: Server, response: &HttpResponse) {
        if let Some(nonce) = server_nonce(response) {
            let key = server_key(url, role);
            let mut nonces = self.nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            nonces.retain(|(server, _)| *server != key);
            if nonces.len() >= MAX_REMEMBERED_NONCES {
                nonces.clear();
            }
            nonces.push((key, nonce.to_owned()));
        }
    }

    /// `request` with its proof header, if it names a key.
    pub(crate) async fn signed(&self, request: &HttpRequest, issued_at: UnixTime) -> Result<HttpRequest, DpopError> {
        let mut signed = request.clone();
        if let Some(key) = &request.dpop {
            let method = match request.method {
                sessionkit_core::http::Method::Get => "GET",
                sessionkit_core::http::Method::Post => "POST",
            };
            let proof = self.proof(key, method, &request.url, None, issued_at).await?;
            signed.headers.push(("dpop", proof.expose().to_owned()));
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_kept_per_server_and_only_when_well_formed() {
        use Server::{Authorization as As, Resource as Rs};
        let dpop = Dpop::new(platform_keys());
        let token = Url::parse("https://idp.example/token").unwrap();
        let api = Url::parse("https://api.example:8443/v1/me").unwrap();
        let answer = |nonce: &str| HttpResponse::new(200, Vec::new()).with_header("DPoP-Nonce", nonce);
        dpop.remember_nonce(&token, As, &answer("n-1"));
        dpop.remember_nonce(&api, Rs, &answer("bad\"nonce"));
        assert_eq!(dpop.nonce_for(&Url::parse("https://idp.example/other").unwrap(), As).as_deref(), Some("n-1"));
        assert_eq!(dpop.nonce_for(&api, Rs), None, "a malformed nonce is not kept");
        assert_eq!(dpop.nonce_for(&Url::parse("https://idp.example:444/token").unwrap(), As), None, "another origin");
        assert_eq!(dpop.nonce_for(&token, Rs), None, "a resource server on the same origin has its own");
        dpop.remember_nonce(&token, As, &answer("n-2"));
        assert_eq!(dpop.nonce_for(&token, As).as_deref(), Some("n-2"), "the latest nonce wins");
    }
}
