//! Durable revocation: a refresh token the session is done with is revoked at the provider
//! (RFC 7009), and if the provider cannot be reached it is kept in the store and retried.
//!
//! The session is wiped before revocation is tried, so a failure never delays the sign-out.
//! Pending revocations live in the store under their own slot (they hold refresh tokens, so
//! they belong in the keystore), are written under the session lock like every other write,
//! are retried by the client's timer with backoff (5 s doubling to 10 minutes) and at start-up,
//! and are dropped once the provider answers for good (the core classifies the answer:
//! `Revocation::outcome`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sessionkit_core::{Revocation, RevocationOutcome, Secret};

use crate::clock::Clock;
use crate::http::Transport;
use crate::shared::{SharedStore, Turn};

const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(600);
/// Pending revocations kept at most (the oldest are dropped beyond this).
const MAX_PENDING: usize = 32;

/// The revocations of one session's store: sent through its transport, kept in its
/// `revocations` slot while they fail.
pub(crate) struct RevocationQueue {
    transport: Transport,
    clock: Arc<dyn Clock>,
    /// The next retry (on the monotonic clock) and the delay that led to it.
    next: Mutex<Option<(Duration, Duration)>>,
}

impl RevocationQueue {
    pub(crate) fn new(transport: Transport, clock: Arc<dyn Clock>) -> Self {
        Self { transport, clock, next: Mutex::new(None) }
    }

    /// How long until the next scheduled retry, if one is scheduled.
    pub(crate) fn time_until_retry(&self, monotonic: Duration) -> Option<Duration> {
        let next = *self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.map(|(at, _)| at.saturating_sub(monotonic))
    }

    fn schedule(&self, success: bool) {
        let monotonic = self.clock.now().monotonic;
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = if success {
            None
        } else {
            let delay = next.map_or(FIRST_RETRY, |(_, last)| (last * 2).min(MAX_RETRY));
            Some((monotonic + delay, delay))
        };
    }

    /// Sends one revocation; true when the provider answered for good.
    async fn send(&self, revocation: &Revocation) -> bool {
        match self.transport.send_idempotent(&revocation.request()).await {
            Ok(response) => match Revocation::outcome(&response) {
                RevocationOutcome::Revoked => true,
                RevocationOutcome::RetryLater => false,
                RevocationOutcome::Refused => {
                    tracing::warn!(status = response.status(), "the provider refused the revocation; not retried");
                    true
                }
            },
            Err(error) => {
                tracing::info!(%error, "revocation failed; it will be retried");
                false
            }
        }
    }

    /// Revokes now; on failure keeps the revocation in the store and schedules a retry.
    pub(crate) async fn revoke_now_or_queue(&self, turn: &mut Turn<'_>, revocation: Revocation) {
        if self.send(&revocation).await {
            tracing::info!(kind = ?revocation.kind, "token revoked");
            return;
        }
        let saved = async {
            turn.locked().await.map_err(|e| e.to_string())?;
            let slot = &turn.slots().revocations;
            let mut pending = decode(turn.load(slot).await.map_err(|e| e.to_string())?);
            pending.push(revocation);
            let skip = pending.len().saturating_sub(MAX_PENDING);
            turn.save(slot, encode(&pending[skip..])).await.map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = saved {
            tracing::warn!(%error, "could not keep the failed revocation for a retry");
        }
        turn.unlock();
        self.schedule(false);
    }

    /// Retries every stored revocation; keeps the ones that still fail.
    pub(crate) async fn retry_pending(&self, shared: &SharedStore) {
        let slot = shared.slots.revocations.clone();
        let pending = match shared.load_unordered(&slot).await {
            Ok(value) => decode(value),
            Err(error) => {
                tracing::debug!(%error, "pending revocations could not be read");
                self.schedule(false);
                return;
            }
        };
        if pending.is_empty() {
            self.schedule(true);
            return;
        }
        let mut done = Vec::new();
        for revocation in &pending {
            if self.send(revocation).await {
                done.push(revocation.token.clone());
            }
        }
        // Under the lock, what is stored now minus what was just revoked (another context may
        // have added to the list meanwhile).
        let mut turn = shared.turn().await;
        let result = async {
            turn.locked().await.map_err(|e| e.to_string())?;
            let mut still = decode(turn.load(&slot).await.map_err(|e| e.to_string())?);
            still.retain(|r| !done.iter().any(|token| token.constant_time_eq(r.token.expose())));
            let remaining = still.len();
            if still.is_empty() {
                turn.delete(&slot).await.map_err(|e| e.to_string())?;
            } else {
                turn.save(&slot, encode(&still)).await.map_err(|e| e.to_string())?;
            }
            Ok::<usize, String>(remaining)
        }
        .await;
        drop(turn);
        match result {
            Ok(remaining) => self.schedule(remaining == 0),
            Err(error) => {
                tracing::warn!(%error, "could not update the pending revocations");
                self.schedule(false);
            }
        }
    }
}

fn decode(value: Option<Secret>) -> Vec<Revocation> {
    // `from_slice`, as everywhere: `from_str` would put a second JSON parser in the wasm.
    value.and_then(|text| serde_json::from_slice(text.expose().as_bytes()).ok()).unwrap_or_default()
}

fn encode(pending: &[Revocation]) -> Secret {
    Secret::new(serde_json::to_string(pending).unwrap_or_default())
}
