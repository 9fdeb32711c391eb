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
//!   to 10 minutes); a still-valid access token stays usable meanwhile. A refused
//!   grant (`invalid_grant`) ends the session without retrying; any other refusal
//!   (`invalid_client`, `unauthorized_client`, a proxy's 401) is not the user's: the session is
//!   kept and the refresh backs off as after a transient failure.
//! - A refreshed ID token must keep `iss` and `sub`; otherwise the session ends as an anomaly.
//! - Every sign-in is a fresh session: new random id, new start time, the old tokens revoked.
//!   Logout wipes first, then revokes (the refresh token, then the access token), then offers
//!   the end-session URL; a session that expires is wiped and revoked the same way.
//! - The wall clock may not stretch a session: a clock set back is reported and ignored.
//!
//! What can go wrong: the driver must feed back every `Refresh` it was given (a response or
//! [`Session::handle_refresh_failure`]); until then no other refresh starts.

mod active;
mod event;
mod login;
mod outbox;
mod record;
mod refresh;
mod sync;

use std::time::Duration;

pub use event::{
    Action, Anomaly, EndReason, ExpiryReason, Revocation, RevocationOutcome, SessionEvent, StorageProblem, TokenKind,
};
pub use record::{CURRENT_SCHEMA_VERSION, MAX_RECORD_BYTES, RecordError, SessionRecord};
pub use sync::{PendingWrite, StoreChange};

use self::active::{Active, IdleCheck};
use self::outbox::Outbox;
use self::record::RecordContext;
use crate::error::CoreError;
use crate::http::HttpResponse;
use crate::oidc::client::ClientConfig;
use crate::oidc::discovery::ProviderMetadata;
use crate::oidc::dpop::DpopKey;
use crate::oidc::logout::EndSessionRequest;
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

/// A snapshot of the session for display (`status` commands, debug screens). No secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SessionStatus {
    /// The session's random id.
    pub session_id: String,
    /// The user (the provider's stable id; at some providers a UUID).
    pub subject: String,
    /// A name to show for the user, from the ID token: `preferred_username`, else `name`, else
    /// `email`; `None` if it had none of them.
    pub display_name: Option<String>,
    /// The authentication context class the provider says the sign-in met (the ID token's
    /// `acr`), for an app that asked for one with `acr_values` (a step-up) to check what it got;
    /// `None` if the provider did not say. What the sign-in achieved, not a current assurance:
    /// refreshes keep it; judge its age with `authenticated_at`.
    pub acr: Option<String>,
    /// When the user authenticated at the provider (the ID token's `auth_time`), if it said, in
    /// this device's time like the other times here. With `max_age`, a sign-in is refused
    /// unless it is recent enough.
    pub authenticated_at: Option<UnixTime>,
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
    outbox: Outbox,
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
            outbox: Outbox::default(),
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
        match &self.state {
            State::Ended(reason) => TokenState::Dead(*reason),
            State::Active(active) => active.token_state(self.clock.effective(now), &self.policy),
        }
    }

    /// The token type to put in the `Authorization` header (`Bearer` or `DPoP`).
    pub fn token_type(&self) -> Option<&str> {
        self.active().map(|a| a.tokens.token_type.as_str())
    }

    /// The driver found the DPoP key `lost` gone from its key store. If it is this session's
    /// key, the tokens bound to it can never be used again, so the session ends as an anomaly
    /// (its tokens revoked, which needs no proof). Another session's key (the session changed
    /// meanwhile) changes nothing.
    pub fn handle_dpop_key_lost(&mut self, lost: &DpopKey, now: Now) {
        self.observe(now);
        let Some(a) = self.active().filter(|a| a.dpop_key.as_ref() == Some(lost)) else { return };
        let session_id = Some(a.session_id.clone());
        self.outbox.tell(SessionEvent::AnomalySuspected { session_id, anomaly: Anomaly::DpopKeyLost });
        self.end(EndReason::Anomaly, true);
    }

    /// The DPoP key the session's tokens are bound to, if any (RFC 9449).
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.active().and_then(|a| a.dpop_key.as_ref())
    }

    /// The time as the provider's clock shows it (`now` corrected by the offset learnt from
    /// its `Date` headers): what a DPoP proof's `iat` says.
    pub fn server_time(&self, now: Now) -> UnixTime {
        let local = self.clock.effective(now);
        match u64::try_from(self.server_offset_ms) {
            Ok(ahead) => local.saturating_add(Duration::from_millis(ahead)),
            Err(_) => local.saturating_sub(Duration::from_millis(self.server_offset_ms.unsigned_abs())),
        }
    }

    /// The session's times and identity, or `None` when signed out.
    pub fn status(&self) -> Option<SessionStatus> {
        self.active().map(|a| a.status(&self.policy))
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
        self.outbox.next_action()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.outbox.next_event()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run, in session time.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        match &self.state {
            State::Active(a) => Some(a.next_deadline(&self.policy)),
            State::Ended(_) => self.wipe_retry_at,
        }
    }

    /// How long the driver should sleep before calling [`handle_timeout`](Self::handle_timeout).
    pub fn time_until_timeout(&self, now: Now) -> Option<Duration> {
        self.poll_timeout().map(|deadline| deadline.saturating_duration_since(self.clock.effective(now)))
    }

    // ----- inputs (sign-in: login.rs; refresh: refresh.rs; the store: sync.rs) -----------

    /// Counts user activity: the idle timeout restarts from `now` (unless it already passed).
    pub fn record_activity(&mut self, now: Now) {
        let t = self.observe(now);
        if self.end_if_limit_reached(t, false) {
            // Past the idle limit here: if the shared record keeps the session alive, this
            // activity counts once that is known.
            if let Some(a) = self.active_mut() {
                a.pending_activity = Some(t);
            }
            return;
        }
        let policy = self.policy;
        if self.active_mut().is_some_and(|a| a.record_activity(t, &policy)) {
            self.queue_persist();
        }
    }

    /// Runs the timers: limits, warnings, scheduled refreshes and persistence retries.
    pub fn handle_timeout(&mut self, now: Now) {
        let t = self.observe(now);
        if self.wipe_retry_at.is_some_and(|at| at <= t) {
            self.wipe_retry_at = None;
            self.outbox.act(Action::Wipe);
        }
        if self.end_if_limit_reached(t, false) || self.end_if_expired_without_refresh(t) {
            return;
        }
        let policy = self.policy;
        let State::Active(a) = &mut self.state else { return };
        let mut write = a.take_activity_flush(t, &policy);
        for warning in a.due_warnings(t, &policy).into_iter().flatten() {
            self.outbox.tell(warning);
        }
        if a.persist_retry_at.is_some_and(|at| at <= t) {
            a.persist_retry_at = None;
            write = true;
        }
        let refresh = a.refresh_due_now(t, &policy);
        if write {
            self.queue_persist();
        }
        if refresh {
            self.request_refresh(now);
        }
    }

    /// Signs out: wipe first (memory and store), then revoke the refresh token, then return
    /// the end-session URL for the app to open (when the provider has one). Idempotent.
    pub fn logout(&mut self, now: Now) -> Result<Option<EndSessionRequest>, CoreError> {
        self.observe(now);
        let State::Active(a) = std::mem::replace(&mut self.state, State::Ended(EndReason::SignedOut)) else {
            self.outbox.act(Action::Wipe);
            return Ok(None);
        };
        self.outbox.cancel_session_work();
        self.outbox.act(Action::Wipe);
        let session_id = a.session_id.clone();
        let id_token = a.tokens.id_token.clone();
        self.retire(*a);
        self.outbox.tell(SessionEvent::LoggedOut { session_id });
        let Some(endpoint) = &self.metadata.end_session_endpoint else { return Ok(None) };
        Ok(Some(EndSessionRequest::new(
            endpoint,
            &self.client.client_id,
            id_token.as_ref(),
            self.client.post_logout_redirect_uri.as_ref(),
        )?))
    }

    // ----- internals -----------------------------------------------------------------

    fn active(&self) -> Option<&Active> {
        match &self.state {
            State::Active(a) => Some(a),
            State::Ended(_) => None,
        }
    }

    fn active_mut(&mut self) -> Option<&mut Active> {
        match &mut self.state {
            State::Active(a) => Some(a),
            State::Ended(_) => None,
        }
    }

    /// Advances the clock guard and reports a wall clock set back.
    fn observe(&mut self, now: Now) -> UnixTime {
        let (t, jump) = self.clock.observe(now);
        if let Some(jump) = jump {
            let session_id = self.active().map(|a| a.session_id.clone());
            self.outbox
                .tell(SessionEvent::AnomalySuspected { session_id, anomaly: Anomaly::ClockJumpedBack { by: jump.by } });
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
                    self.outbox.act(Action::SyncWithStore);
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
        if !self.end_if_limit_reached(t, true)
            && let Some(a) = self.active_mut()
        {
            a.idle_check_passed();
        }
    }

    fn end_if_expired_without_refresh(&mut self, t: UnixTime) -> bool {
        let expired = self.active().is_some_and(|a| a.tokens.refresh_token.is_none() && t >= a.tokens.expires_at);
        if expired {
            self.end(EndReason::AccessTokenExpired, false);
        }
        expired
    }

    /// Ends an active session: wipe, optionally revoke, tell the app.
    fn end(&mut self, reason: EndReason, revoke: bool) {
        let State::Active(a) = std::mem::replace(&mut self.state, State::Ended(reason)) else { return };
        self.outbox.cancel_session_work();
        if reason != EndReason::Revoked {
            self.outbox.act(Action::Wipe);
        }
        let session_id = a.session_id.clone();
        if revoke {
            self.retire(*a);
        } else {
            self.forget_dpop_key(a.dpop_key);
            self.ended_session_id = Some(a.session_id);
        }
        self.outbox.tell(SessionEvent::Expired { session_id, reason });
    }

    /// A session that is over (ended, signed out, or replaced by a new sign-in): its record is
    /// never written or adopted again, and its tokens are revoked.
    fn retire(&mut self, old: Active) {
        self.ended_session_id = Some(old.session_id);
        self.revoke(old.tokens.refresh_token, Some(old.tokens.access_token));
        // After the revocation: revoking needs no proof, and the key is worth nothing now.
        self.forget_dpop_key(old.dpop_key);
    }

    fn forget_dpop_key(&mut self, key: Option<DpopKey>) {
        if let Some(key) = key {
            self.outbox.act(Action::ForgetDpopKey(key));
        }
    }

    /// Revokes tokens the session is done with (see [`Outbox::revoke`]).
    fn revoke(&mut self, refresh_token: Option<Secret>, access_token: Option<Secret>) {
        let endpoint = self.metadata.revocation_endpoint.as_ref();
        self.outbox.revoke(endpoint, &self.client.client_id, refresh_token, access_token);
    }

    /// Queues the active session's record for the store (a change it must not lose).
    fn queue_persist(&mut self) {
        let Some(a) = self.active_mut() else { return };
        a.changes = a.changes.wrapping_add(1);
        let record = self.encode_record(self.revision.saturating_add(1));
        self.outbox.persist(record);
    }

    /// The record of the active session (empty if there is none), at `revision`.
    fn encode_record(&self, revision: u64) -> Secret {
        let Some(a) = self.active() else { return Secret::new(String::new()) };
        let context = RecordContext {
            issuer: &self.metadata.issuer,
            client_id: &self.client.client_id,
            revision,
            last_seen_at: self.clock.high_water(),
            server_offset_ms: self.server_offset_ms,
        };
        SessionRecord::of(a, context).encode()
    }
}
