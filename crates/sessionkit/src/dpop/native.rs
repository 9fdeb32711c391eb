//! The native DPoP key store: a P-256 key made from the OS CSPRNG whose private half is the
//! key's handle, so it lives only inside the session record, which the keystore holds
//! (Secret Service, keyutils, Keychain, Credential Manager): never in a file, wiped with
//! the session.
//!
//! The crypto: ring wherever it is bundled as rustls' provider (desktops, and mobile apps built
//! with `mobile-crypto`), several times faster than the pure-Rust `p256`, which only the mobile
//! cross-check (no C toolchain) uses. The parsed key of the current session is
//! kept between proofs: parsing a private key costs a scalar multiplication, as much as the
//! signature itself.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionkit_core::Secret;
use sessionkit_core::oidc::dpop::{DpopAlgorithm, DpopError, DpopKey, DpopPublicKey};
use zeroize::Zeroizing;

use super::DpopKeys;
use crate::runtime::BoxFuture;

/// Keys held in the session record (see the module guide). ES256 only.
#[derive(Default)]
pub struct SoftwareKeys {
    /// The last key used, by its handle: one session per client.
    loaded: std::sync::Mutex<Option<(Secret, crypto::Loaded)>>,
}

impl std::fmt::Debug for SoftwareKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeys").finish_non_exhaustive()
    }
}

/// The public key as the JWK coordinates, from its uncompressed SEC1 point (0x04 || x || y).
fn public_key(point: &[u8]) -> Result<DpopPublicKey, DpopError> {
    match point {
        [4, coordinates @ ..] if coordinates.len() == 64 => Ok(DpopPublicKey::P256 {
            x: URL_SAFE_NO_PAD.encode(&coordinates[..32]),
            y: URL_SAFE_NO_PAD.encode(&coordinates[32..]),
        }),
        _ => Err(DpopError::Signing("the DPoP key is not a P-256 key".into())),
    }
}

/// The private scalar in `key`'s handle. A handle that is not one (a damaged record) will never
/// sign: the key is as good as missing.
fn scalar(key: &DpopKey) -> Result<Zeroizing<Vec<u8>>, DpopError> {
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.decode(key.handle.expose()).map_err(|_| DpopError::KeyMissing)?))
}

#[cfg(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto"))]
mod crypto {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use zeroize::Zeroizing;

    use super::DpopError;

    pub(super) type Loaded = EcdsaKeyPair;

    /// In ring's PKCS#8 document of a P-256 key, what precedes the private scalar: the
    /// ECPrivateKey's version (INTEGER 1) and the OCTET STRING header of its 32 bytes (RFC 5915).
    const SCALAR_PREFIX: [u8; 5] = [0x02, 0x01, 0x01, 0x04, 0x20];

    /// A fresh key: its private scalar and its uncompressed public point. ring hands out a new
    /// key only as a PKCS#8 document; the scalar is read from it, and the pair is loaded again
    /// from the scalar, so a reading that went wrong cannot go unnoticed (ring derives the
    /// public point from the scalar and compares). Our copies are zeroized; ring's own (the
    /// document, a stack array, and the key pairs) are not wiped on drop, unlike aws-lc-rs's.
    pub(super) fn generate() -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), DpopError> {
        let failed = || DpopError::Signing("no DPoP key could be made".into());
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| failed())?;
        let document = Zeroizing::new(document.as_ref().to_vec());
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &document, &rng).map_err(|_| failed())?;
        let point = pair.public_key().as_ref().to_vec();
        let at = document.windows(SCALAR_PREFIX.len()).position(|w| w == SCALAR_PREFIX).ok_or_else(failed)?;
        let scalar = document.get(at + SCALAR_PREFIX.len()..at + SCALAR_PREFIX.len() + 32).ok_or_else(failed)?;
        let scalar = Zeroizing::new(scalar.to_vec());
        load(&scalar, &point).ok_or_else(failed)?;
        Ok((scalar, point))
    }

    /// The key pair, if `scalar` is the private half of `point`.
    pub(super) fn load(scalar: &[u8], point: &[u8]) -> Option<Loaded> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            point,
            &SystemRandom::new(),
        )
        .ok()
    }

    pub(super) fn sign(loaded: &Loaded, input: &[u8]) -> Result<Vec<u8>, DpopError> {
        let signature =
            loaded.sign(&SystemRandom::new(), input).map_err(|_| DpopError::Signing("signing failed".into()))?;
        Ok(signature.as_ref().to_vec())
    }
}

#[cfg(not(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto")))]
mod crypto {
    use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
    use sessionkit_core::random::fill_random;
    use zeroize::Zeroizing;

    use super::DpopError;

    pub(super) type Loaded = SigningKey;

    fn point(key: &SigningKey) -> Vec<u8> {
        key.verifying_key().to_encoded_point(false).as_bytes().to_vec()
    }

    /// A fresh key: its private scalar and its uncompressed public point.
    pub(super) fn generate() -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), DpopError> {
        // A random 32-byte string is a valid scalar except with probability about 2^-32.
        for _ in 0..4 {
            let mut scalar = Zeroizing::new(vec![0u8; 32]);
            fill_random(scalar.as_mut())?;
            if let Ok(key) = SigningKey::from_slice(&scalar) {
                return Ok((scalar, point(&key)));
            }
        }
        Err(DpopError::Signing("no DPoP key could be made".into()))
    }

    /// The key, if `scalar` is the private half of `point`.
    pub(super) fn load(scalar: &[u8], point_bytes: &[u8]) -> Option<Loaded> {
        SigningKey::from_slice(scalar).ok().filter(|key| point(key) == point_bytes)
    }

    pub(super) fn sign(loaded: &Loaded, input: &[u8]) -> Result<Vec<u8>, DpopError> {
        let signature: Signature = loaded.sign(input);
        Ok(signature.to_bytes().to_vec())
    }
}

/// The private key behind `key`, checked against its public half.
fn load(key: &DpopKey) -> Result<crypto::Loaded, DpopError> {
    let DpopPublicKey::P256 { x, y } = &key.public_key else { return Err(DpopError::KeyMissing) };
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(c).ok().filter(|c| c.len() == 32);
    let (Some(x), Some(y)) = (coordinate(x), coordinate(y)) else { return Err(DpopError::KeyMissing) };
    let point = [&[4u8][..], &x, &y].concat();
    crypto::load(&scalar(key)?, &point).ok_or(DpopError::KeyMissing)
}

impl SoftwareKeys {
    fn make(algorithm: DpopAlgorithm) -> Result<DpopKey, DpopError> {
        if algorithm != DpopAlgorithm::Es256 {
            return Err(DpopError::Signing(format!("{} keys are not available here", algorithm.name())));
        }
        let (scalar, point) = crypto::generate()?;
        let handle = Secret::new(URL_SAFE_NO_PAD.encode(&*scalar));
        Ok(DpopKey { algorithm, public_key: public_key(&point)?, handle })
    }
}

impl DpopKeys for SoftwareKeys {
    fn create(&self, algorithm: DpopAlgorithm) -> BoxFuture<'_, Result<DpopKey, DpopError>> {
        Box::pin(async move { Self::make(algorithm) })
    }

    fn sign<'a>(&'a self, key: &'a DpopKey, input: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, DpopError>> {
        Box::pin(async move {
            let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !loaded.as_ref().is_some_and(|(handle, _)| handle.constant_time_eq(key.handle.expose())) {
                *loaded = Some((key.handle.clone(), load(key)?));
            }
            let Some((_, signer)) = loaded.as_ref() else { unreachable!("loaded just above") };
            crypto::sign(signer, input)
        })
    }

    fn delete<'a>(&'a self, key: &'a DpopKey) -> BoxFuture<'a, ()> {
        // The key is in the record: wiping the record forgets it. Its parsed copy goes now.
        Box::pin(async move {
            let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if loaded.as_ref().is_some_and(|(handle, _)| handle.constant_time_eq(key.handle.expose())) {
                *loaded = None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::{Signature, VerifyingKey};

    use super::*;

    #[tokio::test]
    async fn a_made_key_signs_verifiably_and_its_handle_is_not_shown() {
        let keys = SoftwareKeys::default();
        let key = keys.create(DpopAlgorithm::Es256).await.unwrap();
        let other = keys.create(DpopAlgorithm::Es256).await.unwrap();
        assert_ne!(key.public_key, other.public_key, "a fresh key each time");
        let signature = keys.sign(&key, b"input").await.unwrap();
        let DpopPublicKey::P256 { x, y } = &key.public_key else { panic!("P-256") };
        let sec1 = [&[4u8][..], &URL_SAFE_NO_PAD.decode(x).unwrap(), &URL_SAFE_NO_PAD.decode(y).unwrap()].concat();
        let verifying = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        assert!(verifying.verify(b"input", &Signature::from_slice(&signature).unwrap()).is_ok());
        assert!(!format!("{key:?}").contains(key.handle.expose()), "Debug never shows the private key");
        // A handle that does not match the public key signs nothing.
        let swapped = DpopKey { handle: other.handle.clone(), ..key.clone() };
        assert!(matches!(keys.sign(&swapped, b"x").await, Err(DpopError::KeyMissing)));
        assert!(keys.create(DpopAlgorithm::EdDsa).await.is_err());
    }

    /// A key recorded by a build that made keys with `p256` (sessions stored before this one,
    /// or the mobile cross-check's code) still signs, and verifiably.
    #[tokio::test]
    async fn a_key_recorded_by_the_pure_rust_code_still_signs() {
        let signing = p256::ecdsa::SigningKey::from_slice(&[0x5a; 32]).unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        let key = DpopKey {
            algorithm: DpopAlgorithm::Es256,
            public_key: public_key(point.as_bytes()).unwrap(),
            handle: Secret::new(URL_SAFE_NO_PAD.encode(signing.to_bytes())),
        };
        let signature = SoftwareKeys::default().sign(&key, b"input").await.unwrap();
        let verifying = VerifyingKey::from_sec1_bytes(point.as_bytes()).unwrap();
        assert!(verifying.verify(b"input", &Signature::from_slice(&signature).unwrap()).is_ok());
    }
}
