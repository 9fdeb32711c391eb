//! The browser's DPoP key store: WebCrypto ECDSA P-256 keys made non-extractable (script can
//! sign with them, never read them), kept as `CryptoKey` objects in IndexedDB so that the
//! origin's tabs share the session's key. The handle is a random name for the key; the key
//! itself never passes through Rust. The IndexedDB helpers are the web store's (`store/web.js`).

use sessionkit_core::Secret;
use sessionkit_core::oidc::dpop::{DpopAlgorithm, DpopError, DpopKey, DpopPublicKey};
use wasm_bindgen::JsCast as _;

use super::DpopKeys;
use crate::runtime::BoxFuture;
use crate::store::web::{create_signing_key, delete_signing_key, describe_js_error, sign_with_key};

/// The IndexedDB database of the keys (apart from the sessions', so that clearing one store of
/// records never strands a key the other still names).
pub const DPOP_DATABASE: &str = "sessionkit-dpop";

/// Non-extractable WebCrypto keys in IndexedDB (see the module guide). ES256 only.
#[derive(Clone, Debug)]
pub struct WebCryptoKeys {
    database: String,
}

impl Default for WebCryptoKeys {
    fn default() -> Self {
        Self { database: DPOP_DATABASE.to_owned() }
    }
}

impl WebCryptoKeys {
    /// Keys in the IndexedDB database `database`.
    pub fn new(database: &str) -> Self {
        Self { database: database.to_owned() }
    }
}

fn failed(what: &str, error: &wasm_bindgen::JsValue) -> DpopError {
    DpopError::Signing(format!("{what}: {}", describe_js_error(error)))
}

impl DpopKeys for WebCryptoKeys {
    fn create(&self, algorithm: DpopAlgorithm) -> BoxFuture<'_, Result<DpopKey, DpopError>> {
        Box::pin(async move {
            if algorithm != DpopAlgorithm::Es256 {
                return Err(DpopError::Signing(format!("{} keys are not available here", algorithm.name())));
            }
            // The name is random: a handle another page could guess would still sign nothing
            // outside this origin, but nothing should be guessable.
            let mut name = [0u8; 16];
            sessionkit_core::random::fill_random(&mut name)?;
            let handle: String = name.iter().map(|b| format!("{b:02x}")).collect();
            let public = create_signing_key(&self.database, &handle)
                .await
                .map_err(|e| failed("the browser could not make a key", &e))?;
            let coordinate = |i: u32| js_sys::Array::from(&public).get(i).as_string().unwrap_or_default();
            let public_key = DpopPublicKey::P256 { x: coordinate(0), y: coordinate(1) };
            Ok(DpopKey { algorithm, public_key, handle: Secret::new(handle) })
        })
    }

    fn sign<'a>(&'a self, key: &'a DpopKey, input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, DpopError>> {
        Box::pin(async move {
            let signature = sign_with_key(&self.database, key.handle.expose(), input)
                .await
                .map_err(|e| failed("the browser refused", &e))?;
            if signature.is_null() {
                return Err(DpopError::KeyMissing);
            }
            let bytes = signature
                .dyn_into::<js_sys::Uint8Array>()
                .map_err(|_| DpopError::Signing("the browser gave no signature".into()))?;
            Ok(bytes.to_vec())
        })
    }

    fn delete<'a>(&'a self, key: &'a DpopKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = delete_signing_key(&self.database, key.handle.expose()).await {
                tracing::info!(error = %describe_js_error(&error), "a DPoP key could not be removed");
            }
        })
    }
}
