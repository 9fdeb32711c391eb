//! Start-up without the network: a stored session whose token is still fresh is handed out from
//! the store alone (the provider's documents from their stored copies), then the documents are
//! revalidated in the background; a provider that no longer validates loses the copies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sessionkit::clock::{Clock, SystemClock};
use sessionkit::lock::{ContextLock, FileLock, LockGuard};
use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{BoxFuture, Error, SessionClient, SessionPolicy};
use sessionkit_core::Now;

use crate::idp::{CLIENT_ID, Idp, stored_refresh_token};

const DISCOVERY: &str = "/.well-known/openid-configuration";

/// Polls the provider's counters until `check` holds (bounded).
async fn eventually(idp: &Idp, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..100 {
        let stats = idp.stats().await;
        if check(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}: {}", idp.stats().await)
}

/// A store holding a signed-in session (and the provider copies its start stored).
async fn signed_in_store(idp: &Idp) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    idp.login(&first).await;
    drop(first);
    store
}

#[tokio::test]
async fn a_restart_hands_out_the_stored_token_without_a_request_then_revalidates() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    idp.reset_stats().await;
    // The background revalidation is held up at the provider, so that a request made by the
    // start itself would have been counted before `new` returned.
    idp.fault(json!({"path": DISCOVERY, "mode": "delay", "delayMs": 800, "times": 1})).await;
    let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    let token = restarted.fresh_access_token().expect("the stored token is fresh");
    let stats = idp.stats().await;
    assert_eq!((stats["discovery"].as_u64(), stats["jwks"].as_u64()), (Some(0), Some(0)), "no request: {stats}");
    assert_eq!(stats["token"], json!({}), "{stats}");

    // Then, in the background: both documents again, and the copies renewed.
    eventually(&idp, "the revalidation", |s| s["discovery"] == 1 && s["jwks"] == 1).await;
    assert_eq!(restarted.access_token().await.unwrap().expose(), token.expose());
    assert_eq!(idp.call_api(&restarted).await, 200, "the keys and endpoints in use work");
}

#[tokio::test]
async fn a_provider_that_no_longer_validates_loses_its_stored_copies() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    let slot = format!("{}|{CLIENT_ID}|provider", idp.issuer);
    assert!(store.load(&slot).unwrap().is_some(), "the start stored its copies");

    // The discovery now answers 404: the session started from the copies keeps its token (the
    // 404 is not the session's business), but the copies go.
    idp.fault(json!({"path": DISCOVERY, "mode": "status", "status": 404, "times": 5})).await;
    let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    assert!(restarted.fresh_access_token().is_some());
    for _ in 0..100 {
        if store.load(&slot).unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.load(&slot).unwrap().is_none(), "the copies were dropped");
    drop(restarted);

    // The next start asks the network, and says what is wrong instead of using a copy.
    let err = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!matches!(err, Error::RetryLater { .. }), "a 404 is not a transient failure: {err:?}");
}

/// A change made to the stored copies.
type Edit = dyn Fn(&mut serde_json::Value);

/// Rewrites the JSON stored under `slot`: the provider copies (`discovery`, `jwks`,
/// `fetched_at`) or the session record.
fn edit_copies(store: &MemoryStore, slot: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let text = store.load(slot).unwrap().expect("something is stored there");
    let mut copies: serde_json::Value = serde_json::from_str(text.expose()).unwrap();
    edit(&mut copies);
    store.save(slot, &sessionkit::Secret::new(copies.to_string())).unwrap();
}

fn now_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

/// Copies a day old, copies "from the future" (the clock was set back since they were written)
/// and copies that name another issuer are not a start without a request: the start fetches
/// both documents before it returns, and the session goes on.
#[tokio::test]
async fn old_copies_copies_from_the_future_and_copies_of_another_issuer_are_fetched_again() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    let slot = format!("{}|{CLIENT_ID}|provider", idp.issuer);
    let hour = 60 * 60 * 1000;
    let cases: [(&str, Box<Edit>); 3] = [
        ("25 hours old", Box::new(move |copies| copies["fetched_at"] = json!(now_millis() - 25 * hour))),
        ("an hour in the future", Box::new(move |copies| copies["fetched_at"] = json!(now_millis() + hour))),
        (
            "another issuer",
            Box::new(|copies| {
                let mut discovery: serde_json::Value =
                    serde_json::from_str(copies["discovery"].as_str().unwrap()).unwrap();
                discovery["issuer"] = json!("https://127.0.0.1:1/not-this-one");
                copies["discovery"] = json!(discovery.to_string());
            }),
        ),
    ];
    for (what, edit) in cases {
        edit_copies(&store, &slot, edit);
        idp.reset_stats().await;
        let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
        let stats = idp.stats().await;
        assert_eq!((stats["discovery"].as_u64(), stats["jwks"].as_u64()), (Some(1), Some(1)), "{what}: {stats}");
        assert!(restarted.fresh_access_token().is_some(), "{what}: the session is restored");
        assert_eq!(idp.call_api(&restarted).await, 200, "{what}");
        let text = store.load(&slot).unwrap().expect("copies");
        let copies: serde_json::Value = serde_json::from_str(text.expose()).unwrap();
        let fetched_at = copies["fetched_at"].as_i64().unwrap();
        assert!((now_millis() - fetched_at).abs() < 60_000, "{what}: the copies were renewed");
        assert!(copies["discovery"].as_str().unwrap().contains(&idp.issuer), "{what}");
    }
}

/// A logout while the background revalidation is held up at the provider: the copies, which
/// the logout deleted with the session, are not written back when the revalidation finishes.
#[tokio::test]
async fn a_logout_during_the_revalidation_leaves_no_copies_behind() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    let slot = format!("{}|{CLIENT_ID}|provider", idp.issuer);
    idp.reset_stats().await;
    // The keys' request of the revalidation is held up, so that the logout comes while it is
    // in flight (the discovery request has been answered).
    idp.fault(json!({"path": "/jwks", "mode": "delay", "delayMs": 1500, "times": 1})).await;
    let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    assert!(restarted.fresh_access_token().is_some());
    eventually(&idp, "the revalidation's discovery request", |s| s["discovery"] == 1).await;
    assert_eq!(idp.stats().await["jwks"], 0, "the keys' request is still held up");
    restarted.logout().await.unwrap();
    assert!(store.load(&slot).unwrap().is_none(), "the logout deleted the copies");
    // The held-up revalidation completes after the logout.
    eventually(&idp, "the revalidation", |s| s["jwks"] == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.load(&slot).unwrap().is_none(), "no copies written back after the logout");
}

/// A logout before the background revalidation starts: it does not start at all (the copies
/// went with the session, and a signed-out client has no use for the provider's documents).
#[tokio::test]
async fn a_logout_before_the_revalidation_starts_cancels_it() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    idp.reset_stats().await;
    let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    restarted.logout().await.unwrap();
    // Past the revalidation's delay (1 s), with room for a request it should not have made.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let stats = idp.stats().await;
    assert_eq!((stats["discovery"].as_u64(), stats["jwks"].as_u64()), (Some(0), Some(0)), "{stats}");
    assert!(stats["revocation"].as_u64() >= Some(1), "the logout itself reached the provider: {stats}");
}

/// The cross-context lock, counting the attempts to take it; `held_elsewhere`: another context
/// holds it for as long as the test runs (an attempt never completes).
struct CountingLock {
    inner: FileLock,
    held_elsewhere: bool,
    attempts: AtomicUsize,
    /// Run at the first attempt, before the lock is granted: another context's last write.
    before_granting: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl CountingLock {
    /// `test`: a name of its own for the lock file, so that tests running at once do not share it.
    fn new(test: &str, held_elsewhere: bool) -> Arc<Self> {
        // FileLock creates the directory itself, private to the user.
        let dir = std::env::temp_dir().join(format!("sessionkit-startup-locks-{}", std::process::id()));
        let key = format!("{test}-{held_elsewhere}");
        Arc::new(Self {
            inner: FileLock::new(Some(&dir), &key).unwrap(),
            held_elsewhere,
            attempts: AtomicUsize::new(0),
            before_granting: Mutex::new(None),
        })
    }
}

impl ContextLock for CountingLock {
    fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if let Some(write) = self.before_granting.lock().unwrap().take() {
            write();
        }
        if self.held_elsewhere { Box::pin(std::future::pending()) } else { self.inner.acquire() }
    }

    fn generation(&self) -> u64 {
        self.inner.generation()
    }
}

/// The system clock, `ahead` in the future (wall and monotonic alike).
struct Ahead(Duration);

impl Clock for Ahead {
    fn now(&self) -> Now {
        let now = SystemClock.now();
        Now { wall: now.wall.saturating_add(self.0), monotonic: now.monotonic + self.0 }
    }
}

#[tokio::test]
async fn a_start_with_a_live_record_does_not_wait_for_the_lock() {
    let idp = Idp::start(60);
    let store = signed_in_store(&idp).await;
    // Another context holds the lock (say, in the middle of a refresh on a slow network).
    let lock = CountingLock::new("live", true);
    let config =
        idp.config_builder(SessionPolicy::default(), store.clone()).context_lock(lock.clone()).build().unwrap();
    let restarted = tokio::time::timeout(Duration::from_secs(10), SessionClient::new(config))
        .await
        .expect("the start waited for the lock")
        .unwrap();
    assert!(restarted.fresh_access_token().is_some(), "the stored token is handed out");
    assert_eq!(lock.attempts.load(Ordering::SeqCst), 0, "the lock was not even asked for");
}

#[tokio::test]
async fn a_signed_out_start_does_not_wait_for_the_lock() {
    let idp = Idp::start(60);
    let lock = CountingLock::new("signed-out", true);
    let store = Arc::new(MemoryStore::new());
    let config = idp.config_builder(SessionPolicy::default(), store).context_lock(lock.clone()).build().unwrap();
    let started = tokio::time::timeout(Duration::from_secs(10), SessionClient::new(config))
        .await
        .expect("the start waited for the lock")
        .unwrap();
    assert!(started.status().is_none());
    assert_eq!(lock.attempts.load(Ordering::SeqCst), 0, "the lock was not even asked for");
}

#[tokio::test]
async fn a_start_with_a_record_past_its_limit_ends_it_under_the_lock() {
    let idp = Idp::start(60);
    let policy = || {
        let limit = Duration::from_secs(600);
        SessionPolicy::builder().idle_timeout(limit).absolute_lifetime(limit).build().unwrap()
    };
    let store = Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(policy(), store.clone())).await.unwrap();
    idp.login(&first).await;
    drop(first);
    assert!(stored_refresh_token(&store, &idp.issuer).is_some());

    // Eleven minutes later: the absolute lifetime has passed.
    let lock = CountingLock::new("past-limit", false);
    let config = idp
        .config_builder(policy(), store.clone())
        .context_lock(lock.clone())
        .clock(Arc::new(Ahead(Duration::from_secs(660))))
        .build()
        .unwrap();
    let restarted = SessionClient::new(config).await.unwrap();
    assert!(restarted.status().is_none(), "the session ended at the start");
    assert!(lock.attempts.load(Ordering::SeqCst) >= 1, "the end was decided and wiped under the lock");
    assert_eq!(stored_refresh_token(&store, &idp.issuer), None, "the record is wiped");
}

#[tokio::test]
async fn a_start_decides_an_end_on_the_record_read_under_the_lock() {
    let idp = Idp::start(60);
    let policy = || {
        // No refresh of its own (the token expired meanwhile): the lock is taken for the start only.
        SessionPolicy::builder()
            .idle_timeout(Duration::from_secs(600))
            .absolute_lifetime(Duration::from_secs(3600))
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let store = Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(policy(), store.clone())).await.unwrap();
    idp.login(&first).await;
    drop(first);

    // Eleven minutes later the stored activity is past the idle limit; but as the start takes
    // the lock, another context writes the activity it just recorded. Decided on what the lock
    // lets it read, the start keeps the session.
    let ahead = Duration::from_secs(660);
    let lock = CountingLock::new("decided-under-lock", false);
    let (other, slot) = (store.clone(), format!("{}|{CLIENT_ID}", idp.issuer));
    *lock.before_granting.lock().unwrap() = Some(Box::new(move || {
        edit_copies(&other, &slot, |record| {
            record["last_activity_at"] = json!(now_millis() + 660_000);
            record["revision"] = json!(record["revision"].as_u64().unwrap() + 1);
        });
    }));
    let config =
        idp.config_builder(policy(), store.clone()).context_lock(lock.clone()).clock(Arc::new(Ahead(ahead))).build();
    let restarted = SessionClient::new(config.unwrap()).await.unwrap();
    assert_eq!(lock.attempts.load(Ordering::SeqCst), 1);
    assert!(restarted.status().is_some(), "ended on the record read before the lock");
    assert!(stored_refresh_token(&store, &idp.issuer).is_some(), "nothing wiped");
}

/// After one change elsewhere, a burst of token calls makes one read under the lock, not one
/// each: the first adopts the change, the others find it adopted once they have the turn.
#[tokio::test]
async fn a_burst_of_calls_after_a_change_elsewhere_reads_the_store_once() {
    let idp = Idp::start(60);
    let store = Arc::new(MemoryStore::new());
    let first_lock = CountingLock::new("burst", false);
    let first = SessionClient::new(
        idp.config_builder(SessionPolicy::default(), store.clone()).context_lock(first_lock).build().unwrap(),
    )
    .await
    .unwrap();
    idp.login(&first).await;
    // Another process on the same store and lock file (the same generation counter).
    let other_lock = CountingLock::new("burst", false);
    let other = SessionClient::new(
        idp.config_builder(SessionPolicy::default(), store.clone()).context_lock(other_lock.clone()).build().unwrap(),
    )
    .await
    .unwrap();
    assert!(other.fresh_access_token().is_some());
    assert_eq!(other_lock.attempts.load(Ordering::SeqCst), 0);

    first.logout().await.unwrap();
    // The hot path looks at the lock's counter at most every 250 ms (`fresh_access_token` above
    // just did): past that, the sign-out elsewhere is seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let other = other.clone();
        calls.spawn(async move { other.access_token().await });
    }
    while let Some(answer) = calls.join_next().await {
        assert!(answer.unwrap().is_err(), "the sign-out elsewhere is adopted by every call");
    }
    assert_eq!(other_lock.attempts.load(Ordering::SeqCst), 1, "one read under the lock for the burst");
}
