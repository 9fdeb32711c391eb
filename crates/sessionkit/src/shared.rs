//! The ordered writer: every store access of a session goes through here, one at a time.
//!
//! A session's store is shared with other contexts (processes, tabs), and inside a process
//! with other tasks (the timer, callers, a logout). The rules that keep it consistent:
//! - Inside the process, store work takes the session's [`Turn`] (a FIFO async mutex), so
//!   writes land in the order the core asked for them and a logout's wipe cannot be overtaken
//!   by an older write.
//! - Across contexts, every write is made under the [`ContextLock`], after reading what the
//!   store holds now and letting the core merge it (`Session::prepare_write`): a write never
//!   replaces a newer revision, and a session that ended is never written again.
//! - After a refresh whose rotated token could not be written, the store holds a refresh token
//!   that is spent. The turn then keeps the cross-context lock ([`Turn::keep_lock`]) until a
//!   write succeeds, so no other context can read the spent token and replay it: they wait,
//!   time out and retry later. (A start reads the store without the lock when it is empty or
//!   the record restores live; it may then hold the spent token in memory, but sends nothing
//!   from it: a refresh takes the lock and reads the store again first.)
//! - Every write bumps the lock's generation counter; [`SharedStore::changed_elsewhere`]
//!   compares it (at most every [`GENERATION_CHECK`]) so that a sign-out or refresh in another
//!   process is noticed without a keystore read on the hot path. In the browser, tabs announce
//!   changes on their channel instead (`SharedStore::mark_stale`); the hot path then hands
//!   out nothing until the record is read from a view of the store reloaded after the
//!   announcement (a reload begun before it may miss the change).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sessionkit_core::Secret;

use crate::error::Error;
use crate::lock::{ContextLock, LockGuard};
use crate::store::{SecureStore, StoreError};

/// How often the hot path looks at the generation counter, at most.
pub(crate) const GENERATION_CHECK: Duration = Duration::from_millis(250);

/// The store keys of one session, each named once.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    /// The session record.
    pub(crate) session: String,
    /// The provider's discovery document and keys, for an offline start.
    pub(crate) provider: String,
    /// Revocations that failed and are retried.
    pub(crate) revocations: String,
    /// A redirect sign-in in progress (PKCE verifier, state, nonce).
    pub(crate) pending: String,
}

impl Slots {
    pub(crate) fn new(store_key: &str) -> Self {
        Self {
            session: store_key.to_owned(),
            provider: format!("{store_key}|provider"),
            revocations: format!("{store_key}|revocations"),
            pending: format!("{store_key}|pending"),
        }
    }
}

/// The store of one session, its slots, and the locks that order access to it.
pub(crate) struct SharedStore {
    store: Arc<dyn SecureStore>,
    pub(crate) slots: Slots,
    lock: Arc<dyn ContextLock>,
    turn: tokio::sync::Mutex<Held>,
    /// The generation counter as of this context's last successful read of the session record
    /// (or its own write, when it had seen everything before it).
    seen_generation: AtomicU64,
    /// A change elsewhere was noticed and no read of the session record has succeeded since:
    /// the hot path hands out nothing until one does.
    stale: AtomicBool,
    /// How many changes other contexts announced (`mark_stale`), and how
    /// many of them the store's view had been asked to include when it was last reloaded. A
    /// read clears `stale` only from a view reloaded after every announcement: a snapshot begun
    /// before one may miss the change it announces.
    announced: AtomicU64,
    reloaded_for: AtomicU64,
    /// When (monotonic) the hot path last looked at the counter.
    checked_at: Mutex<Option<Duration>>,
}

#[derive(Default)]
struct Held {
    guard: Option<LockGuard>,
    keep: bool,
    /// A write failed under the held lock: a mirroring store's view is ahead of its storage
    /// and is reloaded before the next look under the lock.
    reload_needed: bool,
}

/// This task's turn at the store (see the module guide). Dropping it lets the next task in,
/// and releases the cross-context lock unless [`keep_lock`](Self::keep_lock) says otherwise.
pub(crate) struct Turn<'a> {
    held: tokio::sync::MutexGuard<'a, Held>,
    shared: &'a SharedStore,
}

async fn call<T: Send + 'static>(
    store: &Arc<dyn SecureStore>,
    f: impl FnOnce(&dyn SecureStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if !store.may_block() {
        return f(store.as_ref());
    }
    let store = store.clone();
    crate::runtime::run_blocking(move || f(store.as_ref()))
        .await
        .unwrap_or_else(|| Err(StoreError::Failed("the store call panicked".into())))
}

impl SharedStore {
    pub(crate) fn new(store: Arc<dyn SecureStore>, slots: Slots, lock: Arc<dyn ContextLock>) -> Self {
        Self {
            store,
            slots,
            lock,
            turn: tokio::sync::Mutex::new(Held::default()),
            seen_generation: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            announced: AtomicU64::new(0),
            reloaded_for: AtomicU64::new(0),
            checked_at: Mutex::new(None),
        }
    }

    pub(crate) fn describe(&self) -> String {
        self.store.describe()
    }

    /// Brings the store up to date with its backing storage without the lock (the browser's
    /// mirror is reloaded from IndexedDB; elsewhere there is nothing to do).
    pub(crate) async fn reload_unlocked(&self) -> Result<(), StoreError> {
        self.reload().await
    }

    /// Brings the store's view up to date, noting which announced changes it includes.
    async fn reload(&self) -> Result<(), StoreError> {
        let announced = self.announced.load(Ordering::Acquire);
        self.store.reload().await?;
        self.reloaded_for.store(announced, Ordering::Release);
        Ok(())
    }

    /// Whether a change was announced after the store's view was last reloaded.
    fn view_predates_an_announcement(&self) -> bool {
        self.announced.load(Ordering::Acquire) != self.reloaded_for.load(Ordering::Acquire)
    }

    /// Waits for this task's turn (in-process order only; see [`Turn::locked`]).
    pub(crate) async fn turn(&self) -> Turn<'_> {
        Turn { held: self.turn.lock().await, shared: self }
    }

    /// A read outside any turn, for values no other context rewrites in a way that matters
    /// here (the provider's public documents).
    pub(crate) async fn load_unordered(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let key = key.to_owned();
        call(&self.store, move |s| s.load(&key)).await
    }

    /// A delete outside any turn: only for the provider's public documents.
    pub(crate) async fn delete_unordered(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        call(&self.store, move |s| s.delete(&key)).await
    }

    /// A write outside any turn: only for the provider's public documents.
    pub(crate) async fn save_unordered(&self, key: &str, value: Secret) -> Result<(), StoreError> {
        let key = key.to_owned();
        call(&self.store, move |s| s.save(&key, &value)).await
    }

    /// Notes that another context changed the store and this one could not read it yet (the
    /// browser's tabs say so on their channel): [`changed_elsewhere`](Self::changed_elsewhere)
    /// holds until a read of the session record succeeds from a view reloaded after this call.
    #[cfg(any(target_arch = "wasm32", test))]
    pub(crate) fn mark_stale(&self) {
        self.announced.fetch_add(1, Ordering::AcqRel);
        self.stale.store(true, Ordering::Release);
    }

    /// Whether a change elsewhere was seen and no read of the session record has succeeded
    /// since (no glance at the counter: see [`changed_elsewhere`](Self::changed_elsewhere)).
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Whether another context has written the store since this one last read the session
    /// record (cheap: the lock's counter, at most every [`GENERATION_CHECK`] of `monotonic`
    /// time). Once a change is seen, it stays seen until a read of the record succeeds.
    pub(crate) fn changed_elsewhere(&self, monotonic: Duration) -> bool {
        if self.stale.load(Ordering::Acquire) {
            return true;
        }
        {
            let mut checked = self.checked_at.lock().unwrap_or_else(PoisonError::into_inner);
            if checked.is_some_and(|at| monotonic.saturating_sub(at) < GENERATION_CHECK) {
                return false;
            }
            *checked = Some(monotonic);
        }
        let changed = self.lock.generation() != self.seen_generation.load(Ordering::Acquire);
        if changed {
            self.stale.store(true, Ordering::Release);
        }
        changed
    }
}

impl<'a> Turn<'a> {
    /// The store keys of this turn's session.
    pub(crate) fn slots(&self) -> &'a Slots {
        &self.shared.slots
    }

    /// Takes the cross-context lock for the rest of this turn, if it is not held already, and
    /// then brings a mirroring store (the browser's) up to date: without a fresh view, this
    /// context could spend a refresh token another one already rotated. With the lock already
    /// held, the view is reloaded if a write of ours failed or another context announced a
    /// change since the last reload.
    pub(crate) async fn locked(&mut self) -> Result<(), Error> {
        if self.held.guard.is_none() {
            let guard = self.shared.lock.acquire().await?;
            self.shared.reload().await.map_err(|e| crate::error::store(&e))?;
            self.held.guard = Some(guard);
            self.held.reload_needed = false;
        } else if self.held.reload_needed {
            self.shared.reload().await.map_err(|e| crate::error::store(&e))?;
            self.held.reload_needed = false;
        } else if self.shared.view_predates_an_announcement() {
            // Under a held lock no other context wrote the record, so this reload only lets a
            // read clear the stale flag: if it fails, the flag stays and the work goes on.
            if let Err(error) = self.shared.reload().await {
                tracing::warn!(%error, "the store could not be reloaded after a change elsewhere");
            }
        }
        Ok(())
    }

    /// Whether the cross-context lock is held.
    pub(crate) fn is_locked(&self) -> bool {
        self.held.guard.is_some()
    }

    /// Keeps the cross-context lock after this turn (`true`: the store holds a spent refresh
    /// token) or lets it go with the turn (`false`, once a write succeeded).
    pub(crate) fn keep_lock(&mut self, keep: bool) {
        self.held.keep = keep;
    }

    /// Whether the lock is kept after this turn.
    pub(crate) fn keeps_lock(&self) -> bool {
        self.held.keep
    }

    /// Lets the cross-context lock go now (unless it must be kept), for work that needs no
    /// store (a revocation on the network).
    pub(crate) fn unlock(&mut self) {
        if !self.held.keep {
            self.held.guard = None;
        }
    }

    /// Reads `key`. A successful read of the session record marks every write before it as
    /// seen (the counter is taken before the read, so a write during it shows as a change) and
    /// clears `stale`, unless the view it read from predates a change announced since; a failed
    /// read, or a read of another slot, marks nothing.
    pub(crate) async fn load(&mut self, key: &str) -> Result<Option<Secret>, StoreError> {
        let session_slot = key == self.shared.slots.session;
        let generation = self.shared.lock.generation();
        let key = key.to_owned();
        let loaded = call(&self.shared.store, move |s| s.load(&key)).await;
        if session_slot && loaded.is_ok() {
            self.shared.seen_generation.store(generation, Ordering::Release);
            if !self.shared.view_predates_an_announcement() {
                self.shared.stale.store(false, Ordering::Release);
            }
        }
        loaded
    }

    /// Writes `key`. The cross-context lock must be held ([`locked`](Self::locked)).
    /// Durable when it returns `Ok` (a store writing in the background is flushed and asked
    /// whether the write landed): the lock may then go.
    pub(crate) async fn save(&mut self, key: &str, value: Secret) -> Result<(), StoreError> {
        self.require_lock()?;
        let slot = key.to_owned();
        let saved = call(&self.shared.store, move |s| s.save(&slot, &value)).await;
        self.durable(key, saved).await
    }

    /// Deletes `key`. The session record is deleted only under the cross-context lock, after
    /// reading it (the wipe in `actions.rs`), so a later sign-in elsewhere is never deleted;
    /// the other slots (revocations, a pending sign-in) need no lock.
    /// Durable when it returns `Ok`, as [`save`](Self::save).
    pub(crate) async fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        let slot = key.to_owned();
        let deleted = call(&self.shared.store, move |s| s.delete(&slot)).await;
        self.durable(key, deleted).await
    }

    /// After a write to `key`: waits until it is durable; a failure leaves the store's view to
    /// be reloaded before the next look under the lock.
    async fn durable(&mut self, key: &str, written: Result<(), StoreError>) -> Result<(), StoreError> {
        let result = match written {
            Ok(()) => self.shared.store.flush(key).await,
            Err(error) => Err(error),
        };
        match &result {
            Ok(()) => self.bump(),
            Err(_) => self.held.reload_needed = true,
        }
        result
    }

    fn require_lock(&self) -> Result<(), StoreError> {
        if self.is_locked() {
            Ok(())
        } else {
            Err(StoreError::Failed("a store write was attempted without the session lock".into()))
        }
    }

    fn bump(&mut self) {
        if let Some(guard) = self.held.guard.as_mut() {
            let generation = guard.bump_generation();
            // Our own write is seen only if everything before it was: a change made elsewhere
            // and not read yet stays unseen.
            let _ = self.shared.seen_generation.compare_exchange(
                generation.wrapping_sub(1),
                generation,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.held.keep {
            self.held.guard = None;
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "shared_tests.rs"]
mod tests;
