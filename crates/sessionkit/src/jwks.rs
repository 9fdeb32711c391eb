//! The provider's signing keys (JWKS) and the ID token signature check built on them.
//!
//! [`KeySet`] implements the core's `SignatureVerifier` with `jsonwebtoken` (pure-Rust
//! crypto, so it builds for every target without a C toolchain). Keys are chosen by `kid`;
//! symmetric (`oct`) keys are dropped when the set is parsed, so an HMAC "signature" can never
//! be checked against a public key. [`Jwks`] caches the set and refetches it at most once per
//! [`REFETCH_INTERVAL`], when a token names a `kid` the cache does not have.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::id_token::{JwsAlgorithm, JwsHeader, SignatureError, SignatureVerifier};
use sessionkit_core::url::Url;

use crate::http::{Transport, TransportError};

/// The shortest time between two JWKS fetches triggered by unknown key ids.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The largest JWKS document accepted.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Okp,
}

struct Key {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

/// A parsed set of public signing keys.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

/// Why a JWKS could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("the JWKS request failed: {0}")]
    Transport(#[from] TransportError),
    #[error("the JWKS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the JWKS document is malformed or too large")]
    Malformed,
}

fn family_of(alg: JwsAlgorithm) -> Family {
    match alg {
        JwsAlgorithm::Rs256
        | JwsAlgorithm::Rs384
        | JwsAlgorithm::Rs512
        | JwsAlgorithm::Ps256
        | JwsAlgorithm::Ps384
        | JwsAlgorithm::Ps512 => Family::Rsa,
        JwsAlgorithm::Es256 | JwsAlgorithm::Es384 => Family::Ec,
        JwsAlgorithm::EdDsa => Family::Okp,
    }
}

fn jsonwebtoken_alg(alg: JwsAlgorithm) -> Algorithm {
    match alg {
        JwsAlgorithm::Rs256 => Algorithm::RS256,
        JwsAlgorithm::Rs384 => Algorithm::RS384,
        JwsAlgorithm::Rs512 => Algorithm::RS512,
        JwsAlgorithm::Ps256 => Algorithm::PS256,
        JwsAlgorithm::Ps384 => Algorithm::PS384,
        JwsAlgorithm::Ps512 => Algorithm::PS512,
        JwsAlgorithm::Es256 => Algorithm::ES256,
        JwsAlgorithm::Es384 => Algorithm::ES384,
        JwsAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

impl KeySet {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, JwksError> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(JwksError::Malformed);
        }
        let set: JwkSet = serde_json::from_slice(body).map_err(|_| JwksError::Malformed)?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let family = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Family::Rsa,
                    AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                    AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
                    // Never a symmetric key (it would let an HMAC "signature" pass), nor a kind
                    // this build does not know.
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key { kid: jwk.common.key_id.clone(), family, key })
            })
            .collect();
        Ok(Self { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

impl SignatureVerifier for KeySet {
    fn verify(&self, header: &JwsHeader, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let family = family_of(header.alg);
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect(),
            None => self.keys.iter().filter(|k| k.family == family).collect(),
        };
        if candidates.is_empty() {
            return Err(SignatureError::UnknownKey);
        }
        let encoded = URL_SAFE_NO_PAD.encode(signature);
        let mut result = Err(SignatureError::KeyMismatch);
        for key in candidates.into_iter().filter(|k| k.family == family) {
            match jsonwebtoken::crypto::verify(&encoded, signing_input, &key.key, jsonwebtoken_alg(header.alg)) {
                Ok(true) => return Ok(()),
                _ => result = Err(SignatureError::Invalid),
            }
        }
        result
    }
}

/// The cached JWKS of one provider.
pub(crate) struct Jwks {
    uri: Option<Url>,
    current: RwLock<Arc<KeySet>>,
    /// When the set was last fetched, on the monotonic clock.
    last_fetch: Mutex<Option<Duration>>,
}

impl Jwks {
    pub(crate) fn new(uri: Option<Url>) -> Self {
        Self { uri, current: RwLock::new(Arc::new(KeySet::default())), last_fetch: Mutex::new(None) }
    }

    /// The keys as cached now.
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Fetches the set; returns the document too, for the start-up cache.
    pub(crate) async fn fetch(&self, transport: &Transport) -> Result<(Arc<KeySet>, Vec<u8>), JwksError> {
        let Some(uri) = &self.uri else { return Ok((self.keys(), b"{\"keys\":[]}".to_vec())) };
        *self.last_fetch.lock().unwrap_or_else(PoisonError::into_inner) = Some(crate::runtime::monotonic());
        let response = transport.send_idempotent(&HttpRequest::get_json(uri.clone())).await?;
        if response.status() != 200 {
            return Err(JwksError::Status(response.status()));
        }
        let set = self.install(response.body())?;
        tracing::debug!(keys = set.len(), "fetched the provider's signing keys");
        Ok((set, response.body().to_vec()))
    }

    /// Uses a JWKS document obtained earlier (the start-up cache).
    pub(crate) fn install(&self, document: &[u8]) -> Result<Arc<KeySet>, JwksError> {
        let set = Arc::new(KeySet::parse(document)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = set.clone();
        Ok(set)
    }

    /// Refetches after an unknown `kid`, unless the last fetch was under [`REFETCH_INTERVAL`]
    /// ago. `None` means the rate limit held and nothing was fetched.
    pub(crate) async fn refetch_for_unknown_kid(
        &self,
        transport: &Transport,
    ) -> Option<Result<Arc<KeySet>, JwksError>> {
        let recent = self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| crate::runtime::monotonic().saturating_sub(at) < REFETCH_INTERVAL);
        if recent {
            return None;
        }
        Some(self.fetch(transport).await.map(|(set, _)| set))
    }
}
