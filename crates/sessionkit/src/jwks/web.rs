//! The signature check in the browser: WebCrypto (`crypto.subtle.verify`), which is
//! asynchronous while the core's `SignatureVerifier` is not. So the driver checks the ID
//! token's signature first ([`KeySet::preverify`]) and gives the core a [`Preverified`] that
//! answers with that outcome for exactly those bytes (anything else is refused). The core
//! still does every other check (algorithm allow-list, `crit`, claims) itself.

use serde::Deserialize;
use sessionkit_core::Secret;
use sessionkit_core::oidc::id_token::{JwsHeader, SignatureError, SignatureVerifier, split_jws};
use wasm_bindgen::prelude::*;

use super::{JwksError, Key, candidates, parse_keys};

#[wasm_bindgen(module = "/src/jwks/web.js")]
extern "C" {
    #[wasm_bindgen(js_name = verifyJws)]
    async fn verify_jws(jwk_json: &str, alg: &str, signing_input: &[u8], signature: &[u8]) -> JsValue;
}

/// What WebCrypto's `importKey('jwk', ...)` gets: the key material only.
#[derive(serde::Serialize)]
struct PublicJwk<'a> {
    kty: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: &'a Option<String>,
}

/// A parsed set of public signing keys.
#[derive(Default)]
pub(crate) struct KeySet {
    /// Each key's material: the public JWK as a JSON document for `importKey`.
    keys: Vec<Key<String>>,
}

impl KeySet {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, JwksError> {
        // Each key's material is its public members only, as JSON for WebCrypto (`alg` is checked
        // here instead: WebCrypto would refuse a key whose `alg` names another hash).
        let keys = parse_keys(body, |jwk, _| {
            let public = PublicJwk { kty: &jwk.kty, n: &jwk.n, e: &jwk.e, crv: &jwk.crv, x: &jwk.x, y: &jwk.y };
            serde_json::to_string(&public).ok()
        })?;
        Ok(Self { keys })
    }

    /// The number of keys that may verify (a key too short does not count).
    pub(crate) fn len(&self) -> usize {
        self.keys.iter().filter(|key| !key.weak).count()
    }

    /// Checks the signature of the ID token in a token response body (if there is one) with
    /// WebCrypto, and returns the verifier to hand to the core.
    pub(crate) async fn preverify(&self, id_token: Option<&str>) -> Preverified {
        let Some(parts) = id_token.and_then(|token| split_jws(token).ok()) else {
            // No token, or one the core will refuse on its own before asking for a signature.
            return Preverified {
                signing_input: Vec::new(),
                signature: Vec::new(),
                outcome: Err(SignatureError::Invalid),
            };
        };
        let outcome = self.verify_async(&parts.header, parts.signing_input, &parts.signature).await;
        Preverified { signing_input: parts.signing_input.to_vec(), signature: parts.signature, outcome }
    }

    async fn verify_async(&self, header: &JwsHeader, input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let keys = candidates(&self.keys, header)?;
        let mut result = Err(SignatureError::KeyMismatch);
        for key in keys {
            if verify_jws(&key.material, header.alg.name(), input, signature).await.as_bool() == Some(true) {
                return Ok(());
            }
            result = Err(SignatureError::Invalid);
        }
        result
    }
}

/// Checks the signature of the ID token in `token_response` (if any) ahead of the core.
pub(crate) async fn verifier_for(keys: &KeySet, token_response: &[u8]) -> Preverified {
    #[derive(Deserialize)]
    struct IdTokenOnly {
        id_token: Option<String>,
    }
    // A secret (zeroized on drop): only split and checked here, never logged.
    let id_token =
        serde_json::from_slice::<IdTokenOnly>(token_response).ok().and_then(|body| body.id_token).map(Secret::new);
    keys.preverify(id_token.as_ref().map(Secret::expose)).await
}

/// The outcome of a signature check made ahead of the core, for exactly one signature.
pub(crate) struct Preverified {
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    outcome: Result<(), SignatureError>,
}

impl SignatureVerifier for Preverified {
    fn verify(&self, _header: &JwsHeader, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        if signing_input == self.signing_input && signature == self.signature {
            self.outcome.clone()
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

#[cfg(test)]
#[path = "web_tests.rs"]
mod tests;
