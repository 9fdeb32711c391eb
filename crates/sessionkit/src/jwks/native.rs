//! The signature check natively: ring (desktops, and mobile apps built with `mobile-crypto`),
//! which rustls uses too, or RustCrypto through `jsonwebtoken` (the mobile cross-check, which
//! has no C toolchain). The keys are read as everywhere (`super::parse_keys`); the material is
//! decoded once, at parse.

use std::sync::Arc;

use sessionkit_core::oidc::id_token::{JwsAlgorithm, JwsHeader, SignatureError, SignatureVerifier};

use super::{Family, Jwk, JwksError, Key, candidates, parse_keys};

/// A parsed set of public signing keys.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key<crypto::Material>>,
}

impl KeySet {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, JwksError> {
        Ok(Self { keys: parse_keys(body, crypto::material)? })
    }

    /// The number of keys that may verify (a key too short does not count).
    pub(crate) fn len(&self) -> usize {
        self.keys.iter().filter(|key| !key.weak).count()
    }
}

impl SignatureVerifier for KeySet {
    fn verify(&self, header: &JwsHeader, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        check_signature(&self.keys, crypto::verifies, header, signing_input, signature)
    }
}

/// The signature check over `keys` with a backend's `verifies` (the tests run both backends).
fn check_signature<M>(
    keys: &[Key<M>],
    verifies: fn(&M, JwsAlgorithm, &[u8], &[u8]) -> bool,
    header: &JwsHeader,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let keys = candidates(keys, header)?;
    let mut result = Err(SignatureError::KeyMismatch);
    for key in keys {
        if verifies(&key.material, header.alg, signing_input, signature) {
            return Ok(());
        }
        result = Err(SignatureError::Invalid);
    }
    result
}

#[cfg(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto"))]
use ring_crypto as crypto;
#[cfg(not(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto")))]
use rust_crypto as crypto;

#[cfg(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto"))]
mod ring_crypto {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
    use sessionkit_core::oidc::id_token::JwsAlgorithm;

    use super::{Family, Jwk};

    /// A public key, decoded.
    pub(super) enum Material {
        /// Modulus and exponent, big-endian, without leading zero octets (ring wants them so).
        Rsa { n: Vec<u8>, e: Vec<u8> },
        /// An uncompressed point (0x04 || x || y) on P-256.
        P256(Vec<u8>),
        /// An uncompressed point on P-384.
        P384(Vec<u8>),
        /// The 32-byte public key.
        Ed25519(Vec<u8>),
    }

    fn decoded(member: Option<&String>) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(member?).ok()
    }

    fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        bytes.drain(..zeros);
        bytes
    }

    pub(super) fn material(jwk: &Jwk, family: Family) -> Option<Material> {
        let point = |size: usize| {
            let (x, y) = (decoded(jwk.x.as_ref())?, decoded(jwk.y.as_ref())?);
            (x.len() == size && y.len() == size).then(|| [&[4u8][..], &x, &y].concat())
        };
        match (family, jwk.crv.as_deref()) {
            (Family::Rsa, _) => Some(Material::Rsa {
                n: without_leading_zeros(decoded(jwk.n.as_ref())?),
                e: without_leading_zeros(decoded(jwk.e.as_ref())?),
            }),
            (Family::Ec, Some("P-256")) => point(32).map(Material::P256),
            (Family::Ec, Some("P-384")) => point(48).map(Material::P384),
            (Family::Okp, Some("Ed25519")) => decoded(jwk.x.as_ref()).filter(|x| x.len() == 32).map(Material::Ed25519),
            _ => None,
        }
    }

    /// Whether `signature` over `input` verifies with `key` for `alg` (a key of another curve or
    /// type than `alg` needs does not). RSA: 2048 to 8192 bits, as ring allows.
    pub(super) fn verifies(key: &Material, alg: JwsAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        let unparsed = |algorithm: &'static dyn sig::VerificationAlgorithm, public: &[u8]| {
            UnparsedPublicKey::new(algorithm, public).verify(input, signature).is_ok()
        };
        match (key, alg) {
            (Material::Rsa { n, e }, _) => {
                let parameters: &sig::RsaParameters = match alg {
                    JwsAlgorithm::Rs256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    JwsAlgorithm::Rs384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    JwsAlgorithm::Rs512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    JwsAlgorithm::Ps256 => &sig::RSA_PSS_2048_8192_SHA256,
                    JwsAlgorithm::Ps384 => &sig::RSA_PSS_2048_8192_SHA384,
                    JwsAlgorithm::Ps512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }.verify(parameters, input, signature).is_ok()
            }
            (Material::P256(point), JwsAlgorithm::Es256) => unparsed(&sig::ECDSA_P256_SHA256_FIXED, point),
            (Material::P384(point), JwsAlgorithm::Es384) => unparsed(&sig::ECDSA_P384_SHA384_FIXED, point),
            (Material::Ed25519(public), JwsAlgorithm::EdDsa) => unparsed(&sig::ED25519, public),
            _ => false,
        }
    }
}

/// The mobile cross-check's backend (and, in the tests, the second opinion on the first).
#[cfg(any(test, not(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto"))))]
mod rust_crypto {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    use jsonwebtoken::{Algorithm, DecodingKey};
    use sessionkit_core::oidc::id_token::JwsAlgorithm;

    use super::{Family, Jwk};

    pub(super) type Material = DecodingKey;

    pub(super) fn material(jwk: &Jwk, family: Family) -> Option<Material> {
        match (family, jwk.crv.as_deref()) {
            (Family::Rsa, _) => DecodingKey::from_rsa_components(jwk.n.as_ref()?, jwk.e.as_ref()?).ok(),
            // Coordinates of the curve's size only, as the ring backend reads them.
            (Family::Ec, Some(crv @ ("P-256" | "P-384"))) => {
                let size = if crv == "P-256" { 32 } else { 48 };
                let (x, y) = (jwk.x.as_ref()?, jwk.y.as_ref()?);
                let sized = |c: &String| URL_SAFE_NO_PAD.decode(c).is_ok_and(|c| c.len() == size);
                if !(sized(x) && sized(y)) {
                    return None;
                }
                DecodingKey::from_ec_components(x, y).ok()
            }
            (Family::Okp, Some("Ed25519")) => {
                let x = jwk.x.as_ref()?;
                URL_SAFE_NO_PAD.decode(x).is_ok_and(|x| x.len() == 32).then_some(())?;
                DecodingKey::from_ed_components(x).ok()
            }
            _ => None,
        }
    }

    pub(super) fn verifies(key: &Material, alg: JwsAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        let alg = match alg {
            JwsAlgorithm::Rs256 => Algorithm::RS256,
            JwsAlgorithm::Rs384 => Algorithm::RS384,
            JwsAlgorithm::Rs512 => Algorithm::RS512,
            JwsAlgorithm::Ps256 => Algorithm::PS256,
            JwsAlgorithm::Ps384 => Algorithm::PS384,
            JwsAlgorithm::Ps512 => Algorithm::PS512,
            JwsAlgorithm::Es256 => Algorithm::ES256,
            JwsAlgorithm::Es384 => Algorithm::ES384,
            JwsAlgorithm::EdDsa => Algorithm::EdDSA,
        };
        (DEFAULT_PROVIDER.verifier_factory)(&alg, key)
            .is_ok_and(|verifier| verifier.verify(input, &signature.to_vec()).is_ok())
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

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

    /// Every algorithm of the allow-list verifies, a changed byte, other input or another
    /// algorithm of the same family does not: with ring (desktops, mobile apps) and with
    /// RustCrypto (the mobile cross-check's backend), each reading the same document. The
    /// signatures are made by a third implementation (aws-lc-rs).
    #[test]
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    fn every_allowed_algorithm_verifies_and_nothing_else_does() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{self as sig, KeyPair as _};
        let rng = SystemRandom::new();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let input = b"eyJhbGciOiJ4In0.eyJzdWIiOiJ1In0";

        let rsa = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let rsa_jwk = serde_json::json!({"kty": "RSA", "kid": "rsa", "n": b64(&parts.n), "e": b64(&parts.e)});
        // The same key with a leading zero octet on its modulus, as some providers publish it.
        let padded_n = b64(&[&[0u8][..], &parts.n].concat());
        let padded_jwk = serde_json::json!({"kty": "RSA", "kid": "rsa-padded", "n": padded_n, "e": b64(&parts.e)});
        let p256 = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p384 = sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let ec_jwk = |kid: &str, crv: &str, point: &[u8]| {
            let half = (point.len() - 1) / 2; // uncompressed: 0x04 || x || y
            serde_json::json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..=half]), "y": b64(&point[1 + half..])})
        };
        let ed = sig::Ed25519KeyPair::generate().unwrap();
        let ed_jwk =
            serde_json::json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())});
        // A 1024-bit modulus (top bit set): never used, whatever it would verify.
        let short_n = b64(&[&[0x80u8][..], &[7u8; 127]].concat());
        let short_rsa = serde_json::json!({"kty": "RSA", "kid": "rsa-1024", "n": short_n, "e": "AQAB"});
        // A P-256 key named P-384: its coordinates are the wrong size, so it is dropped.
        let mislabelled = ec_jwk("mislabelled", "P-384", p256.public_key().as_ref());
        let jwks = [
            rsa_jwk,
            padded_jwk,
            ec_jwk("p256", "P-256", p256.public_key().as_ref()),
            ec_jwk("p384", "P-384", p384.public_key().as_ref()),
            ed_jwk,
            short_rsa,
            mislabelled,
        ];
        let document = serde_json::json!({ "keys": jwks }).to_string();
        let set = KeySet::parse(document.as_bytes()).unwrap();
        assert_eq!(set.len(), 5, "the 1024-bit key is not counted, the mislabelled one is dropped");
        let rust_crypto_keys = parse_keys(document.as_bytes(), rust_crypto::material).unwrap();
        assert_eq!(rust_crypto_keys.len(), 6, "the same keys read by the other backend (the short one kept, marked)");
        type Check<'a> = &'a dyn Fn(&JwsHeader, &[u8], &[u8]) -> Result<(), SignatureError>;
        let backends: [(&str, Check<'_>); 2] = [
            ("ring", &|header, input, signature| set.verify(header, input, signature)),
            ("RustCrypto", &|header, input, signature| {
                check_signature(&rust_crypto_keys, rust_crypto::verifies, header, input, signature)
            }),
        ];
        // A token naming it is refused for what it is (not "unknown key", which would refetch).
        let weak = JwsHeader { alg: JwsAlgorithm::Rs256, kid: Some("rsa-1024".to_owned()) };
        assert_eq!(set.verify(&weak, input, &[0; 128]), Err(SignatureError::WeakKey));
        let error = sessionkit_core::oidc::id_token::IdTokenError::Signature(SignatureError::WeakKey);
        assert!(error.to_string().contains("at least 2048 bits"), "{error}");

        let rsa_sign = |padding: &'static dyn sig::RsaEncoding| {
            let mut out = vec![0; rsa.public_modulus_len()];
            rsa.sign(padding, &rng, input, &mut out).unwrap();
            out
        };
        let cases: Vec<(JwsAlgorithm, &str, Vec<u8>)> = vec![
            (JwsAlgorithm::Rs256, "rsa", rsa_sign(&sig::RSA_PKCS1_SHA256)),
            (JwsAlgorithm::Rs256, "rsa-padded", rsa_sign(&sig::RSA_PKCS1_SHA256)),
            (JwsAlgorithm::Rs384, "rsa", rsa_sign(&sig::RSA_PKCS1_SHA384)),
            (JwsAlgorithm::Rs512, "rsa", rsa_sign(&sig::RSA_PKCS1_SHA512)),
            (JwsAlgorithm::Ps256, "rsa", rsa_sign(&sig::RSA_PSS_SHA256)),
            (JwsAlgorithm::Ps384, "rsa", rsa_sign(&sig::RSA_PSS_SHA384)),
            (JwsAlgorithm::Ps512, "rsa", rsa_sign(&sig::RSA_PSS_SHA512)),
            (JwsAlgorithm::Es256, "p256", p256.sign(&rng, input).unwrap().as_ref().to_vec()),
            (JwsAlgorithm::Es384, "p384", p384.sign(&rng, input).unwrap().as_ref().to_vec()),
            (JwsAlgorithm::EdDsa, "ed", ed.sign(input).as_ref().to_vec()),
        ];
        for (backend, verify) in backends {
            for (alg, kid, signature) in &cases {
                let header = JwsHeader { alg: *alg, kid: Some((*kid).to_owned()) };
                assert_eq!(verify(&header, input, signature), Ok(()), "{backend}, {alg:?}");
                let mut changed = signature.clone();
                changed[signature.len() / 2] ^= 1;
                assert_eq!(verify(&header, input, &changed), Err(SignatureError::Invalid), "{backend}, {alg:?}");
                assert_eq!(verify(&header, b"other.input", signature), Err(SignatureError::Invalid), "{backend}");
            }
            // A valid signature under another algorithm of its family: RS256's as PS256 (same
            // key, same hash), ES384's as ES256 on the same P-384 key, ES256's as ES384.
            let header = |alg, kid: &str| JwsHeader { alg, kid: Some(kid.to_owned()) };
            let (rs256, es256, es384) = (&cases[0].2, &cases[7].2, &cases[8].2);
            assert_eq!(verify(&header(JwsAlgorithm::Ps256, "rsa"), input, rs256), Err(SignatureError::Invalid));
            assert_eq!(verify(&header(JwsAlgorithm::Es256, "p384"), input, es384), Err(SignatureError::Invalid));
            assert_eq!(verify(&header(JwsAlgorithm::Es384, "p256"), input, es256), Err(SignatureError::Invalid));
            assert_eq!(verify(&weak, input, rs256), Err(SignatureError::WeakKey), "{backend}");
        }
    }

    #[test]
    fn rsa_modulus_lengths_are_read_from_the_encoding() {
        let bits = |bytes: Vec<u8>| crate::jwks::rsa_modulus_bits(&URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(bits([&[0x80u8][..], &[1; 255]].concat()), 2048);
        assert_eq!(bits([&[0x7fu8][..], &[1; 255]].concat()), 2047);
        assert_eq!(bits([&[0xffu8][..], &[1; 511]].concat()), 4096);
        assert_eq!(bits([&[0x80u8][..], &[1; 127]].concat()), 1024);
        assert_eq!(crate::jwks::rsa_modulus_bits(""), 0);
        assert_eq!(crate::jwks::rsa_modulus_bits("_"), 0);
        // Leading zero octets do not count; text that is not base64url is no key.
        assert_eq!(bits([&[0u8, 0, 0x80][..], &[1; 127]].concat()), 1024);
        assert_eq!(bits([&[0u8][..], &[0xff; 256]].concat()), 2048);
        let long = URL_SAFE_NO_PAD.encode([0xffu8; 256]);
        assert_eq!(crate::jwks::rsa_modulus_bits(&long), 2048);
        assert_eq!(crate::jwks::rsa_modulus_bits(&format!("{long}*")), 0);
        assert_eq!(crate::jwks::rsa_modulus_bits(&format!("{long}+")), 0, "base64 is not base64url");
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
