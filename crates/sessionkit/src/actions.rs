//! The action executor: performs what the core asked for, in order, then tells the app.
//!
//! Runs with the session's turn at the store held (`shared.rs`), so that two tasks never
//! interleave their store work. Store actions come first, in the order queued: a record is
//! written only as `Session::prepare_write` gives it under the cross-context lock (never over a
//! newer revision, never for an ended session), a wipe deletes only the record of the session
//! that ended here, and an idle check reads the shared record under the lock and keeps the lock
//! for the wipe it may lead to. Revocations follow (on the network, without the lock), then the
//! events: when the app hears "expired" or "logged out", the store no longer holds the session
//! and the revocation is done or queued durably.

use sessionkit_core::{Action, SessionEvent};

use crate::client::Inner;
use crate::shared::Turn;

impl Inner {
    /// Performs every queued action and publishes the events. Bounded: each pass drains what
    /// the previous one queued, and failures queue events, not more store work.
    pub(crate) async fn process(&self, turn: &mut Turn<'_>) {
        let mut revocations = Vec::new();
        for _ in 0..8 {
            let actions: Vec<Action> = {
                let mut session = self.session();
                std::iter::from_fn(|| session.poll_action()).collect()
            };
            if actions.is_empty() {
                break;
            }
            for action in actions {
                match action {
                    // The queued bytes may be stale by the time the lock is ours: the record
                    // is taken from the core under the lock instead.
                    Action::Persist(_) => self.write_session(turn).await,
                    Action::Wipe => self.wipe(turn).await,
                    Action::SyncWithStore => self.check_shared_record(turn).await,
                    // Only the holder of the refresh gate sends it (`refresh.rs`).
                    Action::Refresh(request) => self.gate.park(request),
                    Action::Revoke(revocation) => revocations.push(revocation),
                    Action::ForgetDpopKey(key) => self.dpop.keys.delete(&key).await,
                    _ => {}
                }
            }
        }
        if !revocations.is_empty() {
            turn.unlock();
            for revocation in revocations {
                self.revocations.revoke_now_or_queue(turn, revocation).await;
            }
        }
        let events: Vec<SessionEvent> = {
            let mut session = self.session();
            std::iter::from_fn(|| session.poll_event()).collect()
        };
        #[cfg(target_arch = "wasm32")]
        self.tabs.tell(&events);
        for event in events {
            tracing::info!(event = ?event, "session event");
            let _ = self.events.send(event);
        }
    }

    /// Takes a turn and processes: for callers that hold none.
    pub(crate) async fn process_now(&self) {
        let mut turn = self.shared.turn().await;
        self.process(&mut turn).await
    }

    /// Writes the session record, under the lock, merged with what the store holds now.
    pub(crate) async fn write_session(&self, turn: &mut Turn<'_>) {
        if let Err(error) = turn.locked().await {
            tracing::warn!(%error, "could not take the session lock to write; kept in memory and retried");
            self.session().handle_persist_failed(self.now());
            return;
        }
        let stored = match turn.load(&self.shared.slots.session).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "could not read the store before writing; kept in memory and retried");
                self.session().handle_persist_failed(self.now());
                return;
            }
        };
        let bytes = stored.as_ref().map(|record| record.expose().as_bytes());
        // Bound first: a guard in the `match` scrutinee would live through the arms below.
        let prepared = self.session().prepare_write(bytes, self.now());
        let write = match prepared {
            Ok(Some(write)) => write,
            Ok(None) => {
                // Nothing to write: the store is empty or already holds this session's state,
                // so nothing spent is there for another context to replay. An ended session's
                // record is the wipe's to remove, and the wipe's to let the lock go.
                let ended = self.session().end_reason().is_some();
                if stored.is_none() || !ended {
                    turn.keep_lock(false);
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "the stored record is not this build's to replace; nothing written");
                return;
            }
        };
        match turn.save(&self.shared.slots.session, write.record.clone()).await {
            Ok(()) => {
                self.session().handle_persisted(&write);
                turn.keep_lock(false);
            }
            Err(error) => {
                tracing::warn!(%error, "could not write the session to the store; kept in memory and retried");
                self.session().handle_persist_failed(self.now());
            }
        }
    }

    /// Deletes the ended session's record (and the provider copies kept for an offline start),
    /// unless the store now holds another context's later sign-in.
    async fn wipe(&self, turn: &mut Turn<'_>) {
        let slot = self.shared.slots.session.clone();
        // Without the lock, or with the store unreadable, nothing is deleted blindly (another
        // context may be writing its later sign-in): the wipe fails and is retried.
        let loaded = match turn.locked().await {
            Ok(()) => turn.load(&slot).await,
            Err(error) => Err(crate::store::StoreError::Unavailable(error.to_string())),
        };
        let result = match loaded {
            Ok(None) => Ok(()),
            Ok(Some(stored)) if !self.session().wipe_applies_to(stored.expose().as_bytes()) => Ok(()),
            Ok(Some(_)) => {
                let deleted = turn.delete(&slot).await;
                if deleted.is_ok() {
                    let _ = turn.delete(&self.shared.slots.provider).await;
                }
                deleted
            }
            Err(error) => Err(error),
        };
        if result.is_ok() {
            turn.keep_lock(false);
        }
        // On failure the lock stays kept if it was: the record may hold a spent refresh token.
        *self.wipe_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = match result {
            Ok(()) => None,
            Err(error) => {
                tracing::warn!(%error, "could not delete the session from the store; retried later");
                self.session().handle_wipe_failed(self.now());
                Some(error.to_string())
            }
        };
    }

    /// The idle limit was reached here: read the shared record under the lock (kept for the
    /// wipe that may follow) and let the core decide on everyone's activity.
    async fn check_shared_record(&self, turn: &mut Turn<'_>) {
        if let Err(error) = turn.locked().await {
            tracing::info!(%error, "the idle check could not take the session lock; it is retried");
            self.session().handle_store_unreadable(self.now());
            return;
        }
        match turn.load(&self.shared.slots.session).await {
            Ok(stored) => {
                let bytes = stored.as_ref().map(|record| record.expose().as_bytes());
                let result = self.session().handle_store_changed(bytes, self.now());
                if let Err(error) = result {
                    tracing::warn!(%error, "the shared record could not be read for the idle check; it is retried");
                    self.session().handle_store_unreadable(self.now());
                }
            }
            Err(error) => {
                tracing::info!(%error, "the store could not be read for the idle check; it is retried");
                self.session().handle_store_unreadable(self.now());
            }
        }
    }
}
