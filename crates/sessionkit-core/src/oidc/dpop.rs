//! DPoP proofs (RFC 9449): the signed JWT that binds a request to a key pair the app holds.
//!
//! The core builds the proof and never sees the private key: signing goes through
//! [`DpopSigner`], so each platform signs with its own key store (a non-extractable WebCrypto
//! key, the desktop keystore, the Secure Enclave or the Android Keystore). A proof (section 4.2)
//! is a compact JWS with the header `typ: dpop+jwt`, `alg` and `jwk` (the public key only), and
//! the claims `jti` (fresh from the CSPRNG), `htm`, `htu` (the target URI without query and
//! fragment), `iat`, `ath` (base64url SHA-256 of the access token) on resource requests, and
//! `nonce` when the server gave one. [`jwk_thumbprint`] (RFC 7638) gives the `dpop_jkt` that
//! binds an authorization code to the key (section 10).
//!
//! Not wired into the session yet (issue 12): this is the proof itself, tested on its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::random::{RandomError, random_identifier};
use crate::url::Url;
use crate::{Secret, UnixTime};

/// The signature algorithms a DPoP key may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopAlgorithm {
    /// ECDSA P-256 with SHA-256 (required by SessionKit on every platform).
    Es256,
    /// Ed25519, where the platform has it.
    EdDsa,
}

impl DpopAlgorithm {
    /// The JOSE name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// The public half of a DPoP key, as a JWK's required members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpopPublicKey {
    /// P-256: the base64url coordinates.
    P256 {
        /// `x`.
        x: String,
        /// `y`.
        y: String,
    },
    /// Ed25519: the base64url public key.
    Ed25519 {
        /// `x`.
        x: String,
    },
}

impl DpopPublicKey {
    /// The JWK with exactly the required members, in lexicographic order (RFC 7638 section 3.2):
    /// the form both the proof header and the thumbprint use.
    fn canonical_jwk(&self) -> String {
        // The members are base64url strings and fixed names: nothing here needs escaping.
        match self {
            Self::P256 { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Self::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        }
    }

    fn is_well_formed(&self) -> bool {
        let b64 = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        match self {
            Self::P256 { x, y } => b64(x) && b64(y),
            Self::Ed25519 { x } => b64(x),
        }
    }
}

/// Why a proof could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// The key store refused to sign (locked, the key is gone).
    #[error("the DPoP key could not sign: {0}")]
    Signing(String),
    /// The signer's public key is not a well-formed JWK, or does not match its algorithm.
    #[error("the DPoP key's public part is malformed")]
    BadPublicKey,
    /// The OS random source failed (for `jti`).
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Signs DPoP proofs with a key that stays in the platform's key store.
pub trait DpopSigner {
    /// The algorithm the key signs with.
    fn algorithm(&self) -> DpopAlgorithm;
    /// The public key.
    fn public_key(&self) -> DpopPublicKey;
    /// Signs `signing_input`: for ES256 the 64-byte `r || s` (not DER), for EdDSA the 64-byte
    /// signature.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, DpopError>;
}

/// What a proof is for.
#[derive(Clone, Copy, Debug)]
pub struct ProofFor<'a> {
    /// The HTTP method (`POST` for the token endpoint).
    pub method: &'a str,
    /// The target URI (its query and fragment are left out of `htu`).
    pub url: &'a Url,
    /// The access token, for a request to a resource server (`ath`).
    pub access_token: Option<&'a Secret>,
    /// The server's latest `DPoP-Nonce`, if it gave one.
    pub nonce: Option<&'a str>,
    /// The time of the request, as the server sees it.
    pub issued_at: UnixTime,
}

/// The RFC 7638 thumbprint of the key: base64url SHA-256 of its canonical JWK (`dpop_jkt`).
pub fn jwk_thumbprint(key: &DpopPublicKey) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(key.canonical_jwk().as_bytes()))
}

/// The `htu` claim: the target URI without its query and fragment (RFC 9449 section 4.2).
fn htu(url: &Url) -> &str {
    let text = url.as_str();
    &text[..text.find(['?', '#']).unwrap_or(text.len())]
}

/// A DPoP proof for one request, signed by `signer`. It is single-use (a fresh `jti`).
pub fn proof(signer: &dyn DpopSigner, request: &ProofFor<'_>) -> Result<Secret, DpopError> {
    let key = signer.public_key();
    let fits = matches!(
        (signer.algorithm(), &key),
        (DpopAlgorithm::Es256, DpopPublicKey::P256 { .. }) | (DpopAlgorithm::EdDsa, DpopPublicKey::Ed25519 { .. })
    );
    if !fits || !key.is_well_formed() {
        return Err(DpopError::BadPublicKey);
    }
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#, signer.algorithm().name(), key.canonical_jwk());
    let mut claims = serde_json::json!({
        "jti": random_identifier()?.expose(),
        "htm": request.method,
        "htu": htu(request.url),
        "iat": request.issued_at.as_secs(),
    });
    if let Some(token) = request.access_token {
        // The hash binds the proof to the token; the token itself is not in the proof.
        claims["ath"] = URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose().as_bytes())).into();
    }
    if let Some(nonce) = request.nonce {
        claims["nonce"] = nonce.into();
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.as_bytes()),
        URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
    );
    let signature = signer.sign(signing_input.as_bytes())?;
    Ok(Secret::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::{Signer as _, Verifier as _};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    use super::*;

    /// A P-256 key in memory (the platforms keep theirs in a key store).
    struct TestKey(SigningKey);

    impl DpopSigner for TestKey {
        fn algorithm(&self) -> DpopAlgorithm {
            DpopAlgorithm::Es256
        }
        fn public_key(&self) -> DpopPublicKey {
            let point = self.0.verifying_key().to_encoded_point(false);
            DpopPublicKey::P256 {
                x: URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                y: URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            }
        }
        fn sign(&self, input: &[u8]) -> Result<Vec<u8>, DpopError> {
            let signature: Signature = self.0.sign(input);
            Ok(signature.to_bytes().to_vec())
        }
    }

    fn key() -> TestKey {
        TestKey(SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar"))
    }

    fn parts(proof: &Secret) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let mut split = proof.expose().split('.');
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).expect("base64url");
        let (h, c, s) = (split.next().unwrap(), split.next().unwrap(), split.next().unwrap());
        assert!(split.next().is_none());
        (
            serde_json::from_slice(&decode(h)).expect("header"),
            serde_json::from_slice(&decode(c)).expect("claims"),
            decode(s),
            format!("{h}.{c}"),
        )
    }

    #[test]
    fn a_token_request_proof_is_a_verifiable_dpop_jwt() {
        let key = key();
        let url = Url::parse("https://idp.example/token?x=1#frag").unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let request = ProofFor { method: "POST", url: &url, access_token: None, nonce: None, issued_at: now };
        let proof = proof(&key, &request).unwrap();
        let (header, claims, signature, input) = parts(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header["jwk"].get("d").is_none(), "never the private key");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://idp.example/token", "no query, no fragment");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
        assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
        // The signature verifies with the public key carried in the header.
        let verifying = VerifyingKey::from_sec1_bytes(
            &[
                &[4u8][..],
                &URL_SAFE_NO_PAD.decode(header["jwk"]["x"].as_str().unwrap()).unwrap(),
                &URL_SAFE_NO_PAD.decode(header["jwk"]["y"].as_str().unwrap()).unwrap(),
            ]
            .concat(),
        )
        .unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        assert!(verifying.verify(input.as_bytes(), &signature).is_ok());
        // Single use: another proof for the same request has another jti.
        let (_, again, _, _) = parts(&super::proof(&key, &request).unwrap());
        assert_ne!(again["jti"], claims["jti"]);
        assert!(!format!("{proof:?}").contains(&input[..20]), "the proof is a secret");
    }

    #[test]
    fn a_resource_request_proof_carries_the_token_hash_and_the_nonce() {
        let key = key();
        let url = Url::parse("https://api.example/v1/me").unwrap();
        let token = Secret::from("access-token-value");
        let request = ProofFor {
            method: "GET",
            url: &url,
            access_token: Some(&token),
            nonce: Some("server-nonce-1"),
            issued_at: UnixTime::from_secs(1),
        };
        let (_, claims, _, _) = parts(&proof(&key, &request).unwrap());
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(b"access-token-value"));
        assert_eq!(claims["ath"], expected.as_str());
        assert_eq!(claims["nonce"], "server-nonce-1");
        assert!(!claims.to_string().contains("access-token-value"), "the token is hashed, never included");
    }

    /// RFC 9449's example key (section 4.1) and the `jkt` its examples bind tokens to (section 6.1).
    #[test]
    fn the_thumbprint_matches_rfc_9449s_example() {
        let key = DpopPublicKey::P256 {
            x: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".into(),
            y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".into(),
        };
        assert_eq!(jwk_thumbprint(&key), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    }

    /// A signer whose key does not fit its algorithm, or is not base64url, makes no proof.
    #[test]
    fn malformed_public_keys_make_no_proof() {
        struct Odd(DpopPublicKey);
        impl DpopSigner for Odd {
            fn algorithm(&self) -> DpopAlgorithm {
                DpopAlgorithm::Es256
            }
            fn public_key(&self) -> DpopPublicKey {
                self.0.clone()
            }
            fn sign(&self, _: &[u8]) -> Result<Vec<u8>, DpopError> {
                Ok(vec![0; 64])
            }
        }
        let url = Url::parse("https://idp.example/token").unwrap();
        let request =
            ProofFor { method: "POST", url: &url, access_token: None, nonce: None, issued_at: UnixTime::EPOCH };
        for key in [
            DpopPublicKey::Ed25519 { x: "abc".into() },
            DpopPublicKey::P256 { x: "a\"b".into(), y: "c".into() },
            DpopPublicKey::P256 { x: String::new(), y: "c".into() },
        ] {
            assert_eq!(proof(&Odd(key), &request).unwrap_err(), DpopError::BadPublicKey);
        }
    }
}
