//! The session and the shared store: merging what other contexts wrote, deciding what to write
//! and what a wipe may delete.
//!
//! Several contexts (processes, tabs) share one store slot. The driver reads it under the
//! cross-context lock and hands it here; the rules of the merge are:
//! - every write raises the slot's revision, and a write is prepared only after the store's
//!   record was merged, so a newer record is never replaced;
//! - newer tokens of this session are adopted (the old refresh token was rotated away), and
//!   the later activity of either side counts;
//! - another context's later sign-in replaces this session (whose tokens are revoked), but a
//!   sign-in here not written yet wins over what it finds;
//! - an empty store ends a session whose record had been stored (another context signed out);
//! - a session that ended here is never written or adopted again, and its record, if it shows
//!   up, is wiped again;
//! - a pending idle end is decided on the shared activity.

use super::active::{Active, IdleCheck, RefreshState};
use super::{
    Action, EndReason, PERSIST_RETRY, RecordError, Session, SessionEvent, SessionRecord, State, StorageProblem,
};
use crate::Now;
use crate::Secret;
use crate::error::CoreError;

/// What [`Session::handle_store_changed`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreChange {
    /// The stored tokens were newer and are now in use; skip any pending refresh.
    Adopted,
    /// Nothing newer in the store.
    Unchanged,
    /// The store is empty: the session was ended elsewhere.
    Ended,
}

/// A record to write, from [`Session::prepare_write`]; hand it back to
/// [`Session::handle_persisted`] once it is in the store.
#[derive(Debug)]
pub struct PendingWrite {
    /// The encoded record (secret).
    pub record: Secret,
    /// Its revision: higher than the store's.
    pub revision: u64,
    session_id: String,
    changes: u64,
}

impl Session {
    /// Another process or tab changed the shared store; `record` is what it holds now (read
    /// under the cross-context lock). See the module guide for the rules of the merge.
    pub fn handle_store_changed(&mut self, record: Option<&[u8]>, now: Now) -> Result<StoreChange, CoreError> {
        let t = self.observe(now);
        let Some(bytes) = record else {
            if self.active().is_some_and(|a| a.written) {
                // Revoked again from here: the context that emptied the store may not have
                // known these tokens (a session it never adopted); a second revocation is a no-op.
                self.end(EndReason::Revoked, true);
                return Ok(StoreChange::Ended);
            }
            // Not written yet (a fresh sign-in, or a failed write): the store's emptiness says
            // nothing about other contexts.
            self.confirm_idle(t);
            return Ok(StoreChange::Unchanged);
        };
        let record = SessionRecord::decode(bytes)?;
        if record.issuer != self.metadata.issuer || record.client_id != self.client.client_id {
            return Err(RecordError::DifferentClient.into());
        }
        self.revision = self.revision.max(record.revision);
        if self.ended_session_id.as_deref() == Some(record.session_id.as_str()) {
            // A session that ended here is never brought back; its record goes again.
            self.outbox.act(Action::Wipe);
            self.confirm_idle(t);
            return Ok(StoreChange::Unchanged);
        }
        let mut share_activity = false;
        let change = match &mut self.state {
            State::Active(a) if a.session_id == record.session_id => {
                share_activity = a.merge_activity(record.last_activity_at);
                // Tokens are newer if the request that brought them was sent later.
                if record.access_token_issued_at <= a.tokens.issued_at {
                    StoreChange::Unchanged
                } else {
                    a.tokens = Active::from_record(record, &self.policy).tokens;
                    a.refresh = RefreshState::Idle;
                    self.outbox.cancel_refresh();
                    StoreChange::Adopted
                }
            }
            // A sign-in here not written yet is newer than whatever the store holds, which it
            // replaces: those tokens are revoked (nobody will use them again).
            State::Active(a) if !a.written => {
                self.outbox.revoke(
                    self.metadata.revocation_endpoint.as_ref(),
                    &self.client.client_id,
                    record.refresh_token,
                    Some(record.access_token),
                );
                StoreChange::Unchanged
            }
            _ => {
                let (session_id, subject) = (record.session_id.clone(), record.subject.clone());
                let adopted = State::Active(Box::new(Active::from_record(record, &self.policy)));
                if let State::Active(old) = std::mem::replace(&mut self.state, adopted) {
                    // A later sign-in elsewhere replaced this session: its tokens are revoked.
                    self.retire(*old);
                }
                self.outbox.cancel_refresh();
                self.outbox.tell(SessionEvent::Restored { session_id, subject });
                StoreChange::Adopted
            }
        };
        self.confirm_idle(t);
        if share_activity && let State::Active(a) = &mut self.state {
            a.activity_persisted_at = a.last_activity_at;
            self.queue_persist();
        }
        Ok(change)
    }

    /// The store could not be read for an idle check: the session stays (unusable here while
    /// past the local idle limit) and the check is asked again after [`PERSIST_RETRY`].
    pub fn handle_store_unreadable(&mut self, now: Now) {
        let t = self.observe(now);
        if let State::Active(a) = &mut self.state
            && a.idle_check == IdleCheck::Requested
        {
            a.idle_check = IdleCheck::RetryAt(t.saturating_add(PERSIST_RETRY));
        }
    }

    /// For a driver whose store is shared: under the cross-context lock, with `stored` the
    /// record the store holds now, merges it ([`handle_store_changed`](Self::handle_store_changed))
    /// and gives the record to write, if this session has changes the store lacks. Its
    /// revision is above every revision seen, so a newer record is never replaced; an ended
    /// session gives nothing, so no write lands after a logout or an end.
    pub fn prepare_write(&mut self, stored: Option<&[u8]>, now: Now) -> Result<Option<PendingWrite>, CoreError> {
        match self.handle_store_changed(stored, now) {
            Ok(_) => {}
            // Damaged bytes are replaced; a record of a newer schema or another client is not
            // (that error goes back to the driver, and nothing is written).
            Err(CoreError::Record(RecordError::Corrupt(_))) => {}
            Err(error) => return Err(error),
        }
        let Some(a) = self.active().filter(|a| a.needs_write()) else { return Ok(None) };
        let (session_id, changes) = (a.session_id.clone(), a.changes);
        let revision = self.revision.saturating_add(1);
        Ok(Some(PendingWrite { record: self.encode_record(revision), revision, session_id, changes }))
    }

    /// Whether the store lacks some of this session's state (a sign-in or rotated tokens not
    /// written yet, or newer activity).
    pub fn needs_write(&self) -> bool {
        self.active().is_some_and(Active::needs_write)
    }

    /// A record from [`prepare_write`](Self::prepare_write) is in the store.
    pub fn handle_persisted(&mut self, write: &PendingWrite) {
        self.revision = self.revision.max(write.revision);
        if let State::Active(a) = &mut self.state
            && a.session_id == write.session_id
        {
            a.written = true;
            a.persisted_changes = write.changes;
            a.persist_retry_at = None;
        }
    }

    /// The driver could not write the store: the session continues in memory, the write is
    /// retried after [`PERSIST_RETRY`], and the app hears of it.
    pub fn handle_persist_failed(&mut self, now: Now) {
        let t = self.observe(now);
        let session_id = self.active().map(|a| a.session_id.clone());
        if let State::Active(a) = &mut self.state {
            a.persist_retry_at = Some(t.saturating_add(PERSIST_RETRY));
        }
        self.outbox.tell(SessionEvent::StorageProblem { session_id, problem: StorageProblem::Unavailable });
    }

    /// The driver could not delete the ended session's record: the wipe is asked for again
    /// after [`PERSIST_RETRY`] (a store that stays broken is reported by the driver).
    pub fn handle_wipe_failed(&mut self, now: Now) {
        let t = self.observe(now);
        if matches!(self.state, State::Ended(_)) {
            self.wipe_retry_at = Some(t.saturating_add(PERSIST_RETRY));
            self.outbox.tell(SessionEvent::StorageProblem { session_id: None, problem: StorageProblem::Unavailable });
        }
    }

    /// Whether a [`Action::Wipe`] should delete `stored`: the record of the session that ended
    /// here, never another context's later sign-in (a wipe may be retried long after the end).
    pub fn wipe_applies_to(&self, stored: &[u8]) -> bool {
        match (SessionRecord::decode(stored), &self.ended_session_id) {
            (Ok(record), Some(ended)) => record.session_id == *ended,
            (Ok(_), None) => false,
            // Damaged bytes: a sign-out removes them; nothing else touches them.
            (Err(_), _) => self.end_reason() == Some(EndReason::SignedOut),
        }
    }
}
