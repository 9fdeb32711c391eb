//! The token endpoint: requests for refresh and revocation, and strict parsing of answers.
//!
//! [`TokenOutcome::classify`] turns any HTTP response from the token endpoint into one of
//! four answers the session can act on: tokens ([`TokenResponse`]), a refusal with an OAuth
//! error code ([`TokenError`]), a transient failure worth retrying (429, 5xx, with the
//! `Retry-After` it carried), or a malformed answer. Bodies over [`MAX_TOKEN_RESPONSE_BYTES`]
//! and tokens over [`MAX_TOKEN_BYTES`] are refused before anything else reads them.

use std::time::Duration;

use crate::url::Url;
use serde::Deserialize;

use super::authorize::printable;
use crate::http::{HttpRequest, HttpResponse};
use crate::{Secret, UnixTime};

/// The largest token endpoint body accepted.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// The longest single token accepted.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest `expires_in` believed: a year. Longer values are clamped to it.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(365 * 24 * 3600);

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` or `DPoP` (compared case-insensitively when parsed).
    pub token_type: String,
    /// Lifetime of the access token, if the provider said.
    pub expires_in: Option<Duration>,
    /// A refresh token; on refresh, a new one means the old one was rotated out.
    pub refresh_token: Option<Secret>,
    /// An ID token (always at login with `openid`; sometimes on refresh).
    pub id_token: Option<Secret>,
    /// Granted scopes, when they differ from those requested.
    pub scope: Option<String>,
}

/// OAuth error codes of the token endpoint (RFC 6749 section 5.2, RFC 8628 section 3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorCode {
    /// The grant (code or refresh token) is invalid, expired, revoked or reused.
    InvalidGrant,
    /// Client authentication failed: a configuration problem.
    InvalidClient,
    /// The client may not use this grant type: a configuration problem.
    UnauthorizedClient,
    /// The request is malformed.
    InvalidRequest,
    /// A requested scope is not allowed.
    InvalidScope,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// Device flow: the user has not approved yet.
    AuthorizationPending,
    /// Device flow: poll more slowly.
    SlowDown,
    /// Device flow: the user refused.
    AccessDenied,
    /// Device flow: the device code expired.
    ExpiredToken,
    /// Any other code (printable ASCII, truncated).
    Other(String),
}

impl TokenErrorCode {
    fn parse(code: &str) -> Self {
        match code {
            "invalid_grant" => Self::InvalidGrant,
            "invalid_client" => Self::InvalidClient,
            "unauthorized_client" => Self::UnauthorizedClient,
            "invalid_request" => Self::InvalidRequest,
            "invalid_scope" => Self::InvalidScope,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "access_denied" => Self::AccessDenied,
            "expired_token" => Self::ExpiredToken,
            other => Self::Other(printable(other, 64)),
        }
    }

    /// The OAuth error code as the provider sent it (`invalid_grant`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::Other(code) => code,
        }
    }

    /// A refusal that is about the client's registration, not the user's grant: a developer
    /// must fix it, and signing in again would not help.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::InvalidClient | Self::UnauthorizedClient | Self::UnsupportedGrantType | Self::InvalidScope)
    }
}

impl std::fmt::Display for TokenErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the provider refused the request: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct TokenError {
    /// What went wrong.
    pub code: TokenErrorCode,
    /// The provider's text, printable ASCII, at most 200 characters.
    pub description: Option<String>,
}

/// Why a token endpoint answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedToken {
    /// Larger than [`MAX_TOKEN_RESPONSE_BYTES`], or a token over [`MAX_TOKEN_BYTES`].
    #[error("the token response is too large")]
    TooLarge,
    /// Not JSON of the expected shape (the message names the field, never its value).
    #[error("the token response is malformed: {0}")]
    Shape(String),
    /// A `token_type` other than Bearer or DPoP.
    #[error("the provider issued a token of type '{0}', which SessionKit does not support (only Bearer and DPoP)")]
    TokenType(String),
    /// An empty token or a non-positive lifetime.
    #[error("the token response has an empty token or a zero lifetime")]
    Empty,
    /// A status that is neither success, an OAuth error, nor transient.
    #[error("unexpected HTTP status {0} from the token endpoint")]
    Status(u16),
    /// A Bearer token answered a request that carried a DPoP proof, and the policy requires
    /// DPoP: accepting it would be a silent downgrade.
    #[error(
        "the provider issued a Bearer token although DPoP is required; enable DPoP-bound tokens for this \
         client at the provider"
    )]
    NotDpopBound,
    /// A Bearer token answered the refresh of a session whose tokens were DPoP-bound: a
    /// downgrade, refused; the session ends (its refresh token was spent by that answer).
    #[error(
        "the provider answered the refresh of this DPoP-bound session with a Bearer token (a downgrade); \\
         the session ended; sign in again"
    )]
    Downgraded,
    /// A DPoP token answered a request that carried no proof: it could never be used.
    #[error("the provider issued a DPoP token to a request without a DPoP proof")]
    UnexpectedDpop,
}

impl TokenResponse {
    /// Whether the access token is DPoP-bound (`token_type: DPoP`) rather than a Bearer token.
    pub fn is_dpop(&self) -> bool {
        self.token_type == "DPoP"
    }
}

/// What a token endpoint response means for the session.
#[derive(Debug, Clone)]
pub enum TokenOutcome {
    /// Tokens were issued.
    Tokens(TokenResponse),
    /// The request was refused with an OAuth error code.
    Refused(TokenError),
    /// 429 or 5xx: try again later, no sooner than `retry_after` if given.
    Transient {
        /// The HTTP status.
        status: u16,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The answer cannot be trusted or understood.
    Malformed(MalformedToken),
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Secret,
    token_type: String,
    #[serde(default, deserialize_with = "expires_in")]
    expires_in: Option<u64>,
    refresh_token: Option<Secret>,
    id_token: Option<Secret>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct RawTokenError {
    error: String,
    error_description: Option<String>,
}

/// `expires_in` as a JSON number or, as some providers send it, a numeric string.
/// Read by hand rather than through an untagged enum (which buffers the value first).
fn expires_in<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Shape;
    impl serde::de::Visitor<'_> for Shape {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of seconds, as a number or a string")
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Option<u64>, E> {
            Ok(Some(value))
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Option<u64>, E> {
            value.parse().map(Some).map_err(|_| E::custom("expires_in is not a number"))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Shape)
}

/// Serde's messages can quote input; keep only the part before any quoted value.
fn shape_error(error: &serde_json::Error) -> MalformedToken {
    let text = error.to_string();
    let safe = text.split(['`', '"']).next().unwrap_or("invalid JSON").trim();
    MalformedToken::Shape(format!("{safe} (line {}, column {})", error.line(), error.column()))
}

impl TokenOutcome {
    /// Reads a token endpoint response. `now` resolves an HTTP-date `Retry-After`.
    pub fn classify(response: &HttpResponse, now: UnixTime) -> Self {
        let status = response.status();
        if response.is_transient() {
            return Self::Transient { status, retry_after: response.retry_after(now) };
        }
        if response.body().len() > MAX_TOKEN_RESPONSE_BYTES {
            return Self::Malformed(MalformedToken::TooLarge);
        }
        match status {
            200 => match parse_success(response.body()) {
                Ok(tokens) => Self::Tokens(tokens),
                Err(error) => Self::Malformed(error),
            },
            400 | 401 | 403 => match serde_json::from_slice::<RawTokenError>(response.body()) {
                Ok(raw) => Self::Refused(TokenError {
                    code: TokenErrorCode::parse(&raw.error),
                    description: raw.error_description.map(|d| printable(&d, 200)),
                }),
                Err(_) => Self::Malformed(MalformedToken::Status(status)),
            },
            other => Self::Malformed(MalformedToken::Status(other)),
        }
    }
}

fn parse_success(body: &[u8]) -> Result<TokenResponse, MalformedToken> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|e| shape_error(&e))?;
    let too_long = |s: &Option<Secret>| s.as_ref().is_some_and(|s| s.len() > MAX_TOKEN_BYTES);
    if raw.access_token.len() > MAX_TOKEN_BYTES || too_long(&raw.refresh_token) || too_long(&raw.id_token) {
        return Err(MalformedToken::TooLarge);
    }
    let empty = |s: &Option<Secret>| s.as_ref().is_some_and(Secret::is_empty);
    if raw.access_token.is_empty() || empty(&raw.refresh_token) || empty(&raw.id_token) || raw.expires_in == Some(0) {
        return Err(MalformedToken::Empty);
    }
    let token_type = if raw.token_type.eq_ignore_ascii_case("bearer") {
        "Bearer"
    } else if raw.token_type.eq_ignore_ascii_case("dpop") {
        "DPoP"
    } else {
        return Err(MalformedToken::TokenType(printable(&raw.token_type, 32)));
    };
    Ok(TokenResponse {
        access_token: raw.access_token,
        token_type: token_type.to_owned(),
        expires_in: raw.expires_in.map(|s| Duration::from_secs(s).min(MAX_EXPIRES_IN)),
        refresh_token: raw.refresh_token,
        id_token: raw.id_token,
        scope: raw.scope.map(|s| printable(&s, 1024)),
    })
}

/// The refresh grant (RFC 6749 section 6) for a public client.
pub fn refresh_request(token_endpoint: &Url, client_id: &str, refresh_token: &Secret) -> HttpRequest {
    HttpRequest::post_form(
        token_endpoint.clone(),
        &[
            ("grant_type", "refresh_token"),
            // Sent only to the token endpoint, over https.
            ("refresh_token", refresh_token.expose()),
            ("client_id", client_id),
        ],
    )
}

/// Token revocation (RFC 7009) for a public client; `hint` is `refresh_token` or `access_token`.
pub fn revocation_request(revocation_endpoint: &Url, client_id: &str, token: &Secret, hint: &str) -> HttpRequest {
    HttpRequest::post_form(
        revocation_endpoint.clone(),
        &[
            // Sent only to the revocation endpoint, over https.
            ("token", token.expose()),
            ("token_type_hint", hint),
            ("client_id", client_id),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> TokenOutcome {
        TokenOutcome::classify(&HttpResponse::new(200, body.as_bytes().to_vec()), UnixTime::EPOCH)
    }

    #[test]
    fn success_is_parsed() {
        let TokenOutcome::Tokens(t) = ok(
            r#"{"access_token":"at","token_type":"bearer","expires_in":300,"refresh_token":"rt","id_token":"a.b.c","extra":1}"#,
        ) else {
            panic!("expected tokens");
        };
        assert!(t.access_token.constant_time_eq("at"));
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(Duration::from_secs(300)));
        assert!(t.refresh_token.is_some_and(|r| r.constant_time_eq("rt")));
        let TokenOutcome::Tokens(t) = ok(r#"{"access_token":"at","token_type":"Bearer","expires_in":"60"}"#) else {
            panic!("expected tokens");
        };
        assert_eq!(t.expires_in, Some(Duration::from_secs(60)));
        for no_expiry in [
            r#"{"access_token":"at","token_type":"Bearer","expires_in":null}"#,
            r#"{"access_token":"at","token_type":"Bearer"}"#,
        ] {
            let TokenOutcome::Tokens(t) = ok(no_expiry) else { panic!("expected tokens: {no_expiry}") };
            assert_eq!(t.expires_in, None);
        }
    }

    #[test]
    fn strict_types() {
        for body in [
            r#"{"access_token":"at"}"#,
            r#"{"access_token":7,"token_type":"Bearer"}"#,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":-5}"#,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":"soon"}"#,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":300.5}"#,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":[300]}"#,
            "not json",
        ] {
            assert!(matches!(ok(body), TokenOutcome::Malformed(MalformedToken::Shape(_))), "{body}");
        }
        assert!(matches!(
            ok(r#"{"access_token":"at","token_type":"mac"}"#),
            TokenOutcome::Malformed(MalformedToken::TokenType(_))
        ));
        assert!(matches!(
            ok(r#"{"access_token":"","token_type":"Bearer"}"#),
            TokenOutcome::Malformed(MalformedToken::Empty)
        ));
        assert!(matches!(
            ok(r#"{"access_token":"a","token_type":"Bearer","expires_in":0}"#),
            TokenOutcome::Malformed(MalformedToken::Empty)
        ));
    }

    #[test]
    fn size_limits() {
        let big = format!(r#"{{"access_token":"{}","token_type":"Bearer"}}"#, "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(ok(&big), TokenOutcome::Malformed(MalformedToken::TooLarge)));
        let huge = vec![b' '; MAX_TOKEN_RESPONSE_BYTES + 1];
        assert!(matches!(
            TokenOutcome::classify(&HttpResponse::new(200, huge), UnixTime::EPOCH),
            TokenOutcome::Malformed(MalformedToken::TooLarge)
        ));
    }

    #[test]
    fn errors_and_transient_failures() {
        let refused = HttpResponse::new(
            400,
            br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#.to_vec(),
        );
        let TokenOutcome::Refused(err) = TokenOutcome::classify(&refused, UnixTime::EPOCH) else { panic!("refused") };
        assert_eq!(err.code, TokenErrorCode::InvalidGrant);
        assert_eq!(err.description.as_deref(), Some("grant request is invalid"));

        let busy = HttpResponse::new(503, b"<html>".to_vec()).with_header("Retry-After", "7");
        assert!(matches!(
            TokenOutcome::classify(&busy, UnixTime::EPOCH),
            TokenOutcome::Transient { status: 503, retry_after: Some(d) } if d == Duration::from_secs(7)
        ));
        let limited = HttpResponse::new(429, Vec::new());
        assert!(matches!(
            TokenOutcome::classify(&limited, UnixTime::EPOCH),
            TokenOutcome::Transient { status: 429, retry_after: None }
        ));
        let odd = HttpResponse::new(302, Vec::new());
        assert!(matches!(
            TokenOutcome::classify(&odd, UnixTime::EPOCH),
            TokenOutcome::Malformed(MalformedToken::Status(302))
        ));
        let html_400 = HttpResponse::new(400, b"<html>".to_vec());
        assert!(matches!(
            TokenOutcome::classify(&html_400, UnixTime::EPOCH),
            TokenOutcome::Malformed(MalformedToken::Status(400))
        ));
    }

    #[test]
    fn malformed_messages_never_quote_tokens() {
        let outcome = ok(r#"{"access_token":"SECRET-AT","token_type":"SECRET-TYPE-X","refresh_token":5}"#);
        let TokenOutcome::Malformed(err) = outcome else { panic!("malformed") };
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET-AT"), "{text}");
    }

    #[test]
    fn requests_are_well_formed() {
        let url = Url::parse("https://idp.example/token").expect("url");
        let body = refresh_request(&url, "app", &Secret::from("rt")).body.expect("body");
        assert_eq!(body.expose(), "grant_type=refresh_token&refresh_token=rt&client_id=app");
        let body = revocation_request(&url, "app", &Secret::from("rt"), "refresh_token").body.expect("body");
        assert_eq!(body.expose(), "token=rt&token_type_hint=refresh_token&client_id=app");
    }
}
