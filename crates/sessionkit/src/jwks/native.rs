//! The signature check natively: `jsonwebtoken` with pure-Rust crypto.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use sessionkit_core::oidc::id_token::{JwsAlgorithm, JwsHeader, SignatureError, SignatureVerifier};

use super::{Family, JwksError, Key, candidates, parse_document, signing_alg};

/// A parsed set of public signing keys.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key<DecodingKey>>,
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
        let set: JwkSet = parse_document(body)?;
        let keys = set
            .keys
            .iter()
            .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
            .filter_map(|jwk| {
                let family = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Family::Rsa,
                    AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                    AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
                    // Never a symmetric key (it would let an HMAC "signature" pass), nor a kind
                    // this build does not know.
                    _ => return None,
                };
                let alg = signing_alg(jwk.common.key_algorithm.map(|alg| alg.to_string()).as_deref()).ok()?;
                let material = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key { kid: jwk.common.key_id.clone(), family, alg, material })
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
        let keys = candidates(&self.keys, header)?;
        let encoded = URL_SAFE_NO_PAD.encode(signature);
        let mut result = Err(SignatureError::KeyMismatch);
        for key in keys {
            match jsonwebtoken::crypto::verify(&encoded, signing_input, &key.material, jsonwebtoken_alg(header.alg)) {
                Ok(true) => return Ok(()),
                _ => result = Err(SignatureError::Invalid),
            }
        }
        result
    }
}

/// The verifier for a token response: natively the key set itself checks synchronously.
pub(crate) struct Verifier(Arc<KeySet>);

impl SignatureVerifier for Verifier {
    fn verify(&self, header: &JwsHeader, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.0.verify(header, signing_input, signature)
    }
}

/// See [`super`]: nothing to check ahead natively.
#[allow(clippy::unused_async)] // the same signature as the browser's, which awaits WebCrypto
pub(crate) async fn verifier_for(keys: &Arc<KeySet>, _token_response: &[u8]) -> Verifier {
    Verifier(keys.clone())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::jwks::{Jwks, REFETCH_INTERVAL};

    fn okp(key: &SigningKey, kid: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut jwk = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        });
        for (name, value) in extra.as_object().into_iter().flatten() {
            jwk[name] = value.clone();
        }
        jwk
    }

    fn check(set: &KeySet, key: &SigningKey, kid: &str) -> Result<(), SignatureError> {
        let input = b"header.payload";
        let signature = key.sign(input).to_bytes();
        let header = JwsHeader { alg: JwsAlgorithm::EdDsa, kid: Some(kid.to_owned()) };
        set.verify(&header, input, &signature)
    }

    /// Issue 11, finding 5: natively too, encryption keys are not signing keys, and a key that
    /// names its `alg` verifies that algorithm only.
    #[test]
    fn only_signing_keys_for_the_tokens_algorithm_are_used() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let document = serde_json::json!({"keys": [
            okp(&key, "plain", serde_json::json!({})),
            okp(&key, "for-signing", serde_json::json!({"use": "sig", "alg": "EdDSA"})),
            okp(&key, "for-encryption", serde_json::json!({"use": "enc"})),
            okp(&key, "for-es256", serde_json::json!({"alg": "ES256"})),
            okp(&key, "for-ecdh", serde_json::json!({"alg": "ECDH-ES"})),
        ]});
        let set = KeySet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 3, "the encryption key and the key for an encryption algorithm are dropped");
        assert_eq!(check(&set, &key, "plain"), Ok(()));
        assert_eq!(check(&set, &key, "for-signing"), Ok(()));
        assert_eq!(check(&set, &key, "for-encryption"), Err(SignatureError::UnknownKey));
        assert_eq!(check(&set, &key, "for-ecdh"), Err(SignatureError::UnknownKey));
        assert_eq!(check(&set, &key, "for-es256"), Err(SignatureError::KeyMismatch), "its alg is not the token's");
    }

    /// Issue 11, finding 5: the refetch limit counts refetches only, and claims its slot atomically.
    #[test]
    fn refetches_for_unknown_keys_are_limited_without_counting_the_first_fetch() {
        let jwks = Jwks::new(None);
        let start = Duration::from_secs(1000);
        assert!(jwks.may_refetch(start), "the start-up fetch just happened; a rotated key is fetched at once");
        assert!(!jwks.may_refetch(start), "a second caller at the same moment does not refetch");
        assert!(!jwks.may_refetch(start + REFETCH_INTERVAL - Duration::from_millis(1)));
        assert!(jwks.may_refetch(start + REFETCH_INTERVAL));
    }
}
