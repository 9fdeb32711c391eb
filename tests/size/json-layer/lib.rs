//! The same documents read by serde_json (serde's derive) or miniserde, for a size comparison
//! (scripts/json-size). The types mirror the core's: the stored session record
//! (`SessionRecord`), the discovery document (`RawMetadata`) and the token response; each
//! export sums what it read, so that no field is optimized away.
#[cfg(feature = "miniserde")]
use miniserde::Deserialize;
#[cfg(feature = "serde_json")]
use serde::Deserialize;

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
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
}

#[cfg(feature = "serde_json")]
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}
#[cfg(feature = "miniserde")]
fn parse<T: Deserialize>(bytes: &[u8]) -> Option<T> {
    miniserde::json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut v = Vec::<u8>::with_capacity(len);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn record(ptr: *const u8, len: usize) -> u64 {
    let Some(r) = parse::<Record>(unsafe { input(ptr, len) }) else { return 0 };
    r.revision.unwrap_or(0)
        + r.session_id.len() as u64
        + r.issuer.len() as u64
        + r.client_id.len() as u64
        + r.subject.len() as u64
        + r.display_name.map_or(0, |s| s.len() as u64)
        + r.acr.map_or(0, |s| s.len() as u64)
        + r.auth_time.unwrap_or(0)
        + r.dpop_key.map_or(0, |s| s.len() as u64)
        + r.access_token.len() as u64
        + r.token_type.len() as u64
        + r.access_token_issued_at
        + r.access_token_expires_at
        + r.refresh_token.map_or(0, |s| s.len() as u64)
        + r.id_token.map_or(0, |s| s.len() as u64)
        + r.scope.map_or(0, |s| s.len() as u64)
        + r.started_at
        + r.last_activity_at
        + r.last_seen_at
        + r.server_offset_ms as u64
        + r.schema_version as u64
}

#[cfg(feature = "discovery")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn discovery(ptr: *const u8, len: usize) -> u64 {
    let Some(d) = parse::<Discovery>(unsafe { input(ptr, len) }) else { return 0 };
    let n = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
    let v = |s: &Option<Vec<String>>| s.as_ref().map_or(0, |s| s.iter().map(|x| x.len() as u64).sum());
    d.issuer.len() as u64
        + d.authorization_endpoint.len() as u64
        + d.token_endpoint.len() as u64
        + n(&d.jwks_uri)
        + n(&d.revocation_endpoint)
        + n(&d.end_session_endpoint)
        + n(&d.device_authorization_endpoint)
        + n(&d.introspection_endpoint)
        + n(&d.userinfo_endpoint)
        + v(&d.code_challenge_methods_supported)
        + v(&d.id_token_signing_alg_values_supported)
        + v(&d.dpop_signing_alg_values_supported)
        + d.authorization_response_iss_parameter_supported.unwrap_or(false) as u64
}

#[cfg(feature = "token")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn token(ptr: *const u8, len: usize) -> u64 {
    let Some(t) = parse::<TokenResponse>(unsafe { input(ptr, len) }) else { return 0 };
    t.access_token.len() as u64
        + t.token_type.len() as u64
        + t.expires_in.unwrap_or(0)
        + t.refresh_token.map_or(0, |s| s.len() as u64)
        + t.id_token.map_or(0, |s| s.len() as u64)
        + t.scope.map_or(0, |s| s.len() as u64)
}
