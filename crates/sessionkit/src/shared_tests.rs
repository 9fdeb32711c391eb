//! The stale flag against a view that predates an announced change (the browser's tabs
//! announce changes; a reload of the mirror may have begun before the change landed).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sessionkit_core::Secret;
use tokio::sync::Notify;

use super::{SharedStore, Slots};
use crate::error::Error;
use crate::lock::{ContextLock, HeldLock, LockGuard};
use crate::runtime::BoxFuture;
use crate::store::{MemoryStore, SecureStore, StoreError};

/// A store whose reloads wait for [`Gated::open`], and are counted.
#[derive(Default)]
struct Gated {
    inner: MemoryStore,
    gate: Notify,
    reloads: AtomicUsize,
    reloads_fail: std::sync::atomic::AtomicBool,
}

impl SecureStore for Gated {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        self.inner.save(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        "gated".into()
    }
    fn may_block(&self) -> bool {
        false
    }
    fn reload(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async {
            // Bounded: an unexpected reload fails the test instead of hanging it.
            let opened = tokio::time::timeout(std::time::Duration::from_secs(5), self.gate.notified()).await;
            assert!(opened.is_ok(), "a reload nobody let through");
            self.reloads.fetch_add(1, Ordering::SeqCst);
            if self.reloads_fail.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("the test store refuses reloads".into()));
            }
            Ok(())
        })
    }
}

impl Gated {
    fn open(&self) {
        self.gate.notify_one();
    }
}

/// A lock always granted at once.
struct Granted;
struct Held;
impl HeldLock for Held {}
impl ContextLock for Granted {
    fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>> {
        Box::pin(async { Ok(Box::new(Held) as LockGuard) })
    }
}

fn shared_over(store: &Arc<Gated>) -> SharedStore {
    SharedStore::new(store.clone(), Slots::new("k"), Arc::new(Granted))
}

#[tokio::test]
async fn a_read_from_a_view_begun_before_an_announcement_leaves_the_session_stale() {
    let store = Arc::new(Gated::default());
    let shared = shared_over(&store);
    let mut turn = shared.turn().await;

    // The reload is under way (waiting on storage) when another context's change is announced.
    let (reloaded, ()) = tokio::join!(biased; shared.reload_unlocked(), async {
        shared.mark_stale();
        store.open();
    });
    reloaded.unwrap();
    turn.load(&shared.slots.session).await.unwrap();
    assert!(shared.is_stale(), "a view begun before the announcement cleared the flag");
    assert!(shared.changed_elsewhere(std::time::Duration::ZERO));

    // The next look under the lock reloads (the lock is newly taken), and its read clears it.
    store.open();
    turn.locked().await.unwrap();
    turn.load(&shared.slots.session).await.unwrap();
    assert!(!shared.is_stale());
    assert_eq!(store.reloads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_announcement_under_a_held_lock_reloads_the_view_before_the_next_read() {
    let store = Arc::new(Gated::default());
    let shared = shared_over(&store);
    let mut turn = shared.turn().await;
    store.open();
    turn.locked().await.unwrap();
    assert_eq!(store.reloads.load(Ordering::SeqCst), 1);

    // Held already, nothing announced: no second reload.
    turn.locked().await.unwrap();
    assert_eq!(store.reloads.load(Ordering::SeqCst), 1);

    shared.mark_stale();
    store.open();
    turn.locked().await.unwrap();
    assert_eq!(store.reloads.load(Ordering::SeqCst), 2, "the held lock's view was not reloaded");
    turn.load(&shared.slots.session).await.unwrap();
    assert!(!shared.is_stale());
}

#[tokio::test]
async fn a_read_from_a_view_reloaded_after_the_announcement_clears_the_flag() {
    let store = Arc::new(Gated::default());
    let shared = shared_over(&store);
    let mut turn = shared.turn().await;
    shared.mark_stale();
    store.open();
    shared.reload_unlocked().await.unwrap();
    turn.load(&shared.slots.session).await.unwrap();
    assert!(!shared.is_stale());
}

#[tokio::test]
async fn a_failed_reload_after_an_announcement_under_a_held_lock_keeps_the_flag_and_the_turn_going() {
    let store = Arc::new(Gated::default());
    let shared = shared_over(&store);
    let mut turn = shared.turn().await;
    store.open();
    turn.locked().await.unwrap();

    shared.mark_stale();
    store.reloads_fail.store(true, Ordering::SeqCst);
    store.open();
    turn.locked().await.expect("the held lock's work goes on");
    assert_eq!(store.reloads.load(Ordering::SeqCst), 2);
    turn.load(&shared.slots.session).await.unwrap();
    assert!(shared.is_stale(), "a read from the old view cleared the flag");
}
