//! Provider metadata (OpenID Connect Discovery 1.0 / RFC 8414), validated before use.
//!
//! Fetch [`Issuer::discovery_url`](super::Issuer::discovery_url) and hand the response to
//! [`ProviderMetadata::from_response`]. It refuses a document whose `issuer` is not exactly
//! the configured one (a mix-up or a misconfiguration), any non-`https` endpoint, a provider
//! that lists PKCE methods without `S256`, and bodies over [`MAX_DISCOVERY_BYTES`].

use crate::url::Url;
use serde::Deserialize;

use super::client::Issuer;
use crate::http::HttpResponse;

/// The largest discovery document accepted.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// Why a discovery document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Not a 200 response.
    #[error("the discovery request failed with HTTP status {0}")]
    Status(u16),
    /// Larger than [`MAX_DISCOVERY_BYTES`].
    #[error("the discovery document is larger than {MAX_DISCOVERY_BYTES} bytes")]
    TooLarge,
    /// Not JSON of the expected shape.
    #[error("the discovery document is malformed: {0}")]
    Malformed(String),
    /// `issuer` differs from the configured issuer.
    #[error(
        "the discovery document names issuer '{found}', but '{expected}' is configured: set the issuer to the provider's exact issuer URL"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// An endpoint that is not an `https` URL.
    #[error("the provider's {0} is not an https URL")]
    InsecureEndpoint(&'static str),
    /// The provider lists PKCE methods and `S256` is not among them.
    #[error("the provider does not support PKCE with S256")]
    NoPkceS256,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: Option<String>,
    revocation_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    dpop_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The provider's endpoints and capabilities, every URL checked to be `https`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// The issuer, equal to the configured one.
    pub issuer: String,
    /// Where the browser goes to sign in.
    pub authorization_endpoint: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Url,
    /// The provider's signing keys.
    pub jwks_uri: Option<Url>,
    /// RFC 7009 token revocation.
    pub revocation_endpoint: Option<Url>,
    /// OpenID Connect RP-Initiated Logout.
    pub end_session_endpoint: Option<Url>,
    /// RFC 8628 device authorization.
    pub device_authorization_endpoint: Option<Url>,
    /// RFC 7662 token introspection.
    pub introspection_endpoint: Option<Url>,
    /// The UserInfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// ID token signing algorithms the provider may use (empty when not listed).
    pub id_token_signing_algs: Vec<String>,
    /// RFC 9449: the algorithms the provider accepts for DPoP proofs (empty: no DPoP).
    pub dpop_signing_algs: Vec<String>,
    /// RFC 9207: the provider promises an `iss` parameter in every authorization response.
    pub iss_parameter_supported: bool,
}

/// What was wrong with the document: the field names and expectations serde gives, never a
/// string value (the provider's text, which serde quotes), so that the message reads the same
/// whether or not `Debug` formatting is compiled in (the browser's release build has none):
/// "invalid type: string, expected a boolean (line 1, column 9)".
fn malformed(error: &serde_json::Error) -> DiscoveryError {
    let text = error.to_string();
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    // One quoted value at most; quotes inside it are escaped, and serde's expectations have none.
    let without_value = match (text.find('"'), text.rfind('"')) {
        (Some(open), Some(close)) if open < close => format!("{}{}", &text[..open], &text[close + 1..]),
        (Some(open), _) => text[..open].to_owned(),
        _ => text.to_owned(),
    };
    let message = without_value.replace(" ,", ",");
    DiscoveryError::Malformed(format!("{} (line {}, column {})", message.trim(), error.line(), error.column()))
}

impl ProviderMetadata {
    /// Validates a discovery response against the configured issuer.
    pub fn from_response(issuer: &Issuer, response: &HttpResponse) -> Result<Self, DiscoveryError> {
        if response.status() != 200 {
            return Err(DiscoveryError::Status(response.status()));
        }
        Self::from_json(issuer, response.body())
    }

    /// Validates a discovery document's bytes against the configured issuer.
    pub fn from_json(issuer: &Issuer, body: &[u8]) -> Result<Self, DiscoveryError> {
        if body.len() > MAX_DISCOVERY_BYTES {
            return Err(DiscoveryError::TooLarge);
        }
        let raw: RawMetadata = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
        if raw.issuer != issuer.as_str() {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.as_str().to_owned(),
                found: crate::oidc::authorize::printable(&raw.issuer, 200),
            });
        }
        if let Some(methods) = &raw.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(DiscoveryError::NoPkceS256);
        }
        let optional = |value: Option<String>, name| value.map(|v| https_url(&v, name)).transpose();
        Ok(Self {
            authorization_endpoint: https_url(&raw.authorization_endpoint, "authorization_endpoint")?,
            token_endpoint: https_url(&raw.token_endpoint, "token_endpoint")?,
            jwks_uri: optional(raw.jwks_uri, "jwks_uri")?,
            revocation_endpoint: optional(raw.revocation_endpoint, "revocation_endpoint")?,
            end_session_endpoint: optional(raw.end_session_endpoint, "end_session_endpoint")?,
            device_authorization_endpoint: optional(
                raw.device_authorization_endpoint,
                "device_authorization_endpoint",
            )?,
            introspection_endpoint: optional(raw.introspection_endpoint, "introspection_endpoint")?,
            userinfo_endpoint: optional(raw.userinfo_endpoint, "userinfo_endpoint")?,
            id_token_signing_algs: raw.id_token_signing_alg_values_supported.unwrap_or_default(),
            dpop_signing_algs: raw.dpop_signing_alg_values_supported.unwrap_or_default(),
            iss_parameter_supported: raw.authorization_response_iss_parameter_supported,
            issuer: raw.issuer,
        })
    }
}

fn https_url(text: &str, name: &'static str) -> Result<Url, DiscoveryError> {
    match Url::parse(text) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() && url.fragment().is_none() => Ok(url),
        _ => Err(DiscoveryError::InsecureEndpoint(name)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const ISSUER: &str = "https://idp.example";

    pub(crate) fn document() -> serde_json::Value {
        serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": "https://idp.example/jwks",
            "revocation_endpoint": "https://idp.example/token/revocation",
            "end_session_endpoint": "https://idp.example/session/end",
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "id_token_signing_alg_values_supported": ["RS256", "ES256"]
        })
    }

    pub(crate) fn metadata() -> ProviderMetadata {
        let issuer = Issuer::parse(ISSUER).expect("issuer");
        ProviderMetadata::from_json(&issuer, document().to_string().as_bytes()).expect("valid metadata")
    }

    fn parse(doc: &serde_json::Value) -> Result<ProviderMetadata, DiscoveryError> {
        ProviderMetadata::from_json(&Issuer::parse(ISSUER).expect("issuer"), doc.to_string().as_bytes())
    }

    #[test]
    fn a_valid_document_is_accepted() {
        let meta = metadata();
        assert_eq!(meta.token_endpoint.as_str(), "https://idp.example/token");
        assert!(meta.iss_parameter_supported);
        assert!(meta.device_authorization_endpoint.is_none());
    }

    #[test]
    fn issuer_must_match_exactly() {
        let mut doc = document();
        doc["issuer"] = "https://idp.example/".into();
        assert!(matches!(parse(&doc), Err(DiscoveryError::IssuerMismatch { .. })));
        doc["issuer"] = "https://evil.example".into();
        assert!(matches!(parse(&doc), Err(DiscoveryError::IssuerMismatch { .. })));
    }

    #[test]
    fn endpoints_must_be_https() {
        let mut doc = document();
        doc["token_endpoint"] = "http://idp.example/token".into();
        assert_eq!(parse(&doc), Err(DiscoveryError::InsecureEndpoint("token_endpoint")));
        let mut doc = document();
        doc["revocation_endpoint"] = "javascript:alert(1)".into();
        assert_eq!(parse(&doc), Err(DiscoveryError::InsecureEndpoint("revocation_endpoint")));
    }

    #[test]
    fn pkce_without_s256_is_refused() {
        let mut doc = document();
        doc["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert_eq!(parse(&doc), Err(DiscoveryError::NoPkceS256));
    }

    #[test]
    fn size_status_and_shape_are_checked() {
        let issuer = Issuer::parse(ISSUER).expect("issuer");
        let big = vec![b' '; MAX_DISCOVERY_BYTES + 1];
        assert_eq!(ProviderMetadata::from_json(&issuer, &big), Err(DiscoveryError::TooLarge));
        assert!(matches!(ProviderMetadata::from_json(&issuer, b"[1,2]"), Err(DiscoveryError::Malformed(_))));
        let wrong_type = br#"{"issuer": "https://id.example.com", "authorization_endpoint": 5}"#;
        let Err(DiscoveryError::Malformed(message)) = ProviderMetadata::from_json(&issuer, wrong_type) else {
            panic!("refused")
        };
        assert_eq!(message, "invalid type: integer `5`, expected a string (line 1, column 64)");
        let missing = br#"{"issuer": "https://id.example.com"}"#;
        let Err(DiscoveryError::Malformed(message)) = ProviderMetadata::from_json(&issuer, missing) else {
            panic!("refused")
        };
        assert!(message.starts_with("missing field `authorization_endpoint` (line 1"), "{message}");
        let value = br#"{"issuer": "https://id.example.com", "authorization_response_iss_parameter_supported": "provider's text"}"#;
        let Err(DiscoveryError::Malformed(message)) = ProviderMetadata::from_json(&issuer, value) else {
            panic!("refused")
        };
        assert!(message.starts_with("invalid type: string, expected a boolean (line 1, column "), "{message}");
        let not_found = HttpResponse::new(404, Vec::new());
        assert_eq!(ProviderMetadata::from_response(&issuer, &not_found), Err(DiscoveryError::Status(404)));
    }
}
