//! The same documents read by serde_json (serde's derive) or miniserde, for a size comparison
//! (scripts/json-size). A one-field document is always in (the parser with the least of a
//! type); the others mirror the core's: the stored session record (`SessionRecord`), the
//! discovery document (`RawMetadata`) and the token response (`RawTokenResponse`, with its
//! `expires_in` read leniently, as a number or a numeric string, by hand on both sides). Each
//! export sums what it read, so that no field is optimized away. Differences from the core:
//! plain `String`s for its `Secret`s, and `Option`s where it has a serde default (miniserde has
//! none), on both sides.
#[cfg(all(feature = "serde_json", feature = "miniserde"))]
compile_error!("one JSON layer at a time: --features serde_json or --features miniserde");
#[cfg(not(any(feature = "serde_json", feature = "miniserde")))]
compile_error!("choose a JSON layer: --features serde_json or --features miniserde");

#[cfg(feature = "miniserde")]
use miniserde::Deserialize;
#[cfg(feature = "serde_json")]
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Tiny {
    pub name: String,
}

#[derive(Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub revision: Option<u64>,
    pub session_id: String,
    pub issuer: String,
    pub client_id: String,
    pub subject: String,
    pub display_name: Option<String>,
    pub acr: Option<String>,
    pub auth_time: Option<u64>,
    pub dpop_key: Option<String>,
    pub access_token: String,
    pub token_type: String,
    pub access_token_issued_at: u64,
    pub access_token_expires_at: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
    pub started_at: u64,
    pub last_activity_at: u64,
    pub last_seen_at: u64,
    pub server_offset_ms: i64,
}

#[derive(Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub code_challenge_methods_supported: Option<Vec<String>>,
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    #[cfg_attr(feature = "serde_json", serde(default, deserialize_with = "lenient_seconds"))]
    pub expires_in: Option<Seconds>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
}

/// A whole number of seconds, sent as a JSON number or a numeric string.
pub struct Seconds(pub u64);

#[cfg(feature = "serde_json")]
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Seconds>, D::Error> {
    struct Shape;
    impl serde::de::Visitor<'_> for Shape {
        type Value = Option<Seconds>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of seconds, as a number or a string")
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(Seconds(value)))
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            value.parse().map(|n| Some(Seconds(n))).map_err(|_| E::custom("expires_in is not a number"))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Shape)
}

#[cfg(feature = "miniserde")]
miniserde::make_place!(Place);

#[cfg(feature = "miniserde")]
impl miniserde::de::Visitor for Place<Seconds> {
    fn nonnegative(&mut self, value: u64) -> miniserde::Result<()> {
        self.out = Some(Seconds(value));
        Ok(())
    }
    fn string(&mut self, value: &str) -> miniserde::Result<()> {
        self.out = Some(Seconds(value.parse().map_err(|_| miniserde::Error)?));
        Ok(())
    }
}

#[cfg(feature = "miniserde")]
impl Deserialize for Seconds {
    fn begin(out: &mut Option<Self>) -> &mut dyn miniserde::de::Visitor {
        Place::new(out)
    }
}

#[cfg(feature = "serde_json")]
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(feature = "miniserde")]
fn parse<T: Deserialize>(bytes: &[u8]) -> Option<T> {
    miniserde::json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

/// Room for `len` bytes of input, for the caller to fill.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut room = Vec::<u8>::with_capacity(len);
    let ptr = room.as_mut_ptr();
    std::mem::forget(room);
    ptr
}

/// # Safety
/// `ptr` points to `len` initialized bytes (from `alloc`), for as long as the result is used.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

#[cfg(any(feature = "record", feature = "discovery", feature = "token"))]
fn length(text: &Option<String>) -> u64 {
    text.as_ref().map_or(0, |text| text.len() as u64)
}

/// # Safety
/// As [`input`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tiny(ptr: *const u8, len: usize) -> u64 {
    parse::<Tiny>(unsafe { input(ptr, len) }).map_or(0, |tiny| tiny.name.len() as u64)
}

/// # Safety
/// As [`input`].
#[cfg(feature = "record")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn record(ptr: *const u8, len: usize) -> u64 {
    let Some(r) = parse::<Record>(unsafe { input(ptr, len) }) else { return 0 };
    [r.session_id, r.issuer, r.client_id, r.subject, r.access_token, r.token_type]
        .iter()
        .map(|s| s.len() as u64)
        .sum::<u64>()
        + [&r.display_name, &r.acr, &r.dpop_key, &r.refresh_token, &r.id_token, &r.scope]
            .into_iter()
            .map(length)
            .sum::<u64>()
        + u64::from(r.schema_version)
        + r.revision.unwrap_or(0)
        + r.auth_time.unwrap_or(0)
        + r.access_token_issued_at
        + r.access_token_expires_at
        + r.started_at
        + r.last_activity_at
        + r.last_seen_at
        + r.server_offset_ms as u64
}

/// # Safety
/// As [`input`].
#[cfg(feature = "discovery")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn discovery(ptr: *const u8, len: usize) -> u64 {
    let Some(d) = parse::<Discovery>(unsafe { input(ptr, len) }) else { return 0 };
    let all = |list: &Option<Vec<String>>| list.as_ref().map_or(0, |list| list.iter().map(|s| s.len() as u64).sum());
    [d.issuer, d.authorization_endpoint, d.token_endpoint].iter().map(|s| s.len() as u64).sum::<u64>()
        + [
            &d.jwks_uri,
            &d.revocation_endpoint,
            &d.end_session_endpoint,
            &d.device_authorization_endpoint,
            &d.introspection_endpoint,
            &d.userinfo_endpoint,
        ]
        .into_iter()
        .map(length)
        .sum::<u64>()
        + all(&d.code_challenge_methods_supported)
        + all(&d.id_token_signing_alg_values_supported)
        + all(&d.dpop_signing_alg_values_supported)
        + u64::from(d.authorization_response_iss_parameter_supported.unwrap_or(false))
}

/// # Safety
/// As [`input`].
#[cfg(feature = "token")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn token(ptr: *const u8, len: usize) -> u64 {
    let Some(t) = parse::<TokenResponse>(unsafe { input(ptr, len) }) else { return 0 };
    t.access_token.len() as u64
        + t.token_type.len() as u64
        + t.expires_in.map_or(0, |seconds| seconds.0)
        + [&t.refresh_token, &t.id_token, &t.scope].into_iter().map(length).sum::<u64>()
}
