//! A manual clock, a stand-in signature verifier and a signed-in session, shared by the topics.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::authorize::AuthorizeOptions;
use sessionkit_core::oidc::client::{ClientConfig, Issuer, RedirectUri};
use sessionkit_core::oidc::discovery::ProviderMetadata;
use sessionkit_core::oidc::id_token::{JwsHeader, SignatureError, SignatureVerifier};
use sessionkit_core::{Action, Keys, Now, Secret, Session, SessionEvent, SessionPolicy, UnixTime};

pub const ISSUER: &str = "https://idp.example";
pub const CLIENT_ID: &str = "app";
/// 2027-01-15T08:00:00Z, in seconds.
pub const START: u64 = 1_800_000_000;

/// A clock the test moves by hand: wall and monotonic advance together unless told otherwise.
#[derive(Clone, Debug)]
pub struct ManualClock {
    wall: UnixTime,
    monotonic: Duration,
}

impl ManualClock {
    pub fn new() -> Self {
        Self { wall: UnixTime::from_secs(START), monotonic: Duration::from_secs(1000) }
    }

    pub fn now(&self) -> Now {
        Now::new(self.wall, self.monotonic)
    }

    pub fn wall(&self) -> UnixTime {
        self.wall
    }

    pub fn advance(&mut self, by: Duration) {
        self.wall = self.wall.saturating_add(by);
        self.monotonic += by;
    }

    /// Moves the wall clock back (a user changing the time); monotonic time is unaffected.
    pub fn set_wall_back(&mut self, by: Duration) {
        self.wall = self.wall.saturating_sub(by);
    }

    /// Jumps both clocks to a session-time instant.
    pub fn advance_to(&mut self, at: UnixTime) {
        let by = at.saturating_duration_since(self.wall);
        self.advance(by);
    }
}

/// Accepts the signature `good` for key `k1` and nothing else: the real JWKS verifier is the
/// driver's and is tested there against the real provider.
pub struct TestVerifier;

impl SignatureVerifier for TestVerifier {
    fn verify(&self, header: &JwsHeader, _input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match (header.kid.as_deref(), signature) {
            (Some("k1"), b"good") => Ok(()),
            (Some("k1"), _) => Err(SignatureError::Invalid),
            (Some("short"), _) => Err(SignatureError::WeakKey),
            _ => Err(SignatureError::UnknownKey),
        }
    }
}

pub fn jwt(header: serde_json::Value, claims: serde_json::Value, signature: &[u8]) -> String {
    let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{}", enc(&header), enc(&claims), URL_SAFE_NO_PAD.encode(signature))
}

pub fn id_token(sub: &str, nonce: Option<&str>, issued_at: UnixTime) -> String {
    let mut claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": CLIENT_ID,
        "iat": issued_at.as_secs(), "exp": issued_at.as_secs() + 600,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    jwt(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims, b"good")
}

pub fn token_body(access: &str, refresh: Option<&str>, id_token: Option<&str>, expires_in: u64) -> HttpResponse {
    let mut body = serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": expires_in});
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    if let Some(id) = id_token {
        body["id_token"] = id.into();
    }
    HttpResponse::new(200, body.to_string().into_bytes())
}

pub fn error_body(status: u16, code: &str) -> HttpResponse {
    HttpResponse::new(status, serde_json::json!({"error": code}).to_string().into_bytes())
}

pub fn client() -> ClientConfig {
    let mut config = ClientConfig::new(
        Issuer::parse(ISSUER).unwrap(),
        CLIENT_ID,
        RedirectUri::parse("http://127.0.0.1:4711/cb").unwrap(),
        &["offline_access"],
    )
    .unwrap();
    config.post_logout_redirect_uri = Some(RedirectUri::parse("http://127.0.0.1:4711/bye").unwrap());
    config
}

pub fn metadata() -> ProviderMetadata {
    let doc = serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "jwks_uri": "https://idp.example/jwks",
        "revocation_endpoint": "https://idp.example/token/revocation",
        "end_session_endpoint": "https://idp.example/session/end",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true
    });
    ProviderMetadata::from_json(&Issuer::parse(ISSUER).unwrap(), doc.to_string().as_bytes()).unwrap()
}

/// 15 min idle, 8 h absolute, 60 s refresh lead and leeway, 2 min warning: the defaults.
pub fn policy() -> SessionPolicy {
    SessionPolicy::default()
}

/// A session driven as a single-context driver would: what it persists lands in `store`, and
/// the shared-record checks it asks for ([`Action::SyncWithStore`]) are answered from there.
pub struct Harness {
    pub session: Session,
    pub clock: ManualClock,
    pub store: Option<Secret>,
    pending: Vec<Action>,
}

impl Harness {
    pub fn with(session: Session, clock: ManualClock) -> Self {
        Self { session, clock, store: None, pending: Vec::new() }
    }

    pub fn signed_out(policy: SessionPolicy) -> Self {
        Self {
            session: Session::new(client(), metadata(), policy),
            clock: ManualClock::new(),
            store: None,
            pending: Vec::new(),
        }
    }

    /// Signs `sub` in with access token `at1` (300 s) and refresh token `rt1`.
    pub fn signed_in(policy: SessionPolicy) -> Self {
        let mut h = Self::signed_out(policy);
        h.login("alice", "at1", Some("rt1"), 300).unwrap();
        h
    }

    pub fn login(
        &mut self,
        sub: &str,
        at: &str,
        rt: Option<&str>,
        expires_in: u64,
    ) -> Result<(), sessionkit_core::CoreError> {
        let (_, pending) = self.session.begin_login(&AuthorizeOptions::default(), None, self.clock.now()).unwrap();
        let id = id_token(sub, Some(pending.nonce().expose()), self.clock.wall());
        let response = token_body(at, rt, Some(&id), expires_in);
        self.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, self.clock.now())
    }

    /// Performs the store's side of the queued actions (bounded); keeps the others for
    /// [`actions`](Self::actions). `SyncWithStore` is answered and not kept.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let Some(action) = self.session.poll_action() else { return };
            match &action {
                Action::SyncWithStore => {
                    let stored = self.store.as_ref().map(|s| s.expose().as_bytes().to_vec());
                    self.session.handle_store_changed(stored.as_deref(), self.clock.now()).unwrap();
                    continue;
                }
                Action::Persist(_) => {
                    let stored = self.store.as_ref().map(|s| s.expose().as_bytes().to_vec());
                    if let Some(write) = self.session.prepare_write(stored.as_deref(), self.clock.now()).unwrap() {
                        self.store = Some(write.record.clone());
                        self.session.handle_persisted(&write);
                    }
                }
                Action::Wipe
                    if self.store.as_ref().is_some_and(|s| self.session.wipe_applies_to(s.expose().as_bytes())) =>
                {
                    self.store = None;
                }
                _ => {}
            }
            self.pending.push(action);
        }
    }

    pub fn actions(&mut self) -> Vec<Action> {
        self.pump();
        std::mem::take(&mut self.pending)
    }

    pub fn events(&mut self) -> Vec<SessionEvent> {
        self.pump();
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    pub fn drain(&mut self) {
        self.actions();
        self.events();
    }

    /// Runs every timer due up to `until`, in order, as a driver would. Bounded.
    pub fn run_until(&mut self, until: UnixTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        for _ in 0..10_000 {
            match self.session.poll_timeout() {
                Some(at) if at <= until => {
                    self.clock.advance_to(at);
                    self.session.handle_timeout(self.clock.now());
                    events.extend(self.events());
                    // A driver would send refreshes; these tests answer them explicitly.
                    if self.actions().iter().any(|a| matches!(a, Action::Refresh(_))) {
                        return events;
                    }
                }
                _ => break,
            }
        }
        self.clock.advance_to(until);
        events
    }

    pub fn refresh_with(&mut self, response: &HttpResponse) -> Result<(), sessionkit_core::CoreError> {
        self.session.handle_refresh_response(response, &TestVerifier, Keys::Cached, self.clock.now())
    }

    pub fn token(&self) -> Option<String> {
        match self.session.access_token(self.clock.now()) {
            sessionkit_core::TokenState::Fresh(token) => Some(token.expose().to_owned()),
            _ => None,
        }
    }
}

pub fn persisted(actions: &[Action]) -> Vec<Secret> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist(record) => Some(record.clone()),
            _ => None,
        })
        .collect()
}
