//! The driver's failures, mapped to the flat [`Error`] (the core's `SessionError`) that says
//! what the app should do. Nothing here carries a token, code or URL query.

use sessionkit_core::{CoreError, EndReason, SessionError};

use crate::http::TransportError;
use crate::jwks::JwksError;
use crate::store::StoreError;

/// The error every `SessionClient` method returns: each variant is an action for the app.
pub type Error = SessionError;

impl From<TransportError> for TransportFailure {
    fn from(error: TransportError) -> Self {
        Self(error)
    }
}

/// A transport error on its way to becoming an [`Error`].
pub(crate) struct TransportFailure(pub(crate) TransportError);

impl From<TransportFailure> for Error {
    fn from(TransportFailure(error): TransportFailure) -> Self {
        let message = error.to_string();
        match error {
            TransportError::Insecure | TransportError::Setup(_) => Error::Misconfigured { message },
            TransportError::TooLarge { .. } | TransportError::PinMismatch { .. } => Error::InvalidInput { message },
            _ => Error::RetryLater { message, retry_after: None },
        }
    }
}

pub(crate) fn transport(error: TransportError) -> Error {
    TransportFailure(error).into()
}

pub(crate) fn store(error: &StoreError) -> Error {
    Error::StorageUnavailable { message: error.to_string() }
}

pub(crate) fn jwks(error: &JwksError) -> Error {
    match error {
        JwksError::Transport(e) => transport(e.clone()),
        other => Error::RetryLater { message: other.to_string(), retry_after: None },
    }
}

pub(crate) fn ended(reason: EndReason) -> Error {
    CoreError::NoSession(reason).into()
}
