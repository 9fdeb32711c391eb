//! The entry point of every fuzz target, one function per parser that takes provider or store
//! bytes. The fuzz targets (`fuzz_targets/*.rs`, run by `scripts/fuzz` with cargo-fuzz) call
//! these, and `cargo test` replays the committed corpora (`fuzz/corpus/<target>/`) through the
//! very same functions (crates/sessionkit/tests/fuzz_corpora.rs includes this file), so a
//! crash the fuzzer found, once its input is in the corpus, stays a failing test until fixed.
//!
//! Each function must never panic on any input; where a parser's output has a property (a URL
//! that parses again the same), it is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, dead_code)]

use std::time::Duration;

use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::authorize::{AuthorizeOptions, PendingAuthorization};
use sessionkit_core::oidc::client::{ClientConfig, Issuer, RedirectUri};
use sessionkit_core::oidc::device::DeviceAuthorization;
use sessionkit_core::oidc::discovery::ProviderMetadata;
use sessionkit_core::oidc::id_token::{
    IdTokenCheck, JwsHeader, SignatureError, SignatureVerifier, split_jws, validate_id_token,
};
use sessionkit_core::oidc::token::TokenOutcome;
use sessionkit_core::pkce::Pkce;
use sessionkit_core::session::SessionRecord;
use sessionkit_core::url::Url;
use sessionkit_core::{Secret, UnixTime};

/// A target's entry: the bytes libFuzzer made up.
pub type Entry = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus directory.
pub const TARGETS: [(&str, Entry); 8] = [
    ("token_response", token_response),
    ("id_token", id_token),
    ("discovery", discovery),
    ("jwks", jwks),
    ("callback_url", callback_url),
    ("record", record),
    ("device_authorization", device_authorization),
    ("url", url),
];

const ISSUER: &str = "https://idp.example";
/// A fixed "now" (2027-01-15) so that a run repeats exactly.
const NOW: UnixTime = UnixTime::from_millis(1_800_000_000_000);

/// Made once: the targets spend their time in the parser under test, not in this setup.
fn client() -> &'static ClientConfig {
    static CLIENT: std::sync::OnceLock<ClientConfig> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let issuer = Issuer::parse(ISSUER).unwrap();
        let redirect = RedirectUri::parse("http://127.0.0.1/callback").unwrap();
        ClientConfig::new(issuer, "app", redirect, &["offline_access"]).unwrap()
    })
}

fn metadata() -> &'static ProviderMetadata {
    static METADATA: std::sync::OnceLock<ProviderMetadata> = std::sync::OnceLock::new();
    METADATA.get_or_init(make_metadata)
}

fn make_metadata() -> ProviderMetadata {
    let document = serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "device_authorization_endpoint": "https://idp.example/device",
        "jwks_uri": "https://idp.example/jwks",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    });
    ProviderMetadata::from_json(&Issuer::parse(ISSUER).unwrap(), document.to_string().as_bytes()).unwrap()
}

/// A verifier that accepts every signature, so that the claim checks behind it are reached.
struct AcceptAll;

impl SignatureVerifier for AcceptAll {
    fn verify(&self, _: &JwsHeader, _: &[u8], _: &[u8]) -> Result<(), SignatureError> {
        Ok(())
    }
}

/// The token endpoint's answer, as a success and as each error status.
pub fn token_response(data: &[u8]) {
    for status in [200, 400, 401, 429, 503] {
        let _ = TokenOutcome::classify(&HttpResponse::new(status, data.to_vec()), NOW);
    }
}

/// An ID token: the JWS split, then every claim check (signature accepted).
pub fn id_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = split_jws(&text);
    let nonce = Secret::from("n-0S6_WzA2Mj");
    let algorithms = ["RS256".to_owned(), "ES256".to_owned()];
    // A sign-in (nonce, a step-up's max_age) and a refresh (subject).
    for (nonce, subject, max_age, provider_algorithms) in
        [(Some(&nonce), None, Some(300), &algorithms[..]), (None, Some("alice"), None, &[][..])]
    {
        let check = IdTokenCheck {
            issuer: ISSUER,
            client_id: "app",
            nonce,
            subject,
            max_age,
            server_now: NOW,
            leeway: Duration::from_secs(60),
            provider_algorithms,
        };
        let _ = validate_id_token(&Secret::new(text.clone()), &check, &AcceptAll);
    }
}

/// A discovery document.
pub fn discovery(data: &[u8]) {
    let _ = ProviderMetadata::from_json(&Issuer::parse(ISSUER).unwrap(), data);
}

/// A JWKS document (the driver's parser: key types, `use`, `alg`).
pub fn jwks(data: &[u8]) {
    let _ = sessionkit::__fuzz::parse_jwks(data);
}

/// A redirect back to the app, against a pending sign-in.
pub fn callback_url(data: &[u8]) {
    let (_, mut pending) =
        PendingAuthorization::begin(client(), metadata(), &AuthorizeOptions::default(), None, NOW).unwrap();
    let _ = pending.accept_callback(&String::from_utf8_lossy(data));
}

/// What the store holds: a session record, or a pending sign-in's record.
pub fn record(data: &[u8]) {
    let _ = SessionRecord::decode(data);
    let _ = PendingAuthorization::from_record(data, client(), metadata(), NOW);
}

/// The device authorization answer, then the same bytes as a poll answer.
pub fn device_authorization(data: &[u8]) {
    let pkce = Pkce::generate().unwrap();
    let response = HttpResponse::new(200, data.to_vec());
    if let Ok(mut device) = DeviceAuthorization::from_response(client(), metadata(), &response, pkce, NOW) {
        let _ = device.handle_poll(&response, NOW);
    }
    let refused = HttpResponse::new(400, data.to_vec());
    let _ = DeviceAuthorization::from_response(client(), metadata(), &refused, Pkce::generate().unwrap(), NOW);
}

/// The URL parser; a URL it accepts must parse again to itself.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(url) = Url::parse(text) {
        let again = Url::parse(url.as_str()).expect("a URL this parser produced parses again");
        assert_eq!(again.as_str(), url.as_str(), "parsing is idempotent");
    }
}
