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
//! The session decides when a request carries a proof: [`DpopPolicy`] and the provider's
//! `dpop_signing_alg_values_supported` choose at sign-in, and a bound session signs every token
//! request with its own [`DpopKey`] (the request's `dpop` field names it; the driver signs). The
//! server nonce rules (sections 8 and 9) are here too: [`server_nonce`] reads a `DPoP-Nonce`,
//! [`asks_for_nonce`] recognises the one challenge that is answered by a single retry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use crate::http::HttpResponse;
use crate::random::{RandomError, random_identifier};
use crate::url::Url;
use crate::{Secret, UnixTime};

/// Whether sessions are bound to a DPoP key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DpopPolicy {
    /// Bearer tokens only: no proofs are sent.
    Off,
    /// DPoP when the provider advertises ES256 for it (the default); Bearer otherwise.
    #[default]
    WhenSupported,
    /// DPoP or nothing: a provider without DPoP is a misconfiguration, and a Bearer answer to a
    /// request that carried a proof is refused (no silent downgrade). Switching an app to it
    /// applies from the next sign-in: a Bearer session stored before goes on until it ends
    /// (one that holds a key, though, ends at a refresh answered with Bearer).
    Required,
}

impl DpopPolicy {
    /// The algorithm new keys use with this provider, or `None` for Bearer sessions. `Err`
    /// when DPoP is required and the provider does not advertise ES256 for it.
    pub fn algorithm_for(self, provider_algorithms: &[String]) -> Result<Option<DpopAlgorithm>, DpopError> {
        let supported = provider_algorithms.iter().any(|alg| alg == DpopAlgorithm::Es256.name());
        match self {
            Self::Off => Ok(None),
            Self::WhenSupported if !supported => Ok(None),
            Self::Required if !supported => Err(DpopError::Unsupported),
            Self::WhenSupported | Self::Required => Ok(Some(DpopAlgorithm::Es256)),
        }
    }
}

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
    /// The key is no longer in its key store (storage cleared, the key deleted): it will never
    /// sign again, so its session cannot go on.
    #[error("the session's DPoP key is no longer in its key store (was the storage cleared?); sign in again")]
    KeyMissing,
    /// DPoP is required by the app's policy, but the provider does not offer it.
    #[error(
        "DPoP is required, but the provider's discovery document does not list ES256 in \
         dpop_signing_alg_values_supported; enable DPoP at the provider or relax the DPoP policy"
    )]
    Unsupported,
}

/// A session's DPoP key as the session keeps it: what the proofs say about the key (algorithm,
/// public key) and the platform's handle to the private half. What the handle is belongs to the
/// platform: the sealed private key natively (the session record lives in the keystore), the
/// name of a non-extractable WebCrypto key in IndexedDB, an alias in the Android Keystore.
///
/// Stored (in the session record) as one string, `<alg>.<x>.<y>.<handle>` (`y` empty for
/// Ed25519): a few bytes of code instead of the kilobytes serde's derived structs and enums
/// cost the web package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopKey {
    /// The signature algorithm.
    pub algorithm: DpopAlgorithm,
    /// The public key (it goes into every proof).
    pub public_key: DpopPublicKey,
    /// The platform's handle to the private key.
    pub handle: Secret,
}

impl Serialize for DpopKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (x, y) = match &self.public_key {
            DpopPublicKey::P256 { x, y } => (x.as_str(), y.as_str()),
            DpopPublicKey::Ed25519 { x } => (x.as_str(), ""),
        };
        let text = zeroize::Zeroizing::new(format!("{}.{x}.{y}.{}", self.algorithm.name(), self.handle.expose()));
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Secret::deserialize(deserializer)?;
        let mut parts = text.expose().splitn(4, '.');
        let mut next = || parts.next().unwrap_or_default();
        let (algorithm, x, y, handle) = (next(), next(), next(), next());
        let (algorithm, public_key) = match (algorithm, y) {
            ("ES256", y) if !y.is_empty() => (DpopAlgorithm::Es256, DpopPublicKey::P256 { x: x.into(), y: y.into() }),
            ("EdDSA", "") => (DpopAlgorithm::EdDsa, DpopPublicKey::Ed25519 { x: x.into() }),
            _ => return Err(serde::de::Error::custom("not a stored DPoP key")),
        };
        if !public_key.is_well_formed() || handle.is_empty() {
            return Err(serde::de::Error::custom("not a stored DPoP key"));
        }
        Ok(Self { algorithm, public_key, handle: Secret::from(handle) })
    }
}

impl DpopKey {
    /// The RFC 7638 thumbprint (`dpop_jkt`, and the `cnf.jkt` of the tokens bound to this key).
    pub fn thumbprint(&self) -> String {
        jwk_thumbprint(&self.public_key)
    }
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

/// Whether a token answer fits the proof its request carried (`sent`): the key is kept for
/// every later request of the session (a provider may bind the refresh token even when it
/// issues a Bearer access token), and the answer's `token_type` says how the access token is
/// presented. A Bearer answer is a downgrade, and refused, under [`DpopPolicy::Required`] and
/// for a session whose tokens were DPoP-bound (`was_bound`: a refresh).
pub fn check_binding(
    policy: DpopPolicy,
    sent: Option<&DpopKey>,
    was_bound: bool,
    tokens: &crate::oidc::token::TokenResponse,
) -> Result<(), crate::oidc::token::MalformedToken> {
    use crate::oidc::token::MalformedToken;
    match (tokens.is_dpop(), sent) {
        (true, None) => Err(MalformedToken::UnexpectedDpop),
        (false, Some(_)) if was_bound => Err(MalformedToken::Downgraded),
        (false, Some(_)) if policy == DpopPolicy::Required => Err(MalformedToken::NotDpopBound),
        _ => Ok(()),
    }
}

/// The claims of a proof (RFC 9449 section 4.2).
#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// A proof waiting for its signature: signing may be asynchronous (WebCrypto), so the core
/// builds the input and the driver signs it and calls [`finish`](Self::finish).
#[derive(Debug)]
pub struct UnsignedProof {
    algorithm: DpopAlgorithm,
    signing_input: Secret,
}

impl UnsignedProof {
    /// Builds the header and claims of a proof for `request`, made with a key of `algorithm`
    /// whose public half is `key`. Each call has a fresh `jti`.
    pub fn new(algorithm: DpopAlgorithm, key: &DpopPublicKey, request: &ProofFor<'_>) -> Result<Self, DpopError> {
        let fits = matches!(
            (algorithm, key),
            (DpopAlgorithm::Es256, DpopPublicKey::P256 { .. }) | (DpopAlgorithm::EdDsa, DpopPublicKey::Ed25519 { .. })
        );
        if !fits || !key.is_well_formed() {
            return Err(DpopError::BadPublicKey);
        }
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#, algorithm.name(), key.canonical_jwk());
        let jti = random_identifier()?;
        let claims = Claims {
            jti: jti.expose(),
            htm: request.method,
            htu: htu(request.url),
            iat: request.issued_at.as_secs(),
            // The hash binds the proof to the token; the token itself is not in the proof.
            ath: request.access_token.map(|token| URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose().as_bytes()))),
            nonce: request.nonce,
        };
        // Strings and a number: serializing cannot fail.
        let claims = serde_json::to_string(&claims).unwrap_or_default();
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.as_bytes()), URL_SAFE_NO_PAD.encode(claims.as_bytes()));
        Ok(Self { algorithm, signing_input: Secret::new(signing_input) })
    }

    /// The bytes to sign.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.expose().as_bytes()
    }

    /// The compact proof, given the signature of [`signing_input`](Self::signing_input): for
    /// both algorithms 64 bytes (ES256 as `r || s`, not DER; a DER signature is refused here
    /// rather than by the server).
    pub fn finish(self, signature: &[u8]) -> Result<Secret, DpopError> {
        let expected = match self.algorithm {
            DpopAlgorithm::Es256 | DpopAlgorithm::EdDsa => 64,
        };
        if signature.len() != expected {
            return Err(DpopError::Signing(format!(
                "the signature is {} bytes long; {} needs {expected} (raw r || s for ES256)",
                signature.len(),
                self.algorithm.name()
            )));
        }
        Ok(Secret::new(format!("{}.{}", self.signing_input.expose(), URL_SAFE_NO_PAD.encode(signature))))
    }
}

/// A DPoP proof for one request, signed by `signer`. It is single-use (a fresh `jti`).
pub fn proof(signer: &dyn DpopSigner, request: &ProofFor<'_>) -> Result<Secret, DpopError> {
    let unsigned = UnsignedProof::new(signer.algorithm(), &signer.public_key(), request)?;
    let signature = signer.sign(unsigned.signing_input())?;
    unsigned.finish(&signature)
}

/// The longest `DPoP-Nonce` kept; a longer one is ignored.
pub const MAX_NONCE_BYTES: usize = 512;

/// The server's `DPoP-Nonce`, if it sent a well-formed one (RFC 9449 section 8.1: 1*NQCHAR,
/// printable ASCII without `"` and `\`).
pub fn server_nonce(response: &HttpResponse) -> Option<&str> {
    let nonce = response.header("dpop-nonce")?.trim();
    let nqchar = |c: u8| c == b'!' || (b'#'..=b'[').contains(&c) || (b']'..=b'~').contains(&c);
    (!nonce.is_empty() && nonce.len() <= MAX_NONCE_BYTES && nonce.bytes().all(nqchar)).then_some(nonce)
}

/// Whether the answer asks for a proof with the server's nonce: a token endpoint's `400` with
/// `error: use_dpop_nonce` (section 8), or a resource server's `401` whose `WWW-Authenticate`
/// has the DPoP scheme with `error="use_dpop_nonce"` (section 9). Only with a nonce to use.
pub fn asks_for_nonce(response: &HttpResponse) -> bool {
    if server_nonce(response).is_none() {
        return false;
    }
    match response.status() {
        // The token endpoint's error, read as every token endpoint answer is.
        400 => matches!(
            crate::oidc::token::TokenOutcome::classify(response, UnixTime::EPOCH),
            crate::oidc::token::TokenOutcome::Refused(error) if error.code.as_str() == "use_dpop_nonce"
        ),
        401 => response.header("www-authenticate").is_some_and(|challenge| {
            let lower = challenge.to_ascii_lowercase();
            // The DPoP scheme, first or after another challenge, asking for its nonce.
            let dpop_scheme =
                lower.trim_start().starts_with("dpop ") || lower.contains(",dpop ") || lower.contains(", dpop ");
            dpop_scheme && lower.contains("error=\"use_dpop_nonce\"")
        }),
        _ => false,
    }
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

    #[test]
    fn the_policy_picks_es256_only_when_the_provider_offers_it() {
        let offered = vec!["ES256".to_owned(), "EdDSA".to_owned()];
        let other = vec!["PS256".to_owned()];
        assert_eq!(DpopPolicy::WhenSupported.algorithm_for(&offered), Ok(Some(DpopAlgorithm::Es256)));
        assert_eq!(DpopPolicy::WhenSupported.algorithm_for(&other), Ok(None));
        assert_eq!(DpopPolicy::WhenSupported.algorithm_for(&[]), Ok(None));
        assert_eq!(DpopPolicy::Off.algorithm_for(&offered), Ok(None));
        assert_eq!(DpopPolicy::Required.algorithm_for(&offered), Ok(Some(DpopAlgorithm::Es256)));
        let refused = DpopPolicy::Required.algorithm_for(&[]).unwrap_err();
        assert_eq!(refused, DpopError::Unsupported);
        assert!(refused.to_string().contains("dpop_signing_alg_values_supported"), "says what to fix");
    }

    #[test]
    fn a_token_answer_must_fit_the_proof_its_request_carried() {
        use crate::oidc::token::{MalformedToken, TokenResponse};
        let answer = |token_type: &str| TokenResponse {
            access_token: Secret::from("at"),
            token_type: token_type.to_owned(),
            expires_in: None,
            refresh_token: None,
            id_token: None,
            scope: None,
        };
        let key = DpopKey {
            algorithm: DpopAlgorithm::Es256,
            public_key: DpopPublicKey::P256 { x: "x".into(), y: "y".into() },
            handle: Secret::from("handle"),
        };
        for policy in [DpopPolicy::Off, DpopPolicy::WhenSupported, DpopPolicy::Required] {
            assert_eq!(check_binding(policy, Some(&key), false, &answer("DPoP")), Ok(()));
            assert_eq!(check_binding(policy, None, false, &answer("DPoP")), Err(MalformedToken::UnexpectedDpop));
            assert_eq!(check_binding(policy, None, false, &answer("Bearer")), Ok(()));
            // A session whose tokens were bound never takes a Bearer token on refresh.
            let downgrade = check_binding(policy, Some(&key), true, &answer("Bearer"));
            assert_eq!(downgrade, Err(MalformedToken::Downgraded), "{policy:?}");
        }
        assert_eq!(check_binding(DpopPolicy::WhenSupported, Some(&key), false, &answer("Bearer")), Ok(()));
        assert_eq!(
            check_binding(DpopPolicy::Required, Some(&key), false, &answer("Bearer")),
            Err(MalformedToken::NotDpopBound),
            "no silent downgrade"
        );
    }

    #[test]
    fn nonce_challenges_are_recognised_only_in_their_two_forms() {
        let with_nonce = |status: u16, body: &str| HttpResponse::new(status, body.as_bytes().to_vec());
        let token_challenge = with_nonce(400, r#"{"error":"use_dpop_nonce"}"#).with_header("DPoP-Nonce", "n1");
        assert!(asks_for_nonce(&token_challenge));
        assert_eq!(server_nonce(&token_challenge), Some("n1"));
        let api_challenge = with_nonce(401, "")
            .with_header("WWW-Authenticate", r#"Bearer realm="x", DPoP error="use_dpop_nonce", algs="ES256""#)
            .with_header("DPoP-Nonce", "n2");
        assert!(asks_for_nonce(&api_challenge));
        // Without a nonce to use, another error, or another scheme: no retry.
        assert!(!asks_for_nonce(&with_nonce(400, r#"{"error":"use_dpop_nonce"}"#)));
        assert!(!asks_for_nonce(&with_nonce(400, r#"{"error":"invalid_grant"}"#).with_header("DPoP-Nonce", "n")));
        let bearer = with_nonce(401, "").with_header("WWW-Authenticate", r#"Bearer error="use_dpop_nonce""#);
        assert!(!asks_for_nonce(&bearer.with_header("DPoP-Nonce", "n")));
        assert!(!asks_for_nonce(&with_nonce(500, r#"{"error":"use_dpop_nonce"}"#).with_header("DPoP-Nonce", "n")));
        // Malformed nonces are ignored.
        for bad in ["", "a b", "quote\"", "back\\slash", &"n".repeat(MAX_NONCE_BYTES + 1)] {
            assert_eq!(server_nonce(&with_nonce(200, "").with_header("DPoP-Nonce", bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn a_signature_of_the_wrong_length_makes_no_proof() {
        let url = Url::parse("https://idp.example/token").unwrap();
        let request =
            ProofFor { method: "POST", url: &url, access_token: None, nonce: None, issued_at: UnixTime::EPOCH };
        let public = key().public_key();
        let der_like = vec![0x30; 71];
        let unsigned = UnsignedProof::new(DpopAlgorithm::Es256, &public, &request).unwrap();
        assert!(matches!(unsigned.finish(&der_like), Err(DpopError::Signing(_))), "a DER signature is refused");
    }

    #[test]
    fn a_key_round_trips_through_json_and_its_debug_hides_the_handle() {
        let key = DpopKey {
            algorithm: DpopAlgorithm::Es256,
            public_key: DpopPublicKey::P256 { x: "l8tF".into(), y: "9VE4".into() },
            handle: Secret::from("private-scalar-material"),
        };
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, r#""ES256.l8tF.9VE4.private-scalar-material""#);
        assert_eq!(serde_json::from_str::<DpopKey>(&json).unwrap(), key);
        assert!(!format!("{key:?}").contains("private-scalar-material"));
        // A handle may hold dots (an app's key alias); anything else malformed is refused.
        let alias = serde_json::from_str::<DpopKey>(r#""ES256.l8tF.9VE4.com.example.dpop""#).unwrap();
        assert_eq!(alias.handle.expose(), "com.example.dpop");
        let ed = serde_json::from_str::<DpopKey>(r#""EdDSA.11qY..h""#).unwrap();
        assert_eq!(ed.public_key, DpopPublicKey::Ed25519 { x: "11qY".into() });
        for bad in [r#""ES256.x..h""#, r#""RS256.x.y.h""#, r#""ES256.x.y.""#, r#""ES256.x\"y.z.h""#, "\"\"", "7"] {
            assert!(serde_json::from_str::<DpopKey>(bad).is_err(), "{bad}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// `htu` is the target without its query and fragment, whatever they hold; `ath` is
            /// the token's SHA-256 and the token itself never appears; `htm` is as given.
            #[test]
            fn htu_drops_query_and_fragment_and_ath_hashes_the_token(
                path in "(/[a-z0-9_~-]{1,8}){0,4}",
                query in proptest::option::of("[a-z0-9=&._~-]{0,16}(%2F)?"),
                fragment in proptest::option::of("[a-z0-9._~-]{0,8}"),
                token in "[A-Za-z0-9._~+/=-]{20,120}",
                method in "GET|POST|PUT|DELETE|PATCH",
            ) {
                let base = format!("https://api.example:8443{path}");
                let mut text = base.clone();
                if let Some(query) = &query { text = format!("{text}?{query}"); }
                if let Some(fragment) = &fragment { text = format!("{text}#{fragment}"); }
                let url = Url::parse(&text).unwrap();
                let secret = Secret::from(token.as_str());
                let request = ProofFor {
                    method: &method, url: &url, access_token: Some(&secret), nonce: None, issued_at: UnixTime::EPOCH,
                };
                let proof = proof(&key(), &request).unwrap();
                let (_, claims, _, _) = parts(&proof);
                let expected_htu = url.as_str().split(['?', '#']).next().unwrap().to_owned();
                prop_assert_eq!(claims["htu"].as_str().unwrap(), expected_htu.as_str());
                prop_assert!(!claims["htu"].as_str().unwrap().contains(['?', '#']));
                prop_assert_eq!(claims["htm"].as_str().unwrap(), method.as_str());
                let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
                prop_assert_eq!(claims["ath"].as_str().unwrap(), ath.as_str());
                prop_assert!(!proof.expose().contains(&token));
            }
        }

        /// Every proof has its own `jti` (256 random bits each).
        #[test]
        fn every_proof_has_a_unique_jti() {
            let url = Url::parse("https://api.example/x").unwrap();
            let request =
                ProofFor { method: "GET", url: &url, access_token: None, nonce: None, issued_at: UnixTime::EPOCH };
            let key = key();
            let mut seen = std::collections::HashSet::new();
            for _ in 0..2_000 {
                let (_, claims, _, _) = parts(&proof(&key, &request).unwrap());
                assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()), "a jti repeated");
            }
        }
    }
}
