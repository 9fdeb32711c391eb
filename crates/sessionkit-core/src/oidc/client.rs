//! Who we are to the provider: the issuer we trust, our client id, redirect URI and scopes.
//!
//! [`Issuer::parse`] and [`RedirectUri::parse`] enforce the transport rules of SECURITY.md:
//! an issuer is `https` with a host and no query or fragment; a redirect URI is `https`,
//! a private-use scheme (`com.example.app:/callback`), or `http` on a loopback address only.

use std::fmt;

use crate::url::{Host, Url, UrlError};

/// The longest issuer or redirect URI accepted.
const MAX_URL_LEN: usize = 2048;

/// A configuration value that cannot be used; the message names the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not an absolute URL, or too long.
    #[error("{what} is not a valid absolute URL")]
    NotAUrl {
        /// Which setting.
        what: &'static str,
    },
    /// `http` where `https` is required.
    #[error("{what} must use https (http is allowed only for loopback redirect URIs)")]
    NotHttps {
        /// Which setting.
        what: &'static str,
    },
    /// An issuer with a query, fragment or credentials.
    #[error("the issuer must not contain a query, fragment or user info")]
    IssuerHasExtras,
    /// A loopback redirect naming `localhost` instead of an IP literal (RFC 8252 8.3).
    #[error("loopback redirect URIs must use 127.0.0.1 or [::1], not localhost")]
    LoopbackByName,
    /// An empty client id or scope list without `openid`.
    #[error("{0}")]
    Invalid(&'static str),
}

/// The provider's issuer identifier, exactly as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Issuer {
    text: String,
    url: Url,
}

impl Issuer {
    /// Validates an issuer: `https`, a host, no query, fragment or credentials.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let what = "the issuer";
        if text.len() > MAX_URL_LEN {
            return Err(ConfigError::NotAUrl { what });
        }
        let url = Url::parse(text).map_err(|error| match error {
            UrlError::UserInfo => ConfigError::IssuerHasExtras,
            _ => ConfigError::NotAUrl { what },
        })?;
        if url.scheme() != "https" {
            return Err(ConfigError::NotHttps { what });
        }
        if url.host().is_none() {
            return Err(ConfigError::NotAUrl { what });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::IssuerHasExtras);
        }
        Ok(Self { text: text.to_owned(), url })
    }

    /// The issuer exactly as configured (compared byte for byte with `iss` values).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, section 4).
    pub fn discovery_url(&self) -> Url {
        self.url.with_path_suffix("/.well-known/openid-configuration")
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Issuer({})", self.text)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where the provider sends the browser back after sign-in or sign-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(Url);

impl RedirectUri {
    /// Validates a redirect URI: `https`, a private-use scheme, or loopback `http`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let what = "the redirect URI";
        if text.len() > MAX_URL_LEN {
            return Err(ConfigError::NotAUrl { what });
        }
        let url = Url::parse(text).map_err(|_| ConfigError::NotAUrl { what })?;
        if url.fragment().is_some() {
            return Err(ConfigError::NotAUrl { what });
        }
        match url.scheme() {
            "https" => Ok(Self(url)),
            "http" => match url.host() {
                Some(Host::Ipv4(ip)) if ip.is_loopback() => Ok(Self(url)),
                Some(Host::Ipv6(ip)) if ip.is_loopback() => Ok(Self(url)),
                Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => Err(ConfigError::LoopbackByName),
                _ => Err(ConfigError::NotHttps { what }),
            },
            // Private-use URI schemes (RFC 8252 7.1) contain a dot: reverse domain names.
            scheme if scheme.contains('.') => Ok(Self(url)),
            _ => Err(ConfigError::NotHttps { what }),
        }
    }

    /// The URI as sent to the provider.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URI.
    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// This app's registration at the provider.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The trusted issuer.
    pub issuer: Issuer,
    /// The public client's id (native and browser apps hold no client secret).
    pub client_id: String,
    /// The redirect URI registered for this client.
    pub redirect_uri: RedirectUri,
    /// Scopes to request; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser after sign-out, if registered.
    pub post_logout_redirect_uri: Option<RedirectUri>,
}

impl ClientConfig {
    /// A configuration with the given scopes (`openid` is added if absent).
    pub fn new(
        issuer: Issuer,
        client_id: &str,
        redirect_uri: RedirectUri,
        scopes: &[&str],
    ) -> Result<Self, ConfigError> {
        if client_id.is_empty() || client_id.len() > 256 {
            return Err(ConfigError::Invalid("the client id must be 1 to 256 characters"));
        }
        let mut all: Vec<String> = Vec::with_capacity(scopes.len() + 1);
        if !scopes.contains(&"openid") {
            all.push("openid".into());
        }
        for scope in scopes {
            if scope.is_empty() || !scope.bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\') {
                return Err(ConfigError::Invalid("scopes must be non-empty printable ASCII without spaces"));
            }
            all.push((*scope).to_owned());
        }
        Ok(Self { issuer, client_id: client_id.to_owned(), redirect_uri, scopes: all, post_logout_redirect_uri: None })
    }

    /// The space-separated scope parameter.
    pub fn scope_param(&self) -> String {
        self.scopes.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_rules() {
        assert!(Issuer::parse("https://idp.example").is_ok());
        assert!(Issuer::parse("https://idp.example/realms/a").is_ok());
        assert_eq!(Issuer::parse("http://idp.example").err(), Some(ConfigError::NotHttps { what: "the issuer" }));
        assert_eq!(Issuer::parse("https://idp.example/?x=1").err(), Some(ConfigError::IssuerHasExtras));
        assert_eq!(Issuer::parse("https://idp.example/#f").err(), Some(ConfigError::IssuerHasExtras));
        assert_eq!(Issuer::parse("https://u:p@idp.example").err(), Some(ConfigError::IssuerHasExtras));
        assert!(Issuer::parse("not a url").is_err());
        assert!(Issuer::parse(&format!("https://idp.example/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn discovery_url_appends_well_known() {
        let root = Issuer::parse("https://idp.example").expect("issuer");
        assert_eq!(root.discovery_url().as_str(), "https://idp.example/.well-known/openid-configuration");
        let tenant = Issuer::parse("https://idp.example/tenant/").expect("issuer");
        assert_eq!(tenant.discovery_url().as_str(), "https://idp.example/tenant/.well-known/openid-configuration");
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(RedirectUri::parse("http://127.0.0.1:4711/callback").is_ok());
        assert!(RedirectUri::parse("http://[::1]:4711/callback").is_ok());
        assert!(RedirectUri::parse("https://app.example/cb").is_ok());
        assert!(RedirectUri::parse("com.example.app:/oauth2redirect").is_ok());
        assert_eq!(RedirectUri::parse("http://localhost/cb").err(), Some(ConfigError::LoopbackByName));
        assert!(matches!(RedirectUri::parse("http://app.example/cb"), Err(ConfigError::NotHttps { .. })));
        assert!(matches!(RedirectUri::parse("http://10.0.0.1/cb"), Err(ConfigError::NotHttps { .. })));
        assert!(RedirectUri::parse("https://app.example/cb#x").is_err());
    }

    #[test]
    fn client_config_adds_openid_and_checks_scopes() {
        let issuer = Issuer::parse("https://idp.example").expect("issuer");
        let redirect = RedirectUri::parse("http://127.0.0.1/cb").expect("redirect");
        let config = ClientConfig::new(issuer.clone(), "app", redirect.clone(), &["offline_access"]).expect("config");
        assert_eq!(config.scope_param(), "openid offline_access");
        assert!(ClientConfig::new(issuer.clone(), "", redirect.clone(), &[]).is_err());
        assert!(ClientConfig::new(issuer, "app", redirect, &["a b"]).is_err());
    }
}
