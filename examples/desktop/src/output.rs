//! How events and errors look on the terminal: one line each, and JSON for scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sessionkit::{Anomaly, EndReason, Error, ExpiryReason, SessionEvent, StorageProblem};

/// A failed command: one line saying what happened, one saying what to do, an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: Some("see `sessionkit --help`".into()), code: 2 }
    }
}

/// A hint for a scope the provider will not grant: most often `offline_access` (the refresh
/// token), refused for the client (`invalid_scope`) or for the user (Keycloak's `not_allowed`).
fn scope_refused(message: &str) -> bool {
    message.contains("invalid_scope") || message.contains("not_allowed") || message.contains("Offline tokens")
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        if scope_refused(&message) {
            return Self {
                message,
                hint: Some(
                    "the provider will not grant a requested scope (offline_access, which gives the refresh token, \
                     unless --scopes names others): ask its administrator to allow it, or sign in without it with \
                     --scopes \"\" (the session then lasts as long as one access token)"
                        .into(),
                ),
                code: 2,
            };
        }
        if message.contains("in the browser within") {
            return Self {
                message,
                hint: Some("run `sessionkit login` again and finish signing in in the browser".into()),
                code: 4,
            };
        }
        let (hint, code) = match &error {
            Error::ReauthenticationRequired { .. } => ("sign in again with `sessionkit login`".to_owned(), 3),
            Error::RetryLater { retry_after: Some(wait), .. } => {
                (format!("the provider is busy or unreachable; try again in {}s", wait.as_secs().max(1)), 4)
            }
            Error::RetryLater { .. } => ("the provider is busy or unreachable; check the network and try again".to_owned(), 4),
            Error::StorageUnavailable { .. } => {
                ("unlock your keyring, or choose another store with --store keyutils|memory".to_owned(), 5)
            }
            Error::Misconfigured { .. } => ("check --issuer, --client-id and --ca-file".to_owned(), 2),
            Error::InvalidInput { .. } => {
                ("the provider's answer was refused as unsafe; if it keeps happening, check the provider and the network".to_owned(), 6)
            }
            _ => ("see `sessionkit --help`".to_owned(), 1),
        };
        Self { message, hint: Some(hint), code }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::usage(message)
    }
}

/// `HH:MM:SS.mmm` (UTC) of now.
pub(crate) fn clock() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}.{:03}", secs / 3600, secs / 60 % 60, secs % 60, since.subsec_millis())
}

pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::NotSignedIn => "not signed in",
        EndReason::SignedOut => "signed out",
        EndReason::IdleTimeout => "idle timeout",
        EndReason::AbsoluteLifetime => "absolute lifetime reached",
        EndReason::RefreshRejected => "the provider refused the refresh token",
        EndReason::Revoked => "ended elsewhere",
        EndReason::AccessTokenExpired => "access token expired and no refresh token",
        EndReason::Anomaly => "security anomaly",
        _ => "ended",
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// One line for a person.
pub(crate) fn describe(event: &SessionEvent) -> String {
    match event {
        SessionEvent::LoggedIn { session_id, subject } => {
            format!("logged in as {subject} (session {})", short(session_id))
        }
        SessionEvent::Restored { session_id, subject } => {
            format!("restored session {} of {subject}", short(session_id))
        }
        SessionEvent::Refreshed { rotated, .. } => {
            format!("tokens refreshed{}", if *rotated { " (refresh token rotated)" } else { "" })
        }
        SessionEvent::ExpiringSoon { reason, time_left, .. } => match reason {
            ExpiryReason::Idle => format!("expiring soon: idle, {} left unless there is activity", seconds(*time_left)),
            ExpiryReason::Absolute => format!("expiring soon: absolute lifetime, {} left", seconds(*time_left)),
        },
        SessionEvent::Expired { reason: r, .. } => format!("session expired: {}", reason(*r)),
        SessionEvent::LoggedOut { session_id } => format!("logged out (session {})", short(session_id)),
        SessionEvent::AnomalySuspected { anomaly, .. } => match anomaly {
            Anomaly::SubjectChanged => "ANOMALY: the provider named a different user".into(),
            Anomaly::IssuerChanged => "ANOMALY: a different issuer".into(),
            Anomaly::InvalidIdToken => "ANOMALY: an invalid ID token".into(),
            Anomaly::ClockJumpedBack { by } => format!("ANOMALY: the clock was set back by {}", seconds(*by)),
            _ => "ANOMALY".into(),
        },
        SessionEvent::StorageProblem { problem, .. } => match problem {
            StorageProblem::Unavailable => {
                "storage problem: the keystore is unavailable; the session continues in memory".into()
            }
            _ => "storage problem: the stored session could not be read".into(),
        },
        _ => format!("{event:?}"),
    }
}

/// One JSON object for a script.
pub(crate) fn event_json(event: &SessionEvent) -> serde_json::Value {
    let kind = format!("{event:?}");
    let kind = kind.split([' ', '{', '(']).next().unwrap_or("Event").to_owned();
    let mut value = serde_json::json!({ "time": clock(), "event": kind, "text": describe(event) });
    match event {
        SessionEvent::ExpiringSoon { reason, time_left, .. } => {
            value["reason"] = reason.name().into();
            value["time_left_ms"] = u64::try_from(time_left.as_millis()).unwrap_or(u64::MAX).into();
        }
        SessionEvent::Expired { reason, .. } => value["reason"] = reason.name().into(),
        SessionEvent::LoggedIn { subject, .. } | SessionEvent::Restored { subject, .. } => {
            value["subject"] = subject.clone().into()
        }
        SessionEvent::Refreshed { rotated, .. } => value["rotated"] = (*rotated).into(),
        _ => {}
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11, finding 13: a refused offline_access says what happened and what to try.
    #[test]
    fn a_refused_scope_suggests_signing_in_without_it() {
        for error in [
            Error::ReauthenticationRequired {
                message:
                    "the provider refused the request: not_allowed (Offline tokens not allowed for the user or client)"
                        .into(),
            },
            Error::InvalidInput { message: "the provider refused the sign-in: invalid_scope (Invalid scopes)".into() },
        ] {
            let failure = Failure::from(error);
            let hint = failure.hint.unwrap();
            assert!(hint.contains("--scopes \"\"") && hint.contains("offline_access"), "{hint}");
            assert!(!hint.contains("unsafe") && !hint.contains("sign in again"), "{hint}");
        }
        let timeout = Error::RetryLater {
            message: "the sign-in was not completed in the browser within 300 s; start it again".into(),
            retry_after: None,
        };
        assert!(!Failure::from(timeout).hint.unwrap().contains("busy"));
    }
}
