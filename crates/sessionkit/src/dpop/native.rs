//! The native DPoP key store: a P-256 key made from the OS CSPRNG whose private half is the
//! key's handle, so it lives only inside the session record, which the keystore holds
//! (Secret Service, keyutils, Keychain, Credential Manager): never in a file, wiped with
//! the session.
//!
//! Signing: on desktops with aws-lc-rs (already linked as rustls' crypto provider), about ten
//! times faster than the pure-Rust `p256`, which mobile builds use (they bundle no C crypto).
//! The parsed key of the current session is kept between proofs: parsing a private key costs a
//! scalar multiplication, as much as the signature itself.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey;
#[cfg(any(target_os = "android", target_os = "ios"))]
use p256::ecdsa::{Signature, signature::Signer as _};
use sessionkit_core::Secret;
use sessionkit_core::oidc::dpop::{DpopAlgorithm, DpopError, DpopKey, DpopPublicKey};
use sessionkit_core::random::fill_random;
use zeroize::Zeroizing;

use super::DpopKeys;
use crate::runtime::BoxFuture;

/// Keys held in the session record (see the module guide). ES256 only.
#[derive(Default)]
pub struct SoftwareKeys {
    /// The last key used, by its handle: one session per client.
    loaded: std::sync::Mutex<Option<(Secret, Loaded)>>,
}

impl std::fmt::Debug for SoftwareKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeys").finish_non_exhaustive()
    }
}

#[cfg(not(any(target_os = "android", target_os = "ios")))]
type Loaded = aws_lc_rs::signature::EcdsaKeyPair;
#[cfg(any(target_os = "android", target_os = "ios"))]
type Loaded = SigningKey;

/// The private key behind `key`, checked against its public half.
fn load(key: &DpopKey) -> Result<Loaded, DpopError> {
    let signing = signing_key(key)?;
    if public_key(&signing) != key.public_key {
        return Err(DpopError::KeyMissing);
    }
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    {
        let point = signing.verifying_key().to_encoded_point(false);
        let scalar = Zeroizing::new(signing.to_bytes());
        aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar.as_slice(),
            point.as_bytes(),
        )
        .map_err(|_| DpopError::Signing("the stored DPoP key is damaged".into()))
    }
    #[cfg(any(target_os = "android", target_os = "ios"))]
    Ok(signing)
}

fn sign_with(loaded: &Loaded, input: &[u8]) -> Result<Vec<u8>, DpopError> {
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    {
        let random = aws_lc_rs::rand::SystemRandom::new();
        let signature = loaded.sign(&random, input).map_err(|_| DpopError::Signing("signing failed".into()))?;
        Ok(signature.as_ref().to_vec())
    }
    #[cfg(any(target_os = "android", target_os = "ios"))]
    {
        let signature: Signature = loaded.sign(input);
        Ok(signature.to_bytes().to_vec())
    }
}

/// The private key in `key`'s handle. A handle that is not one (a damaged record) will never
/// sign: the key is as good as missing.
fn signing_key(key: &DpopKey) -> Result<SigningKey, DpopError> {
    let scalar = Zeroizing::new(URL_SAFE_NO_PAD.decode(key.handle.expose()).map_err(|_| DpopError::KeyMissing)?);
    SigningKey::from_slice(&scalar).map_err(|_| DpopError::KeyMissing)
}

fn public_key(key: &SigningKey) -> DpopPublicKey {
    let point = key.verifying_key().to_encoded_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default();
    DpopPublicKey::P256 { x: coordinate(point.x()), y: coordinate(point.y()) }
}

impl SoftwareKeys {
    fn make(algorithm: DpopAlgorithm) -> Result<DpopKey, DpopError> {
        if algorithm != DpopAlgorithm::Es256 {
            return Err(DpopError::Signing(format!("{} keys are not available here", algorithm.name())));
        }
        // A random 32-byte string is a valid scalar except with probability about 2^-32.
        for _ in 0..4 {
            let mut scalar = Zeroizing::new([0u8; 32]);
            fill_random(scalar.as_mut())?;
            if let Ok(key) = SigningKey::from_slice(scalar.as_ref()) {
                let handle = Secret::new(URL_SAFE_NO_PAD.encode(scalar.as_ref()));
                return Ok(DpopKey { algorithm, public_key: public_key(&key), handle });
            }
        }
        Err(DpopError::Signing("no valid key could be made".into()))
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
            sign_with(signer, input)
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
}
