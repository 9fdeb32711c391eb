//! What the session tells the app ([`SessionEvent`]) and asks the driver to do ([`Action`]).
//!
//! Events are for people and monitoring: they carry the session's random id (never a token),
//! the subject, reasons and times, and look the same on every platform. Actions are for the
//! driver: persist this record, wipe the store, send this refresh or revocation. The driver
//! performs actions in the order they are polled; a `Persist` of rotated tokens comes before
//! anything that hands the new access token out.

use std::time::Duration;

use crate::http::HttpRequest;
use crate::oidc::token::revocation_request;
use crate::{Secret, UnixTime};

use crate::url::Url;

/// Why the session is not (or no longer) usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[non_exhaustive]
pub enum EndReason {
    /// Nobody has signed in (or the store held no session).
    NotSignedIn,
    /// The user signed out.
    SignedOut,
    /// No activity for the idle timeout.
    IdleTimeout,
    /// The absolute lifetime since sign-in was reached.
    AbsoluteLifetime,
    /// The provider refused the refresh token (`invalid_grant` or another refusal).
    RefreshRejected,
    /// The session was ended elsewhere (another process or tab signed out).
    Revoked,
    /// The access token expired and there is no refresh token.
    AccessTokenExpired,
    /// A security anomaly ended the session (see [`Anomaly`]).
    Anomaly,
}

impl EndReason {
    /// Every reason, for bindings that list them (TypeScript unions) and their tests.
    pub const ALL: [Self; 8] = [
        Self::NotSignedIn,
        Self::SignedOut,
        Self::IdleTimeout,
        Self::AbsoluteLifetime,
        Self::RefreshRejected,
        Self::Revoked,
        Self::AccessTokenExpired,
        Self::Anomaly,
    ];

    /// The stable name bindings expose ("IdleTimeout"): part of their API, not a `Debug` detail.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotSignedIn => "NotSignedIn",
            Self::SignedOut => "SignedOut",
            Self::IdleTimeout => "IdleTimeout",
            Self::AbsoluteLifetime => "AbsoluteLifetime",
            Self::RefreshRejected => "RefreshRejected",
            Self::Revoked => "Revoked",
            Self::AccessTokenExpired => "AccessTokenExpired",
            Self::Anomaly => "Anomaly",
        }
    }

    /// Why there is no session, in plain words with the next step (for error messages).
    pub const fn explanation(self) -> &'static str {
        match self {
            Self::NotSignedIn => "nobody is signed in; sign in first",
            Self::SignedOut => "the user signed out; sign in again",
            Self::IdleTimeout => "the session ended after a period without activity; sign in again",
            Self::AbsoluteLifetime => "the session reached its maximum lifetime; sign in again",
            Self::RefreshRejected => "the provider no longer accepts this session; sign in again",
            Self::Revoked => "the session was ended elsewhere (another app process or tab); sign in again",
            Self::AccessTokenExpired => "the access token expired and there is no refresh token; sign in again",
            Self::Anomaly => {
                "the session was ended because something looked wrong (see the anomaly event); sign in again"
            }
        }
    }
}

/// Which limit an "expiring soon" warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ExpiryReason {
    /// The idle timeout: any activity postpones it.
    Idle,
    /// The absolute lifetime: only a new sign-in helps.
    Absolute,
}

impl ExpiryReason {
    /// Every reason, for bindings that list them.
    pub const ALL: [Self; 2] = [Self::Idle, Self::Absolute];

    /// The stable name bindings expose ("Idle").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Absolute => "Absolute",
        }
    }
}

/// Something that suggests tampering, theft or a broken clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[non_exhaustive]
pub enum Anomaly {
    /// A refreshed ID token named a different user.
    SubjectChanged,
    /// A refreshed ID token or a stored record named a different issuer.
    IssuerChanged,
    /// A refreshed ID token failed validation (signature, audience, times).
    InvalidIdToken,
    /// The session's DPoP key is gone from its key store (the browser's storage was cleared,
    /// the app's key store lost it): its tokens can no longer be used, so the session ended.
    DpopKeyLost,
    /// The wall clock was set back by this much; limits keep counting from the later time.
    ClockJumpedBack {
        /// How far back.
        by: Duration,
    },
}

impl Anomaly {
    /// One anomaly of every kind, for bindings that list them.
    pub const ALL: [Self; 5] = [
        Self::SubjectChanged,
        Self::IssuerChanged,
        Self::InvalidIdToken,
        Self::DpopKeyLost,
        Self::ClockJumpedBack { by: Duration::from_secs(60) },
    ];

    /// The stable name bindings expose ("ClockJumpedBack"), without the payload.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SubjectChanged => "SubjectChanged",
            Self::IssuerChanged => "IssuerChanged",
            Self::InvalidIdToken => "InvalidIdToken",
            Self::DpopKeyLost => "DpopKeyLost",
            Self::ClockJumpedBack { .. } => "ClockJumpedBack",
        }
    }
}

/// What kind of storage trouble the driver reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[non_exhaustive]
pub enum StorageProblem {
    /// The store is locked or unreachable; the session continues in memory.
    Unavailable,
    /// The stored record could not be read (corrupt or from a newer version); it was left as is.
    Unreadable,
}

impl StorageProblem {
    /// Every problem, for bindings that list them.
    pub const ALL: [Self; 2] = [Self::Unavailable, Self::Unreadable];

    /// The stable name bindings expose ("Unavailable").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "Unavailable",
            Self::Unreadable => "Unreadable",
        }
    }
}

/// One thing that happened to the session, in the same shape on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session started (a sign-in completed).
    LoggedIn {
        /// The session's random id.
        session_id: String,
        /// The user.
        subject: String,
    },
    /// A session was restored from the store at start-up.
    Restored {
        /// The session's random id.
        session_id: String,
        /// The user.
        subject: String,
    },
    /// New tokens were obtained with the refresh token.
    Refreshed {
        /// The session's random id.
        session_id: String,
        /// Whether the provider rotated the refresh token.
        rotated: bool,
        /// When the new access token expires.
        access_expires_at: UnixTime,
    },
    /// The session will end soon unless the user acts (idle) or signs in again (absolute).
    ExpiringSoon {
        /// The session's random id.
        session_id: String,
        /// Which limit.
        reason: ExpiryReason,
        /// How long is left.
        time_left: Duration,
    },
    /// The session ended without the user signing out.
    Expired {
        /// The session's random id.
        session_id: String,
        /// Why.
        reason: EndReason,
    },
    /// The user signed out.
    LoggedOut {
        /// The session's random id.
        session_id: String,
    },
    /// Something looks wrong; see [`Anomaly`].
    AnomalySuspected {
        /// The session's random id, when there is a session.
        session_id: Option<String>,
        /// What.
        anomaly: Anomaly,
    },
    /// The store failed; see [`StorageProblem`].
    StorageProblem {
        /// The session's random id, when there is a session.
        session_id: Option<String>,
        /// What.
        problem: StorageProblem,
    },
}

impl SessionEvent {
    /// One event of every kind with every field set, for the tests that compare the bindings'
    /// shapes with these types (`sessionkit-wasm`'s `shapes` test).
    pub fn one_of_each() -> Vec<Self> {
        let id = || "session-id".to_owned();
        vec![
            Self::LoggedIn { session_id: id(), subject: "alice".into() },
            Self::Restored { session_id: id(), subject: "alice".into() },
            Self::Refreshed { session_id: id(), rotated: true, access_expires_at: UnixTime::from_secs(1_700_000_000) },
            Self::ExpiringSoon { session_id: id(), reason: ExpiryReason::Idle, time_left: Duration::from_secs(60) },
            Self::Expired { session_id: id(), reason: EndReason::IdleTimeout },
            Self::LoggedOut { session_id: id() },
            Self::AnomalySuspected {
                session_id: Some(id()),
                anomaly: Anomaly::ClockJumpedBack { by: Duration::from_secs(9) },
            },
            Self::StorageProblem { session_id: Some(id()), problem: StorageProblem::Unavailable },
        ]
    }

    /// How many kinds of event there are.
    #[cfg(test)]
    const KINDS: usize = 8;

    /// The kind's index: an exhaustive match, so a new kind cannot be left out of `one_of_each`
    /// without this crate's tests failing.
    #[cfg(test)]
    const fn kind(&self) -> usize {
        match self {
            Self::LoggedIn { .. } => 0,
            Self::Restored { .. } => 1,
            Self::Refreshed { .. } => 2,
            Self::ExpiringSoon { .. } => 3,
            Self::Expired { .. } => 4,
            Self::LoggedOut { .. } => 5,
            Self::AnomalySuspected { .. } => 6,
            Self::StorageProblem { .. } => 7,
        }
    }

    /// Whether this event means the stored session changed in a way other contexts sharing the
    /// store (browser tabs) must adopt: a sign-in, a refresh, a sign-out or an end.
    pub const fn changes_stored_session(&self) -> bool {
        matches!(self, Self::LoggedIn { .. } | Self::Refreshed { .. } | Self::LoggedOut { .. } | Self::Expired { .. })
    }
}

/// Which kind of token a [`Revocation`] revokes (RFC 7009 `token_type_hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A refresh token (revoking it ends the grant at most providers).
    RefreshToken,
    /// An access token (for providers whose access tokens outlive their refresh token).
    AccessToken,
}

/// A token to revoke at the provider (RFC 7009). It can be stored by the driver so that a
/// failed revocation is retried after a restart.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Revocation {
    /// The revocation endpoint.
    pub endpoint: Url,
    /// The client id.
    pub client_id: String,
    /// The token to revoke.
    pub token: Secret,
    /// What kind of token it is.
    pub kind: TokenKind,
}

/// What a revocation endpoint's answer means (RFC 7009 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// 200: revoked (or already invalid, which RFC 7009 answers the same way).
    Revoked,
    /// 429 or 5xx: keep the token and try again later.
    RetryLater,
    /// Any other answer: the provider refuses this request for good; retrying would not help.
    Refused,
}

impl Revocation {
    /// Classifies the revocation endpoint's answer.
    pub fn outcome(response: &crate::http::HttpResponse) -> RevocationOutcome {
        match response.status() {
            200 => RevocationOutcome::Revoked,
            _ if response.is_transient() => RevocationOutcome::RetryLater,
            _ => RevocationOutcome::Refused,
        }
    }

    /// The request to send.
    pub fn request(&self) -> HttpRequest {
        let hint = match self.kind {
            TokenKind::RefreshToken => "refresh_token",
            TokenKind::AccessToken => "access_token",
        };
        revocation_request(&self.endpoint, &self.client_id, &self.token, hint)
    }
}

/// Work for the driver, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Write this record (JSON, secret) to the store, replacing the previous one. A driver whose
    /// store is shared with other processes or tabs writes instead what
    /// [`Session::prepare_write`](crate::Session::prepare_write) gives under its cross-context
    /// lock, after reading the store, so that a newer record is never replaced.
    Persist(Secret),
    /// Delete the stored record, if it is this session's
    /// ([`Session::wipe_applies_to`](crate::Session::wipe_applies_to) tells).
    Wipe,
    /// Read the shared record (under the cross-context lock) and feed it to
    /// [`Session::handle_store_changed`](crate::Session::handle_store_changed), or report
    /// [`Session::handle_store_unreadable`](crate::Session::handle_store_unreadable): the idle
    /// limit was reached here, and only the activity of every context sharing the store can
    /// end the session.
    SyncWithStore,
    /// Send this refresh request and feed the answer to `handle_refresh_response`.
    Refresh(HttpRequest),
    /// Revoke this token; on failure, keep it and retry later (it is no longer in the session).
    Revoke(Revocation),
    /// Delete this DPoP key from the platform's key store: its session is over (best effort;
    /// a key left behind signs for nothing, as its tokens are gone).
    ForgetDpopKey(crate::oidc::dpop::DpopKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stable names are what the bindings published before they existed (the variant names
    /// as `Debug` prints them): Kotlin and JS code comparing them keeps working.
    #[test]
    fn stable_names_are_the_variant_names() {
        let variant = |debug: String| debug.split([' ', '{', '(']).next().unwrap_or_default().to_owned();
        for reason in EndReason::ALL {
            assert_eq!(reason.name(), variant(format!("{reason:?}")));
        }
        for reason in ExpiryReason::ALL {
            assert_eq!(reason.name(), variant(format!("{reason:?}")));
        }
        for anomaly in Anomaly::ALL {
            assert_eq!(anomaly.name(), variant(format!("{anomaly:?}")));
        }
        for problem in StorageProblem::ALL {
            assert_eq!(problem.name(), variant(format!("{problem:?}")));
        }
    }

    /// Exhaustive matches numbering the variants: a new variant does not compile until it gets
    /// an arm (the next number) here, beside the list of numbers `ALL` must map to, so that it
    /// is added to `ALL` too (which the TypeScript unions are checked against).
    #[test]
    fn the_all_lists_hold_every_variant_once() {
        let end = |r: EndReason| match r {
            EndReason::NotSignedIn => 0,
            EndReason::SignedOut => 1,
            EndReason::IdleTimeout => 2,
            EndReason::AbsoluteLifetime => 3,
            EndReason::RefreshRejected => 4,
            EndReason::Revoked => 5,
            EndReason::AccessTokenExpired => 6,
            EndReason::Anomaly => 7,
        };
        assert_eq!(EndReason::ALL.map(end), [0, 1, 2, 3, 4, 5, 6, 7]);
        let expiry = |r: ExpiryReason| match r {
            ExpiryReason::Idle => 0,
            ExpiryReason::Absolute => 1,
        };
        assert_eq!(ExpiryReason::ALL.map(expiry), [0, 1]);
        let anomaly = |a: Anomaly| match a {
            Anomaly::SubjectChanged => 0,
            Anomaly::IssuerChanged => 1,
            Anomaly::InvalidIdToken => 2,
            Anomaly::DpopKeyLost => 3,
            Anomaly::ClockJumpedBack { .. } => 4,
        };
        assert_eq!(Anomaly::ALL.map(anomaly), [0, 1, 2, 3, 4]);
        let problem = |p: StorageProblem| match p {
            StorageProblem::Unavailable => 0,
            StorageProblem::Unreadable => 1,
        };
        assert_eq!(StorageProblem::ALL.map(problem), [0, 1]);
    }

    #[test]
    fn one_of_each_covers_every_kind_once() {
        let kinds: Vec<usize> = SessionEvent::one_of_each().iter().map(SessionEvent::kind).collect();
        assert_eq!(kinds, (0..SessionEvent::KINDS).collect::<Vec<_>>());
    }
}
