//! Durable revocation: a refresh token the session is done with is revoked at the provider
//! (RFC 7009), and if the provider cannot be reached it is kept in the store and retried.
//!
//! The session is wiped before revocation is tried, so a failure never delays the sign-out.
//! Pending revocations live in the store under their own key (they hold refresh tokens, so
//! they belong in the keystore), are retried by the client's timer with backoff (5 s doubling
//! to 10 minutes), at start-up, and are dropped once the provider answers 200 or refuses the
//! request for good (4xx other than 429).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sessionkit_core::{Revocation, Secret};

use crate::client::Inner;

const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(600);
/// Pending revocations kept at most (the oldest are dropped beyond this).
const MAX_PENDING: usize = 32;

#[derive(Debug)]
enum Outcome {
    Done,
    RetryLater,
}

pub(crate) struct RevocationQueue {
    key: String,
    /// The next retry (on the monotonic clock) and the delay that led to it.
    next: Mutex<Option<(Duration, Duration)>>,
}

impl RevocationQueue {
    pub(crate) fn new(key: String) -> Self {
        Self { key, next: Mutex::new(None) }
    }

    /// How long until the next scheduled retry, if one is scheduled.
    pub(crate) fn time_until_retry(&self) -> Option<Duration> {
        let next = *self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.map(|(at, _)| at.saturating_sub(crate::runtime::monotonic()))
    }

    fn schedule(&self, success: bool) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = if success {
            None
        } else {
            let delay = next.map_or(FIRST_RETRY, |(_, last)| (last * 2).min(MAX_RETRY));
            Some((crate::runtime::monotonic() + delay, delay))
        };
    }

    async fn send(inner: &Inner, revocation: &Revocation) -> Outcome {
        match inner.transport().send_idempotent(&revocation.request()).await {
            Ok(response) if response.status() == 200 => Outcome::Done,
            Ok(response) if response.status() == 429 || response.status() >= 500 => Outcome::RetryLater,
            Ok(response) => {
                tracing::warn!(status = response.status(), "the provider refused the revocation; not retried");
                Outcome::Done
            }
            Err(error) => {
                tracing::info!(%error, "revocation failed; it will be retried");
                Outcome::RetryLater
            }
        }
    }

    /// Revokes now; on failure keeps the revocation in the store and schedules a retry.
    pub(crate) async fn revoke_now_or_queue(&self, inner: &Inner, revocation: Revocation) {
        if let Outcome::Done = Self::send(inner, &revocation).await {
            tracing::info!(kind = ?revocation.kind, "token revoked");
            return;
        }
        let key = self.key.clone();
        let saved = inner
            .store_call_with(
                move |store| {
                    let mut pending = decode(Ok(store.load(&key)?));
                    pending.push(revocation);
                    let skip = pending.len().saturating_sub(MAX_PENDING);
                    store.save(&key, &encode(&pending[skip..]))
                },
                inner.store(),
            )
            .await;
        if let Err(error) = saved {
            tracing::warn!(%error, "could not keep the failed revocation for a retry");
        }
        self.schedule(false);
    }

    /// Retries every stored revocation; keeps the ones that still fail.
    pub(crate) async fn retry_pending(&self, inner: &Inner) {
        let key = self.key.clone();
        let pending = match inner.store_call_with(move |store| store.load(&key), inner.store()).await {
            Ok(value) => decode(Ok(value)),
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
        let mut still = Vec::new();
        for revocation in pending {
            if let Outcome::RetryLater = Self::send(inner, &revocation).await {
                still.push(revocation);
            }
        }
        let key = self.key.clone();
        let remaining = still.len();
        let result = inner
            .store_call_with(
                move |store| if still.is_empty() { store.delete(&key) } else { store.save(&key, &encode(&still)) },
                inner.store(),
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "could not update the pending revocations");
        }
        self.schedule(remaining == 0);
    }
}

fn decode(value: Result<Option<Secret>, crate::store::StoreError>) -> Vec<Revocation> {
    match value {
        Ok(Some(text)) => serde_json::from_str(text.expose()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn encode(pending: &[Revocation]) -> Secret {
    Secret::new(serde_json::to_string(pending).unwrap_or_default())
}
