//! The signature check natively: `jsonwebtoken` with pure-Rust crypto.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use sessionkit_core::oidc::id_token::{JwsAlgorithm, JwsHeader, SignatureError, SignatureVerifier};

use super::{Family, JwksError, candidates, parse_document};

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
        let keys = candidates(&self.keys, header, |k| k.kid.as_deref(), |k| k.family)?;
        let encoded = URL_SAFE_NO_PAD.encode(signature);
        let mut result = Err(SignatureError::KeyMismatch);
        for key in keys {
            match jsonwebtoken::crypto::verify(&encoded, signing_input, &key.key, jsonwebtoken_alg(header.alg)) {
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
