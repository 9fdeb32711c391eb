//! A strict, ASCII-only absolute URL: what OAuth endpoints, issuers and redirect URIs are.
//!
//! SessionKit does not use the `url` crate in the core because its IDNA tables cost 86 KB of
//! gzipped wasm (42 KB even with IDNA disabled), more than the web package's whole budget
//! (ARCHITECTURE.md has the figures). The URLs a session handles are narrow: a scheme, an
//! optional authority (host and port, never credentials), a path, a query and a fragment,
//! per RFC 3986, in ASCII. [`Url::parse`] accepts exactly that and refuses anything else
//! (spaces, backslashes, raw non-ASCII, user info, bad percent-escapes, bad ports) with a
//! typed [`UrlError`]: a strict parser leaves no room for two parsers to disagree about
//! where a URL points. Internationalised host names must be given in their `xn--` form.
//!
//! Queries are read and written as `application/x-www-form-urlencoded` with the
//! `form_urlencoded` crate (the `url` project's own, without IDNA).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an acceptable URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No scheme, or a scheme with characters RFC 3986 does not allow.
    #[error("the URL has no valid scheme")]
    Scheme,
    /// A character outside printable ASCII, or one not allowed where it stands.
    #[error("the URL contains a character that is not allowed")]
    Character,
    /// A `%` not followed by two hex digits.
    #[error("the URL contains a malformed percent-escape")]
    PercentEscape,
    /// A user name or password in the authority.
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    /// An empty or malformed host.
    #[error("the URL's host is missing or malformed")]
    Host,
    /// A `.` or `..` path segment (plain or percent-encoded).
    #[error("the URL's path contains a dot segment")]
    DotSegment,
    /// A port that is empty, not a number, or above 65535.
    #[error("the URL's port is malformed")]
    Port,
}

/// The host part of a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A registered name, lower-cased.
    Domain(&'a str),
    /// An IPv4 literal.
    Ipv4(Ipv4Addr),
    /// An IPv6 literal (written in brackets).
    Ipv6(Ipv6Addr),
}

/// A parsed absolute URL. Cheap to compare; serializes as its text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url {
    text: String,
    scheme: Range<usize>,
    host: Option<Range<usize>>,
    port: Option<u16>,
    path: Range<usize>,
    query: Option<Range<usize>>,
    fragment: Option<Range<usize>>,
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(c, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
}

/// Checks that `part` holds only `allowed` characters and well-formed percent-escapes.
fn check_chars(part: &str, allowed: impl Fn(u8) -> bool) -> Result<(), UrlError> {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::PercentEscape)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(UrlError::PercentEscape);
            }
            i += 3;
        } else if allowed(c) {
            i += 1;
        } else {
            return Err(UrlError::Character);
        }
    }
    Ok(())
}

fn is_pchar(c: u8) -> bool {
    is_unreserved(c) || is_sub_delim(c) || matches!(c, b':' | b'@')
}

/// Query and fragment characters: RFC 3986's, plus those browsers leave unescaped in a query
/// (`[ ] { } | ^` and the backtick), since callback URLs come from browsers. None of them can
/// change which host a URL points to.
fn is_query_char(c: u8) -> bool {
    is_pchar(c) || matches!(c, b'/' | b'?' | b'[' | b']' | b'{' | b'}' | b'|' | b'^' | b'`')
}

/// Parses `host[:port]`. For `http` and `https` (`special`) the host is a DNS name or an IP
/// literal and is lower-cased; for other schemes it is an opaque name kept as written, as in
/// the WHATWG URL standard.
fn parse_host(authority: &str, special: bool) -> Result<(String, Option<u16>), UrlError> {
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or(UrlError::Host)?;
        let literal = &rest[..end];
        literal.parse::<Ipv6Addr>().map_err(|_| UrlError::Host)?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(UrlError::Host),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        // A single trailing dot (the DNS root) is allowed; empty labels elsewhere are not.
        let name = host.strip_suffix('.').unwrap_or(host);
        let labels_ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            });
        if !labels_ok {
            return Err(UrlError::Host);
        }
        // WHATWG parsers (browsers, reqwest's `url`) read a host whose last label is a number
        // as IPv4, shorthand and hex included (`127.1`, `0x7f.1`). Accept only the dotted-quad
        // form, so that every parser agrees on the address.
        let last = name.rsplit('.').next().unwrap_or_default();
        let numeric = last.bytes().all(|c| c.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .or_else(|| last.strip_prefix("0X"))
                .is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
        if special && numeric && name.parse::<Ipv4Addr>().is_err() {
            return Err(UrlError::Host);
        }
        (if special { host.to_ascii_lowercase() } else { host.to_owned() }, port)
    };
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|c| c.is_ascii_digit()) => {
            Some(digits.parse::<u16>().map_err(|_| UrlError::Port)?)
        }
        Some(_) => return Err(UrlError::Port),
    };
    Ok((host, port))
}

impl Url {
    /// Parses an absolute URL; see the module guide for what is accepted.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        if !input.bytes().all(|c| c.is_ascii_graphic() && c != b'\\') {
            return Err(UrlError::Character);
        }
        let colon = input.find(':').ok_or(UrlError::Scheme)?;
        let scheme = &input[..colon];
        let mut scheme_chars = scheme.bytes();
        if !scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(UrlError::Scheme);
        }
        let rest = &input[colon + 1..];
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => match after.find('/') {
                Some(slash) => (Some(&after[..slash]), &after[slash..]),
                None => (Some(after), ""),
            },
            None => (None, rest),
        };
        check_chars(path, |c| is_pchar(c) || c == b'/')?;
        // Dot segments are resolved differently (or not at all) by different parsers: refuse them.
        let dot = |segment: &str| {
            let lower = segment.to_ascii_lowercase().replace("%2e", ".");
            lower == "." || lower == ".."
        };
        if path.split('/').any(dot) {
            return Err(UrlError::DotSegment);
        }
        for part in [query, fragment].into_iter().flatten() {
            check_chars(part, is_query_char)?;
        }
        let special = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        // Browsers read `http:host/path` as `http://host/path`; require the slashes instead.
        if special && authority.is_none() {
            return Err(UrlError::Host);
        }
        let host_and_port = authority.map(|authority| parse_host(authority, special)).transpose()?;

        // Rebuild the text from the checked parts, lower-casing scheme and host.
        let mut text = String::with_capacity(input.len() + 1);
        text.push_str(&scheme.to_ascii_lowercase());
        let scheme_range = 0..text.len();
        text.push(':');
        let mut host_range = None;
        let mut port = None;
        if let Some((host, host_port)) = host_and_port {
            text.push_str("//");
            let start = text.len();
            text.push_str(&host);
            host_range = Some(start..text.len());
            port = host_port;
            if let Some(port) = host_port {
                text.push(':');
                text.push_str(&port.to_string());
            }
        }
        let path_start = text.len();
        if path.is_empty() && special {
            text.push('/');
        } else {
            text.push_str(path);
        }
        let path_range = path_start..text.len();
        let push_part = |text: &mut String, sep: char, part: Option<&str>| {
            part.map(|part| {
                text.push(sep);
                let start = text.len();
                text.push_str(part);
                start..text.len()
            })
        };
        let query_range = push_part(&mut text, '?', query);
        let fragment_range = push_part(&mut text, '#', fragment);
        Ok(Self {
            text,
            scheme: scheme_range,
            host: host_range,
            port,
            path: path_range,
            query: query_range,
            fragment: fragment_range,
        })
    }

    /// The whole URL.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme, lower-case.
    pub fn scheme(&self) -> &str {
        &self.text[self.scheme.clone()]
    }

    /// The host (lower-case for `http`/`https`; IPv6 in brackets), if there is an authority.
    pub fn host_str(&self) -> Option<&str> {
        self.host.clone().map(|range| &self.text[range])
    }

    /// The host, classified.
    pub fn host(&self) -> Option<Host<'_>> {
        let host = self.host_str()?;
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse().ok().map(Host::Ipv6);
        }
        let special = matches!(self.scheme(), "http" | "https");
        Some(if special { host.parse().map(Host::Ipv4).unwrap_or(Host::Domain(host)) } else { Host::Domain(host) })
    }

    /// True if the host is a loopback IP literal (127.0.0.0/8 or ::1).
    pub fn is_loopback_ip(&self) -> bool {
        match self.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port, or the scheme's default for `http` (80) and `https` (443).
    pub fn port_or_known_default(&self) -> Option<u16> {
        self.port.or(match self.scheme() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        })
    }

    /// The path (at least `/` for `http` and `https`).
    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }

    /// The raw query, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.clone().map(|range| &self.text[range])
    }

    /// The raw fragment, without the `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.clone().map(|range| &self.text[range])
    }

    /// The query's name/value pairs, form-decoded.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(self.query().unwrap_or_default().as_bytes())
    }

    /// This URL with `pairs` appended to its query (form-encoded); any fragment is dropped.
    pub fn with_query_pairs(&self, pairs: &[(&str, &str)]) -> Self {
        let mut text = String::with_capacity(self.text.len() + 64);
        text.push_str(&self.text[..self.query.as_ref().map_or(self.path.end, |q| q.end)]);
        // The serializer adds the `&` between an existing query and the new pairs.
        let start = match &self.query {
            Some(query) => query.start,
            None => {
                text.push('?');
                text.len()
            }
        };
        let mut serializer = form_urlencoded::Serializer::for_suffix(text, start);
        serializer.extend_pairs(pairs);
        let text = serializer.finish();
        let end = text.len();
        Self { query: Some(start..end), fragment: None, text, ..self.clone() }
    }

    /// This URL with `suffix` (a constant made of path characters) appended to its path, a
    /// trailing `/` not doubled; the query and fragment are dropped. Used for
    /// `/.well-known/openid-configuration`.
    pub fn with_path_suffix(&self, suffix: &'static str) -> Self {
        debug_assert!(check_chars(suffix, |c| is_pchar(c) || c == b'/').is_ok());
        let mut text = self.text[..self.path.end].trim_end_matches('/').to_owned();
        text.push_str(suffix);
        Self { path: self.path.start..text.len(), query: None, fragment: None, text, ..self.clone() }
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({})", self.text)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Url> for String {
    fn from(url: Url) -> Self {
        url.text
    }
}

impl Serialize for Url {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        Url::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_typical_urls() {
        let url = Url::parse("HTTPS://IdP.Example:8443/realms/a/token?x=1&y=%20#frag").expect("valid");
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("idp.example"));
        assert_eq!(url.port(), Some(8443));
        assert_eq!(url.path(), "/realms/a/token");
        assert_eq!(url.query(), Some("x=1&y=%20"));
        assert_eq!(url.fragment(), Some("frag"));
        assert_eq!(url.as_str(), "https://idp.example:8443/realms/a/token?x=1&y=%20#frag");
        let pairs: Vec<_> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(pairs, [("x".to_owned(), "1".to_owned()), ("y".to_owned(), " ".to_owned())]);

        let bare = Url::parse("https://idp.example").expect("valid");
        assert_eq!(bare.as_str(), "https://idp.example/");
        assert_eq!(bare.port_or_known_default(), Some(443));

        let private = Url::parse("com.example.app:/oauth2redirect").expect("valid");
        assert_eq!(private.scheme(), "com.example.app");
        assert_eq!(private.host(), None);
        assert_eq!(private.path(), "/oauth2redirect");
    }

    #[test]
    fn hosts_are_classified() {
        assert_eq!(Url::parse("http://127.0.0.1:1/").expect("v4").host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)));
        assert!(Url::parse("http://127.9.9.9/").expect("v4").is_loopback_ip());
        assert_eq!(Url::parse("http://[::1]:80/").expect("v6").host(), Some(Host::Ipv6(Ipv6Addr::LOCALHOST)));
        assert!(Url::parse("http://[::1]/").expect("v6").is_loopback_ip());
        assert!(!Url::parse("http://localhost/").expect("name").is_loopback_ip());
        assert_eq!(
            Url::parse("https://xn--bcher-kva.example/").expect("idn").host(),
            Some(Host::Domain("xn--bcher-kva.example"))
        );
    }

    #[test]
    fn strictness() {
        let refused = [
            ("", UrlError::Scheme),
            ("no-scheme", UrlError::Scheme),
            ("1http://x/", UrlError::Scheme),
            ("https://idp example/", UrlError::Character),
            ("https://idp.example/a b", UrlError::Character),
            ("https://idp.example\\@evil.example/", UrlError::Character),
            ("https://bücher.example/", UrlError::Character),
            ("https://u:p@idp.example/", UrlError::UserInfo),
            ("https://evil.example@idp.example/", UrlError::UserInfo),
            ("https:///path", UrlError::Host),
            ("https:idp.example/path", UrlError::Host),
            ("https://idp..example/", UrlError::Host),
            ("https://[::1/", UrlError::Host),
            ("https://[nope]/", UrlError::Host),
            ("https://idp.example:/", UrlError::Port),
            ("https://idp.example:99999/", UrlError::Port),
            ("https://idp.example:8a/", UrlError::Port),
            ("https://idp.example/%zz", UrlError::PercentEscape),
            ("https://idp.example/?q=%4", UrlError::PercentEscape),
            ("https://idp.example/<script>", UrlError::Character),
            ("https://idp.example/a/../b", UrlError::DotSegment),
            ("https://idp.example/a/%2E%2e", UrlError::DotSegment),
            ("https://idp.example/./b", UrlError::DotSegment),
            ("http://127.1/", UrlError::Host),
            ("http://0x7f.0.0.1/", UrlError::Host),
            ("http://127.000.0.1/", UrlError::Host),
            ("http://1.2.3.4.5/", UrlError::Host),
            ("https://idp.example/?q=<", UrlError::Character),
            ("https://idp.example/?q=\"", UrlError::Character),
        ];
        for (input, error) in refused {
            assert_eq!(Url::parse(input), Err(error), "{input}");
        }
    }

    #[test]
    fn appending_query_pairs() {
        let url = Url::parse("https://idp.example/auth").expect("valid");
        let with = url.with_query_pairs(&[("a", "1 2"), ("b", "&=")]);
        assert_eq!(with.as_str(), "https://idp.example/auth?a=1+2&b=%26%3D");
        assert_eq!(with.query(), Some("a=1+2&b=%26%3D"));
        let more = with.with_query_pairs(&[("c", "3")]);
        assert_eq!(more.as_str(), "https://idp.example/auth?a=1+2&b=%26%3D&c=3");
        let existing = Url::parse("https://idp.example/auth?tenant=x#f").expect("valid");
        assert_eq!(existing.with_query_pairs(&[("a", "b")]).as_str(), "https://idp.example/auth?tenant=x&a=b");
        assert_eq!(Url::parse(more.as_str()), Ok(more));
    }

    #[test]
    fn path_suffix() {
        let url = Url::parse("https://idp.example/tenant/").expect("valid");
        let discovery = url.with_path_suffix("/.well-known/openid-configuration");
        assert_eq!(discovery.as_str(), "https://idp.example/tenant/.well-known/openid-configuration");
    }

    proptest::proptest! {
        /// Whatever this parser accepts, the WHATWG `url` crate (what reqwest and browsers
        /// follow) reads the same way: scheme, host, port, path, query pairs and fragment.
        #[test]
        fn agrees_with_the_reference_parser(
            input in "(https?|HTTP|com\\.ex\\.app|x):(//)?([a-zA-Z0-9_\\-]{0,6}\\.){0,3}[a-zA-Z0-9_\\-]{0,6}(:[0-9]{0,6})?(\\[[0-9a-f:.]{0,12}\\])?(/[a-zA-Z0-9.%~!$&'()*+,;=:@_\\-]{0,6}){0,3}(\\?[ -~]{0,16})?(#[ -~]{0,8})?"
        ) {
            check_against_reference(&input);
        }

        #[test]
        fn agrees_on_arbitrary_text(input in "[ -~]{0,40}") {
            check_against_reference(&input);
        }
    }

    fn check_against_reference(input: &str) {
        let Ok(ours) = Url::parse(input) else { return };
        let theirs = ::url::Url::parse(input).unwrap_or_else(|e| panic!("{input:?}: we accept, url says {e}"));
        assert_eq!(ours.scheme(), theirs.scheme(), "{input}");
        let their_host = theirs.host().map(|host| match host {
            ::url::Host::Domain(d) => Host::Domain(d),
            ::url::Host::Ipv4(ip) => Host::Ipv4(ip),
            ::url::Host::Ipv6(ip) => Host::Ipv6(ip),
        });
        // The `url` crate gives an empty host to `x://` style URLs; we give none.
        let their_host = their_host.filter(|h| *h != Host::Domain(""));
        assert_eq!(ours.host(), their_host, "{input}");
        assert_eq!(ours.port_or_known_default(), theirs.port_or_known_default(), "{input}");
        assert_eq!(ours.path(), theirs.path(), "{input}");
        let pairs = |it: &mut dyn Iterator<Item = (Cow<'_, str>, Cow<'_, str>)>| {
            it.map(|(k, v)| (k.into_owned(), v.into_owned())).collect::<Vec<_>>()
        };
        assert_eq!(pairs(&mut ours.query_pairs()), pairs(&mut theirs.query_pairs()), "{input}");
        assert_eq!(ours.fragment().is_some(), theirs.fragment().is_some(), "{input}");
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let url = Url::parse("https://idp.example/x").expect("valid");
        let json = serde_json::to_string(&url).expect("serialize");
        assert_eq!(serde_json::from_str::<Url>(&json).expect("deserialize"), url);
        assert!(serde_json::from_str::<Url>("\"https://u@x/\"").is_err());
    }
}
