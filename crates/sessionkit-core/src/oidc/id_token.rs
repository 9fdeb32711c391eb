//! ID token validation (OpenID Connect Core 3.1.3.7 and 12.2, RFC 8725).
//!
//! [`validate_id_token`] splits the compact JWS, refuses `none`, HMAC and unknown algorithms
//! and any `crit` header, asks a [`SignatureVerifier`] to check the signature (natively a
//! JWKS-backed verifier, in the browser WebCrypto), then checks the claims: exact `iss`,
//! `aud` containing the client id (and `azp` when there are several audiences), `exp`, an
//! `iat` that is neither in the future nor stale, the login's `nonce`, and, after a refresh,
//! the same `sub` as before. Times are compared with the server's clock (the local clock
//! corrected by the offset seen in `Date` headers), with the policy's leeway.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::{Secret, UnixTime};

/// The longest ID token accepted.
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// How old `iat` may be (beyond the leeway) when the token arrives.
pub const MAX_IAT_AGE: Duration = Duration::from_secs(10 * 60);

/// Asymmetric JWS algorithms SessionKit accepts. `none` and `HS*` are not representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwsAlgorithm {
    /// The algorithm for a JOSE `alg` value, if it is on the allow-list.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// The protected header fields a verifier needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwsHeader {
    /// The (allow-listed) algorithm.
    pub alg: JwsAlgorithm,
    /// The key id, used to pick the key from the JWKS.
    pub kid: Option<String>,
}

/// Why a signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No key with this `kid` (the driver refetches the JWKS once, rate-limited, then gives up).
    #[error("no signing key matches the token's key id")]
    UnknownKey,
    /// The key does not fit the algorithm (e.g. an RSA key for ES256).
    #[error("the signing key does not fit the token's algorithm")]
    KeyMismatch,
    /// The signature is wrong.
    #[error("the signature is invalid")]
    Invalid,
    /// The key with the token's `kid` is an RSA key under 2048 bits, which is never used: the
    /// provider must sign with a longer one (the driver refetches the keys once first).
    #[error(
        "the provider signs with an RSA key shorter than 2048 bits, which SessionKit does not accept; the provider's administrator must sign with a key of at least 2048 bits"
    )]
    WeakKey,
}

/// Checks a JWS signature. Implementations hold the provider's keys; they are never asked to
/// verify `none` or HMAC, which the core refuses first.
pub trait SignatureVerifier {
    /// Verifies `signature` over `signing_input` (`base64url(header) "." base64url(payload)`).
    fn verify(&self, header: &JwsHeader, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError>;
}

/// Why an ID token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not three base64url parts, too large, or bad JSON.
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, HMAC, or not on the allow-list.
    #[error(
        "the ID token's algorithm \"{0}\" is not allowed (SessionKit takes RS, PS, ES and EdDSA signatures the provider announces)"
    )]
    AlgorithmNotAllowed(String),
    /// A `crit` header this client does not understand.
    #[error("the ID token has critical header parameters this client does not support")]
    CriticalHeader,
    /// The signature check failed.
    #[error("the ID token's signature was not accepted: {0}")]
    Signature(#[from] SignatureError),
    /// `iss` is not the configured issuer.
    #[error("the ID token's issuer does not match the provider")]
    Issuer,
    /// `aud`/`azp` do not name this client.
    #[error("the ID token was not issued to this client")]
    Audience,
    /// Several audiences and no `azp`: nothing says which of them the token was issued to.
    #[error(
        "the ID token names several audiences but no azp (authorized party), so it cannot be shown to be issued to this client"
    )]
    AuthorizedPartyMissing,
    /// A claim every ID token must carry is absent.
    #[error("the ID token has no {0} claim")]
    MissingClaim(&'static str),
    /// `exp` has passed.
    #[error("the ID token has expired")]
    Expired,
    /// `iat` is in the future or too old.
    #[error("the ID token's issue time is out of bounds")]
    IssuedAt,
    /// `nonce` missing or different from this login's.
    #[error("the ID token's nonce does not match this login")]
    Nonce,
    /// `sub` differs from the session's subject after a refresh.
    #[error("the ID token names a different user than the session")]
    SubjectChanged,
    /// The sign-in asked for an authentication at most `max_age` old (step-up) and the
    /// provider's `auth_time` is older: the user was not asked to authenticate again.
    #[error(
        "the provider did not authenticate the user again as this sign-in asked (max_age): its last authentication is too old; sign in again, or check that the provider honours max_age"
    )]
    AuthenticationTooOld,
}

/// What an ID token must satisfy.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenCheck<'a> {
    /// The configured issuer.
    pub issuer: &'a str,
    /// This client's id.
    pub client_id: &'a str,
    /// The login's nonce; `None` after a refresh (OIDC Core 12.2: the nonce was discarded).
    pub nonce: Option<&'a Secret>,
    /// The session's subject; `Some` after a refresh.
    pub subject: Option<&'a str>,
    /// The sign-in's `max_age` in seconds (step-up), if it asked for one: `auth_time` must then
    /// be present and no older (OIDC Core 3.1.2.1 and 3.1.3.7).
    pub max_age: Option<u64>,
    /// The server's current time (local time plus the server offset).
    pub server_now: UnixTime,
    /// Allowed clock difference.
    pub leeway: Duration,
    /// The algorithms the provider says it signs ID tokens with (discovery's
    /// `id_token_signing_alg_values_supported`); empty when it did not say. A token signed with
    /// another algorithm is refused, even one on SessionKit's own allow-list.
    pub provider_algorithms: &'a [String],
}

/// The validated claims a session keeps. The nonce is checked and dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The user's stable identifier at this issuer.
    pub sub: String,
    /// Expiry of the ID token itself.
    pub exp: UnixTime,
    /// When it was issued.
    pub iat: UnixTime,
    /// When the user authenticated, if sent.
    pub auth_time: Option<UnixTime>,
    /// The authentication context class the provider says the sign-in met (`acr`, e.g. after a
    /// step-up asked for with `acr_values`); `None` if not sent, or not printable ASCII text of
    /// at most 255 characters.
    pub acr: Option<String>,
    /// The provider's session id (for logout), if sent.
    pub sid: Option<String>,
    /// `name`, for display.
    pub name: Option<String>,
    /// `email`, for display.
    pub email: Option<String>,
    /// `preferred_username`, for display.
    pub preferred_username: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    // Only its presence matters (any `crit` is refused), so it is skipped, not parsed.
    crit: Option<serde::de::IgnoredAny>,
}

// `aud` and the time claims take one of two JSON shapes. They are read by hand rather than as
// `#[serde(untagged)]` enums, which buffer the value first and cost ~4 KB gzipped on the web.

enum Audience {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Audience, E> {
                Ok(Audience::One(value.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    all.push(one);
                }
                Ok(Audience::Many(all))
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

/// A claim SessionKit only reports (`acr`): its text when it is a string, nothing otherwise, so
/// that an odd value never makes a token unreadable.
struct Reported(Option<String>);

impl<'de> Deserialize<'de> for Reported {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Reported;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Reported, E> {
                Ok(Reported(Some(value.to_owned())))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Reported, E> {
                Ok(Reported(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Reported, E> {
                Ok(Reported(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Reported, E> {
                Ok(Reported(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Reported, E> {
                Ok(Reported(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Reported, E> {
                Ok(Reported(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Reported, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Reported(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Reported, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Reported(None))
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

/// A JWT NumericDate: seconds, integer or not.
enum NumericDate {
    Whole(u64),
    Fraction(f64),
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl serde::de::Visitor<'_> for Shape {
            type Value = NumericDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::Whole(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<NumericDate, E> {
                // Negative: refused as out of range by `to_time`.
                #[allow(clippy::cast_precision_loss)]
                Ok(u64::try_from(value).map_or(NumericDate::Fraction(value as f64), NumericDate::Whole))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<NumericDate, E> {
                Ok(NumericDate::Fraction(value))
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

impl NumericDate {
    fn to_time(&self) -> Result<UnixTime, IdTokenError> {
        match *self {
            Self::Whole(secs) => Ok(UnixTime::from_secs(secs)),
            Self::Fraction(secs) if secs.is_finite() && (0.0..1e12).contains(&secs) => {
                // Bounded above, so the cast cannot overflow; fractions of a millisecond are dropped.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(UnixTime::from_millis((secs * 1000.0) as u64))
            }
            Self::Fraction(_) => Err(IdTokenError::Malformed("a time claim is out of range")),
        }
    }
}

#[derive(Deserialize)]
struct RawClaims {
    // Required claims are read as options so that a missing one is named in the error.
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    auth_time: Option<NumericDate>,
    acr: Option<Reported>,
    nonce: Option<String>,
    sid: Option<String>,
    name: Option<String>,
    email: Option<String>,
    preferred_username: Option<String>,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, IdTokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| IdTokenError::Malformed(what))
}

/// A compact JWS taken apart for its signature check: what a [`SignatureVerifier`] is given.
/// Drivers whose crypto is asynchronous (WebCrypto) check the signature ahead of
/// [`validate_id_token`] with these parts, then hand it a verifier holding the outcome.
#[derive(Debug)]
pub struct SignedParts<'a> {
    /// The allow-listed header.
    pub header: JwsHeader,
    /// `base64url(header) "." base64url(payload)`.
    pub signing_input: &'a [u8],
    /// The decoded signature.
    pub signature: Vec<u8>,
    payload_b64: &'a str,
}

/// Splits and checks the JOSE layer of a compact JWS: three parts, base64url, an allow-listed
/// `alg` (never `none` or HMAC), no `crit`, at most 16 KiB.
pub fn split_jws(text: &str) -> Result<SignedParts<'_>, IdTokenError> {
    if text.len() > MAX_ID_TOKEN_BYTES {
        return Err(IdTokenError::Malformed("larger than 16 KiB"));
    }
    let mut parts = text.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("not a three-part compact JWS (encrypted ID tokens are not supported)"));
    };
    let raw_header: RawHeader = serde_json::from_slice(&decode_part(header_b64, "header is not base64url")?)
        .map_err(|_| IdTokenError::Malformed("header is not a JOSE header"))?;
    let alg = JwsAlgorithm::from_name(&raw_header.alg)
        .ok_or_else(|| IdTokenError::AlgorithmNotAllowed(crate::oidc::authorize::printable(&raw_header.alg, 16)))?;
    if raw_header.crit.is_some() {
        return Err(IdTokenError::CriticalHeader);
    }
    let signature = decode_part(signature_b64, "signature is not base64url")?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    Ok(SignedParts {
        header: JwsHeader { alg, kid: raw_header.kid },
        signing_input: &text.as_bytes()[..signing_input_len],
        signature,
        payload_b64,
    })
}

/// Validates an ID token; see the module guide for every rule.
pub fn validate_id_token(
    raw: &Secret,
    check: &IdTokenCheck<'_>,
    verifier: &dyn SignatureVerifier,
) -> Result<IdTokenClaims, IdTokenError> {
    // Exposed to split and decode; nothing derived from it is logged.
    let parts = split_jws(raw.expose())?;
    let alg = parts.header.alg.name();
    if !check.provider_algorithms.is_empty() && !check.provider_algorithms.iter().any(|listed| listed == alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()));
    }
    verifier.verify(&parts.header, parts.signing_input, &parts.signature)?;
    let claims: RawClaims = serde_json::from_slice(&decode_part(parts.payload_b64, "payload is not base64url")?)
        .map_err(|_| IdTokenError::Malformed("claims are missing or of the wrong type"))?;
    check_claims(claims, check)
}

fn check_claims(claims: RawClaims, check: &IdTokenCheck<'_>) -> Result<IdTokenClaims, IdTokenError> {
    let iss = claims.iss.ok_or(IdTokenError::MissingClaim("iss"))?;
    let sub = claims.sub.ok_or(IdTokenError::MissingClaim("sub"))?;
    let aud = claims.aud.ok_or(IdTokenError::MissingClaim("aud"))?;
    let exp = claims.exp.ok_or(IdTokenError::MissingClaim("exp"))?;
    let iat = claims.iat.ok_or(IdTokenError::MissingClaim("iat"))?;
    if iss != check.issuer {
        return Err(IdTokenError::Issuer);
    }
    let audiences = match &aud {
        Audience::One(one) => std::slice::from_ref(one),
        Audience::Many(many) => many.as_slice(),
    };
    if !audiences.iter().any(|a| a == check.client_id) {
        return Err(IdTokenError::Audience);
    }
    match claims.azp.as_deref() {
        Some(azp) if azp != check.client_id => return Err(IdTokenError::Audience),
        None if audiences.len() > 1 => return Err(IdTokenError::AuthorizedPartyMissing),
        _ => {}
    }
    let exp = exp.to_time()?;
    let iat = iat.to_time()?;
    if check.server_now.saturating_sub(check.leeway) >= exp {
        return Err(IdTokenError::Expired);
    }
    let too_new = iat > check.server_now.saturating_add(check.leeway);
    // After a refresh (`subject` set) the provider may send the sign-in's ID token again, with
    // its original `iat` (the token comes straight from the token endpoint over TLS): only a
    // future `iat` is refused then.
    let too_old =
        check.subject.is_none() && iat.saturating_add(MAX_IAT_AGE).saturating_add(check.leeway) < check.server_now;
    if too_new || too_old {
        return Err(IdTokenError::IssuedAt);
    }
    if let Some(expected) = check.nonce {
        match claims.nonce.as_deref() {
            Some(nonce) if expected.constant_time_eq(nonce) => {}
            _ => return Err(IdTokenError::Nonce),
        }
    }
    if sub.is_empty() || sub.len() > 255 {
        return Err(IdTokenError::Malformed("sub must be 1 to 255 characters"));
    }
    let auth_time = claims.auth_time.as_ref().map(NumericDate::to_time).transpose()?;
    if let Some(max_age) = check.max_age {
        let auth_time = auth_time.ok_or(IdTokenError::MissingClaim("auth_time"))?;
        let oldest = check.server_now.saturating_sub(Duration::from_secs(max_age)).saturating_sub(check.leeway);
        if auth_time < oldest {
            return Err(IdTokenError::AuthenticationTooOld);
        }
    }
    if let Some(subject) = check.subject
        && subject != sub
    {
        return Err(IdTokenError::SubjectChanged);
    }
    Ok(IdTokenClaims {
        iss,
        sub,
        exp,
        iat,
        auth_time,
        // Shown as sent or not at all: a cleaned-up value could match what the provider did not say.
        acr: claims
            .acr
            .and_then(|Reported(acr)| acr)
            .filter(|acr| !acr.is_empty() && acr.len() <= 255 && acr.chars().all(|c| c.is_ascii_graphic() || c == ' ')),
        sid: claims.sid,
        name: claims.name,
        email: claims.email,
        preferred_username: claims.preferred_username,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in for the JWKS verifier in unit tests: accepts exactly the signature
    /// `b"good"` for key `k1`. Real signatures are checked in the driver's tests.
    pub(crate) struct TestVerifier;

    impl SignatureVerifier for TestVerifier {
        fn verify(&self, header: &JwsHeader, _input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
            match (header.kid.as_deref(), signature) {
                (Some("k1"), b"good") => Ok(()),
                (Some("k1"), _) => Err(SignatureError::Invalid),
                _ => Err(SignatureError::UnknownKey),
            }
        }
    }

    pub(crate) const NOW: u64 = 1_800_000_000;

    pub(crate) fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.example", "sub": "alice", "aud": "app",
            "exp": NOW + 300, "iat": NOW, "nonce": "n-1", "sid": "s"
        })
    }

    pub(crate) fn jwt(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> Secret {
        let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        Secret::new(format!("{}.{}.{}", enc(header), enc(claims), URL_SAFE_NO_PAD.encode(signature)))
    }

    pub(crate) fn signed(claims: &serde_json::Value) -> Secret {
        jwt(&serde_json::json!({"alg": "RS256", "kid": "k1"}), claims, b"good")
    }

    fn check<'a>(nonce: Option<&'a Secret>, subject: Option<&'a str>) -> IdTokenCheck<'a> {
        IdTokenCheck {
            issuer: "https://idp.example",
            client_id: "app",
            nonce,
            subject,
            max_age: None,
            server_now: UnixTime::from_secs(NOW + 10),
            leeway: Duration::from_secs(60),
            provider_algorithms: &[],
        }
    }

    fn validate(token: &Secret) -> Result<IdTokenClaims, IdTokenError> {
        let nonce = Secret::from("n-1");
        validate_id_token(token, &check(Some(&nonce), None), &TestVerifier)
    }

    fn with(field: &str, value: serde_json::Value) -> Secret {
        let mut c = claims();
        c[field] = value;
        signed(&c)
    }

    #[test]
    fn a_good_token_passes() {
        let claims = validate(&signed(&claims())).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.sid.as_deref(), Some("s"));
        assert_eq!(claims.exp, UnixTime::from_secs(NOW + 300));
    }

    #[test]
    fn algorithms_none_and_hmac_are_refused_before_verification() {
        for alg in ["none", "HS256", "hs256", "RS1", ""] {
            let token = jwt(&serde_json::json!({"alg": alg, "kid": "k1"}), &claims(), b"good");
            assert!(matches!(validate(&token), Err(IdTokenError::AlgorithmNotAllowed(_))), "{alg}");
        }
        let crit = jwt(&serde_json::json!({"alg": "ES256", "kid": "k1", "crit": ["b64"]}), &claims(), b"good");
        assert_eq!(validate(&crit), Err(IdTokenError::CriticalHeader));
    }

    /// Issue 11, finding 13: a token that cannot be accepted says which claim is at fault.
    #[test]
    fn missing_claims_and_a_missing_azp_are_named() {
        for claim in ["iss", "sub", "aud", "exp", "iat"] {
            let mut without = claims();
            without.as_object_mut().unwrap().remove(claim);
            let error = validate(&signed(&without)).unwrap_err();
            assert_eq!(error, IdTokenError::MissingClaim(claim));
            assert_eq!(error.to_string(), format!("the ID token has no {claim} claim"));
        }
        let mut several = claims();
        several["aud"] = serde_json::json!(["app", "another-app"]);
        let error = validate(&signed(&several)).unwrap_err();
        assert_eq!(error, IdTokenError::AuthorizedPartyMissing);
        assert!(error.to_string().contains("no azp"), "{error}");
        several["azp"] = "app".into();
        assert!(validate(&signed(&several)).is_ok());
    }

    /// Issue 11, finding 5: discovery's `id_token_signing_alg_values_supported` is enforced.
    #[test]
    fn only_the_algorithms_the_provider_announces_are_accepted() {
        let nonce = Secret::from("n-1");
        let announced = ["ES256".to_owned()];
        let only_es256 = IdTokenCheck { provider_algorithms: &announced, ..check(Some(&nonce), None) };
        let es = jwt(&serde_json::json!({"alg": "ES256", "kid": "k1"}), &claims(), b"good");
        assert!(validate_id_token(&es, &only_es256, &TestVerifier).is_ok());
        let rs = signed(&claims());
        let refused = validate_id_token(&rs, &only_es256, &TestVerifier).unwrap_err();
        assert_eq!(refused, IdTokenError::AlgorithmNotAllowed("RS256".into()));
        assert!(!refused.to_string().contains("\\\""), "no Debug quoting: {refused}");
        // A provider that announces nothing is held to SessionKit's allow-list only.
        assert!(validate_id_token(&rs, &check(Some(&nonce), None), &TestVerifier).is_ok());
    }

    #[test]
    fn signature_failures_are_typed() {
        let bad = jwt(&serde_json::json!({"alg": "RS256", "kid": "k1"}), &claims(), b"forged");
        assert_eq!(validate(&bad), Err(IdTokenError::Signature(SignatureError::Invalid)));
        let unknown = jwt(&serde_json::json!({"alg": "RS256", "kid": "k9"}), &claims(), b"good");
        assert_eq!(validate(&unknown), Err(IdTokenError::Signature(SignatureError::UnknownKey)));
    }

    #[test]
    fn each_claim_rule() {
        assert_eq!(validate(&with("iss", "https://evil.example".into())), Err(IdTokenError::Issuer));
        assert_eq!(validate(&with("aud", "other".into())), Err(IdTokenError::Audience));
        assert_eq!(
            validate(&with("aud", serde_json::json!(["app", "other"]))),
            Err(IdTokenError::AuthorizedPartyMissing)
        );
        let mut multi = claims();
        multi["aud"] = serde_json::json!(["app", "other"]);
        multi["azp"] = "app".into();
        assert!(validate(&signed(&multi)).is_ok());
        multi["azp"] = "other".into();
        assert_eq!(validate(&signed(&multi)), Err(IdTokenError::Audience));
        assert_eq!(validate(&with("exp", (NOW - 120).into())), Err(IdTokenError::Expired));
        assert!(validate(&with("exp", (NOW - 30).into())).is_ok(), "within leeway");
        assert_eq!(validate(&with("iat", (NOW + 600).into())), Err(IdTokenError::IssuedAt));
        assert_eq!(validate(&with("iat", (NOW - 3600).into())), Err(IdTokenError::IssuedAt));
        assert_eq!(validate(&with("nonce", "n-2".into())), Err(IdTokenError::Nonce));
        let mut no_nonce = claims();
        no_nonce.as_object_mut().expect("object").remove("nonce");
        assert_eq!(validate(&signed(&no_nonce)), Err(IdTokenError::Nonce));
    }

    #[test]
    fn a_step_up_needs_a_recent_auth_time() {
        let nonce = Secret::from("n-1");
        let step_up = IdTokenCheck { max_age: Some(300), ..check(Some(&nonce), None) };
        let claims = |auth_time: Option<u64>| {
            let mut claims = serde_json::json!({"iss": "https://idp.example", "aud": "app", "sub": "alice",
                "exp": NOW + 600, "iat": NOW, "nonce": "n-1"});
            if let Some(auth_time) = auth_time {
                claims["auth_time"] = auth_time.into();
            }
            signed(&claims)
        };
        // server_now is NOW + 10; max_age 300 and 60 s of leeway.
        assert!(validate_id_token(&claims(Some(NOW)), &step_up, &TestVerifier).is_ok());
        assert!(validate_id_token(&claims(Some(NOW + 10 - 360)), &step_up, &TestVerifier).is_ok());
        assert_eq!(
            validate_id_token(&claims(Some(NOW + 10 - 361)), &step_up, &TestVerifier),
            Err(IdTokenError::AuthenticationTooOld)
        );
        assert_eq!(
            validate_id_token(&claims(None), &step_up, &TestVerifier),
            Err(IdTokenError::MissingClaim("auth_time"))
        );
        // Without max_age, auth_time is not required.
        assert!(validate(&claims(None)).is_ok());
        assert!(validate(&with("iat", serde_json::json!(NOW as f64 + 0.5))).is_ok());
        assert!(matches!(validate(&with("exp", "tomorrow".into())), Err(IdTokenError::Malformed(_))));
    }

    #[test]
    fn refresh_checks_subject_and_skips_nonce() {
        let mut refreshed = claims();
        refreshed.as_object_mut().expect("object").remove("nonce");
        assert!(validate_id_token(&signed(&refreshed), &check(None, Some("alice")), &TestVerifier).is_ok());
        refreshed["sub"] = "mallory".into();
        assert_eq!(
            validate_id_token(&signed(&refreshed), &check(None, Some("alice")), &TestVerifier),
            Err(IdTokenError::SubjectChanged)
        );
    }

    #[test]
    fn malformed_shapes() {
        for text in ["", "a.b", "a.b.c.d.e", "!!.??.**", &"a".repeat(MAX_ID_TOKEN_BYTES + 1)] {
            assert!(matches!(validate(&Secret::from(text)), Err(IdTokenError::Malformed(_))), "{text:.20}");
        }
    }
}
