//! A signed-in session's state and the rules that only need that state: its limits, when a
//! refresh is due, the backoff, the warnings and the next deadline.
//!
//! [`Session`](super::Session) owns at most one [`Active`]; everything here is a pure function
//! of the active state, the policy and the time, so the transitions in `mod.rs` read as "what
//! happens", and the arithmetic of "when" lives here.

use std::time::Duration;

use super::{
    BACKOFF_BASE, BACKOFF_CAP, DEFAULT_ACCESS_LIFETIME, EndReason, ExpiryReason, RETRY_AFTER_CAP, SessionEvent,
    SessionStatus, TokenState,
};
use crate::oidc::dpop::DpopKey;
use crate::oidc::token::TokenResponse;
use crate::{Secret, SessionPolicy, UnixTime};

#[derive(Debug)]
pub(super) enum RefreshState {
    Idle,
    /// A `Refresh` action was queued at `sent_at`; the new token's lifetime counts from then.
    InFlight {
        sent_at: UnixTime,
    },
    Backoff {
        until: UnixTime,
    },
}

/// Where the confirmation of an idle end stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IdleCheck {
    /// The idle limit has not been reached here.
    NotNeeded,
    /// [`Action::SyncWithStore`](super::Action::SyncWithStore) was queued; its answer decides.
    Requested,
    /// The store could not be read; ask again at this time.
    RetryAt(UnixTime),
}

#[derive(Debug)]
pub(super) struct Tokens {
    pub(super) access_token: Secret,
    pub(super) token_type: String,
    pub(super) issued_at: UnixTime,
    pub(super) expires_at: UnixTime,
    pub(super) refresh_due_at: UnixTime,
    pub(super) refresh_token: Option<Secret>,
    pub(super) id_token: Option<Secret>,
    pub(super) scope: Option<String>,
}

/// What to call the user on screen: `preferred_username`, else `name`, else `email` (any script;
/// control characters dropped; at most 64 characters).
pub(super) fn display_name(claims: &crate::oidc::id_token::IdTokenClaims) -> Option<String> {
    [&claims.preferred_username, &claims.name, &claims.email]
        .into_iter()
        .flatten()
        .map(|value| value.chars().filter(|c| !c.is_control()).take(64).collect::<String>())
        .find(|value| !value.trim().is_empty())
}

/// When a token issued at `issued_at` and expiring at `expires_at` is due for refresh: `lead`
/// before expiry, but never earlier than halfway through its life.
pub(super) fn refresh_due(issued_at: UnixTime, expires_at: UnixTime, lead: Duration) -> UnixTime {
    let lifetime = expires_at.saturating_duration_since(issued_at);
    expires_at.saturating_sub(lead.min(lifetime / 2))
}

impl Tokens {
    pub(super) fn new(response: TokenResponse, issued_at: UnixTime, lead: Duration) -> Self {
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

    /// The tokens of a refresh answer: what the answer leaves out (a refresh token without
    /// rotation, the ID token, the scope) carries over from these.
    pub(super) fn succeeded_by(&mut self, response: TokenResponse, sent_at: UnixTime, lead: Duration) -> Self {
        let mut next = Self::new(response, sent_at, lead);
        next.refresh_token = next.refresh_token.take().or(self.refresh_token.take());
        next.id_token = next.id_token.take().or(self.id_token.take());
        next.scope = next.scope.take().or(self.scope.take());
        next
    }
}

#[derive(Debug)]
pub(super) struct Active {
    pub(super) session_id: String,
    pub(super) subject: String,
    /// What to call the user on screen (see `SessionStatus::display_name`).
    pub(super) display_name: Option<String>,
    /// The sign-in's authentication context and time (see `SessionStatus::acr`): from the
    /// sign-in's ID token, kept as they are by refreshes.
    pub(super) acr: Option<String>,
    pub(super) authenticated_at: Option<UnixTime>,
    /// The key the tokens are bound to (RFC 9449): it signs every refresh, and the API calls
    /// when the access token is a DPoP token.
    pub(super) dpop_key: Option<DpopKey>,
    pub(super) tokens: Tokens,
    pub(super) started_at: UnixTime,
    pub(super) absolute_deadline: UnixTime,
    pub(super) last_activity_at: UnixTime,
    pub(super) activity_persisted_at: UnixTime,
    pub(super) refresh: RefreshState,
    /// Consecutive transient refresh failures (for the backoff); reset by a success.
    pub(super) refresh_failures: u32,
    pub(super) warned_idle: bool,
    pub(super) warned_absolute: bool,
    pub(super) persist_retry_at: Option<UnixTime>,
    /// Whether a record of this session has been in the store (written here or read there):
    /// from then on an empty store means another context ended it.
    pub(super) written: bool,
    /// Changes queued for the store, and how many of them a write has carried.
    pub(super) changes: u64,
    pub(super) persisted_changes: u64,
    /// The idle limit was reached on this context's own activity; the shared record decides.
    pub(super) idle_check: IdleCheck,
    /// Activity recorded while the idle check was pending: it counts if the session lives on.
    pub(super) pending_activity: Option<UnixTime>,
}

impl Active {
    /// A session that starts at `t` (a sign-in here, or a record read from the store).
    pub(super) fn new(
        session_id: String,
        subject: String,
        tokens: Tokens,
        started_at: UnixTime,
        policy: &SessionPolicy,
    ) -> Self {
        Self {
            session_id,
            subject,
            display_name: None,
            acr: None,
            authenticated_at: None,
            dpop_key: None,
            tokens,
            started_at,
            // Always computed from the start time: a stored record cannot carry a later one.
            absolute_deadline: started_at.saturating_add(policy.absolute_lifetime()),
            last_activity_at: started_at,
            activity_persisted_at: started_at,
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
        }
    }

    pub(super) fn idle_deadline(&self, policy: &SessionPolicy) -> UnixTime {
        self.last_activity_at.saturating_add(policy.idle_timeout())
    }

    /// The limit that has ended the session at `t`, if any (absolute first: it is final).
    pub(super) fn limit_reached(&self, t: UnixTime, policy: &SessionPolicy) -> Option<EndReason> {
        if t >= self.absolute_deadline {
            Some(EndReason::AbsoluteLifetime)
        } else if t >= self.idle_deadline(policy) {
            Some(EndReason::IdleTimeout)
        } else {
            None
        }
    }

    /// The access token at `t`; see [`TokenState`].
    pub(super) fn token_state(&self, t: UnixTime, policy: &SessionPolicy) -> TokenState<'_> {
        if let Some(reason) = self.limit_reached(t, policy) {
            return TokenState::Dead(reason);
        }
        let tokens = &self.tokens;
        if t < tokens.refresh_due_at {
            return TokenState::Fresh(&tokens.access_token);
        }
        let still_valid = t < tokens.expires_at;
        match (&tokens.refresh_token, &self.refresh) {
            (None, _) if still_valid => TokenState::Fresh(&tokens.access_token),
            (None, _) => TokenState::Dead(EndReason::AccessTokenExpired),
            // While backing off after a transient failure, a token that still works is used.
            (Some(_), RefreshState::Backoff { .. }) if still_valid => TokenState::Fresh(&tokens.access_token),
            (Some(_), _) => TokenState::Renewable,
        }
    }

    pub(super) fn status(&self, policy: &SessionPolicy) -> SessionStatus {
        SessionStatus {
            session_id: self.session_id.clone(),
            subject: self.subject.clone(),
            display_name: self.display_name.clone(),
            acr: self.acr.clone(),
            authenticated_at: self.authenticated_at,
            started_at: self.started_at,
            absolute_deadline: self.absolute_deadline,
            idle_deadline: self.idle_deadline(policy),
            access_expires_at: self.tokens.expires_at,
            refresh_due_at: self.tokens.refresh_due_at,
            has_refresh_token: self.tokens.refresh_token.is_some(),
        }
    }

    /// When activity not yet in the store must be written: before the shared idle deadline
    /// it extends, so that a context checking that deadline sees it.
    fn activity_flush_at(&self, policy: &SessionPolicy) -> Option<UnixTime> {
        (self.last_activity_at > self.activity_persisted_at).then(|| {
            self.activity_persisted_at.saturating_add(policy.idle_timeout()).saturating_sub(policy.idle_timeout() / 4)
        })
    }

    /// Whether activity is due for the store at `t`; if so it counts as written from now.
    pub(super) fn take_activity_flush(&mut self, t: UnixTime, policy: &SessionPolicy) -> bool {
        let due = self.activity_flush_at(policy).is_some_and(|at| t >= at);
        if due {
            self.activity_persisted_at = self.last_activity_at;
        }
        due
    }

    /// When something must next happen to this session.
    pub(super) fn next_deadline(&self, policy: &SessionPolicy) -> UnixTime {
        // While the idle limit waits for the shared record, nothing else happens but the
        // check's retry and the absolute limit (`handle_timeout` stops there, so any other
        // deadline already past would wake the driver again and again at the same instant).
        match self.idle_check {
            IdleCheck::NotNeeded => {}
            IdleCheck::Requested => return self.absolute_deadline,
            IdleCheck::RetryAt(at) => return at.min(self.absolute_deadline),
        }
        let idle_deadline = self.idle_deadline(policy);
        let lead = policy.warning_lead();
        let refresh = match (&self.tokens.refresh_token, &self.refresh) {
            (None, _) => Some(self.tokens.expires_at),
            (Some(_), _) if !policy.background_refresh() => None,
            (Some(_), RefreshState::Idle) => Some(self.tokens.refresh_due_at),
            (Some(_), RefreshState::Backoff { until }) => Some((*until).max(self.tokens.refresh_due_at)),
            (Some(_), RefreshState::InFlight { .. }) => None,
        };
        [
            Some(idle_deadline),
            self.activity_flush_at(policy),
            (!self.warned_absolute).then(|| self.absolute_deadline.saturating_sub(lead)),
            (!self.warned_idle && idle_deadline < self.absolute_deadline).then(|| idle_deadline.saturating_sub(lead)),
            refresh,
            self.persist_retry_at,
        ]
        .into_iter()
        .flatten()
        .fold(self.absolute_deadline, UnixTime::min)
    }

    /// The "expiring soon" warnings due at `t`, each given once (an idle warning again after
    /// new activity).
    pub(super) fn due_warnings(&mut self, t: UnixTime, policy: &SessionPolicy) -> [Option<SessionEvent>; 2] {
        let absolute_left = self.absolute_deadline.saturating_duration_since(t);
        let absolute = (!self.warned_absolute && absolute_left <= policy.warning_lead()).then(|| {
            self.warned_absolute = true;
            SessionEvent::ExpiringSoon {
                session_id: self.session_id.clone(),
                reason: ExpiryReason::Absolute,
                time_left: absolute_left,
            }
        });
        let idle_deadline = self.idle_deadline(policy);
        let idle_left = idle_deadline.saturating_duration_since(t);
        let idle = (!self.warned_idle && idle_deadline < self.absolute_deadline && idle_left <= policy.warning_lead())
            .then(|| {
                self.warned_idle = true;
                SessionEvent::ExpiringSoon {
                    session_id: self.session_id.clone(),
                    reason: ExpiryReason::Idle,
                    time_left: idle_left,
                }
            });
        [absolute, idle]
    }

    /// Whether the background timer should refresh at `t`.
    pub(super) fn refresh_due_now(&self, t: UnixTime, policy: &SessionPolicy) -> bool {
        let ready = match self.refresh {
            RefreshState::Idle => true,
            RefreshState::Backoff { until } => until <= t,
            RefreshState::InFlight { .. } => false,
        };
        policy.background_refresh() && self.tokens.refresh_token.is_some() && ready && t >= self.tokens.refresh_due_at
    }

    /// When the refresh now in flight was sent, if one is.
    pub(super) fn refresh_sent_at(&self) -> Option<UnixTime> {
        match self.refresh {
            RefreshState::InFlight { sent_at } => Some(sent_at),
            _ => None,
        }
    }

    /// Schedules the next refresh attempt after a transient failure; returns the wait:
    /// 1 s doubling to 60 s, or what `Retry-After` asks (up to 10 minutes) if longer.
    pub(super) fn back_off(&mut self, t: UnixTime, retry_after: Option<Duration>) -> Duration {
        self.refresh_failures = self.refresh_failures.saturating_add(1);
        let exponential = BACKOFF_BASE.saturating_mul(1u32 << (self.refresh_failures - 1).min(16)).min(BACKOFF_CAP);
        let delay = exponential.max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP));
        self.refresh = RefreshState::Backoff { until: t.saturating_add(delay) };
        delay
    }

    /// Counts activity at `t`; true if it is due for the store: at most once per quarter of the
    /// idle timeout or per minute, whichever is shorter (activity held back meanwhile is flushed
    /// by the timer at three quarters of the idle timeout, see `activity_flush_at`).
    pub(super) fn record_activity(&mut self, t: UnixTime, policy: &SessionPolicy) -> bool {
        let persist_every = (policy.idle_timeout() / 4).min(Duration::from_secs(60));
        self.last_activity_at = self.last_activity_at.max(t);
        self.warned_idle = false;
        let due = t.saturating_duration_since(self.activity_persisted_at) >= persist_every;
        if due {
            self.activity_persisted_at = t;
        }
        due
    }

    /// The shared record did not end the session for idleness: activity held back meanwhile counts.
    pub(super) fn idle_check_passed(&mut self) {
        self.idle_check = IdleCheck::NotNeeded;
        if let Some(pending) = self.pending_activity.take() {
            self.last_activity_at = self.last_activity_at.max(pending);
            self.warned_idle = false;
        }
    }

    /// Merges the activity of the store's record of this session; true if ours is later and
    /// the others should see it too.
    pub(super) fn merge_activity(&mut self, stored_activity: UnixTime) -> bool {
        self.written = true;
        if stored_activity > self.last_activity_at {
            self.last_activity_at = stored_activity;
            self.activity_persisted_at = self.activity_persisted_at.max(stored_activity);
            false
        } else {
            self.last_activity_at > self.activity_persisted_at.max(stored_activity)
        }
    }

    /// Whether the store lacks some of this session's state.
    pub(super) fn needs_write(&self) -> bool {
        !self.written || self.changes != self.persisted_changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::id_token::IdTokenClaims;

    /// Issue 11, finding 13: a UUID `sub` is not what people call themselves.
    #[test]
    fn the_display_name_prefers_the_username_then_the_name_then_the_email() {
        let mut claims = IdTokenClaims {
            iss: "https://idp.example".into(),
            sub: "2858b10d-0f4e-4c5e-9a47-3f3c2b6a1d90".into(),
            exp: UnixTime::EPOCH,
            iat: UnixTime::EPOCH,
            auth_time: None,
            acr: None,
            sid: None,
            name: Some("Alice Liddell".into()),
            email: Some("alice@example.test".into()),
            preferred_username: Some("alice".into()),
        };
        assert_eq!(display_name(&claims).as_deref(), Some("alice"));
        claims.preferred_username = Some("  ".into());
        assert_eq!(display_name(&claims).as_deref(), Some("Alice Liddell"));
        claims.name = None;
        assert_eq!(display_name(&claims).as_deref(), Some("alice@example.test"));
        claims.email = None;
        assert_eq!(display_name(&claims), None);
        claims.name = Some("José \u{1b}[31m李雷".into());
        assert_eq!(display_name(&claims).as_deref(), Some("José [31m李雷"), "any script; no control characters");
    }
}
