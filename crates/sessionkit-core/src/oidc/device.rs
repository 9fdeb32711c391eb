//! The device authorization grant (RFC 8628): sign-in on a device without a browser, or for a
//! CLI, by showing a code that the user enters on another device.
//!
//! [`DeviceAuthorization::request`] asks the provider for a device code;
//! [`DeviceAuthorization::from_response`] checks the answer. Show the user
//! [`DeviceAuthorization::user_code`] and [`DeviceAuthorization::verification_uri`], then poll:
//! [`DeviceAuthorization::poll_request`] every [`DeviceAuthorization::interval`], feeding each
//! answer to [`DeviceAuthorization::handle_poll`]. `authorization_pending` means wait,
//! `slow_down` adds 5 seconds to the interval for good, `access_denied` and `expired_token` end
//! the attempt, and so does reaching `expires_in`; any other refusal or an unusable answer
//! (malformed, oversized, a redirect, an unknown token type) ends it at once with its cause.
//! Tokens go to `Session::handle_device_login_response`.
//!
//! PKCE: the device authorization request carries an S256 `code_challenge` and every poll the
//! `code_verifier`. RFC 8628 does not ask for it, but providers that require PKCE for a public
//! client (Keycloak's "PKCE required") refuse the device request without it, and a provider
//! that ignores it loses nothing.

use std::time::Duration;

use serde::Deserialize;

use super::authorize::printable;
use super::client::ClientConfig;
use super::discovery::ProviderMetadata;
use super::dpop::DpopKey;
use super::token::{TokenErrorCode, TokenOutcome};
use crate::http::{HttpRequest, HttpResponse};
use crate::pkce::Pkce;
use crate::url::Url;
use crate::{Secret, UnixTime};

/// The grant type used to poll.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The polling interval when the provider names none (RFC 8628 section 3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest interval or lifetime believed.
const MAX_SECONDS: u64 = 3600;
/// The longest wait a busy provider's `Retry-After` may impose between two polls.
const MAX_BUSY_WAIT: Duration = Duration::from_secs(60);

/// Why a device authorization could not start or finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The provider has no device authorization endpoint.
    #[error("the provider does not support the device authorization grant")]
    Unsupported,
    /// The device authorization request (the first step) was refused or its answer unusable.
    #[error("the provider refused to start the device sign-in: {0}")]
    Failed(String),
    /// A poll of the token endpoint was refused or its answer unusable; the sign-in is over.
    #[error("the device sign-in failed while waiting for approval: {0}")]
    PollFailed(String),
    /// The user refused.
    #[error("the user denied the sign-in")]
    Denied,
    /// The code expired before the user approved.
    #[error("the device code expired before the sign-in was approved")]
    Expired,
}

/// What a poll answer means.
#[derive(Debug, Clone)]
pub enum DevicePoll {
    /// Not approved yet: poll again after this long.
    Wait(Duration),
    /// Approved: give this response to `Session::handle_device_login_response`.
    Approved,
    /// Over: denied, expired, or refused.
    Failed(DeviceError),
}

#[derive(Deserialize)]
struct RawDeviceAuthorization {
    device_code: Secret,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// A device authorization in progress.
#[derive(Debug)]
pub struct DeviceAuthorization {
    device_code: Secret,
    user_code: String,
    verification_uri: Url,
    verification_uri_complete: Option<Url>,
    expires_at: UnixTime,
    interval: Duration,
    token_endpoint: Url,
    client_id: String,
    pkce: Pkce,
    /// The DPoP key the tokens will be bound to: every poll carries its proof.
    dpop_key: Option<DpopKey>,
}

/// The first step of a device sign-in: the request to send, and the PKCE pair it committed to
/// (hand it to [`DeviceAuthorization::from_response`]).
#[derive(Debug)]
pub struct DeviceRequest {
    /// The request to the device authorization endpoint.
    pub request: HttpRequest,
    /// The PKCE pair whose challenge the request carries.
    pub pkce: Pkce,
}

impl DeviceAuthorization {
    /// The request to the device authorization endpoint, with a fresh PKCE challenge.
    pub fn request(client: &ClientConfig, metadata: &ProviderMetadata) -> Result<DeviceRequest, DeviceError> {
        let endpoint = metadata.device_authorization_endpoint.clone().ok_or(DeviceError::Unsupported)?;
        let pkce = Pkce::generate().map_err(|e| DeviceError::Failed(e.to_string()))?;
        let scope = client.scope_param();
        let request = HttpRequest::post_form(
            endpoint,
            &[
                ("client_id", client.client_id.as_str()),
                ("scope", scope.as_str()),
                ("code_challenge", pkce.challenge()),
                ("code_challenge_method", "S256"),
            ],
        );
        Ok(DeviceRequest { request, pkce })
    }

    /// Checks the provider's answer; `now` starts the code's lifetime.
    pub fn from_response(
        client: &ClientConfig,
        metadata: &ProviderMetadata,
        response: &HttpResponse,
        pkce: Pkce,
        now: UnixTime,
    ) -> Result<Self, DeviceError> {
        if response.status() != 200 {
            // The provider's own words (sanitised), when it gave an OAuth error.
            let reason = match TokenOutcome::classify(response, now) {
                TokenOutcome::Refused(error) => error.to_string(),
                _ => format!("HTTP {}", response.status()),
            };
            return Err(DeviceError::Failed(reason));
        }
        if response.body().len() > 16 * 1024 {
            return Err(DeviceError::Failed("the answer is too large".into()));
        }
        let raw: RawDeviceAuthorization =
            serde_json::from_slice(response.body()).map_err(|_| DeviceError::Failed("malformed answer".into()))?;
        let https = |text: &str| {
            Url::parse(text)
                .ok()
                .filter(|url| url.scheme() == "https")
                .ok_or_else(|| DeviceError::Failed("the verification URI is not https".into()))
        };
        if raw.user_code.is_empty() || raw.user_code.len() > 64 || raw.device_code.is_empty() || raw.expires_in == 0 {
            return Err(DeviceError::Failed("empty code or lifetime".into()));
        }
        Ok(Self {
            user_code: printable(&raw.user_code, 64),
            verification_uri: https(&raw.verification_uri)?,
            verification_uri_complete: raw.verification_uri_complete.as_deref().map(https).transpose()?,
            expires_at: now.saturating_add(Duration::from_secs(raw.expires_in.min(MAX_SECONDS))),
            interval: raw.interval.map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.clamp(1, MAX_SECONDS))),
            device_code: raw.device_code,
            token_endpoint: metadata.token_endpoint.clone(),
            client_id: client.client_id.clone(),
            pkce,
            dpop_key: None,
        })
    }

    /// Binds the tokens this sign-in will bring to a DPoP key: each poll is signed with it.
    #[must_use]
    pub fn with_dpop_key(mut self, key: Option<DpopKey>) -> Self {
        self.dpop_key = key;
        self
    }

    /// The DPoP key the polls are signed with, if any.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop_key.as_ref()
    }

    /// The code the user types.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user types it.
    pub fn verification_uri(&self) -> &str {
        self.verification_uri.as_str()
    }

    /// The same with the code filled in (for a QR code or a link), if the provider gives one.
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_ref().map(Url::as_str)
    }

    /// When the code expires.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The current polling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The next poll of the token endpoint.
    pub fn poll_request(&self) -> HttpRequest {
        let mut request = HttpRequest::post_form(
            self.token_endpoint.clone(),
            &[
                ("grant_type", DEVICE_GRANT_TYPE),
                // The device code goes only to the token endpoint.
                ("device_code", self.device_code.expose()),
                ("client_id", &self.client_id),
                ("code_verifier", self.pkce.verifier().expose()),
            ],
        );
        request.dpop = self.dpop_key.clone();
        request
    }

    /// Reads a poll answer (see the module guide).
    pub fn handle_poll(&mut self, response: &HttpResponse, now: UnixTime) -> DevicePoll {
        if now >= self.expires_at {
            return DevicePoll::Failed(DeviceError::Expired);
        }
        match TokenOutcome::classify(response, now) {
            TokenOutcome::Tokens(_) => DevicePoll::Approved,
            TokenOutcome::Refused(error) => match error.code {
                TokenErrorCode::AuthorizationPending => DevicePoll::Wait(self.interval),
                TokenErrorCode::SlowDown => {
                    self.interval = (self.interval + SLOW_DOWN_STEP).min(Duration::from_secs(MAX_SECONDS));
                    DevicePoll::Wait(self.interval)
                }
                TokenErrorCode::AccessDenied => DevicePoll::Failed(DeviceError::Denied),
                TokenErrorCode::ExpiredToken => DevicePoll::Failed(DeviceError::Expired),
                _ => DevicePoll::Failed(DeviceError::PollFailed(error.to_string())),
            },
            // A busy provider: keep polling, no faster than it asks, but never sleeping past the
            // code's life or more than a minute at a time.
            TokenOutcome::Transient { retry_after, .. } => DevicePoll::Wait(
                retry_after
                    .unwrap_or_default()
                    .max(self.interval)
                    .min(MAX_BUSY_WAIT)
                    .min(self.expires_at.saturating_duration_since(now).max(Duration::from_secs(1))),
            ),
            TokenOutcome::Malformed(error) => DevicePoll::Failed(DeviceError::PollFailed(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::client::{Issuer, RedirectUri};
    use crate::oidc::discovery::tests::{ISSUER, document};

    fn setup() -> (ClientConfig, ProviderMetadata) {
        let issuer = Issuer::parse(ISSUER).expect("issuer");
        let client =
            ClientConfig::new(issuer.clone(), "app", RedirectUri::parse("http://127.0.0.1/cb").expect("uri"), &[])
                .expect("client");
        let mut doc = document();
        doc["device_authorization_endpoint"] = "https://idp.example/device/auth".into();
        let metadata = ProviderMetadata::from_json(&issuer, doc.to_string().as_bytes()).expect("metadata");
        (client, metadata)
    }

    fn started(interval: Option<u64>) -> DeviceAuthorization {
        let (client, metadata) = setup();
        let mut body = serde_json::json!({
            "device_code": "DEVICE-SECRET", "user_code": "ABCD-EFGH",
            "verification_uri": "https://idp.example/device", "expires_in": 600
        });
        if let Some(i) = interval {
            body["interval"] = i.into();
        }
        let response = HttpResponse::new(200, body.to_string().into_bytes());
        let pkce = DeviceAuthorization::request(&client, &metadata).expect("supported").pkce;
        DeviceAuthorization::from_response(&client, &metadata, &response, pkce, UnixTime::EPOCH).expect("valid")
    }

    fn error(code: &str) -> HttpResponse {
        HttpResponse::new(400, serde_json::json!({ "error": code }).to_string().into_bytes())
    }

    #[test]
    fn the_request_and_the_answer() {
        let (client, metadata) = setup();
        let DeviceRequest { request, pkce } = DeviceAuthorization::request(&client, &metadata).expect("supported");
        let body = request.body.expect("body");
        let expected =
            format!("client_id=app&scope=openid&code_challenge={}&code_challenge_method=S256", pkce.challenge());
        assert_eq!(body.expose(), expected);
        let device = started(None);
        assert_eq!(device.user_code(), "ABCD-EFGH");
        assert_eq!(device.interval(), DEFAULT_INTERVAL);
        let poll = device.poll_request().body.expect("body");
        assert!(poll.expose().contains("device_code=DEVICE-SECRET"));
        assert!(poll.expose().contains(&format!("code_verifier={}", device.pkce.verifier().expose())));
        assert!(!format!("{device:?}").contains("DEVICE-SECRET"));
    }

    #[test]
    fn polling_follows_rfc_8628() {
        let mut device = started(Some(2));
        let now = UnixTime::from_secs(10);
        assert!(
            matches!(device.handle_poll(&error("authorization_pending"), now), DevicePoll::Wait(d) if d == Duration::from_secs(2))
        );
        assert!(
            matches!(device.handle_poll(&error("slow_down"), now), DevicePoll::Wait(d) if d == Duration::from_secs(7))
        );
        assert!(
            matches!(device.handle_poll(&error("authorization_pending"), now), DevicePoll::Wait(d) if d == Duration::from_secs(7))
        );
        assert!(matches!(device.handle_poll(&error("access_denied"), now), DevicePoll::Failed(DeviceError::Denied)));
        assert!(matches!(device.handle_poll(&error("expired_token"), now), DevicePoll::Failed(DeviceError::Expired)));
        let late = UnixTime::from_secs(601);
        assert!(matches!(
            device.handle_poll(&error("authorization_pending"), late),
            DevicePoll::Failed(DeviceError::Expired)
        ));
        let ok = HttpResponse::new(200, br#"{"access_token":"a","token_type":"Bearer"}"#.to_vec());
        assert!(matches!(device.handle_poll(&ok, now), DevicePoll::Approved));
    }

    #[test]
    fn unsupported_and_bad_answers() {
        let (client, mut metadata) = setup();
        metadata.device_authorization_endpoint = None;
        assert_eq!(
            DeviceAuthorization::request(&client, &metadata).err().map(|e| e.to_string()),
            Some(DeviceError::Unsupported.to_string())
        );
        let pkce = || Pkce::generate().expect("random");
        let bad = HttpResponse::new(
            200,
            br#"{"device_code":"d","user_code":"u","verification_uri":"http://x/","expires_in":5}"#.to_vec(),
        );
        assert!(DeviceAuthorization::from_response(&client, &metadata, &bad, pkce(), UnixTime::EPOCH).is_err());
        // A refusal says what the provider said (Keycloak without PKCE: invalid_request).
        let refused = HttpResponse::new(
            400,
            br#"{"error":"invalid_request","error_description":"Missing parameter: code_challenge_method"}"#.to_vec(),
        );
        let error =
            DeviceAuthorization::from_response(&client, &metadata, &refused, pkce(), UnixTime::EPOCH).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the provider refused to start the device sign-in: the provider refused the request: invalid_request \
             (Missing parameter: code_challenge_method)"
        );
    }

    /// A busy provider's `Retry-After` is honoured, but never past a minute or the code's life.
    #[test]
    fn a_busy_provider_cannot_make_the_flow_sleep_forever() {
        let mut device = started(Some(2));
        let busy = HttpResponse::new(503, Vec::new()).with_header("retry-after", "86400");
        let now = UnixTime::from_secs(10);
        assert!(matches!(device.handle_poll(&busy, now), DevicePoll::Wait(d) if d == MAX_BUSY_WAIT));
        let late = UnixTime::from_secs(590);
        assert!(matches!(device.handle_poll(&busy, late), DevicePoll::Wait(d) if d == Duration::from_secs(10)));
    }

    /// Issue 11, finding 12: a permanent failure while polling ends the flow at once, with its cause.
    #[test]
    fn unusable_poll_answers_end_the_flow_with_their_cause() {
        let now = UnixTime::from_secs(10);
        for (response, cause) in [
            (HttpResponse::new(200, br#"{"access_token":"a","token_type":"MAC"}"#.to_vec()), "of type 'MAC'"),
            (HttpResponse::new(302, Vec::new()), "302"),
            (HttpResponse::new(200, vec![b' '; 2 * 1024 * 1024]), "too large"),
            (error("invalid_client"), "invalid_client"),
        ] {
            let mut device = started(None);
            let DevicePoll::Failed(error) = device.handle_poll(&response, now) else { panic!("{cause}: not final") };
            let message = error.to_string();
            assert!(message.starts_with("the device sign-in failed while waiting for approval"), "{message}");
            assert!(message.contains(cause), "{cause}: {message}");
        }
    }
}
