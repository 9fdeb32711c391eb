//! How a session begins: a sign-in (authorization code or device flow) or a record restored
//! from the store at start-up.
//!
//! Every sign-in is a fresh session: a new random id and start time, the old session's tokens
//! revoked. A token answer whose ID token fails its checks starts nothing, and the refresh
//! token it brought is revoked; a failure changes nothing else.

use super::active::{Active, Tokens};
use super::{Keys, RecordError, Session, SessionEvent, SessionRecord, State, StorageProblem};
use crate::error::CoreError;
use crate::http::HttpResponse;
use crate::oidc::authorize::{AuthorizeOptions, PendingAuthorization};
use crate::oidc::device::DeviceAuthorization;
use crate::oidc::dpop::{DpopAlgorithm, DpopKey, check_binding};
use crate::oidc::id_token::{
    IdTokenCheck, IdTokenClaims, IdTokenError, SignatureError, SignatureVerifier, validate_id_token,
};
use crate::oidc::token::TokenOutcome;
use crate::random::random_identifier;
use crate::time::ClockGuard;
use crate::{Now, Secret, UnixTime};

/// Why [`Session::check_id_token`] did not accept a token.
pub(super) enum IdTokenFailure {
    /// Unknown `kid` with cached keys: nothing changes until the driver retries with fresh keys.
    RefetchKeys(IdTokenError),
    /// A final refusal.
    Refused(IdTokenError),
}

impl Session {
    /// Starts a sign-in: the URL to open and the pending login to keep until the callback.
    /// The current session, if any, stays until the new one is complete.
    /// `dpop_key` is the fresh key the new session will be bound to, made by the driver when
    /// [`dpop_algorithm`](Self::dpop_algorithm) asked for one.
    pub fn begin_login(
        &self,
        options: &AuthorizeOptions,
        dpop_key: Option<DpopKey>,
        now: Now,
    ) -> Result<(crate::url::Url, PendingAuthorization), CoreError> {
        Ok(PendingAuthorization::begin(&self.client, &self.metadata, options, dpop_key, self.clock.effective(now))?)
    }

    /// The algorithm of the DPoP key a new sign-in needs, or `None` for a Bearer session (see
    /// [`DpopPolicy`](crate::oidc::dpop::DpopPolicy)). `Err` when DPoP is required and the
    /// provider does not offer it: the driver reports that at start, before any sign-in.
    pub fn dpop_algorithm(&self) -> Result<Option<DpopAlgorithm>, CoreError> {
        Ok(self.policy.dpop().algorithm_for(&self.metadata.dpop_signing_algs)?)
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
        let asked = Asked { nonce: Some(pending.nonce()), max_age: pending.max_age() };
        self.login(asked, pending.dpop_key(), response, verifier, keys, now)
    }

    /// Feeds the token response that ended a device authorization (RFC 8628). The ID token
    /// carries no nonce in this flow (there was no authorization request); everything else is
    /// checked as for [`handle_login_response`](Self::handle_login_response).
    pub fn handle_device_login_response(
        &mut self,
        device: &DeviceAuthorization,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        self.login(Asked { nonce: None, max_age: None }, device.dpop_key(), response, verifier, keys, now)
    }

    fn login(
        &mut self,
        asked: Asked<'_>,
        dpop_key: Option<&DpopKey>,
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
        if let Err(error) = check_binding(self.policy.dpop(), dpop_key, false, &tokens) {
            self.revoke(tokens.refresh_token, None);
            return Err(error.into());
        }
        let Some(id_token) = &tokens.id_token else {
            self.revoke(tokens.refresh_token, None);
            return Err(CoreError::MissingIdToken);
        };
        let claims = match self.check_id_token(id_token, asked, None, t, verifier, keys) {
            Ok(claims) => claims,
            Err(IdTokenFailure::RefetchKeys(error)) => return Err(error.into()),
            Err(IdTokenFailure::Refused(error)) => {
                self.revoke(tokens.refresh_token, None);
                return Err(error.into());
            }
        };
        let session_id = random_identifier()?.expose().to_owned();
        self.wipe_retry_at = None;
        let tokens = Tokens::new(tokens, t, self.policy.refresh_lead());
        self.outbox.tell(SessionEvent::LoggedIn { session_id: session_id.clone(), subject: claims.sub.clone() });
        let mut active = Active::new(session_id, claims.sub.clone(), tokens, t, &self.policy);
        active.display_name = super::active::display_name(&claims);
        active.acr = claims.acr.clone();
        // The provider's clock, turned into this device's, as every time in the status is.
        active.authenticated_at =
            claims.auth_time.map(|at| at.offset_by_millis(self.server_offset_ms.saturating_neg()));
        active.dpop_key = dpop_key.cloned();
        let started = State::Active(Box::new(active));
        let old = std::mem::replace(&mut self.state, started);
        // The new session's record first, then the old tokens' revocation.
        self.queue_persist();
        if let State::Active(old) = old {
            self.retire(*old);
        }
        Ok(())
    }

    /// Whether `record` restores as a live session at `now`: it reads, it is this client's, and
    /// neither limit has passed. Restoring it then writes and wipes nothing (the same `now`
    /// gives the same verdict), so the driver may take it from a read made without the
    /// cross-context lock; any other record is restored under the lock, where the end it leads
    /// to can be wiped safely.
    pub fn restores_live(&self, record: &[u8], now: Now) -> bool {
        let Ok(record) = self.own_record(record) else { return false };
        let t = ClockGuard::starting_at(record.last_seen_at).effective(now);
        Active::from_record(record, &self.policy).limit_reached(t, &self.policy).is_none()
    }

    /// Restores a session from the store's record at start-up. A record past its limits is
    /// ended at once (wiped and revoked); an unreadable one is left in the store untouched.
    pub fn restore(&mut self, record: &[u8], now: Now) -> Result<(), CoreError> {
        let record = match self.own_record(record) {
            Ok(record) => record,
            Err(error @ CoreError::Record(RecordError::DifferentClient)) => return Err(error),
            Err(error) => {
                self.outbox
                    .tell(SessionEvent::StorageProblem { session_id: None, problem: StorageProblem::Unreadable });
                return Err(error);
            }
        };
        self.clock = ClockGuard::starting_at(record.last_seen_at);
        self.server_offset_ms = record.server_offset_ms;
        self.revision = self.revision.max(record.revision);
        let (session_id, subject) = (record.session_id.clone(), record.subject.clone());
        self.state = State::Active(Box::new(Active::from_record(record, &self.policy)));
        let t = self.observe(now);
        // The record was just read from the store: its activity is the shared one.
        if !self.end_if_limit_reached(t, true) {
            self.outbox.tell(SessionEvent::Restored { session_id, subject });
        }
        Ok(())
    }

    /// The stored record, decoded, if it is this client's (same issuer and client id).
    fn own_record(&self, record: &[u8]) -> Result<SessionRecord, CoreError> {
        let record = SessionRecord::decode(record)?;
        if record.issuer != self.metadata.issuer || record.client_id != self.client.client_id {
            return Err(RecordError::DifferentClient.into());
        }
        Ok(record)
    }

    /// Validates an ID token against this session's issuer, client and server clock. An unknown
    /// `kid` with cached keys is not a verdict yet: the driver refetches the JWKS and asks again.
    pub(super) fn check_id_token(
        &self,
        id_token: &Secret,
        asked: Asked<'_>,
        subject: Option<&str>,
        t: UnixTime,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
    ) -> Result<IdTokenClaims, IdTokenFailure> {
        let check = IdTokenCheck {
            issuer: &self.metadata.issuer,
            client_id: &self.client.client_id,
            nonce: asked.nonce,
            subject,
            max_age: asked.max_age,
            server_now: t.offset_by_millis(self.server_offset_ms),
            leeway: if self.server_clock_known {
                self.policy.clock_leeway()
            } else {
                self.policy.clock_leeway().saturating_add(super::UNKNOWN_SERVER_CLOCK_LEEWAY)
            },
            provider_algorithms: &self.metadata.id_token_signing_algs,
        };
        validate_id_token(id_token, &check, verifier).map_err(|error| match error {
            // A key the cache does not have, or has only too short: the provider may have
            // rotated (to a proper key, even under the same `kid`) since the keys were fetched.
            IdTokenError::Signature(SignatureError::UnknownKey | SignatureError::WeakKey) if keys == Keys::Cached => {
                IdTokenFailure::RefetchKeys(error)
            }
            error => IdTokenFailure::Refused(error),
        })
    }
}

/// What a sign-in asked the provider for, which its ID token must show: the nonce (none in the
/// device flow and after a refresh) and the `max_age` of a step-up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Asked<'a> {
    pub(super) nonce: Option<&'a Secret>,
    pub(super) max_age: Option<u64>,
}
