//! Errors in two layers: [`CoreError`] says exactly what went wrong (for logs and tests);
//! [`SessionError`] says what the app should do about it (for every platform's API).
//!
//! Every binding exposes [`SessionError`]'s variants one to one. Messages never contain a
//! token, code, verifier or callback URL: the detailed errors are built so they cannot.

use std::time::Duration;

use crate::oidc::authorize::CallbackError;
use crate::oidc::client::ConfigError;
use crate::oidc::discovery::DiscoveryError;
use crate::oidc::id_token::{IdTokenError, SignatureError};
use crate::oidc::token::{MalformedToken, TokenError};
use crate::policy::PolicyError;
use crate::random::RandomError;
use crate::session::{EndReason, RecordError};

/// Everything that can go wrong in the core, in detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A configuration value breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The session policy is inconsistent.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The provider's discovery document was refused.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The authorization callback was refused.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The token endpoint refused the request.
    #[error(transparent)]
    TokenRefused(#[from] TokenError),
    /// The provider declined a refresh for a reason that is not the user's grant (the client's
    /// registration, a proxy in the way): the session is kept and the refresh retried later.
    #[error("{0}; the session is kept and the refresh is retried later")]
    RefreshDeclined(TokenError, Option<Duration>),
    /// The token endpoint's answer was unusable.
    #[error(transparent)]
    TokenMalformed(#[from] MalformedToken),
    /// The token endpoint was busy or failing (429/5xx) or unreachable.
    #[error("the provider is temporarily unavailable{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient {
        /// The HTTP status, if a response came back.
        status: Option<u16>,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    /// The login response had no ID token although `openid` was requested.
    #[error("the provider returned no ID token")]
    MissingIdToken,
    /// The stored record could not be used.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The OS random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The device authorization failed.
    #[error(transparent)]
    Device(#[from] crate::oidc::device::DeviceError),
    /// There is no usable session.
    #[error("no session: {}", .0.explanation())]
    NoSession(EndReason),
    /// A DPoP proof could not be made, or DPoP is required and the provider lacks it.
    #[error(transparent)]
    Dpop(#[from] crate::oidc::dpop::DpopError),
    /// The store is locked or unreachable (reported by the driver).
    #[error("the secure store is unavailable")]
    StorageUnavailable,
}

/// What the app should do, with a message fit for a log line (no secrets).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Sign the user in again: the session is over or never began.
    #[error("sign-in required: {message}")]
    ReauthenticationRequired {
        /// What happened.
        message: String,
    },
    /// Try again later: the provider or network failed transiently; the session is kept.
    #[error("temporarily unavailable, try again later: {message}")]
    RetryLater {
        /// What happened.
        message: String,
        /// The provider's requested wait, if any.
        retry_after: Option<Duration>,
    },
    /// The secure store is locked or unavailable; nothing was lost. Retry after unlocking.
    #[error("secure storage unavailable: {message}")]
    StorageUnavailable {
        /// What happened.
        message: String,
    },
    /// The configuration or the provider's setup is wrong; a developer must fix it.
    #[error("misconfigured: {message}")]
    Misconfigured {
        /// What happened.
        message: String,
    },
    /// Input (a callback URL, a response) was invalid or possibly forged; it was ignored.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What happened.
        message: String,
    },
}

impl From<CoreError> for SessionError {
    fn from(error: CoreError) -> Self {
        let message = error.to_string();
        match error {
            // A busy or failing provider is not a misconfiguration.
            CoreError::Discovery(DiscoveryError::Status(status)) if crate::http::is_transient_status(status) => {
                Self::RetryLater { message, retry_after: None }
            }
            CoreError::Config(_) | CoreError::Policy(_) | CoreError::Discovery(_) | CoreError::Random(_) => {
                Self::Misconfigured { message }
            }
            CoreError::TokenRefused(TokenError { code, .. }) if code.is_configuration() => {
                Self::Misconfigured { message }
            }
            CoreError::TokenRefused(_) => Self::ReauthenticationRequired { message },
            CoreError::RefreshDeclined(TokenError { code, .. }, _) if code.is_configuration() => {
                Self::Misconfigured { message }
            }
            CoreError::RefreshDeclined(_, retry_after) => Self::RetryLater { message, retry_after },
            CoreError::Transient { retry_after, .. } => Self::RetryLater { message, retry_after },
            // The provider's setup, not a passing fault: retrying gives the same answer.
            CoreError::TokenMalformed(MalformedToken::NotDpopBound | MalformedToken::UnexpectedDpop) => {
                Self::Misconfigured { message }
            }
            CoreError::TokenMalformed(MalformedToken::Downgraded) => Self::ReauthenticationRequired { message },
            CoreError::TokenMalformed(_) => Self::RetryLater { message, retry_after: None },
            // The provider's keys, not this token: every sign-in gets the same answer.
            CoreError::IdToken(IdTokenError::Signature(SignatureError::WeakKey)) => Self::Misconfigured { message },
            CoreError::Callback(_) | CoreError::IdToken(_) | CoreError::MissingIdToken => {
                Self::InvalidInput { message }
            }
            CoreError::Record(_) | CoreError::NoSession(_) => Self::ReauthenticationRequired { message },
            CoreError::StorageUnavailable => Self::StorageUnavailable { message },
            CoreError::Device(crate::oidc::device::DeviceError::Unsupported) => Self::Misconfigured { message },
            CoreError::Device(_) => Self::ReauthenticationRequired { message },
            // The key store would not sign (locked, busy): nothing was lost, try again.
            CoreError::Dpop(crate::oidc::dpop::DpopError::Signing(_)) => Self::StorageUnavailable { message },
            CoreError::Dpop(crate::oidc::dpop::DpopError::KeyMissing) => Self::ReauthenticationRequired { message },
            CoreError::Dpop(_) => Self::Misconfigured { message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::token::TokenErrorCode;

    #[test]
    fn each_detail_maps_to_an_action() {
        let grant = CoreError::TokenRefused(TokenError { code: TokenErrorCode::InvalidGrant, description: None });
        assert!(matches!(SessionError::from(grant), SessionError::ReauthenticationRequired { .. }));
        let client = CoreError::TokenRefused(TokenError { code: TokenErrorCode::InvalidClient, description: None });
        assert!(matches!(SessionError::from(client), SessionError::Misconfigured { .. }));
        let weak = CoreError::IdToken(IdTokenError::Signature(SignatureError::WeakKey));
        assert!(matches!(SessionError::from(weak), SessionError::Misconfigured { .. }), "the provider's keys");
        let forged = CoreError::IdToken(IdTokenError::Signature(SignatureError::Invalid));
        assert!(matches!(SessionError::from(forged), SessionError::InvalidInput { .. }));
        let busy = CoreError::Transient { status: Some(503), retry_after: Some(Duration::from_secs(3)) };
        assert_eq!(
            SessionError::from(busy),
            SessionError::RetryLater {
                message: "the provider is temporarily unavailable (HTTP 503)".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(SessionError::from(CoreError::StorageUnavailable), SessionError::StorageUnavailable { .. }));
        assert!(matches!(
            SessionError::from(CoreError::Callback(CallbackError::StateMismatch)),
            SessionError::InvalidInput { .. }
        ));
        assert!(matches!(
            SessionError::from(CoreError::Discovery(DiscoveryError::NoPkceS256)),
            SessionError::Misconfigured { .. }
        ));
        assert!(matches!(
            SessionError::from(CoreError::Discovery(DiscoveryError::Status(503))),
            SessionError::RetryLater { .. }
        ));
        assert!(matches!(
            SessionError::from(CoreError::Discovery(DiscoveryError::Status(404))),
            SessionError::Misconfigured { .. }
        ));
        assert!(matches!(
            SessionError::from(CoreError::NoSession(EndReason::IdleTimeout)),
            SessionError::ReauthenticationRequired { .. }
        ));
    }
}
