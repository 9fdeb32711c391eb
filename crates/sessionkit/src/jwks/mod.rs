//! The provider's signing keys (JWKS) and the ID token signature check built on them.
//!
//! [`KeySet`] holds the public keys; keys are chosen by `kid` (or, without one, by the
//! algorithm's key type), and a key that names its own `alg` is used for that algorithm only.
//! Symmetric (`oct`) keys, keys for encryption (`use: "enc"`) and keys for an algorithm outside
//! the allow-list are dropped when the set is parsed, so an HMAC "signature" can never be
//! checked against a public key; RSA keys under 2048 bits are kept but never used (a token
//! naming one is refused as `WeakKey`, after one refetch with the cached keys, as for an
//! unknown key). The crypto is per platform:
//! - natively (`native.rs`), ring, which rustls uses too (desktops, mobile apps with
//!   `mobile-crypto`), and RustCrypto through `jsonwebtoken` otherwise (the mobile cross-check
//!   needs no C toolchain);
//! - in the browser (`web.rs`), WebCrypto, which is asynchronous: the signature is checked
//!   before the core runs, and the core gets a verifier holding that outcome
//!   ([`KeySet::preverify`]). This keeps RSA and elliptic-curve code out of the .wasm.
//!
//! [`Jwks`] caches the set and refetches it when a token names a `kid` the cache does not have,
//! at most once per [`REFETCH_INTERVAL`] (the fetch at start-up does not count: a key rotated
//! right after it is picked up at once), one refetch at a time.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::id_token::{JwsAlgorithm, JwsHeader, SignatureError};
use sessionkit_core::url::Url;

use crate::http::{Transport, TransportError};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{KeySet, verifier_for};
#[cfg(target_arch = "wasm32")]
pub(crate) use web::{KeySet, verifier_for};

/// The shortest time between two JWKS fetches triggered by unknown key ids.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The largest JWKS document accepted.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;

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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Rsa,
    Ec,
    Okp,
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

/// Reads a JWKS document of at most [`MAX_JWKS_BYTES`].
fn parse_document<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, JwksError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::Malformed);
    }
    serde_json::from_slice(body).map_err(|_| JwksError::Malformed)
}

/// The smallest RSA modulus a signing key may have. NIST has disallowed 1024-bit RSA signatures
/// since 2013 and ring refuses them; the browser build refuses them too, so that a provider
/// works (or not) alike everywhere, and the error (`SignatureError::WeakKey`, a configuration
/// error) and the log say why instead of "invalid signature" or "unknown key".
const MIN_RSA_BITS: usize = 2048;

/// The length in bits of an RSA modulus given as base64url (`n` of a JWK), read from its
/// encoding without decoding it: its octets less the leading zero bits (leading zero octets
/// included). 0 for text that is not base64url (such a key is dropped).
fn rsa_modulus_bits(n: &str) -> usize {
    let n = n.trim_end_matches('=');
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    let mut leading_zero_bits = 0;
    let mut counting = true;
    for c in n.bytes() {
        let Some(six) = value(c) else { return 0 };
        if counting {
            // A character carries six bits: the top two of its `u8` are always zero.
            leading_zero_bits += six.leading_zeros() as usize - 2;
            counting = six == 0;
        }
    }
    (n.len() * 6 / 8 * 8).saturating_sub(leading_zero_bits)
}

/// Whether an RSA key of `bits` is too short to be used (logged: a provider's problem). Such a
/// key is kept, marked, so that a token naming it is refused for what it is (after one refetch,
/// in case the provider rotated).
fn rsa_key_too_short(kid: Option<&str>, bits: usize) -> bool {
    if bits < MIN_RSA_BITS {
        tracing::warn!(kid, bits, "the provider's RSA key is shorter than 2048 bits and is not used");
        return true;
    }
    false
}

/// A public key of the set, with what choosing it needs: its `kid`, its key type and, if the
/// JWK names one, the only algorithm it is for. `M` is the platform's key material.
struct Key<M> {
    kid: Option<String>,
    family: Family,
    alg: Option<JwsAlgorithm>,
    /// An RSA key under [`MIN_RSA_BITS`]: never used to verify.
    weak: bool,
    material: M,
}

/// The `alg` of a JWK that may verify ID tokens: `Ok(None)` when it names none, `Err` when it
/// names one outside the allow-list (an encryption or HMAC algorithm): such a key is dropped.
fn signing_alg(named: Option<&str>) -> Result<Option<JwsAlgorithm>, ()> {
    named.map(|name| JwsAlgorithm::from_name(name).ok_or(())).transpose()
}

/// A JWK as published: the members SessionKit reads.
#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(serde::Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// The signing keys of a JWKS document, each with the platform's `material` (a key whose
/// material does not read is dropped). Dropped too: keys for encryption, symmetric keys (an
/// HMAC "signature" must never be checked against a public key), kinds this build does not know
/// and keys for an algorithm outside the allow-list.
fn parse_keys<M>(body: &[u8], material: impl Fn(&Jwk, Family) -> Option<M>) -> Result<Vec<Key<M>>, JwksError> {
    let set: JwkSet = parse_document(body)?;
    Ok(set
        .keys
        .into_iter()
        .filter(|jwk| jwk.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter_map(|jwk| {
            let family = match jwk.kty.as_str() {
                "RSA" => Family::Rsa,
                "EC" => Family::Ec,
                "OKP" => Family::Okp,
                _ => return None,
            };
            let weak = match family {
                // A modulus that is absent or not base64url is no key at all: dropped.
                Family::Rsa => match rsa_modulus_bits(jwk.n.as_deref().unwrap_or_default()) {
                    0 => return None,
                    bits => rsa_key_too_short(jwk.kid.as_deref(), bits),
                },
                Family::Ec | Family::Okp => false,
            };
            let alg = signing_alg(jwk.alg.as_deref()).ok()?;
            let material = material(&jwk, family)?;
            Some(Key { kid: jwk.kid, family, alg, weak, material })
        })
        .collect())
}

/// The keys a signature may be checked against: those with the header's `kid` (or, without
/// one, every key), of the algorithm's key type and, if they name one, its `alg`.
/// `Err(UnknownKey)` if no key has that `kid`, `Err(WeakKey)` if the only ones that fit are too
/// short.
fn candidates<'a, M>(keys: &'a [Key<M>], header: &JwsHeader) -> Result<Vec<&'a Key<M>>, SignatureError> {
    let usable = |k: &&Key<M>| k.family == family_of(header.alg) && k.alg.is_none_or(|alg| alg == header.alg);
    let by_kid: Vec<&Key<M>> = match &header.kid {
        Some(kid) => keys.iter().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect(),
        None => keys.iter().filter(usable).collect(),
    };
    if by_kid.is_empty() {
        return Err(SignatureError::UnknownKey);
    }
    let fitting: Vec<&Key<M>> = by_kid.into_iter().filter(usable).collect();
    if !fitting.is_empty() && fitting.iter().all(|k| k.weak) {
        return Err(SignatureError::WeakKey);
    }
    Ok(fitting.into_iter().filter(|k| !k.weak).collect())
}

/// The cached JWKS of one provider.
pub(crate) struct Jwks {
    uri: Option<Url>,
    current: RwLock<Arc<KeySet>>,
    /// When a refetch for an unknown `kid` last started, on the monotonic clock.
    last_refetch: Mutex<Option<Duration>>,
    /// One refetch at a time: a second caller waits for the first one's keys.
    refetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    pub(crate) fn new(uri: Option<Url>) -> Self {
        Self {
            uri,
            current: RwLock::new(Arc::new(KeySet::default())),
            last_refetch: Mutex::new(None),
            refetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys as cached now.
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Fetches the set; returns the document too, for the start-up cache.
    pub(crate) async fn fetch(&self, transport: &Transport) -> Result<(Arc<KeySet>, Vec<u8>), JwksError> {
        let Some(uri) = &self.uri else { return Ok((self.keys(), b"{\"keys\":[]}".to_vec())) };
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

    /// Refetches after an unknown `kid`, unless the last refetch was under [`REFETCH_INTERVAL`]
    /// ago; one at a time. `None` means the rate limit held and nothing was fetched (the cache
    /// then holds the last refetch's keys).
    pub(crate) async fn refetch_for_unknown_kid(
        &self,
        transport: &Transport,
    ) -> Option<Result<Arc<KeySet>, JwksError>> {
        // Waiting here, a caller that lost the race finds the winner's keys in the cache.
        let _turn = self.refetching.lock().await;
        if !self.may_refetch(crate::runtime::monotonic()) {
            return None;
        }
        Some(self.fetch(transport).await.map(|(set, _)| set))
    }

    /// Checks and claims the refetch slot in one step, so that of two callers at once only one
    /// refetches.
    fn may_refetch(&self, now: Duration) -> bool {
        let mut last = self.last_refetch.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.saturating_sub(at) < REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}
