//! The authorization code flow with PKCE: the URL the user opens and the callback it ends in.
//!
//! [`PendingAuthorization::begin`] draws a fresh PKCE verifier, `state` and `nonce` from the
//! CSPRNG and returns the authorization URL. Keep the pending value (in memory only) until
//! the provider redirects back, then call [`PendingAuthorization::accept_callback`]: it checks
//! the redirect target, `state` (constant time), `iss` (RFC 9207) and error responses, and
//! hands back the code. The pending value is single-use: once a callback carrying its `state`
//! has been accepted or has reported an error, it refuses every later callback.
//! [`PendingAuthorization::token_request`] builds the code exchange.
//!
//! A web page unloads while the user is at the provider, so its pending login must outlive
//! the page: [`PendingAuthorization::to_record`] / [`PendingAuthorization::from_record`] turn it
//! into a small secret record for the app's encrypted store. A record is good for
//! [`MAX_PENDING_AGE`] and only for the issuer and client that made it.
//!
//! What can go wrong: callbacks are attacker-controlled input; every failure is a typed
//! [`CallbackError`] and none of them echoes the callback URL (it may hold a code).

use crate::url::Url;

use super::client::{ClientConfig, RedirectUri};
use super::discovery::ProviderMetadata;
use super::dpop::DpopKey;
use crate::http::HttpRequest;
use crate::pkce::{CHALLENGE_METHOD, Pkce};
use crate::random::{RandomError, random_identifier};
use crate::{Secret, UnixTime};

/// The longest callback URL accepted.
pub const MAX_CALLBACK_BYTES: usize = 8 * 1024;

/// How long a saved pending login can be completed (authorization codes live minutes).
pub const MAX_PENDING_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Optional parameters of an authorization request. `Debug` leaves the login hint out (a user
/// name or an email address has no place in logs).
#[derive(Clone, Default)]
pub struct AuthorizeOptions {
    /// `prompt` (e.g. `login`, `consent`); `consent` is what providers require before they
    /// issue a refresh token for `offline_access`.
    pub prompt: Option<String>,
    /// `login_hint`, a user name or email to prefill.
    pub login_hint: Option<String>,
    /// `max_age` in seconds: force re-authentication older than this (step-up).
    pub max_age: Option<u64>,
    /// `acr_values`, requested authentication context classes.
    pub acr_values: Option<String>,
    /// A redirect URI for this login only, instead of the configured one: a loopback listener's
    /// `http://127.0.0.1:<ephemeral port>/...` (RFC 8252 7.3).
    pub redirect_uri: Option<RedirectUri>,
}

impl std::fmt::Debug for AuthorizeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeOptions")
            .field("prompt", &self.prompt)
            .field("login_hint", &self.login_hint.as_ref().map(|_| "(set)"))
            .field("max_age", &self.max_age)
            .field("acr_values", &self.acr_values)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A login in progress: the secrets that tie the callback and the tokens to this request.
#[derive(Debug)]
pub struct PendingAuthorization {
    state: Secret,
    nonce: Secret,
    pkce: Pkce,
    redirect_uri: Url,
    issuer: String,
    client_id: String,
    token_endpoint: Url,
    iss_required: bool,
    started_at: UnixTime,
    consumed: bool,
    /// The DPoP key the code is bound to (`dpop_jkt`), which must sign the exchange.
    dpop_key: Option<DpopKey>,
    /// The `max_age` asked for (step-up), which the ID token's `auth_time` must honour.
    max_age: Option<u64>,
}

/// The authorization code from an accepted callback.
#[derive(Debug)]
pub struct AuthorizationCode(Secret);

/// Why a callback was refused. Nothing here contains the callback's code or URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// Not a URL, too long, or a parameter repeated.
    #[error("the callback URL is malformed")]
    Malformed,
    /// The URL is not the redirect URI this login used.
    #[error("the callback does not go to this login's redirect URI")]
    WrongRedirect,
    /// `state` missing or different: not the response to this request (CSRF defence).
    #[error("the callback's state does not match this login")]
    StateMismatch,
    /// This login already received its callback.
    #[error("this login has already been completed or abandoned; start a new one")]
    AlreadyUsed,
    /// No saved login to complete: none was started here, it was completed already, or it is
    /// older than [`MAX_PENDING_AGE`].
    #[error("no sign-in is in progress (it expired or was completed); start a new one")]
    NoLoginInProgress,
    /// `iss` differs from the issuer, or is missing though the provider promised it (RFC 9207).
    #[error("the callback's issuer does not match the configured provider")]
    IssuerMismatch,
    /// The provider answered with an error (e.g. `access_denied`).
    #[error("the provider refused the sign-in: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        /// The OAuth error code.
        code: String,
        /// The provider's description, truncated and limited to printable ASCII.
        description: Option<String>,
    },
    /// A success response without a code.
    #[error("the callback has no authorization code")]
    MissingCode,
}

impl PendingAuthorization {
    /// Starts a login: fresh PKCE, `state` and `nonce`; returns the URL to open and the pending login.
    pub fn begin(
        client: &ClientConfig,
        metadata: &ProviderMetadata,
        options: &AuthorizeOptions,
        dpop_key: Option<DpopKey>,
        now: UnixTime,
    ) -> Result<(Url, Self), RandomError> {
        let redirect_uri = options.redirect_uri.as_ref().unwrap_or(&client.redirect_uri);
        let pending = Self {
            state: random_identifier()?,
            nonce: random_identifier()?,
            pkce: Pkce::generate()?,
            redirect_uri: redirect_uri.url().clone(),
            issuer: metadata.issuer.clone(),
            client_id: client.client_id.clone(),
            token_endpoint: metadata.token_endpoint.clone(),
            iss_required: metadata.iss_parameter_supported,
            started_at: now,
            consumed: false,
            dpop_key,
            max_age: options.max_age,
        };
        let scope = client.scope_param();
        let max_age = options.max_age.map(|seconds| seconds.to_string());
        // RFC 9449 section 10: the code is bound to the key, so only its holder can redeem it.
        let dpop_jkt = pending.dpop_key.as_ref().map(DpopKey::thumbprint);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scope.as_str()),
            // state and nonce are single-use values whose job is to travel in this URL.
            ("state", pending.state.expose()),
            ("nonce", pending.nonce.expose()),
            ("code_challenge", pending.pkce.challenge()),
            ("code_challenge_method", CHALLENGE_METHOD),
        ];
        let optional = [
            ("prompt", options.prompt.as_deref()),
            ("login_hint", options.login_hint.as_deref()),
            ("max_age", max_age.as_deref()),
            ("acr_values", options.acr_values.as_deref()),
            ("dpop_jkt", dpop_jkt.as_deref()),
        ];
        pairs.extend(optional.into_iter().filter_map(|(name, value)| Some((name, value?))));
        let url = metadata.authorization_endpoint.with_query_pairs(&pairs);
        Ok((url, pending))
    }

    /// When this login started (to expire abandoned logins).
    pub fn started_at(&self) -> UnixTime {
        self.started_at
    }

    /// The DPoP key this sign-in's tokens will be bound to, if any.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop_key.as_ref()
    }

    /// The nonce the ID token must carry.
    pub fn nonce(&self) -> &Secret {
        &self.nonce
    }

    /// The `max_age` this sign-in asked for, in seconds (the ID token's `auth_time` must be
    /// no older).
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// The pending login as a secret record, to keep in an encrypted store across a page load.
    pub fn to_record(&self) -> Secret {
        let record = PendingRecord {
            version: PENDING_RECORD_VERSION,
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            verifier: self.pkce.verifier().clone(),
            redirect_uri: self.redirect_uri.as_str().to_owned(),
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            started_at: self.started_at,
            dpop_key: self.dpop_key.clone(),
            max_age: self.max_age,
        };
        // Plain strings and numbers: serializing cannot fail.
        Secret::new(serde_json::to_string(&record).unwrap_or_default())
    }

    /// The DPoP key a pending record holds, whatever its age (to forget the key of a sign-in
    /// that a newer one replaces, or that expired).
    pub fn dpop_key_in_record(bytes: &[u8]) -> Option<DpopKey> {
        serde_json::from_slice::<PendingRecord>(bytes).ok()?.dpop_key
    }

    /// Reads a record made by [`to_record`](Self::to_record). It must be this client's, with
    /// this provider, and younger than [`MAX_PENDING_AGE`]; otherwise there is no login to
    /// complete ([`CallbackError::NoLoginInProgress`]).
    pub fn from_record(
        bytes: &[u8],
        client: &ClientConfig,
        metadata: &ProviderMetadata,
        now: UnixTime,
    ) -> Result<Self, CallbackError> {
        let record: PendingRecord = serde_json::from_slice(bytes).map_err(|_| CallbackError::NoLoginInProgress)?;
        let age = now.saturating_duration_since(record.started_at);
        if record.version != PENDING_RECORD_VERSION
            || record.issuer != metadata.issuer
            || record.client_id != client.client_id
            || age > MAX_PENDING_AGE
            || record.started_at > now.saturating_add(MAX_PENDING_AGE)
        {
            return Err(CallbackError::NoLoginInProgress);
        }
        let pkce = Pkce::from_verifier(record.verifier).map_err(|_| CallbackError::NoLoginInProgress)?;
        let redirect_uri = Url::parse(&record.redirect_uri).map_err(|_| CallbackError::NoLoginInProgress)?;
        Ok(Self {
            state: record.state,
            nonce: record.nonce,
            pkce,
            redirect_uri,
            issuer: record.issuer,
            client_id: record.client_id,
            token_endpoint: metadata.token_endpoint.clone(),
            iss_required: metadata.iss_parameter_supported,
            started_at: record.started_at,
            consumed: false,
            dpop_key: record.dpop_key,
            max_age: record.max_age,
        })
    }

    /// Checks a callback URL and returns its code. See the module guide for the rules.
    pub fn accept_callback(&mut self, callback: &str) -> Result<AuthorizationCode, CallbackError> {
        if callback.len() > MAX_CALLBACK_BYTES {
            return Err(CallbackError::Malformed);
        }
        let url = Url::parse(callback).map_err(|_| CallbackError::Malformed)?;
        if url.scheme() != self.redirect_uri.scheme()
            || url.host() != self.redirect_uri.host()
            || url.port_or_known_default() != self.redirect_uri.port_or_known_default()
            || url.path() != self.redirect_uri.path()
        {
            return Err(CallbackError::WrongRedirect);
        }
        let params = CallbackParams::parse(&url)?;
        if self.consumed {
            return Err(CallbackError::AlreadyUsed);
        }
        match params.state.as_deref() {
            Some(state) if self.state.constant_time_eq(state) => {}
            _ => return Err(CallbackError::StateMismatch),
        }
        // From here on the response is this login's own: whatever it says, the login is over.
        self.consumed = true;
        match params.iss.as_deref() {
            Some(iss) if iss != self.issuer => return Err(CallbackError::IssuerMismatch),
            None if self.iss_required => return Err(CallbackError::IssuerMismatch),
            _ => {}
        }
        if let Some(code) = params.error {
            return Err(CallbackError::Provider { code: printable(&code, 64), description: params.error_description });
        }
        params.code.map(AuthorizationCode).ok_or(CallbackError::MissingCode)
    }

    /// The token request that exchanges `code` (with the PKCE verifier).
    pub fn token_request(&self, code: &AuthorizationCode) -> HttpRequest {
        let mut request = HttpRequest::post_form(
            self.token_endpoint.clone(),
            &[
                ("grant_type", "authorization_code"),
                // The code and verifier are sent exactly once, to the token endpoint.
                ("code", code.0.expose()),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("client_id", &self.client_id),
                ("code_verifier", self.pkce.verifier().expose()),
            ],
        );
        request.dpop = self.dpop_key.clone();
        request
    }
}

const PENDING_RECORD_VERSION: u32 = 1;

/// The stored form of a pending login; its secrets are zeroized when it drops.
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingRecord {
    version: u32,
    state: Secret,
    nonce: Secret,
    verifier: Secret,
    redirect_uri: String,
    issuer: String,
    client_id: String,
    started_at: UnixTime,
    /// Added without a version change: a record without it is a Bearer sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<DpopKey>,
    /// Likewise: a record without it asked for no `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
}

struct CallbackParams {
    state: Option<String>,
    code: Option<Secret>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl CallbackParams {
    fn parse(url: &Url) -> Result<Self, CallbackError> {
        let mut params = Self { state: None, code: None, iss: None, error: None, error_description: None };
        for (name, value) in url.query_pairs() {
            let slot_taken = match name.as_ref() {
                "state" => params.state.replace(value.into_owned()).is_some(),
                "code" => params.code.replace(Secret::new(value.into_owned())).is_some(),
                "iss" => params.iss.replace(value.into_owned()).is_some(),
                "error" => params.error.replace(value.into_owned()).is_some(),
                "error_description" => params.error_description.replace(printable(&value, 200)).is_some(),
                _ => false,
            };
            // RFC 6749 section 3.1: parameters must not be included more than once.
            if slot_taken {
                return Err(CallbackError::Malformed);
            }
        }
        Ok(params)
    }
}

/// Provider-supplied text for messages: printable ASCII only, at most `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::client::{Issuer, RedirectUri};
    use crate::oidc::discovery::tests::{ISSUER, metadata};

    fn client() -> ClientConfig {
        ClientConfig::new(
            Issuer::parse(ISSUER).expect("issuer"),
            "app",
            RedirectUri::parse("http://127.0.0.1:4711/cb").expect("redirect"),
            &["offline_access"],
        )
        .expect("config")
    }

    fn begin() -> (Url, PendingAuthorization) {
        PendingAuthorization::begin(&client(), &metadata(), &AuthorizeOptions::default(), None, UnixTime::EPOCH)
            .expect("random")
    }

    fn param(url: &Url, name: &str) -> String {
        url.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
    }

    fn callback(pending: &PendingAuthorization, extra: &str) -> String {
        format!("http://127.0.0.1:4711/cb?state={}&iss={}{extra}", pending.state.expose(), "https%3A%2F%2Fidp.example")
    }

    #[test]
    fn url_carries_pkce_state_nonce() {
        let (url, pending) = begin();
        assert_eq!(param(&url, "response_type"), "code");
        assert_eq!(param(&url, "code_challenge_method"), "S256");
        assert_eq!(param(&url, "code_challenge"), pending.pkce.challenge());
        assert_eq!(param(&url, "scope"), "openid offline_access");
        assert!(pending.state.constant_time_eq(&param(&url, "state")));
        assert!(pending.nonce.constant_time_eq(&param(&url, "nonce")));
        let (other, _) = begin();
        assert_ne!(param(&url, "state"), param(&other, "state"));
        assert_ne!(param(&url, "nonce"), param(&other, "nonce"));
    }

    #[test]
    fn a_saved_login_completes_once_and_only_for_its_client_in_time() {
        let (_, pending) = begin();
        let record = pending.to_record();
        let mut restored = PendingAuthorization::from_record(
            record.expose().as_bytes(),
            &client(),
            &metadata(),
            UnixTime::from_secs(60),
        )
        .expect("restored");
        let cb = callback(&pending, "&code=the-code");
        let code = restored.accept_callback(&cb).expect("accepted");
        let body = restored.token_request(&code).body.expect("body");
        assert!(body.expose().contains(&format!("code_verifier={}", pending.pkce.verifier().expose())));
        assert!(restored.nonce().constant_time_eq(pending.nonce().expose()));
        assert_eq!(restored.max_age(), None);
        // A step-up's max_age survives the page load: the ID token is checked against it.
        let options = AuthorizeOptions { max_age: Some(120), ..AuthorizeOptions::default() };
        let (_, step_up) =
            PendingAuthorization::begin(&client(), &metadata(), &options, None, UnixTime::EPOCH).expect("begin");
        let restored = PendingAuthorization::from_record(
            step_up.to_record().expose().as_bytes(),
            &client(),
            &metadata(),
            UnixTime::from_secs(60),
        )
        .expect("restored");
        assert_eq!(restored.max_age(), Some(120));

        let too_late = UnixTime::EPOCH.saturating_add(MAX_PENDING_AGE + std::time::Duration::from_secs(1));
        let stale = PendingAuthorization::from_record(record.expose().as_bytes(), &client(), &metadata(), too_late);
        assert_eq!(stale.err(), Some(CallbackError::NoLoginInProgress));
        let other_client = ClientConfig::new(
            Issuer::parse(ISSUER).expect("issuer"),
            "other-app",
            RedirectUri::parse("http://127.0.0.1:4711/cb").expect("redirect"),
            &[],
        )
        .expect("config");
        let foreign =
            PendingAuthorization::from_record(record.expose().as_bytes(), &other_client, &metadata(), UnixTime::EPOCH);
        assert_eq!(foreign.err(), Some(CallbackError::NoLoginInProgress));
        for garbage in [&b""[..], b"{}", b"null", b"\xff\xfe", br#"{"version":1}"#] {
            let refused = PendingAuthorization::from_record(garbage, &client(), &metadata(), UnixTime::EPOCH);
            assert_eq!(refused.err(), Some(CallbackError::NoLoginInProgress));
        }
        assert!(!format!("{record:?}").contains(pending.pkce.verifier().expose()));
    }

    #[test]
    fn good_callback_gives_code_once() {
        let (_, mut pending) = begin();
        let cb = callback(&pending, "&code=the-code");
        let code = pending.accept_callback(&cb).expect("accepted");
        assert!(code.0.constant_time_eq("the-code"));
        assert_eq!(pending.accept_callback(&cb).err(), Some(CallbackError::AlreadyUsed));
        let body = pending.token_request(&code).body.expect("body");
        assert!(body.expose().contains("grant_type=authorization_code"));
        assert!(body.expose().contains(&format!("code_verifier={}", pending.pkce.verifier().expose())));
    }

    #[test]
    fn wrong_state_does_not_burn_the_login() {
        let (_, mut pending) = begin();
        let forged = "http://127.0.0.1:4711/cb?state=forged&code=x&iss=https%3A%2F%2Fidp.example";
        assert_eq!(pending.accept_callback(forged).err(), Some(CallbackError::StateMismatch));
        assert_eq!(
            pending.accept_callback("http://127.0.0.1:4711/cb?code=x").err(),
            Some(CallbackError::StateMismatch)
        );
        let cb = callback(&pending, "&code=real");
        assert!(pending.accept_callback(&cb).is_ok());
    }

    #[test]
    fn a_per_login_redirect_uri_replaces_the_configured_one() {
        let options = AuthorizeOptions {
            redirect_uri: Some(RedirectUri::parse("http://127.0.0.1:5555/cb").expect("redirect")),
            ..AuthorizeOptions::default()
        };
        let (url, mut pending) =
            PendingAuthorization::begin(&client(), &metadata(), &options, None, UnixTime::EPOCH).expect("random");
        assert_eq!(param(&url, "redirect_uri"), "http://127.0.0.1:5555/cb");
        let cb =
            format!("http://127.0.0.1:4711/cb?state={}&code=x&iss=https%3A%2F%2Fidp.example", pending.state.expose());
        assert_eq!(pending.accept_callback(&cb).err(), Some(CallbackError::WrongRedirect));
        let cb = cb.replace("4711", "5555");
        assert!(pending.accept_callback(&cb).is_ok());
    }

    #[test]
    fn iss_is_checked() {
        let (_, mut pending) = begin();
        let cb =
            format!("http://127.0.0.1:4711/cb?state={}&code=x&iss=https%3A%2F%2Fevil.example", pending.state.expose());
        assert_eq!(pending.accept_callback(&cb).err(), Some(CallbackError::IssuerMismatch));
        let (_, mut pending) = begin();
        let missing = format!("http://127.0.0.1:4711/cb?state={}&code=x", pending.state.expose());
        assert_eq!(pending.accept_callback(&missing).err(), Some(CallbackError::IssuerMismatch));
    }

    #[test]
    fn provider_errors_and_malformed_callbacks() {
        let (_, mut pending) = begin();
        let cb = callback(&pending, "&error=access_denied&error_description=User%20said%20no%0A%1b[31m");
        assert_eq!(
            pending.accept_callback(&cb).err(),
            Some(CallbackError::Provider {
                code: "access_denied".into(),
                description: Some("User said no[31m".into())
            })
        );
        let (_, mut pending) = begin();
        assert_eq!(pending.accept_callback("::::").err(), Some(CallbackError::Malformed));
        assert_eq!(
            pending.accept_callback("http://127.0.0.1:9999/cb?code=x").err(),
            Some(CallbackError::WrongRedirect)
        );
        let dup = callback(&pending, "&code=a&code=b");
        assert_eq!(pending.accept_callback(&dup).err(), Some(CallbackError::Malformed));
        let no_code = callback(&pending, "");
        assert_eq!(pending.accept_callback(&no_code).err(), Some(CallbackError::MissingCode));
        let huge = format!("http://127.0.0.1:4711/cb?x={}", "a".repeat(MAX_CALLBACK_BYTES));
        assert_eq!(pending.accept_callback(&huge).err(), Some(CallbackError::Malformed));
    }

    #[test]
    fn errors_never_echo_the_code() {
        let (_, mut pending) = begin();
        let cb = "http://127.0.0.1:4711/cb?state=nope&code=SECRET-CODE";
        let err = pending.accept_callback(cb).expect_err("refused");
        assert!(!format!("{err} {err:?} {pending:?}").contains("SECRET-CODE"));
    }

    #[test]
    fn a_dpop_sign_in_binds_the_code_and_its_exchange_to_the_key() {
        use crate::oidc::dpop::{DpopAlgorithm, DpopPublicKey};
        let key = DpopKey {
            algorithm: DpopAlgorithm::Es256,
            public_key: DpopPublicKey::P256 {
                x: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".into(),
                y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".into(),
            },
            handle: Secret::from("handle"),
        };
        let (url, mut pending) = PendingAuthorization::begin(
            &client(),
            &metadata(),
            &AuthorizeOptions::default(),
            Some(key.clone()),
            UnixTime::EPOCH,
        )
        .unwrap();
        assert_eq!(param(&url, "dpop_jkt"), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        // Kept across a restart with the pending sign-in, and the exchange is signed with it.
        let restored = PendingAuthorization::from_record(
            pending.to_record().expose().as_bytes(),
            &client(),
            &metadata(),
            UnixTime::EPOCH,
        )
        .unwrap();
        assert_eq!(restored.dpop_key(), Some(&key));
        let code = pending.accept_callback(&callback(&pending, "&code=c")).unwrap();
        assert_eq!(pending.token_request(&code).dpop, Some(key));
        // Without a key, no dpop_jkt and no proof.
        let (url, _) =
            PendingAuthorization::begin(&client(), &metadata(), &AuthorizeOptions::default(), None, UnixTime::EPOCH)
                .unwrap();
        assert_eq!(param(&url, "dpop_jkt"), "");
    }
}
