//! Where `sessionkit call` may send the access token: only to origins the user named (and the
//! provider's own), and never in clear text over the network.
//!
//! An access token is a bearer credential: whoever sees it can use it until it expires. So a
//! call goes out only to an allowed origin (scheme, host and port: the issuer's, and each
//! `--api-origin`), over https, or over http to a loopback address (a local test server).
//! Redirects are not followed: the answer to a redirect is shown instead.

use std::net::IpAddr;

use reqwest::Url;

use crate::output::Failure;

/// Whether `url` may travel over plain http: a loopback address only.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host.eq_ignore_ascii_case("localhost")
}

/// An origin the token may be sent to, from the configuration: http(s), a host, nothing else.
fn origin(text: &str, what: &str) -> Result<Url, Failure> {
    let url = Url::parse(text).map_err(|_| Failure::usage(format!("{what} {text:?} is not a URL")))?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !secure || url.host().is_none() || url.cannot_be_a_base() {
        return Err(Failure::usage(format!(
            "{what} {text:?} is not an https origin (plain http is allowed for loopback addresses only)"
        )));
    }
    Ok(url)
}

/// The URL to call, if the token may go there.
pub(crate) fn allowed_target(url: &str, issuer: &str, api_origins: &[String]) -> Result<Url, Failure> {
    let target = origin(url, "the URL")?;
    let mut allowed = vec![origin(issuer, "the issuer")?.origin()];
    for extra in api_origins {
        allowed.push(origin(extra, "the API origin")?.origin());
    }
    if !allowed.contains(&target.origin()) {
        return Err(Failure {
            message: format!(
                "refusing to send the access token to {}: it is not the provider's origin nor an --api-origin",
                target.origin().ascii_serialization()
            ),
            hint: Some(format!(
                "if you trust it with your session, add --api-origin {} (or SESSIONKIT_API_ORIGINS)",
                target.origin().ascii_serialization()
            )),
            code: 2,
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example/realms/demo";

    fn allowed(url: &str, extra: &[&str]) -> Result<String, String> {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        allowed_target(url, ISSUER, &extra).map(|u| u.to_string()).map_err(|f| f.message)
    }

    #[test]
    fn the_token_goes_only_to_allowed_origins_over_https_or_loopback() {
        assert!(allowed("https://idp.example/userinfo", &[]).is_ok(), "the provider's origin");
        assert!(allowed("https://api.example/v1/me", &["https://api.example"]).is_ok());
        let elsewhere = allowed("https://evil.example/steal", &["https://api.example"]).unwrap_err();
        assert!(elsewhere.contains("https://evil.example") && elsewhere.contains("refusing"), "{elsewhere}");
        // The port and the scheme are part of the origin.
        assert!(allowed("https://api.example:8443/", &["https://api.example"]).is_err());
        // Plain http: loopback only, even when named.
        assert!(allowed("http://api.example/", &["http://api.example"]).unwrap_err().contains("not an https origin"));
        assert!(allowed("http://127.0.0.1:8080/api", &["http://127.0.0.1:8080"]).is_ok());
        assert!(allowed("http://[::1]:8080/api", &["http://[::1]:8080"]).is_ok());
        // Origins that are not http(s) are refused, not turned into an opaque "null" origin.
        for bad in ["data:text/plain,hi", "file:///etc", "mailto:a@b.example"] {
            assert!(allowed("https://api.example/", &[bad]).is_err(), "{bad}");
        }
    }
}
