//! DPoP through the FFI: the policy, the API headers, and the app's own key store for the
//! session's key ([`DpopSigner`]: the Secure Enclave, the Android Keystore). Without one, the
//! key is made and kept like the desktop's: inside the session record, in the platform's store.

use std::sync::Arc;

use sessionkit::dpop::{DpopAlgorithm, DpopError, DpopKey, DpopKeys, DpopPublicKey};
use sessionkit::{BoxFuture, Secret};

use crate::StoreFailure;

/// Whether sessions are bound to a DPoP key (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DpopMode {
    /// Bearer tokens only.
    Off,
    /// DPoP when the provider offers it (the default).
    WhenSupported,
    /// DPoP or nothing: a provider without it is a configuration error, a Bearer answer is refused.
    Required,
}

impl From<DpopMode> for sessionkit::DpopPolicy {
    fn from(mode: DpopMode) -> Self {
        match mode {
            DpopMode::Off => Self::Off,
            DpopMode::WhenSupported => Self::WhenSupported,
            DpopMode::Required => Self::Required,
        }
    }
}

/// The headers for one API request: `authorization` (`DPoP <token>` or `Bearer <token>`) and,
/// when the session is DPoP-bound, `dpop` (a fresh, single-use proof). An object, not a
/// record, so that neither shows in a `toString()` or a log.
#[derive(uniffi::Object)]
pub struct AuthHeaders {
    pub(crate) inner: sessionkit::AuthHeaders,
}

impl std::fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl AuthHeaders {
    /// The `Authorization` header's value.
    pub fn authorization(&self) -> String {
        // Handed to the app, to put in the request's Authorization header.
        self.inner.authorization.expose().to_owned()
    }

    /// The `DPoP` header's value, or null for a Bearer session.
    pub fn dpop(&self) -> Option<String> {
        self.inner.dpop.as_ref().map(|proof| proof.expose().to_owned())
    }
}

/// A new key made by a [`DpopSigner`]: the app's name for it and the public key's
/// coordinates (base64url, 32 bytes each).
#[derive(Debug, Clone, uniffi::Record)]
pub struct DpopPublicKeyInfo {
    /// The app's name for the key (an alias in its key store); the session keeps it.
    pub handle: String,
    /// The P-256 public key's `x`, base64url without padding.
    pub x: String,
    /// The P-256 public key's `y`, base64url without padding.
    pub y: String,
}

/// The app's own store for DPoP keys: ECDSA P-256 keys that never leave it (the Secure
/// Enclave, the Android Keystore). Called on a background thread.
#[uniffi::export(with_foreign)]
pub trait DpopSigner: Send + Sync {
    /// Makes a new P-256 key pair for a new session, under a new handle each time (never a
    /// fixed alias: when a session ends, its key is deleted by its handle).
    fn create_key(&self) -> Result<DpopPublicKeyInfo, StoreFailure>;
    /// Signs `input` with the key `handle` (ECDSA P-256 with SHA-256): the 64-byte `r || s`
    /// (IEEE P1363), not DER. Throw `StoreFailure.KeyMissing` when the key is gone for good
    /// (the session then ends), `StoreFailure.Failed` when it cannot sign right now.
    fn sign(&self, handle: String, input: Vec<u8>) -> Result<Vec<u8>, StoreFailure>;
    /// Deletes the key `handle`: its session is over.
    fn delete_key(&self, handle: String);
}

/// Adapts the app's signer to the driver's key store; each call runs off the async threads
/// (a hardware key store may take milliseconds).
pub(crate) struct ForeignDpopKeys(pub(crate) Arc<dyn DpopSigner>);

fn failed(failure: StoreFailure) -> DpopError {
    match failure {
        StoreFailure::KeyMissing { .. } => DpopError::KeyMissing,
        StoreFailure::Failed { .. } => DpopError::Signing(failure.to_string()),
    }
}

async fn off_thread<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, DpopError> + Send + 'static,
) -> Result<T, DpopError> {
    tokio::task::spawn_blocking(job)
        .await
        .unwrap_or_else(|_| Err(DpopError::Signing("the app's DPoP signer panicked".into())))
}

impl DpopKeys for ForeignDpopKeys {
    fn create(&self, algorithm: DpopAlgorithm) -> BoxFuture<'_, Result<DpopKey, DpopError>> {
        let signer = self.0.clone();
        Box::pin(async move {
            if algorithm != DpopAlgorithm::Es256 {
                return Err(DpopError::Signing(format!("{} keys are not available here", algorithm.name())));
            }
            let made = off_thread(move || signer.create_key().map_err(failed)).await?;
            let public_key = DpopPublicKey::P256 { x: made.x, y: made.y };
            Ok(DpopKey { algorithm, public_key, handle: Secret::new(made.handle) })
        })
    }

    fn sign<'a>(&'a self, key: &'a DpopKey, input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, DpopError>> {
        let (signer, handle, input) = (self.0.clone(), key.handle.expose().to_owned(), input.to_vec());
        Box::pin(off_thread(move || signer.sign(handle, input).map_err(failed)))
    }

    fn delete<'a>(&'a self, key: &'a DpopKey) -> BoxFuture<'a, ()> {
        let (signer, handle) = (self.0.clone(), key.handle.expose().to_owned());
        Box::pin(async move {
            let _ = off_thread(move || {
                signer.delete_key(handle);
                Ok(())
            })
            .await;
        })
    }
}
