//! The refresh: one at a time for the timer and every caller, and the protocol that keeps a
//! rotated refresh token from ever being replayed, in this process or any other.
//!
//! The gate: whoever finds it free (a caller of `access_token`, or the timer) refreshes; the
//! others wait for its release and receive the same outcome, the real one (a refusal with its
//! cause, a retry-later with its wait), not a second refresh. A caller's refresh runs in a task
//! of its own, so a caller that stops waiting (a cancelled coroutine) never abandons a rotated
//! token on the wire.
//!
//! The protocol, holding this session's turn at the store (see `shared.rs`):
//! 1. take the cross-context lock;
//! 2. read the store: unreadable means `RetryLater`, and nothing is sent;
//! 3. let the core adopt a newer record (another context refreshed: its token is used, the
//!    stale refresh token is never sent) or see that the session ended elsewhere;
//! 4. send the refresh and feed the answer to the core;
//! 5. write the successor before the lock is released, retrying while holding it; if it still
//!    cannot be written, keep the lock until a later write succeeds, because the store then
//!    holds a refresh token the provider considers spent.
//!
//! Other contexts wait for the lock (15 s at most) and then get `RetryLater`: they never
//! replay.

use std::sync::Arc;
use std::time::Duration;

use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::dpop::DpopError;
use sessionkit_core::{CoreError, RefreshStart, StoreChange, TokenState};
use tracing::Instrument as _;

use crate::client::{Inner, TokenSendError};
use crate::error::{self, Error};
use crate::shared::Turn;

/// Write attempts for a rotated token while the lock is held, and the first pause between them.
const PERSIST_ATTEMPTS: u32 = 3;
const PERSIST_PAUSE: Duration = Duration::from_millis(200);

/// What waiting callers learn when the gate is released.
#[derive(Clone, Debug, Default)]
pub(crate) struct Release {
    count: u64,
    /// The outcome of the refresh that ran, if one ran.
    outcome: Option<Result<(), Error>>,
}

/// The single-flight gate of one session.
pub(crate) struct RefreshGate {
    mutex: Arc<tokio::sync::Mutex<()>>,
    released: tokio::sync::watch::Sender<Release>,
    /// The refresh the core queued, until the gate's holder sends it. Whoever drains the
    /// action queue (an activity, a sync) parks it here, so it is never lost: the core counts
    /// it as in flight from the moment it is queued.
    queued: std::sync::Mutex<Option<HttpRequest>>,
}

impl RefreshGate {
    pub(crate) fn new() -> Self {
        Self {
            mutex: Arc::new(tokio::sync::Mutex::new(())),
            released: tokio::sync::watch::Sender::new(Release::default()),
            queued: std::sync::Mutex::new(None),
        }
    }

    /// Keeps a refresh the core queued for the gate's holder.
    pub(crate) fn park(&self, request: HttpRequest) {
        *self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(request);
    }

    fn take_parked(&self) -> Option<HttpRequest> {
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Waits for the gate (the timer and `sync_from_store` do; callers of `access_token` do not).
    pub(crate) async fn enter(&self) -> Gate<'_> {
        Gate { guard: Some(self.mutex.clone().lock_owned().await), released: &self.released, outcome: None }
    }
}

/// The held gate: on drop (done, failed or cancelled) it releases the gate and then tells the
/// waiting callers, in that order, so that none of them can miss the release.
pub(crate) struct Gate<'a> {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    released: &'a tokio::sync::watch::Sender<Release>,
    outcome: Option<Result<(), Error>>,
}

impl Gate<'_> {
    /// What the waiting callers will be told.
    pub(crate) fn set_outcome(&mut self, outcome: &Result<(), Error>) {
        self.outcome = Some(outcome.clone());
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let outcome = self.outcome.take();
        self.released.send_modify(|release| {
            release.count = release.count.wrapping_add(1);
            release.outcome = outcome;
        });
    }
}

/// Marks a refresh as failed if it is dropped before its answer was fed to the session.
struct AbandonedRefresh<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl AbandonedRefresh<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonedRefresh<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!("a refresh was abandoned; it counts as a transient failure");
            let now = self.inner.now();
            let _ = self.inner.session().handle_refresh_failure(now);
        }
    }
}

impl Inner {
    /// The single-flight refresh for a caller: the first one starts it (in a task of its own);
    /// the others wait for the gate's release and get the outcome of the refresh that ran.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), Error> {
        // Subscribed before trying the gate, so a release after a failed try is never missed.
        let mut released = self.gate.released.subscribe();
        let Ok(guard) = self.gate.mutex.clone().try_lock_owned() else {
            if released.changed().await.is_err() {
                return Err(Error::RetryLater { message: "the session is shutting down".into(), retry_after: None });
            }
            return released.borrow().outcome.clone().unwrap_or(Ok(()));
        };
        let inner = self.clone();
        let (done, outcome) = tokio::sync::oneshot::channel();
        crate::runtime::spawn(async move {
            let mut gate = Gate { guard: Some(guard), released: &inner.gate.released, outcome: None };
            let result = inner
                .refresh_holding_gate(|result| {
                    let _ = done.send(result.clone());
                })
                .await;
            gate.set_outcome(&result);
        });
        outcome.await.unwrap_or_else(|_| {
            Err(Error::RetryLater { message: "the refresh task stopped".into(), retry_after: None })
        })
    }

    /// The refresh itself, by the holder of the gate. `report` hears the outcome as soon as it
    /// is known: the caller has its token while the successor's write is still being retried
    /// (under the lock, step 5).
    async fn refresh_holding_gate(&self, report: impl FnOnce(&Result<(), Error>)) -> Result<(), Error> {
        if let Some(early) = self.start_refresh() {
            report(&early);
            return early;
        }
        let mut turn = self.shared.turn().await;
        let result = self.run_refresh(&mut turn, report).await;
        self.wake.notify_one();
        result
    }

    fn current_session_id(&self) -> Option<String> {
        self.session().status().map(|status| status.session_id)
    }

    /// Asks the core for a refresh: `Some` when none is needed or none may start now.
    fn start_refresh(&self) -> Option<Result<(), Error>> {
        let now = self.now();
        let start = {
            let mut session = self.session();
            match session.access_token(now) {
                TokenState::Fresh(_) => return Some(Ok(())),
                TokenState::Dead(reason) => return Some(Err(error::ended(reason))),
                TokenState::Renewable => session.request_refresh(now),
            }
        };
        match start {
            RefreshStart::Started | RefreshStart::InFlight => None,
            RefreshStart::BackingOff { until } => {
                let wait = until.saturating_duration_since(now.wall);
                Some(Err(Error::RetryLater {
                    message: format!(
                        "a refresh failed moments ago (the provider or the secure store); the session is kept, \
                         try again in {} s",
                        wait.as_secs().max(1)
                    ),
                    retry_after: Some(wait),
                }))
            }
            RefreshStart::Impossible(reason) => Some(Err(error::ended(reason))),
        }
    }

    /// Runs the timers of the core and, if they queued a refresh, the refresh (gate held).
    pub(crate) async fn on_timer(&self) {
        if self.revocations.time_until_retry(self.now().monotonic).is_some_and(|wait| wait.is_zero()) {
            self.revocations.retry_pending(&self.shared).await;
        }
        let mut gate = self.gate.enter().await;
        self.session().handle_timeout(self.now());
        let mut turn = self.shared.turn().await;
        let result = self.run_refresh(&mut turn, |_| {}).await;
        if let Err(error) = &result {
            tracing::debug!(%error, "background refresh did not succeed");
        }
        gate.set_outcome(&result);
    }

    /// Performs the queued actions; if they include a refresh, runs the protocol above. `report`
    /// hears the outcome before step 5's write retries.
    async fn run_refresh(&self, turn: &mut Turn<'_>, report: impl FnOnce(&Result<(), Error>)) -> Result<(), Error> {
        self.process(turn).await;
        // A parked request the core no longer waits for (an adopted record made it
        // unnecessary) is dropped: its refresh token may be spent.
        let parked = self.gate.take_parked();
        let Some(request) = parked.filter(|_| self.session().refresh_in_flight()) else {
            report(&Ok(()));
            return Ok(());
        };
        let for_session = self.current_session_id();
        // If this future is dropped all the same (a runtime shutting down), the refresh counts
        // as failed, so the session is not left waiting for an answer that never comes.
        let abandoned = AbandonedRefresh { inner: self, armed: true };
        if let Some(early) = self.before_sending(turn).await {
            abandoned.disarm();
            self.process(turn).await;
            report(&early);
            return early;
        }
        // Waiting for the lock takes time: a sign-in here may have replaced the session whose
        // refresh this is (its refresh token may be spent by now). Only the current one is sent.
        if !self.session().refresh_in_flight() || self.current_session_id() != for_session {
            abandoned.disarm();
            self.process(turn).await;
            report(&Ok(()));
            return Ok(());
        }
        let outcome = async {
            match self.send_token_request(&request).await {
                Ok(response) => self.feed_refresh(&response).await,
                // Nothing was sent, and nothing ever can be: the session ends.
                Err(TokenSendError::Proof(DpopError::KeyMissing)) => {
                    tracing::info!("the session's DPoP key is gone; the session ends");
                    if let Some(lost) = &request.dpop {
                        self.session().handle_dpop_key_lost(lost, self.now());
                    }
                    Err(CoreError::Dpop(DpopError::KeyMissing).into())
                }
                Err(failure) => {
                    let message = Error::from(failure).to_string();
                    tracing::info!(error = %message, "refresh failed; the session is kept and retried later");
                    let wait = self.session().handle_refresh_failure(self.now());
                    let retry_after = match wait {
                        CoreError::Transient { retry_after, .. } => retry_after,
                        _ => None,
                    };
                    Err(Error::RetryLater { message, retry_after })
                }
            }
        }
        .instrument(tracing::debug_span!("refresh"))
        .await;
        abandoned.disarm();
        if outcome.is_ok() && turn.is_locked() {
            // From here until the successor is written (or the session wiped), the store holds
            // a spent refresh token: nothing, not even a revocation sent meanwhile, lets the
            // lock go; only a successful write or wipe does.
            turn.keep_lock(true);
        }
        self.process(turn).await;
        report(&outcome);
        self.persist_before_release(turn).await;
        outcome
    }

    /// Steps 1 to 3: the lock, the store read, the adoption. `Some` ends the refresh before
    /// anything is sent (the refresh is marked failed or made unnecessary in the core).
    async fn before_sending(&self, turn: &mut Turn<'_>) -> Option<Result<(), Error>> {
        if let Err(error) = turn.locked().await {
            let _ = self.session().handle_refresh_failure(self.now());
            return Some(Err(error));
        }
        let stored = match turn.load(&self.shared.slots.session).await {
            Ok(stored) => stored,
            Err(store_error) => {
                tracing::warn!(error = %store_error, "the store could not be read before refreshing; nothing was sent");
                let _ = self.session().handle_refresh_failure(self.now());
                return Some(Err(Error::RetryLater {
                    message: format!(
                        "{store_error}; the session is kept and nothing was sent to the provider, try again shortly"
                    ),
                    retry_after: None,
                }));
            }
        };
        let bytes = stored.as_ref().map(|record| record.expose().as_bytes());
        let change = self.session().handle_store_changed(bytes, self.now());
        match change {
            Ok(StoreChange::Adopted) => {
                tracing::debug!("another context refreshed; its tokens are adopted");
                Some(Ok(()))
            }
            Ok(StoreChange::Ended) => Some(Err(error::ended(sessionkit_core::EndReason::Revoked))),
            Ok(StoreChange::Unchanged) | Err(CoreError::Record(sessionkit_core::session::RecordError::Corrupt(_))) => {
                // Still ours to send, unless the shared record just ended the session (idle).
                let ended = self.session().end_reason();
                ended.map(|reason| Err(error::ended(reason)))
            }
            Err(core_error) => {
                // A record this build must not replace (a newer schema, another client): a
                // refresh now could not be written, and would leave a spent token behind.
                let _ = self.session().handle_refresh_failure(self.now());
                Some(Err(core_error.into()))
            }
        }
    }

    /// Step 5: the successor must be in the store before the lock goes. Until a write (or,
    /// if the session ended meanwhile, its wipe) succeeds, the store holds a refresh token the
    /// provider considers spent, so the lock is kept: only those successes let it go.
    async fn persist_before_release(&self, turn: &mut Turn<'_>) {
        if !turn.keeps_lock() {
            return;
        }
        let mut pause = PERSIST_PAUSE;
        for _ in 0..PERSIST_ATTEMPTS {
            crate::runtime::sleep(pause).await;
            pause = pause.saturating_mul(2);
            self.write_session(turn).await;
            // Reading the store to write may have ended the session (idle on the shared
            // record, a sign-out elsewhere): its wipe and revocation happen now, under the lock.
            self.process(turn).await;
            if !turn.keeps_lock() {
                return;
            }
        }
        tracing::warn!(
            "the refreshed session could not be written; the session lock stays held until it is, \
             so that no other process sends the spent refresh token"
        );
    }

    async fn feed_refresh(&self, response: &sessionkit_core::http::HttpResponse) -> Result<(), Error> {
        self.with_keys(response, |session, keys, which, now| {
            session.handle_refresh_response(response, keys, which, now)
        })
        .await
        .map_err(Error::from)
    }
}
