//! Refreshing the tokens: when a refresh may start, and what its answer does to the session.
//!
//! One refresh at a time: a request is queued as [`Action::Refresh`] and the driver must feed
//! back its answer ([`Session::handle_refresh_response`]) or its failure
//! ([`Session::handle_refresh_failure`]). A transient failure backs off and keeps the session;
//! a refused grant (`invalid_grant`) ends it, while any other refusal (`invalid_client`, a
//! proxy's 401) is not the user's and backs off like a transient failure; a refreshed ID token must keep `iss` and `sub`, or the session ends as an
//! anomaly. The new access token's lifetime counts from when the request was queued.

use super::active::RefreshState;
use super::login::IdTokenFailure;
use super::{Action, Anomaly, EndReason, Keys, RefreshStart, Session, SessionEvent, State};
use crate::error::CoreError;
use crate::http::HttpResponse;
use crate::oidc::dpop::check_binding;
use crate::oidc::id_token::{IdTokenError, SignatureVerifier};
use crate::oidc::token::{TokenErrorCode, TokenOutcome, TokenResponse, refresh_request};
use crate::{Now, UnixTime};

impl Session {
    /// Asks for a refresh now (a caller got [`TokenState::Renewable`](super::TokenState::Renewable)).
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
                let mut request = refresh_request(&self.metadata.token_endpoint, &self.client.client_id, refresh_token);
                // A bound refresh token is only good with a proof of the same key.
                request.dpop = a.dpop_key.clone();
                a.refresh = RefreshState::InFlight { sent_at: t };
                self.outbox.act(Action::Refresh(request));
                RefreshStart::Started
            }
        }
    }

    /// Feeds the token endpoint's answer to the refresh the driver was asked to send.
    pub fn handle_refresh_response(
        &mut self,
        response: &HttpResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        now: Now,
    ) -> Result<(), CoreError> {
        let t = self.observe(now);
        let outcome = TokenOutcome::classify(response, t);
        let Some(sent_at) = self.active().and_then(|a| a.refresh_sent_at()) else {
            // The session ended (or another context took over) while the request was out:
            // a token it brought is revoked, never used.
            if let TokenOutcome::Tokens(tokens) = outcome {
                self.revoke(tokens.refresh_token, None);
            }
            return Err(CoreError::NoSession(self.end_reason().unwrap_or(EndReason::Revoked)));
        };
        self.update_server_offset(response, t);
        match outcome {
            TokenOutcome::Tokens(tokens) => self.apply_refresh(tokens, verifier, keys, sent_at, t),
            // Only a refused grant ends the session; a refusal of the client (its registration,
            // a proxy) says nothing about the user's session, which is kept, retried with backoff.
            TokenOutcome::Refused(error) if error.code == TokenErrorCode::InvalidGrant => {
                self.end(EndReason::RefreshRejected, false);
                Err(error.into())
            }
            TokenOutcome::Refused(error) => {
                let wait = self.active_mut().map(|a| a.back_off(t, None));
                Err(CoreError::RefreshDeclined(error, wait))
            }
            TokenOutcome::Transient { status, retry_after } => {
                // The caller learns the session's own wait: Retry-After or the backoff, whichever is longer.
                let wait = self.active_mut().map(|a| a.back_off(t, retry_after));
                Err(CoreError::Transient { status: Some(status), retry_after: wait })
            }
            TokenOutcome::Malformed(error) => {
                if let Some(a) = self.active_mut() {
                    a.back_off(t, None);
                }
                Err(error.into())
            }
        }
    }

    /// The refresh request failed without an answer (network error, timeout): back off.
    pub fn handle_refresh_failure(&mut self, now: Now) -> CoreError {
        let t = self.observe(now);
        let retry_after = self.active_mut().filter(|a| a.refresh_sent_at().is_some()).map(|a| a.back_off(t, None));
        CoreError::Transient { status: None, retry_after }
    }

    /// Whether a queued [`Action::Refresh`] still waits for its answer (it was not made
    /// unnecessary by an adopted record, nor ended with the session).
    pub fn refresh_in_flight(&self) -> bool {
        self.active().is_some_and(|a| a.refresh_sent_at().is_some())
    }

    fn apply_refresh(
        &mut self,
        response: TokenResponse,
        verifier: &dyn SignatureVerifier,
        keys: Keys,
        sent_at: UnixTime,
        t: UnixTime,
    ) -> Result<(), CoreError> {
        let Some(a) = self.active() else { return Err(CoreError::NoSession(EndReason::Revoked)) };
        let was_bound = a.tokens.token_type == "DPoP";
        if let Err(error) = check_binding(self.policy.dpop(), a.dpop_key.as_ref(), was_bound, &response) {
            // An answer this session must not use (a downgrade to Bearer). The provider has
            // rotated the refresh token already, so the old one is spent: the new tokens are
            // revoked, never used, and the session ends.
            if let Some(a) = self.active_mut() {
                if response.refresh_token.is_some() {
                    a.tokens.refresh_token = response.refresh_token;
                }
                a.tokens.access_token = response.access_token;
            }
            self.end(EndReason::RefreshRejected, true);
            return Err(error.into());
        }
        let mut refreshed_name = None;
        if let Some(id_token) = &response.id_token {
            match self.check_id_token(
                id_token,
                super::login::Asked { nonce: None, max_age: None },
                Some(&a.subject),
                t,
                verifier,
                keys,
            ) {
                Ok(claims) => refreshed_name = super::active::display_name(&claims),
                Err(IdTokenFailure::RefetchKeys(error)) => return Err(error.into()),
                Err(IdTokenFailure::Refused(error)) => {
                    let anomaly = match error {
                        IdTokenError::SubjectChanged => Anomaly::SubjectChanged,
                        IdTokenError::Issuer => Anomaly::IssuerChanged,
                        _ => Anomaly::InvalidIdToken,
                    };
                    let session_id = Some(a.session_id.clone());
                    self.outbox.tell(SessionEvent::AnomalySuspected { session_id, anomaly });
                    // The new refresh token (or, without rotation, the current one) is revoked.
                    if let Some(a) = self.active_mut()
                        && response.refresh_token.is_some()
                    {
                        a.tokens.refresh_token = response.refresh_token;
                    }
                    self.end(EndReason::Anomaly, true);
                    return Err(error.into());
                }
            }
        }
        let lead = self.policy.refresh_lead();
        let Some(a) = self.active_mut() else { return Err(CoreError::NoSession(EndReason::Revoked)) };
        let rotated = response.refresh_token.is_some();
        a.tokens = a.tokens.succeeded_by(response, sent_at, lead);
        if refreshed_name.is_some() {
            a.display_name = refreshed_name;
        }
        a.refresh = RefreshState::Idle;
        a.refresh_failures = 0;
        let event = SessionEvent::Refreshed {
            session_id: a.session_id.clone(),
            rotated,
            access_expires_at: a.tokens.expires_at,
        };
        // Persist before the event: the driver writes the rotated token before handing it out.
        self.queue_persist();
        self.outbox.tell(event);
        Ok(())
    }
}
