//! The session's outputs, waiting to be polled: work for the driver and events for the app.
//!
//! Kept apart from the session's state so that a transition can hold the active session and
//! queue its outputs at once, and so that the rules about the queue live in one place: only
//! the latest record is worth writing, and an ended session's pending work is dropped.

use std::collections::VecDeque;

use super::{Action, Revocation, SessionEvent, TokenKind};
use crate::Secret;
use crate::url::Url;

/// Queued actions and events, each in the order they arose.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    actions: VecDeque<Action>,
    events: VecDeque<SessionEvent>,
}

impl Outbox {
    pub(super) fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(super) fn tell(&mut self, event: SessionEvent) {
        self.events.push_back(event);
    }

    pub(super) fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(super) fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Queues a record to write, replacing an older one not yet taken: only the latest matters.
    pub(super) fn persist(&mut self, record: Secret) {
        self.actions.retain(|action| !matches!(action, Action::Persist(_)));
        self.actions.push_back(Action::Persist(record));
    }

    /// Drops a refresh not yet taken (newer tokens came from the store, or the session ended).
    pub(super) fn cancel_refresh(&mut self) {
        self.actions.retain(|action| !matches!(action, Action::Refresh(_)));
    }

    /// Drops everything queued for a session that just ended: no write, refresh or store
    /// check of it may happen after the end. Wipes and revocations stay.
    pub(super) fn cancel_session_work(&mut self) {
        self.actions
            .retain(|action| !matches!(action, Action::Refresh(_) | Action::Persist(_) | Action::SyncWithStore));
    }

    /// Revokes tokens the session is done with: the refresh token first (at most providers
    /// that ends the grant), then the access token (for providers where it would outlive it).
    /// Nothing without a revocation endpoint.
    pub(super) fn revoke(
        &mut self,
        endpoint: Option<&Url>,
        client_id: &str,
        refresh_token: Option<Secret>,
        access_token: Option<Secret>,
    ) {
        let Some(endpoint) = endpoint else { return };
        let tokens = [(refresh_token, TokenKind::RefreshToken), (access_token, TokenKind::AccessToken)];
        for (token, kind) in tokens {
            if let Some(token) = token {
                self.actions.push_back(Action::Revoke(Revocation {
                    endpoint: endpoint.clone(),
                    client_id: client_id.to_owned(),
                    token,
                    kind,
                }));
            }
        }
    }
}
