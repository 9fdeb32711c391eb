//! The session state machine: one signed-in user's tokens and the rules that govern them.
//!
//! [`Session`] follows the quinn-proto style. Inputs are `handle_*` calls (and
//! [`Session::record_activity`], [`Session::request_refresh`], [`Session::logout`]), each
//! taking the current time as a [`Now`]. Outputs are polled: [`Session::poll_action`] yields
//! work for the driver ([`Action`]: persist, wipe, refresh, revoke), [`Session::poll_event`]
//! yields [`SessionEvent`]s for the app, and [`Session::poll_timeout`] says when to call
//! [`Session::handle_timeout`] next. The question apps ask most, "what is the access token
//! now?", is [`Session::access_token`]: a read-only check that allocates nothing.
//!
//! The rules, all here and nowhere else:
//! - A token is handed out only before the idle and absolute limits; past either, the answer
//!   is [`TokenState::Dead`] even if no timer has fired yet.
//! - A refresh is due `refresh_lead` before expiry (at most half the token's lifetime, so short
//!   tokens do not refresh in a loop). Refresh never moves the absolute limit.
//! - A transient refresh failure (network, 429, 5xx, an unreadable answer) keeps the session
//!   and backs off exponentially (1 s doubling to 60 s, or longer if `Retry-After` says so, up
//!   to 10 minutes); a still-valid access token stays usable meanwhile. A refusal
//!   (`invalid_grant` and other OAuth errors) ends the session without retrying.
//! - A refreshed ID token must keep `iss` and `sub`; otherwise the session ends as an anomaly.
//! - Every sign-in is a fresh session: new random id, new start time, the old tokens revoked.
//!   Logout wipes first, then revokes (the refresh token, then the access token), then offers
//!   the end-session URL; a session that expires is wiped and revoked the same way.
//! - The wall clock may not stretch a session: a clock set back is reported and ignored.
//!
//! What can go wrong: the driver must feed back every `Refresh` it was given (a response or
//! [`Session::handle_refresh_failure`]); until then no other refresh starts.

mod event;
mod record;

use std::collections::VecDeque;
use std::time::Duration;

pub use event::{
    Action, Anomaly, EndReason, ExpiryReason, Revocation, RevocationOutcome, SessionEvent, StorageProblem, TokenKind,
};
pub use record::{CURRENT_SCHEMA_VERSION, MAX_RECORD_BYTES, RecordError, SessionRecord};

use crate::error::CoreError;
use crate::http::HttpResponse;
use crate::oidc::authorize::{AuthorizeOptions, PendingAuthorization};
use crate::oidc::client::ClientConfig;
use crate::oidc::discovery::ProviderMetadata;
use crate::oidc::id_token::{
    IdTokenCheck, IdTokenClaims, IdTokenError, SignatureError, SignatureVerifier, validate_id_token,
};
use crate::oidc::logout::EndSessionRequest;
use crate::oidc::token::{TokenOutcome, TokenResponse, refresh_request};
use crate::random::random_identifier;
use crate::time::{ClockGuard, duration_millis};
use crate::{Now, Secret, SessionPolicy, UnixTime};

/// Lifetime assumed for an access token whose response had no `expires_in`.
pub const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// First retry delay after a transient refresh failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest computed retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(10 * 60);
/// Delay before retrying a failed write to the store.
pub const PERSIST_RETRY: Duration = Duration::from_secs(10);
/// Largest server clock offset believed (a `Date` header further off is ignored).
const MAX_SERVER_OFFSET: Duration = Duration::from_secs(24 * 3600);
/// Extra leeway for ID token times while the server's clock is unknown: no `Date` header seen
/// yet, as in a browser, where a cross-origin `Date` is unreadable unless the provider exposes
/// it. Ten minutes of skew either way then still signs in; the nonce (at sign-in) and the
/// direct TLS exchange keep such a token fresh, and the window stays bounded.
pub const UNKNOWN_SERVER_CLOCK_LEEWAY: Duration = Duration::from_secs(10 * 60);

/// The answer to "what is the access token now?".
#[derive(Debug, PartialEq, Eq)]
pub enum TokenState<'a> {
    /// Use this token.
    Fresh(&'a Secret),
    /// Refresh first (see [`Session::request_refresh`]), then ask again.
    Renewable,
    /// There is no usable session, for this reason.
    Dead(EndReason),
}

/// What [`Session::request_refresh`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshStart {
    /// A `Refresh` action was queued.
    Started,
    /// A refresh is already under way; wait for it.
    InFlight,
    /// The last attempt failed transiently; the next is allowed at this time.
    BackingOff {
        /// When a refresh may start again.
        until: UnixTime,
    },
    /// No refresh is possible.
    Impossible(EndReason),
}

/// Whether the signature verifier's keys were just fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Keys from the cache: an unknown `kid` leaves the session unchanged so the driver can
    /// refetch the JWKS (rate-limited) and call again.
    Cached,
    /// Keys fetched for this call: an unknown `kid` is final.
    JustFetched,
}

/// What [`Session::handle_store_changed`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreChange {
    /// The stored tokens were newer and are now in use; skip any pending refresh.
    Adopted,
    /// Nothing newer in the store.
    Unchanged,
    /// The store is empty: the session was ended elsewhere.
    Ended,
}

/// A snapshot of the session for display (`status` commands, debug screens). No secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The session's random id.
    pub session_id: String,
    /// The user.
    pub subject: String,
    /// Sign-in time.
    pub started_at: UnixTime,
    /// When the absolute lifetime ends.
    pub absolute_deadline: UnixTime,
    /// When the idle timeout ends, if no activity comes first.
    pub idle_deadline: UnixTime,
    /// When the access token expires.
    pub access_expires_at: UnixTime,
    /// When a refresh is due.
    pub refresh_due_at: UnixTime,
    /// Whether there is a refresh token.
    pub has_refresh_token: bool,
}

#[derive(Debug)]
enum RefreshState {
    Idle,
    /// A `Refresh` action was queued at `sent_at`; the new token's lifetime counts from then.
    InFlight {
        sent_at: UnixTime,
    },
    Backoff {
        until: UnixTime,
    },
}

#[derive(Debug)]
struct Tokens {
    access_token: Secret,
    token_type: String,
    issued_at: UnixTime,
    expires_at: UnixTime,
    refresh_due_at: UnixTime,
    refresh_token: Option<Secret>,
    id_token: Option<Secret>,
    scope: Option<String>,
}

/// When a token issued at `issued_at` and expiring at `expires_at` is due for refresh: `lead`
/// before expiry, but never earlier than halfway through its life.
fn refresh_due(issued_at: UnixTime, expires_at: UnixTime, lead: Duration) -> UnixTime {
    let lifetime = expires_at.saturating_duration_since(issued_at);
    expires_at.saturating_sub(lead.min(lifetime / 2))
}

impl Tokens {
    fn new(response: TokenResponse, issued_at: UnixTime, lead: Duration) -> Self {
        let expires_at = issued_at.saturating_add(response.expires_in.unwrap_or(DEFAULT_ACCESS_LIFETIME));
        Self {
            access_token: response.access_token,
            token_type: response.token_type,
            issued_at,
            expires_at,
            refresh_due_at: refresh_due(issued_at, expires_at, lead),
            refresh_token: response.refresh_token,
            id_token: response.id_token,
            scope: response.scope,
        }
    }
}

#[derive(Debug)]
struct Active {
    session_id: String,
    subject: String,
    tokens: Tokens,
    started_at: UnixTime,
    absolute_deadline: UnixTime,
    last_activity_at: UnixTime,
    activity_persisted_at: UnixTime,
    refresh: RefreshState,
    /// Consecutive transient refresh failures (for the backoff); reset by a success.
    refresh_failures: u32,
    warned_idle: bool,
    warned_absolute: bool,
    persist_retry_at: Option<UnixTime>,
    /// Whether a record of this session has been in the store (written here or read there):
    /// from then on an empty store means another context ended it.
    written: bool,
    /// Changes queued for the store, and how many of them a write has carried.
    changes: u64,
    persisted_changes: u64,
    /// The idle limit was reached on this context's own activity; the shared record decides.
    idle_check: IdleCheck,
    /// Activity recorded while the idle check was pending: it counts if the session lives on.
    pending_activity: Option<UnixTime>,
}

/// Where the confirmation of an idle end stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdleCheck {
    /// The idle limit has not been reached here.
    NotNeeded,
    /// [`Action::SyncWithStore`] was queued; its answer decides.
    Requested,
    /// The store could not be read; ask again at this time.
    RetryAt(UnixTime),
}

/// A record to write, from [`Session::prepare_write`]; hand it back to
/// [`Session::handle_persisted`] once it is in the store.
#[derive(Debug)]
pub struct PendingWrite {
    /// The encoded record (secret).
    pub record: Secret,
    /// Its revision: higher than the store's.
    pub revision: u64,
    session_id: String,
    changes: u64,
}

impl Active {
    fn idle_deadline(&self, policy: &SessionPolicy) -> UnixTime {
        self.last_activity_at.saturating_add(policy.idle_timeout())
    }

    /// The limit that has ended the session at `t`, if any (absolute first: it is final).
    fn limit_reached(&self, t: UnixTime, policy: &SessionPolicy) -> Option<EndReason> {
        if t >= self.absolute_deadline {
            Some(EndReason::AbsoluteLifetime)
        } else if t >= self.idle_deadline(policy) {
            Some(EndReason::IdleTimeout)
        } else {
            None
        }
    }
}

/// Why [`Session::check_id_token`] did not accept a token.
enum IdTokenFailure {
    /// Unknown `kid` with cached keys: nothing changes until the driver retries with fresh keys.
    RefetchKeys(IdTokenError),
    /// A final refusal.
    Refused(IdTokenError),
}

#[derive(Debug)]
enum State {
    Ended(EndReason),
    Active(Box<Active>),
}

/// One session's state machine. See the module guide.
#[derive(Debug)]
pub struct Session {
    client: ClientConfig,
    metadata: ProviderMetadata,
    policy: SessionPolicy,
    clock: ClockGuard,
    server_offset_ms: i64,
    /// Whether `server_offset_ms` comes from a `Date` header this session saw.
    server_clock_known: bool,
    state: State,
    /// The highest revision of the store slot this session has written or read.
    revision: u64,
    /// The id of the session that ended last: its record is never written or adopted again.
    ended_session_id: Option<String>,
    /// A wipe that failed is asked for again at this time.
    wipe_retry_at: Option<UnixTime>,
    events: VecDeque<SessionEvent>,
    actions: VecDeque<Action>,
}

impl Session {
    /// A signed-out session for this client and provider.
    pub fn new(client: ClientConfig, metadata: ProviderMetadata, policy: SessionPolicy) -> Self {
        Self {
            client,
            metadata,
            policy,
            clock: ClockGuard::starting_at(UnixTime::EPOCH),
            server_offset_ms: 0,
            server_clock_known: false,
            state: State::Ended(EndReason::NotSignedIn),
            revision: 0,
            ended_session_id: None,
            wipe_retry_at: None,
            events: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The client configuration.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// The provider's metadata.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    // ----- queries -------------------------------------------------------------------

    /// "What is the access token now?" Read-only, allocation-free; see [`TokenState`].
    pub fn access_token(&self, now: Now) -> TokenState<'_> {
        let active = match &self.state {
            State::Ended(reason) => return TokenState::Dead(*reason),
            State::Active(active) => active,
        };
        let t = self.clock.effective(now);
        if let Some(reason) = active.limit_reached(t, &self.policy) {
            return TokenState::Dead(reason);
        }
        let tokens = &active.tokens;
        if t < tokens.refresh_due_at {
            return TokenState::Fresh(&tokens.access_token);
        }
        let still_valid = t < tokens.expires_at;
        match (&tokens.refresh_token, &active.refresh) {
            (None, _) if still_valid => TokenState::Fresh(&tokens.access_token),
            (None, _) => TokenState::Dead(EndReason::AccessTokenExpired),
            // While backing off after a transient failure, a token that still works is used.
            (Some(_), RefreshState::Backoff { .. }) if still_valid => TokenState::Fresh(&tokens.access_token),
            (Some(_), _) => TokenState::Renewable,
        }
    }

    /// The token type to put in the `Authorization` header (`Bearer` or `DPoP`).
    pub fn token_type(&self) -> Option<&str> {
        match &self.state {
            State::Active(active) => Some(&active.tokens.token_type),
            State::Ended(_) => None,
        }
    }

    /// The session's times and identity, or `None` when signed out.
    pub fn status(&self) -> Option<SessionStatus> {
        let State::Active(a) = &self.state else { return None };
        Some(SessionStatus {
            session_id: a.session_id.clone(),
            subject: a.subject.clone(),
            started_at: a.started_at,
            absolute_deadline: a.absolute_deadline,
            idle_deadline: a.idle_deadline(&self.policy),
            access_expires_at: a.tokens.expires_at,
            refresh_due_at: a.tokens.refresh_due_at,
            has_refresh_token: a.tokens.refresh_token.is_some(),
        })
    }

    /// Why there is no session, or `None` while one is active.
    pub fn end_reason(&self) -> Option<EndReason> {
        match self.state {
            State::Ended(reason) => Some(reason),
            State::Active(_) => None,
        }
    }

    /// Server clock minus local clock, in milliseconds, from the latest `Date` header.
    pub fn server_offset_ms(&self) -> i64 {
        self.server_offset_ms
    }

    // ----- outputs -------------------------------------------------------------------

    /// The next piece of work for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run, in session time.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        let State::Active(a) = &self.state else { return self.wipe_retry_at };
        // While the idle limit waits for the shared record, nothing else happens but the
        // check's retry and the absolute limit (`handle_timeout` stops there, so any other
        // deadline already past would wake the driver again and again at the same instant).
        match a.idle_check {
            IdleCheck::NotNeeded => {}
            IdleCheck::Requested => return Some(a.absolute_deadline),
            IdleCheck::RetryAt(at) => return Some(at.min(a.absolute_deadline)),
        }
        let idle_deadline = a.idle_deadline(&self.policy);
        let lead = self.policy.warning_lead();
        let mut next = a.absolute_deadline;
        let mut consider = |t: Option<UnixTime>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        consider(Some(idle_deadline));
        // Activity not yet in the store is written before the shared idle deadline it extends,
        // so that a context checking that deadline sees it.
        let flush_margin = self.policy.idle_timeout() / 4;
        consider(
            (a.last_activity_at > a.activity_persisted_at).then(|| {
                a.activity_persisted_at.saturating_add(self.policy.idle_timeout()).saturating_sub(flush_margin)
            }),
        );
        consider((!a.warned_absolute).then(|| a.absolute_deadline.saturating_sub(lead)));
        consider((!a.warned_idle && idle_deadline < a.absolute_deadline).then(|| idle_deadline.saturating_sub(lead)));
        let background = self.policy.background_refresh();
        consider(match (&a.tokens.refresh_token, &a.refresh) {
            (None, _) => Some(a.tokens.expires_at),
            (Some(_), _) if !background => None,
            (Some(_), RefreshState::Idle) => Some(a.tokens.refresh_due_at),
            (Some(_), RefreshState::Backoff { until }) => Some((*until).max(a.tokens.refresh_due_at)),
            (Some(_), RefreshState::InFlight { .. }) => None,
        });
        consider(a.persist_retry_at);
        Some(next)
    }

    /// How long the driver should sleep before calling [`handle_timeout`](Self::handle_timeout).
    pub fn time_until_timeout(&self, now: Now) -> Option<Duration> {
        self.poll_timeout().map(|deadline| deadline.saturating_duration_since(self.clock.effective(now)))
    }

    // ----- inputs --------------------------------------------------------------------

    /// Starts a sign-in: the URL to open and the pending login to keep until the callback.
    /// The current session, if any, stays until the new one is complete.
    pub fn begin_login(
        &self,
        options: &AuthorizeOptions,
        now: Now,
    ) -> Result<(crate::url::Url, PendingAuthorization), CoreError> {
        Ok(PendingAuthorization::begin(&self.client, &self.metadata, options, self.clock.effective(now))?)
    }

    /// Feeds the token endpoint's answer to the code exchange. On success a fresh session
    /// replaces any previous one (whose refresh token is revoked). On failure nothing changes.
    pub fn handle_login_response(
        &mut self,
        pending: &PendingAuthorization,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        self.login(Some(pending.nonce()), response, verifier, keys, now)
    }

    /// Feeds the token response that ended a device authorization (RFC 8628). The ID token
    /// carries no nonce in this flow (there was no authorization request); everything else is
    /// checked as for [`handle_login_response`](Self::handle_login_response).
    pub fn handle_device_login_response(
        &mut self,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        self.login(None, response, verifier, keys, now)
    }

    fn login(
        &mut self,
        nonce: Option<&Secret>,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        let t = self.observe(now);
        self.update_server_offset(response, t);
        let tokens = match TokenOutcome::classify(response, t) {
            TokenOutcome::Tokens(tokens) => tokens,
            TokenOutcome::Refused(error) => return Err(error.into()),
            TokenOutcome::Transient { status, retry_after } => {
                return Err(CoreError::Transient { status: Some(status), retry_after });
            }
            TokenOutcome::Malformed(error) => return Err(error.into()),
        };
        let Some(id_token) = &tokens.id_token else {
            self.queue_revocation(tokens.refresh_token);
            return Err(CoreError::MissingIdToken);
        };
        let claims = match self.check_id_token(id_token, nonce, None, t, verifier, keys) {
            Ok(claims) => claims,
            Err(IdTokenFailure::RefetchKeys(error)) => return Err(error.into()),
            Err(IdTokenFailure::Refused(error)) => {
                self.queue_revocation(tokens.refresh_token);
                return Err(error.into());
            }
        };
        let session_id = random_identifier()?.expose().to_owned();
        let old = std::mem::replace(&mut self.state, State::Ended(EndReason::SignedOut));
        self.start(session_id, claims, tokens, t);
        // The new session's record first, then the old tokens' revocation.
        if let State::Active(old) = old {
            self.ended_session_id = Some(old.session_id);
            self.queue_revocations(old.tokens.refresh_token, Some(old.tokens.access_token));
        }
        Ok(())
    }

    /// Restores a session from the store's record at start-up. A record past its limits is
    /// ended at once (wiped and revoked); an unreadable one is left in the store untouched.
    pub fn restore(&mut self, record: &[u8], now: Now) -> Result<(), CoreError> {
        let record = match SessionRecord::decode(record) {
            Ok(record) => record,
            Err(error) => {
                self.events
                    .push_back(SessionEvent::StorageProblem { session_id: None, problem: StorageProblem::Unreadable });
                return Err(error.into());
            }
        };
        if record.issuer != self.metadata.issuer || record.client_id != self.client.client_id {
            return Err(RecordError::DifferentClient.into());
        }
        self.clock = ClockGuard::starting_at(record.last_seen_at);
        self.server_offset_ms = record.server_offset_ms;
        self.revision = self.revision.max(record.revision);
        let (session_id, subject) = (record.session_id.clone(), record.subject.clone());
        self.state = State::Active(Box::new(self.active_from_record(record)));
        let t = self.observe(now);
        // The record was just read from the store: its activity is the shared one.
        if !self.end_if_limit_reached(t, true) {
            self.events.push_back(SessionEvent::Restored { session_id, subject });
        }
        Ok(())
    }

    /// Counts user activity: the idle timeout restarts from `now` (unless it already passed).
    pub fn record_activity(&mut self, now: Now) {
        let t = self.observe(now);
        if self.end_if_limit_reached(t, false) {
            // Past the idle limit here: if the shared record keeps the session alive, this
            // activity counts once that is known.
            if let State::Active(a) = &mut self.state {
                a.pending_activity = Some(t);
            }
            return;
        }
        let persist_every = (self.policy.idle_timeout() / 4).min(Duration::from_secs(60));
        let State::Active(a) = &mut self.state else { return };
        a.last_activity_at = a.last_activity_at.max(t);
        a.warned_idle = false;
        if t.saturating_duration_since(a.activity_persisted_at) >= persist_every {
            a.activity_persisted_at = t;
            self.queue_persist();
        }
    }

    /// Asks for a refresh now (a caller got [`TokenState::Renewable`]).
    pub fn request_refresh(&mut self, now: Now) -> RefreshStart {
        let t = self.observe(now);
        if self.end_if_limit_reached(t, false) || self.end_if_expired_without_refresh(t) {
            // Still active: past the idle limit here, waiting for the shared record.
            return RefreshStart::Impossible(self.end_reason().unwrap_or(EndReason::IdleTimeout));
        }
        let State::Active(a) = &mut self.state else {
            return RefreshStart::Impossible(self.end_reason().unwrap_or(EndReason::NotSignedIn));
        };
        let Some(refresh_token) = &a.tokens.refresh_token else {
            return RefreshStart::Impossible(EndReason::AccessTokenExpired);
        };
        match a.refresh {
            RefreshState::InFlight { .. } => RefreshStart::InFlight,
            RefreshState::Backoff { until } if t < until => RefreshStart::BackingOff { until },
            _ => {
                let request = refresh_request(&self.metadata.token_endpoint, &self.client.client_id, refresh_token);
                a.refresh = RefreshState::InFlight { sent_at: t };
                self.actions.push_back(Action::Refresh(request));
                RefreshStart::Started
            }
        }
    }

    /// Feeds the token endpoint's answer to the refresh the driver was asked to send.
    /// The new access token's lifetime counts from when the `Refresh` action was queued.
    pub fn handle_refresh_response(
        &mut self,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        let t = self.observe(now);
        let outcome = TokenOutcome::classify(response, t);
        let sent_at = match &self.state {
            State::Active(a) => match a.refresh {
                RefreshState::InFlight { sent_at } => Some(sent_at),
                _ => None,
            },
            State::Ended(_) => None,
        };
        let Some(sent_at) = sent_at else {
            // The session ended (or another context took over) while the request was out:
            // a token it brought is revoked, never used.
            if let TokenOutcome::Tokens(tokens) = outcome {
                self.queue_revocation(tokens.refresh_token);
            }
            return Err(CoreError::NoSession(self.end_reason().unwrap_or(EndReason::Revoked)));
        };
        self.update_server_offset(response, t);
        match outcome {
            TokenOutcome::Tokens(tokens) => self.apply_refresh(tokens, verifier, keys, sent_at, t),
            TokenOutcome::Refused(error) => {
                self.end(EndReason::RefreshRejected, false);
                Err(error.into())
            }
            TokenOutcome::Transient { status, retry_after } => {
                // The caller learns the session's own wait: Retry-After or the backoff, whichever is longer.
                let wait = self.back_off(t, retry_after);
                Err(CoreError::Transient { status: Some(status), retry_after: Some(wait) })
            }
            TokenOutcome::Malformed(error) => {
                self.back_off(t, None);
                Err(error.into())
            }
        }
    }

    /// The refresh request failed without an answer (network error, timeout): back off.
    pub fn handle_refresh_failure(&mut self, now: Now) -> CoreError {
        let t = self.observe(now);
        let in_flight = matches!(&self.state, State::Active(a) if matches!(a.refresh, RefreshState::InFlight { .. }));
        let retry_after = in_flight.then(|| self.back_off(t, None));
        CoreError::Transient { status: None, retry_after }
    }

    /// Runs the timers: limits, warnings, scheduled refreshes and persistence retries.
    pub fn handle_timeout(&mut self, now: Now) {
        let t = self.observe(now);
        if self.wipe_retry_at.is_some_and(|at| at <= t) {
            self.wipe_retry_at = None;
            self.actions.push_back(Action::Wipe);
        }
        if self.end_if_limit_reached(t, false) || self.end_if_expired_without_refresh(t) {
            return;
        }
        let policy = self.policy;
        let State::Active(a) = &mut self.state else { return };
        let flush_at =
            a.activity_persisted_at.saturating_add(policy.idle_timeout()).saturating_sub(policy.idle_timeout() / 4);
        if a.last_activity_at > a.activity_persisted_at && t >= flush_at {
            a.activity_persisted_at = a.last_activity_at;
            self.queue_persist();
        }
        let State::Active(a) = &mut self.state else { return };
        let absolute_left = a.absolute_deadline.saturating_duration_since(t);
        if !a.warned_absolute && absolute_left <= policy.warning_lead() {
            a.warned_absolute = true;
            self.events.push_back(SessionEvent::ExpiringSoon {
                session_id: a.session_id.clone(),
                reason: ExpiryReason::Absolute,
                time_left: absolute_left,
            });
        }
        let idle_deadline = a.idle_deadline(&policy);
        let idle_left = idle_deadline.saturating_duration_since(t);
        if !a.warned_idle && idle_deadline < a.absolute_deadline && idle_left <= policy.warning_lead() {
            a.warned_idle = true;
            self.events.push_back(SessionEvent::ExpiringSoon {
                session_id: a.session_id.clone(),
                reason: ExpiryReason::Idle,
                time_left: idle_left,
            });
        }
        if a.persist_retry_at.is_some_and(|at| at <= t) {
            a.persist_retry_at = None;
            self.queue_persist();
        }
        let State::Active(a) = &self.state else { return };
        let refresh_ready = match a.refresh {
            RefreshState::Idle => true,
            RefreshState::Backoff { until } => until <= t,
            RefreshState::InFlight { .. } => false,
        };
        if policy.background_refresh()
            && a.tokens.refresh_token.is_some()
            && refresh_ready
            && t >= a.tokens.refresh_due_at
        {
            self.request_refresh(now);
        }
    }

    /// The driver could not write the store: the session continues in memory, the write is
    /// retried after [`PERSIST_RETRY`], and the app hears of it.
    pub fn handle_persist_failed(&mut self, now: Now) {
        let t = self.observe(now);
        let session_id = self.session_id();
        if let State::Active(a) = &mut self.state {
            a.persist_retry_at = Some(t.saturating_add(PERSIST_RETRY));
        }
        self.events.push_back(SessionEvent::StorageProblem { session_id, problem: StorageProblem::Unavailable });
    }

    /// The driver could not delete the ended session's record: the wipe is asked for again
    /// after [`PERSIST_RETRY`] (a store that stays broken is reported by the driver).
    pub fn handle_wipe_failed(&mut self, now: Now) {
        let t = self.observe(now);
        if matches!(self.state, State::Ended(_)) {
            self.wipe_retry_at = Some(t.saturating_add(PERSIST_RETRY));
            self.events
                .push_back(SessionEvent::StorageProblem { session_id: None, problem: StorageProblem::Unavailable });
        }
    }

    /// Another process or tab changed the shared store; `record` is what it holds now (read
    /// under the cross-context lock). Newer tokens of this session are adopted (no refresh of
    /// our own: the old refresh token was rotated away) and the later activity of either side
    /// counts; another context's later sign-in replaces this session, but a sign-in here that
    /// is not written yet wins over what it finds; an empty store ends a session whose record
    /// had been stored (another context signed out). A pending idle end is decided here, on the
    /// shared activity.
    pub fn handle_store_changed(&mut self, record: Option<&[u8]>, now: Now) -> Result<StoreChange, CoreError> {
        let t = self.observe(now);
        let Some(bytes) = record else {
            if matches!(&self.state, State::Active(a) if a.written) {
                // Revoked again from here: the context that emptied the store may not have
                // known these tokens (a session it never adopted); a second revocation is a no-op.
                self.end(EndReason::Revoked, true);
                self.actions.retain(|action| !matches!(action, Action::Refresh(_)));
                return Ok(StoreChange::Ended);
            }
            // Not written yet (a fresh sign-in, or a failed write): the store's emptiness says
            // nothing about other contexts.
            self.confirm_idle(t);
            return Ok(StoreChange::Unchanged);
        };
        let record = SessionRecord::decode(bytes)?;
        if record.issuer != self.metadata.issuer || record.client_id != self.client.client_id {
            return Err(RecordError::DifferentClient.into());
        }
        self.revision = self.revision.max(record.revision);
        if self.ended_session_id.as_deref() == Some(record.session_id.as_str()) {
            // A session that ended here is never brought back; its record goes again.
            self.actions.push_back(Action::Wipe);
            self.confirm_idle(t);
            return Ok(StoreChange::Unchanged);
        }
        let mut share_activity = false;
        let change = match &mut self.state {
            State::Active(a) if a.session_id == record.session_id => {
                a.written = true;
                if record.last_activity_at > a.last_activity_at {
                    a.last_activity_at = record.last_activity_at;
                    a.activity_persisted_at = a.activity_persisted_at.max(record.last_activity_at);
                } else if a.last_activity_at > a.activity_persisted_at.max(record.last_activity_at) {
                    // Our later activity is for the others to see too.
                    share_activity = true;
                }
                if record.access_token_issued_at <= a.tokens.issued_at {
                    StoreChange::Unchanged
                } else {
                    let adopted = self.active_from_record(record);
                    let State::Active(a) = &mut self.state else { return Ok(StoreChange::Unchanged) };
                    a.tokens = adopted.tokens;
                    a.refresh = RefreshState::Idle;
                    self.actions.retain(|action| !matches!(action, Action::Refresh(_)));
                    StoreChange::Adopted
                }
            }
            // A sign-in here not written yet is newer than whatever the store holds, which it
            // replaces: those tokens are revoked (nobody will use them again).
            State::Active(a) if !a.written => {
                self.queue_revocations(record.refresh_token, Some(record.access_token));
                StoreChange::Unchanged
            }
            _ => {
                let (session_id, subject) = (record.session_id.clone(), record.subject.clone());
                let adopted = State::Active(Box::new(self.active_from_record(record)));
                let replaced = std::mem::replace(&mut self.state, adopted);
                if let State::Active(old) = replaced {
                    // A later sign-in elsewhere replaced this session: its tokens are revoked.
                    self.ended_session_id = Some(old.session_id);
                    self.queue_revocations(old.tokens.refresh_token, Some(old.tokens.access_token));
                }
                self.actions.retain(|action| !matches!(action, Action::Refresh(_)));
                self.events.push_back(SessionEvent::Restored { session_id, subject });
                StoreChange::Adopted
            }
        };
        self.confirm_idle(t);
        if share_activity && let State::Active(a) = &mut self.state {
            a.activity_persisted_at = a.last_activity_at;
            self.queue_persist();
        }
        Ok(change)
    }

    /// The store could not be read for an idle check: the session stays (unusable here while
    /// past the local idle limit) and the check is asked again after [`PERSIST_RETRY`].
    pub fn handle_store_unreadable(&mut self, now: Now) {
        let t = self.observe(now);
        if let State::Active(a) = &mut self.state
            && a.idle_check == IdleCheck::Requested
        {
            a.idle_check = IdleCheck::RetryAt(t.saturating_add(PERSIST_RETRY));
        }
    }

    /// For a driver whose store is shared: under the cross-context lock, with `stored` the
    /// record the store holds now, merges it ([`handle_store_changed`](Self::handle_store_changed))
    /// and gives the record to write, if this session has changes the store lacks. Its
    /// revision is above every revision seen, so a newer record is never replaced; an ended
    /// session gives nothing, so no write lands after a logout or an end.
    pub fn prepare_write(&mut self, stored: Option<&[u8]>, now: Now) -> Result<Option<PendingWrite>, CoreError> {
        match self.handle_store_changed(stored, now) {
            Ok(_) => {}
            // Damaged bytes are replaced; a record of a newer schema or another client is not
            // (that error goes back to the driver, and nothing is written).
            Err(CoreError::Record(RecordError::Corrupt(_))) => {}
            Err(error) => return Err(error),
        }
        let State::Active(a) = &self.state else { return Ok(None) };
        if a.written && a.changes == a.persisted_changes {
            return Ok(None);
        }
        let revision = self.revision.saturating_add(1);
        Ok(Some(PendingWrite {
            record: self.encode_record(revision),
            revision,
            session_id: a.session_id.clone(),
            changes: a.changes,
        }))
    }

    /// Whether a queued [`Action::Refresh`] still waits for its answer (it was not made
    /// unnecessary by an adopted record, nor ended with the session).
    pub fn refresh_in_flight(&self) -> bool {
        matches!(&self.state, State::Active(a) if matches!(a.refresh, RefreshState::InFlight { .. }))
    }

    /// Whether the store lacks some of this session's state (a sign-in or rotated tokens not
    /// written yet, or newer activity).
    pub fn needs_write(&self) -> bool {
        matches!(&self.state, State::Active(a) if !a.written || a.changes != a.persisted_changes)
    }

    /// A record from [`prepare_write`](Self::prepare_write) is in the store.
    pub fn handle_persisted(&mut self, write: &PendingWrite) {
        self.revision = self.revision.max(write.revision);
        if let State::Active(a) = &mut self.state
            && a.session_id == write.session_id
        {
            a.written = true;
            a.persisted_changes = write.changes;
            a.persist_retry_at = None;
        }
    }

    /// Whether a [`Action::Wipe`] should delete `stored`: the record of the session that ended
    /// here, never another context's later sign-in (a wipe may be retried long after the end).
    pub fn wipe_applies_to(&self, stored: &[u8]) -> bool {
        match (SessionRecord::decode(stored), &self.ended_session_id) {
            (Ok(record), Some(ended)) => record.session_id == *ended,
            (Ok(_), None) => false,
            // Damaged bytes: a sign-out removes them; nothing else touches them.
            (Err(_), _) => self.end_reason() == Some(EndReason::SignedOut),
        }
    }

    /// Signs out: wipe first (memory and store), then revoke the refresh token, then return
    /// the end-session URL for the app to open (when the provider has one). Idempotent.
    pub fn logout(&mut self, now: Now) -> Result<Option<EndSessionRequest>, CoreError> {
        self.observe(now);
        let State::Active(a) = std::mem::replace(&mut self.state, State::Ended(EndReason::SignedOut)) else {
            self.actions.push_back(Action::Wipe);
            return Ok(None);
        };
        self.actions.retain(|action| !matches!(action, Action::Refresh(_) | Action::Persist(_)));
        self.actions.push_back(Action::Wipe);
        let Active { session_id, tokens, .. } = *a;
        self.ended_session_id = Some(session_id.clone());
        self.queue_revocations(tokens.refresh_token, Some(tokens.access_token));
        self.events.push_back(SessionEvent::LoggedOut { session_id });
        let Some(endpoint) = &self.metadata.end_session_endpoint else { return Ok(None) };
        Ok(Some(EndSessionRequest::new(
            endpoint,
            &self.client.client_id,
            tokens.id_token.as_ref(),
            self.client.post_logout_redirect_uri.as_ref(),
        )?))
    }

    // ----- internals -----------------------------------------------------------------

    fn session_id(&self) -> Option<String> {
        match &self.state {
            State::Active(a) => Some(a.session_id.clone()),
            State::Ended(_) => None,
        }
    }

    /// Advances the clock guard and reports a wall clock set back.
    fn observe(&mut self, now: Now) -> UnixTime {
        let (t, jump) = self.clock.observe(now);
        if let Some(jump) = jump {
            self.events.push_back(SessionEvent::AnomalySuspected {
                session_id: self.session_id(),
                anomaly: Anomaly::ClockJumpedBack { by: jump.by },
            });
        }
        t
    }

    fn update_server_offset(&mut self, response: &HttpResponse, t: UnixTime) {
        let Some(server) = response.server_date() else { return };
        let ahead = i128::from(server.as_millis()) - i128::from(t.as_millis());
        if ahead.unsigned_abs() <= u128::from(duration_millis(MAX_SERVER_OFFSET)) {
            self.server_offset_ms = i64::try_from(ahead).unwrap_or(0);
            self.server_clock_known = true;
        }
    }

    fn start(&mut self, session_id: String, claims: IdTokenClaims, tokens: TokenResponse, t: UnixTime) {
        self.wipe_retry_at = None;
        let tokens = Tokens::new(tokens, t, self.policy.refresh_lead());
        self.events.push_back(SessionEvent::LoggedIn { session_id: session_id.clone(), subject: claims.sub.clone() });
        self.state = State::Active(Box::new(Active {
            session_id,
            subject: claims.sub,
            tokens,
            started_at: t,
            absolute_deadline: t.saturating_add(self.policy.absolute_lifetime()),
            last_activity_at: t,
            activity_persisted_at: t,
            refresh: RefreshState::Idle,
            refresh_failures: 0,
            warned_idle: false,
            warned_absolute: false,
            persist_retry_at: None,
            written: false,
            changes: 0,
            persisted_changes: 0,
            idle_check: IdleCheck::NotNeeded,
            pending_activity: None,
        }));
        self.queue_persist();
    }

    fn apply_refresh(
        &mut self,
        response: TokenResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        sent_at: UnixTime,
        t: UnixTime,
    ) -> Result<(), CoreError> {
        let State::Active(a) = &self.state else { return Err(CoreError::NoSession(EndReason::Revoked)) };
        if let Some(id_token) = &response.id_token {
            match self.check_id_token(id_token, None, Some(&a.subject), t, verifier, keys) {
                Ok(_) => {}
                Err(IdTokenFailure::RefetchKeys(error)) => return Err(error.into()),
                Err(IdTokenFailure::Refused(error)) => {
                    let anomaly = match error {
                        IdTokenError::SubjectChanged => Anomaly::SubjectChanged,
                        IdTokenError::Issuer => Anomaly::IssuerChanged,
                        _ => Anomaly::InvalidIdToken,
                    };
                    self.events
                        .push_back(SessionEvent::AnomalySuspected { session_id: Some(a.session_id.clone()), anomaly });
                    // The new refresh token (or, without rotation, the current one) is revoked.
                    let State::Active(a) = &mut self.state else { return Err(error.into()) };
                    if response.refresh_token.is_some() {
                        a.tokens.refresh_token = response.refresh_token;
                    }
                    self.end(EndReason::Anomaly, true);
                    return Err(error.into());
                }
            }
        }
        let lead = self.policy.refresh_lead();
        let State::Active(a) = &mut self.state else { return Err(CoreError::NoSession(EndReason::Revoked)) };
        let rotated = response.refresh_token.is_some();
        let previous_refresh = a.tokens.refresh_token.take();
        let previous_id = a.tokens.id_token.take();
        let mut tokens = Tokens::new(response, sent_at, lead);
        tokens.refresh_token = tokens.refresh_token.take().or(previous_refresh);
        tokens.id_token = tokens.id_token.take().or(previous_id);
        tokens.scope = tokens.scope.take().or(a.tokens.scope.take());
        a.tokens = tokens;
        a.refresh = RefreshState::Idle;
        a.refresh_failures = 0;
        let event = SessionEvent::Refreshed {
            session_id: a.session_id.clone(),
            rotated,
            access_expires_at: a.tokens.expires_at,
        };
        // Persist before the event: the driver writes the rotated token before handing it out.
        self.queue_persist();
        self.events.push_back(event);
        Ok(())
    }

    /// Validates an ID token against this session's issuer, client and server clock. An unknown
    /// `kid` with cached keys is not a verdict yet: the driver refetches the JWKS and asks again.
    fn check_id_token(
        &self,
        id_token: &Secret,
        nonce: Option<&Secret>,
        subject: Option<&str>,
        t: UnixTime,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
    ) -> Result<IdTokenClaims, IdTokenFailure> {
        let check = IdTokenCheck {
            issuer: &self.metadata.issuer,
            client_id: &self.client.client_id,
            nonce,
            subject,
            server_now: t.offset_by_millis(self.server_offset_ms),
            leeway: if self.server_clock_known {
                self.policy.clock_leeway()
            } else {
                self.policy.clock_leeway().saturating_add(UNKNOWN_SERVER_CLOCK_LEEWAY)
            },
        };
        validate_id_token(id_token, &check, verifier).map_err(|error| match error {
            IdTokenError::Signature(SignatureError::UnknownKey) if keys == Keys::Cached => {
                IdTokenFailure::RefetchKeys(error)
            }
            error => IdTokenFailure::Refused(error),
        })
    }

    /// Schedules the next refresh attempt after a transient failure; returns the wait.
    fn back_off(&mut self, t: UnixTime, retry_after: Option<Duration>) -> Duration {
        let State::Active(a) = &mut self.state else { return Duration::ZERO };
        a.refresh_failures = a.refresh_failures.saturating_add(1);
        let exponential = BACKOFF_BASE.saturating_mul(1u32 << (a.refresh_failures - 1).min(16)).min(BACKOFF_CAP);
        let delay = exponential.max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP));
        a.refresh = RefreshState::Backoff { until: t.saturating_add(delay) };
        delay
    }

    /// Ends the session if the idle or absolute limit has passed; true if it did (or had), or
    /// if the idle limit passed on this context's activity and the shared record must decide
    /// (`shared_read`: the caller has just read it). The absolute limit is the same everywhere.
    fn end_if_limit_reached(&mut self, t: UnixTime, shared_read: bool) -> bool {
        let State::Active(a) = &mut self.state else { return true };
        match a.limit_reached(t, &self.policy) {
            None => false,
            Some(EndReason::IdleTimeout) if !shared_read => {
                if a.idle_check == IdleCheck::NotNeeded || matches!(a.idle_check, IdleCheck::RetryAt(at) if at <= t) {
                    a.idle_check = IdleCheck::Requested;
                    self.actions.push_back(Action::SyncWithStore);
                }
                true
            }
            Some(reason) => {
                self.end(reason, true);
                true
            }
        }
    }

    /// After a read of the shared record: ends the session if the shared activity is past the
    /// idle limit too, otherwise lets activity held back meanwhile count.
    fn confirm_idle(&mut self, t: UnixTime) {
        if self.end_if_limit_reached(t, true) {
            return;
        }
        let State::Active(a) = &mut self.state else { return };
        a.idle_check = IdleCheck::NotNeeded;
        if let Some(pending) = a.pending_activity.take() {
            a.last_activity_at = a.last_activity_at.max(pending);
            a.warned_idle = false;
        }
    }

    fn end_if_expired_without_refresh(&mut self, t: UnixTime) -> bool {
        let expired =
            matches!(&self.state, State::Active(a) if a.tokens.refresh_token.is_none() && t >= a.tokens.expires_at);
        if expired {
            self.end(EndReason::AccessTokenExpired, false);
        }
        expired
    }

    /// Ends an active session: wipe, optionally revoke, tell the app.
    fn end(&mut self, reason: EndReason, revoke: bool) {
        let State::Active(a) = std::mem::replace(&mut self.state, State::Ended(reason)) else { return };
        self.actions
            .retain(|action| !matches!(action, Action::Refresh(_) | Action::Persist(_) | Action::SyncWithStore));
        if reason != EndReason::Revoked {
            self.actions.push_back(Action::Wipe);
        }
        let Active { session_id, tokens, .. } = *a;
        self.ended_session_id = Some(session_id.clone());
        if revoke {
            self.queue_revocations(tokens.refresh_token, Some(tokens.access_token));
        }
        self.events.push_back(SessionEvent::Expired { session_id, reason });
    }

    /// Revokes a refresh token the session is done with, or one that arrived but will never be used.
    fn queue_revocation(&mut self, refresh_token: Option<Secret>) {
        self.queue_revocations(refresh_token, None);
    }

    /// Revokes the tokens of a session that is over: the refresh token first (at most providers
    /// that ends the grant), then the access token (for providers where it would outlive it).
    fn queue_revocations(&mut self, refresh_token: Option<Secret>, access_token: Option<Secret>) {
        let Some(endpoint) = &self.metadata.revocation_endpoint else { return };
        let tokens = [(refresh_token, TokenKind::RefreshToken), (access_token, TokenKind::AccessToken)];
        for (token, kind) in tokens {
            if let Some(token) = token {
                self.actions.push_back(Action::Revoke(Revocation {
                    endpoint: endpoint.clone(),
                    client_id: self.client.client_id.clone(),
                    token,
                    kind,
                }));
            }
        }
    }

    fn queue_persist(&mut self) {
        let State::Active(a) = &mut self.state else { return };
        a.changes = a.changes.wrapping_add(1);
        let record = self.encode_record(self.revision.saturating_add(1));
        // Only the latest record matters: drop an unwritten older one.
        self.actions.retain(|action| !matches!(action, Action::Persist(_)));
        self.actions.push_back(Action::Persist(record));
    }

    /// The record of the active session (empty if there is none), at `revision`.
    fn encode_record(&self, revision: u64) -> Secret {
        let State::Active(a) = &self.state else { return Secret::new(String::new()) };
        SessionRecord {
            schema_version: CURRENT_SCHEMA_VERSION,
            revision,
            session_id: a.session_id.clone(),
            issuer: self.metadata.issuer.clone(),
            client_id: self.client.client_id.clone(),
            subject: a.subject.clone(),
            access_token: a.tokens.access_token.clone(),
            token_type: a.tokens.token_type.clone(),
            access_token_issued_at: a.tokens.issued_at,
            access_token_expires_at: a.tokens.expires_at,
            refresh_token: a.tokens.refresh_token.clone(),
            id_token: a.tokens.id_token.clone(),
            scope: a.tokens.scope.clone(),
            started_at: a.started_at,
            last_activity_at: a.last_activity_at,
            last_seen_at: self.clock.high_water(),
            server_offset_ms: self.server_offset_ms,
        }
        .encode()
    }

    fn active_from_record(&self, record: SessionRecord) -> Active {
        let refresh_due_at =
            refresh_due(record.access_token_issued_at, record.access_token_expires_at, self.policy.refresh_lead());
        Active {
            session_id: record.session_id,
            subject: record.subject,
            tokens: Tokens {
                access_token: record.access_token,
                token_type: record.token_type,
                issued_at: record.access_token_issued_at,
                expires_at: record.access_token_expires_at,
                refresh_due_at,
                refresh_token: record.refresh_token,
                id_token: record.id_token,
                scope: record.scope,
            },
            started_at: record.started_at,
            // The absolute limit is recomputed from the start time: a record cannot carry a later one.
            absolute_deadline: record.started_at.saturating_add(self.policy.absolute_lifetime()),
            last_activity_at: record.last_activity_at,
            activity_persisted_at: record.last_activity_at,
            refresh: RefreshState::Idle,
            refresh_failures: 0,
            warned_idle: false,
            warned_absolute: false,
            persist_retry_at: None,
            written: true,
            changes: 0,
            persisted_changes: 0,
            idle_check: IdleCheck::NotNeeded,
            pending_activity: None,
        }
    }
}
