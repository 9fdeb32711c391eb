//! Faults injected between the client and the real provider: tampered answers are refused
//! with typed errors, transient failures keep the session, a lost rotation ends cleanly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sessionkit::lock::{ContextLock, HeldLock, LockGuard};
use sessionkit::store::{MemoryStore, SecureStore, StoreError};
use sessionkit::{BoxFuture, Error, Secret, SessionClient, SessionPolicy};

use crate::idp::{Idp, stored_refresh_token};

fn lazy() -> SessionPolicy {
    SessionPolicy::builder().background_refresh(false).build().unwrap()
}

/// Bearer tokens: for the tests where the provider is called with a refresh token directly, as a
/// process that died would have (with DPoP, only the key's holder could).
fn lazy_bearer() -> SessionPolicy {
    SessionPolicy::builder().background_refresh(false).dpop(sessionkit::DpopPolicy::Off).build().unwrap()
}

#[tokio::test]
async fn tampered_id_tokens_are_refused_and_nothing_is_signed_in() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    for tamper in ["iss", "aud", "nonce", "expired", "signature", "alg_none", "hmac"] {
        idp.fault(json!({"path": "/token", "mode": "tamper", "tamper": tamper})).await;
        let request = client.begin_login(&Default::default()).await.unwrap();
        let callback = idp.authorize(request.url()).await;
        let err = client.complete_login(request, &callback).await.expect_err(tamper);
        assert!(matches!(err, Error::InvalidInput { .. }), "{tamper}: {err:?}");
        assert!(client.status().is_none(), "{tamper}: nothing signed in");
        assert!(stored_refresh_token(&store, &idp.issuer).is_none(), "{tamper}: nothing stored");
    }
    // And the untampered flow still works afterwards.
    idp.login(&client).await;
    assert_eq!(client.status().unwrap().subject, "alice");
}

#[tokio::test]
async fn a_step_up_sign_in_needs_an_authentication_no_older_than_its_max_age() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    let step_up = sessionkit::AuthorizeOptions { max_age: Some(300), ..Default::default() };
    // A provider that ignores max_age (an hour-old authentication) or leaves auth_time out.
    for tamper in ["old_auth_time", "no_auth_time"] {
        idp.fault(json!({"path": "/token", "mode": "tamper", "tamper": tamper})).await;
        let request = client.begin_login(&step_up).await.unwrap();
        let callback = idp.authorize(request.url()).await;
        let err = client.complete_login(request, &callback).await.expect_err(tamper);
        let message = err.to_string();
        assert!(message.contains("max_age") || message.contains("auth_time"), "{tamper}: {message}");
        assert!(client.status().is_none(), "{tamper}: nothing signed in");
        assert!(stored_refresh_token(&store, &idp.issuer).is_none(), "{tamper}: nothing stored");
    }
    // The provider honouring it: a fresh authentication, signed in. Without max_age, an old
    // auth_time is the provider's business.
    let request = client.begin_login(&step_up).await.unwrap();
    assert!(request.url().contains("max_age=300"));
    let callback = idp.authorize(request.url()).await;
    client.complete_login(request, &callback).await.unwrap();
    idp.fault(json!({"path": "/token", "mode": "tamper", "tamper": "old_auth_time"})).await;
    idp.login(&client).await;
    assert_eq!(client.status().unwrap().subject, "alice");
}

#[tokio::test]
async fn oversized_and_redirected_token_responses_are_refused() {
    let idp = Idp::start(60);
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    for mode in ["oversize", "redirect"] {
        idp.fault(json!({"path": "/token", "mode": mode})).await;
        let request = client.begin_login(&Default::default()).await.unwrap();
        let callback = idp.authorize(request.url()).await;
        let err = client.complete_login(request, &callback).await.expect_err(mode);
        let expected = if mode == "oversize" {
            matches!(err, Error::InvalidInput { .. })
        } else {
            // The http redirect is not followed; the 302 itself is not a token response.
            matches!(err, Error::RetryLater { .. } | Error::InvalidInput { .. })
        };
        assert!(expected, "{mode}: {err:?}");
        assert!(client.status().is_none());
    }
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_user_ends_the_session() {
    let idp = Idp::start(2);
    let (client, _store) = idp.client(lazy()).await;
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    idp.fault(json!({"path": "/token", "mode": "tamper", "tamper": "sub"})).await;
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(client.end_reason(), Some(sessionkit::EndReason::Anomaly));
}

/// Issue 11, finding 4: only a refused grant ends the session; the client's own refusal (its
/// registration, a proxy) keeps it and says what to fix.
#[tokio::test]
async fn a_refresh_refused_for_the_client_not_the_grant_keeps_the_session() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    idp.fault(json!({"path": "/token", "mode": "status", "status": 401, "error": "invalid_client"})).await;
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(&err, Error::Misconfigured { message } if message.contains("invalid_client")), "{err:?}");
    assert!(err.to_string().contains("the session is kept"), "{err}");
    assert!(client.status().is_some(), "the session is kept");
    assert!(stored_refresh_token(&store, &idp.issuer).is_some(), "and stays in the store");
    // Once the provider accepts the client again, the same session refreshes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
}

#[tokio::test]
async fn service_unavailable_and_rate_limits_keep_the_session_and_honour_retry_after() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for status in [503, 429] {
        idp.fault(json!({"path": "/token", "mode": "status", "status": status, "retryAfter": 1})).await;
        let err = client.access_token().await.unwrap_err();
        // Retry-After is the least wait; consecutive failures back off further (1 s, 2 s, ...).
        let Error::RetryLater { retry_after: Some(wait), .. } = err else { panic!("{status}: {err:?}") };
        assert!(wait >= Duration::from_secs(1), "{status}: {wait:?}");
        assert!(client.status().is_some(), "{status}: the session is kept");
        assert!(stored_refresh_token(&store, &idp.issuer).is_some());
        // Within the Retry-After window no request is sent.
        let before = idp.stats().await;
        assert!(matches!(client.access_token().await, Err(Error::RetryLater { .. })));
        assert_eq!(idp.stats().await, before, "{status}: backed off without a request");
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
}

#[tokio::test]
async fn a_provider_that_refuses_connections_keeps_the_session() {
    let mut idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    idp.login(&client).await;
    idp.stop();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(err, Error::RetryLater { .. }), "{err:?}");
    assert!(client.status().is_some());
    assert!(stored_refresh_token(&store, &idp.issuer).is_some(), "nothing wiped");
}

#[tokio::test]
async fn logout_with_the_revocation_endpoint_down_wipes_at_once_and_revokes_later() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    idp.login(&client).await;
    let refresh = stored_refresh_token(&store, &idp.issuer).unwrap();
    idp.fault(json!({"path": "/token/revocation", "mode": "status", "status": 503, "times": 6})).await;
    client.logout().await.unwrap();
    assert!(stored_refresh_token(&store, &idp.issuer).is_none(), "wiped at once");
    assert!(idp.is_active(&refresh).await, "not yet revoked: the endpoint is down");
    idp.clear_faults().await;
    // The timer retries after 5 s.
    let mut revoked = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !idp.is_active(&refresh).await {
            revoked = true;
            break;
        }
    }
    assert!(revoked, "the revocation was retried");
}

#[tokio::test]
async fn a_response_lost_after_rotation_ends_in_a_clear_sign_in_again() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    idp.fault(json!({"path": "/token", "mode": "drop"})).await;
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(err, Error::RetryLater { .. }), "{err:?}");
    assert!(client.status().is_some(), "a lost answer is transient: the session is kept");
    // The provider rotated the token; the next attempt spends the old one, which the provider
    // refuses (and revokes the grant). The client ends the session once, without looping.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(err, Error::ReauthenticationRequired { .. }), "{err:?}");
    assert!(stored_refresh_token(&store, &idp.issuer).is_none());
    let refreshes = idp.refresh_count().await;
    assert!(matches!(client.access_token().await, Err(Error::ReauthenticationRequired { .. })));
    assert_eq!(idp.refresh_count().await, refreshes, "no retry loop");
}

#[tokio::test]
async fn a_process_killed_after_rotation_recovers_to_sign_in_again() {
    let idp = Idp::start(2);
    let store = std::sync::Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(lazy_bearer(), store.clone())).await.unwrap();
    idp.login(&first).await;
    let stale = stored_refresh_token(&store, &idp.issuer).unwrap();
    drop(first);
    // The dead process had rotated the token at the provider but never persisted the result.
    assert_eq!(idp.refresh_directly(&stale).await, 200);

    let restarted = SessionClient::new(idp.config(lazy_bearer(), store.clone())).await.unwrap();
    assert_eq!(restarted.status().unwrap().subject, "alice");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let err = restarted.access_token().await.unwrap_err();
    assert!(matches!(err, Error::ReauthenticationRequired { .. }), "{err:?}");
    assert!(restarted.status().is_none());
    assert!(stored_refresh_token(&store, &idp.issuer).is_none());
}

/// Finding 2 of the concurrency review: a store that cannot be read before a refresh may hold
/// a newer refresh token than this process (another one rotated it): nothing is sent, the
/// session is kept, the caller is told to retry.
#[tokio::test]
async fn a_locked_store_refuses_the_refresh_and_keeps_the_session() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    idp.login(&client).await;
    let before = stored_refresh_token(&store, &idp.issuer).unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store.set_unavailable(true);
    let error = client.access_token().await.expect_err("no refresh without reading the store");
    assert!(matches!(error, Error::RetryLater { .. }), "{error}");
    assert!(error.to_string().contains("nothing was sent"), "{error}");
    assert!(client.status().is_some(), "the session is kept");
    store.set_unavailable(false);
    // The failed attempt backs off (1 s), as after any transient failure; the error said how long.
    let Error::RetryLater { retry_after: Some(wait), .. } = client.access_token().await.expect_err("backing off")
    else {
        panic!("a retry-later with its wait")
    };
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    client.access_token().await.expect("refreshed once the store can be read");
    assert_eq!(idp.call_api(&client).await, 200);
    assert_ne!(stored_refresh_token(&store, &idp.issuer).unwrap(), before, "rotated and written");
}

/// A store whose writes fail during a refresh: the refresh goes through (the store was read),
/// the session continues in memory, the app hears of it, and the write catches up.
#[tokio::test]
async fn a_store_that_cannot_be_written_during_a_refresh_keeps_the_session_and_catches_up() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy()).await;
    let mut events = client.subscribe();
    idp.login(&client).await;
    let before = stored_refresh_token(&store, &idp.issuer).unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store.set_writes_fail(true);
    client.access_token().await.expect("the refresh works; only the write fails");
    assert_eq!(idp.call_api(&client).await, 200);
    crate::lifecycle::wait_for(&mut events, Duration::from_secs(2), |e| {
        matches!(e, sessionkit::SessionEvent::StorageProblem { problem: sessionkit::StorageProblem::Unavailable, .. })
    })
    .await;
    assert_eq!(stored_refresh_token(&store, &idp.issuer).unwrap(), before, "the write has not happened yet");
    store.set_writes_fail(false);
    // The write is retried by the timer.
    let caught_up = eventually(|| stored_refresh_token(&store, &idp.issuer).is_some_and(|rt| rt != before)).await;
    assert!(caught_up, "the rotated token reached the store once it could be written");
    assert!(client.status().is_some());
}

/// A store that writes in the background, as the browser's does: reads come from a view that
/// `save` and `delete` update at once, the writes reach the disk behind it, `flush` says whether
/// they landed and `reload` replaces the view with the disk. While `lost` is set, writes do not
/// reach the disk.
#[derive(Default)]
struct BackgroundStore {
    view: MemoryStore,
    disk: MemoryStore,
    lost: AtomicBool,
    /// Whether the last write of each slot was lost.
    failed: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Every slot written.
    slots: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl BackgroundStore {
    fn land(&self, key: &str, write: impl FnOnce(&MemoryStore) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.slots.lock().unwrap().insert(key.to_owned());
        let mut failed = self.failed.lock().unwrap();
        if self.lost.load(Ordering::SeqCst) {
            failed.insert(key.to_owned());
        } else {
            write(&self.disk)?;
            failed.remove(key);
        }
        Ok(())
    }
}

impl SecureStore for BackgroundStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.view.load(key)
    }
    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        self.view.save(key, value)?;
        self.land(key, |disk| disk.save(key, value))
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.view.delete(key)?;
        self.land(key, |disk| disk.delete(key))
    }
    fn describe(&self) -> String {
        "background writes".into()
    }
    fn may_block(&self) -> bool {
        false
    }
    fn reload(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let slots: Vec<String> = self.slots.lock().unwrap().iter().cloned().collect();
            for key in slots {
                match self.disk.load(&key)? {
                    Some(value) => self.view.save(&key, &value)?,
                    None => self.view.delete(&key)?,
                }
            }
            Ok(())
        })
    }
    fn flush<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let lost = self.failed.lock().unwrap().contains(key);
        Box::pin(
            async move { if lost { Err(StoreError::Unavailable("the write did not land".into())) } else { Ok(()) } },
        )
    }
}

/// A cross-context lock that says whether it is held, and whether it was ever asked for while
/// held (one context only here: that would be a bug).
#[derive(Default)]
struct TrackingLock {
    held: Arc<AtomicBool>,
    overlap: AtomicBool,
}

impl TrackingLock {
    fn held(&self) -> bool {
        assert!(!self.overlap.load(Ordering::SeqCst), "the lock was asked for while held");
        self.held.load(Ordering::SeqCst)
    }
}

struct Tracked(Arc<AtomicBool>);

impl HeldLock for Tracked {}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl ContextLock for TrackingLock {
    fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>> {
        if self.held.swap(true, Ordering::SeqCst) {
            self.overlap.store(true, Ordering::SeqCst);
        }
        let held = self.held.clone();
        Box::pin(async move { Ok(Box::new(Tracked(held)) as LockGuard) })
    }
}

/// Polls `done` every 250 ms, for 15 s at most.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..60 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done()
}

/// A session signed in on a [`BackgroundStore`] under a [`TrackingLock`] (access tokens of 2 s).
async fn signed_in_on_a_background_store(idp: &Idp) -> (SessionClient, Arc<BackgroundStore>, Arc<TrackingLock>) {
    let store = Arc::new(BackgroundStore::default());
    let lock = Arc::new(TrackingLock::default());
    let config = idp.config_builder(lazy(), store.clone()).context_lock(lock.clone()).build().unwrap();
    let client = SessionClient::new(config).await.unwrap();
    idp.login(&client).await;
    (client, store, lock)
}

/// Once the token is due, a refresh whose rotated token's write is lost.
async fn refresh_with_its_write_lost(client: &SessionClient, store: &BackgroundStore) {
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store.lost.store(true, Ordering::SeqCst);
    client.access_token().await.expect("the refresh works; only the write is lost");
}

/// The browser's case: the rotated refresh token's write is accepted, then does not land. The
/// store still holds the spent token, so the lock stays held (no other context may read and
/// replay it) until the write is retried and lands.
#[tokio::test]
async fn a_rotated_token_whose_write_does_not_land_keeps_the_lock_until_it_does() {
    let idp = Idp::start(2);
    let (client, store, lock) = signed_in_on_a_background_store(&idp).await;
    assert!(!lock.held(), "let go once the sign-in is stored");
    let before = stored_refresh_token(&store.disk, &idp.issuer).unwrap();
    refresh_with_its_write_lost(&client, &store).await;
    assert_eq!(stored_refresh_token(&store.disk, &idp.issuer).unwrap(), before, "the spent token is on disk");
    assert!(lock.held(), "the lock is kept while the store holds a spent token");
    store.lost.store(false, Ordering::SeqCst);
    // The write is retried (by the session's persistence retries); the lock goes once it landed.
    assert!(eventually(|| !lock.held()).await, "the lock was let go after the retried write");
    assert_ne!(stored_refresh_token(&store.disk, &idp.issuer).unwrap(), before, "the rotated token landed");
    assert_eq!(idp.call_api(&client).await, 200);
}

/// Then a sign-out whose wipe does not land either, under the kept lock: the retried wipe looks
/// at the disk, not at the store's view (which already shows the record gone), and the lock goes
/// only once the record is really deleted.
#[tokio::test]
async fn a_wipe_that_does_not_land_under_a_kept_lock_is_retried_against_the_disk() {
    let idp = Idp::start(2);
    let (client, store, lock) = signed_in_on_a_background_store(&idp).await;
    refresh_with_its_write_lost(&client, &store).await;
    assert!(lock.held(), "kept: a spent token on disk");
    let _ = client.logout().await; // the wipe does not land: reported, retried
    assert!(client.status().is_none(), "signed out here at once");
    assert!(stored_refresh_token(&store.disk, &idp.issuer).is_some(), "the record is still on disk");
    assert!(lock.held(), "still kept: the disk still holds the spent token");
    store.lost.store(false, Ordering::SeqCst);
    assert!(
        eventually(|| stored_refresh_token(&store.disk, &idp.issuer).is_none()).await,
        "the retried wipe deleted the record on disk"
    );
    assert!(eventually(|| !lock.held()).await, "then the lock went");
}

/// A keystore whose writes wait while `held` is set (15 s at most), as a slow keystore's do (a
/// D-Bus round trip, a locked keychain): `may_block`, so the driver writes off its own tasks.
#[derive(Default)]
struct SlowWrites {
    inner: MemoryStore,
    held: AtomicBool,
}

impl SecureStore for SlowWrites {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        for _ in 0..3000 {
            if !self.held.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.save(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        "slow writes".into()
    }
    fn may_block(&self) -> bool {
        true
    }
}

/// The caller of a refresh has its new token only once the rotated refresh token is written: a
/// process that exits as soon as it has its token (a CLI, a credential helper) must not take the
/// only copy of the rotated token with it.
#[tokio::test]
async fn a_refreshed_token_reaches_the_caller_only_once_its_successor_is_written() {
    let idp = Idp::start(2);
    let store = Arc::new(SlowWrites::default());
    let config = idp.config_builder(lazy_bearer(), store.clone()).build().unwrap();
    let client = SessionClient::new(config).await.unwrap();
    idp.login(&client).await;
    let before = stored_refresh_token(&store.inner, &idp.issuer).unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store.held.store(true, Ordering::SeqCst);
    let caller = client.clone();
    let mut refresh = tokio::spawn(async move { caller.access_token().await });
    // The provider answers within milliseconds; the write waits.
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut refresh).await;
    assert!(early.is_err(), "the caller had its token before the successor was written");
    store.held.store(false, Ordering::SeqCst);
    let token = refresh.await.unwrap().expect("refreshed");
    let after = stored_refresh_token(&store.inner, &idp.issuer).unwrap();
    assert_ne!(after, before, "the successor is in the store when the caller has its token");
    assert_eq!(idp.call_api_bearer(token.expose()).await, 200);
}

#[tokio::test]
async fn pinned_keys_are_enforced_with_backup_pins() {
    use sessionkit::pinning::HostPins;
    let idp = Idp::start(60);
    let with_pins = |pins: Vec<String>| {
        let mut http = idp.http_options();
        http.spki_pins = vec![HostPins { host: "127.0.0.1".into(), pins }];
        idp.config_builder(SessionPolicy::default(), std::sync::Arc::new(MemoryStore::new()))
            .http(http)
            .build()
            .unwrap()
    };
    let backup = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned();
    let second_backup = "sha256/BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=".to_owned();
    // The current key plus a backup: everything works.
    let client = SessionClient::new(with_pins(vec![backup.clone(), idp.spki_pin.clone()])).await.unwrap();
    idp.login(&client).await;
    assert_eq!(client.status().unwrap().subject, "alice");
    // Only keys the server does not have: refused before any request is sent, as an attack.
    let err = SessionClient::new(with_pins(vec![backup.clone(), second_backup])).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { message } if message.contains("pinned")), "{err:?}");
    // A single pin is a configuration error: without a backup, a key rotation locks every user out.
    let err = SessionClient::new(with_pins(vec![idp.spki_pin.clone()])).await.unwrap_err();
    assert!(matches!(&err, Error::Misconfigured { message } if message.contains("backup")), "{err:?}");
}

#[tokio::test]
async fn an_app_started_while_the_provider_is_down_restores_its_session() {
    let mut idp = Idp::start(60);
    let store = std::sync::Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    idp.login(&first).await;
    let token = first.access_token().await.unwrap();
    drop(first);
    let config = idp.config(SessionPolicy::default(), store.clone());
    idp.stop();
    // Offline: discovery and keys come from the copies cached at the last start.
    let restarted = SessionClient::new(config).await.unwrap();
    assert_eq!(restarted.status().unwrap().subject, "alice");
    assert_eq!(restarted.access_token().await.unwrap().expose(), token.expose(), "a valid token works offline");

    // Without a cached copy, an unreachable provider is a retryable error, not a broken client.
    let empty = std::sync::Arc::new(MemoryStore::new());
    let err = SessionClient::new(idp.config(SessionPolicy::default(), empty)).await.unwrap_err();
    assert!(matches!(err, Error::RetryLater { .. }), "{err:?}");
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_refresh_does_not_lose_the_rotated_token() {
    let idp = Idp::start(2);
    let (client, _store) = idp.client(lazy()).await;
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    idp.fault(json!({"path": "/token", "mode": "delay", "delayMs": 1500})).await;
    let before = client.status().unwrap().access_expires_at;
    // The caller stops waiting while the refresh is on the wire (its future is dropped).
    let gave_up = tokio::time::timeout(Duration::from_millis(300), client.access_token()).await;
    assert!(gave_up.is_err(), "the call was still waiting");
    // The refresh goes on without its caller: the rotated token is fed back and kept, so the
    // next caller gets it without another grant (and never resends the spent refresh token).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(client.status().unwrap().access_expires_at > before, "the abandoned refresh still landed");
    assert_eq!(idp.refresh_count().await, 1);
    let token = tokio::time::timeout(Duration::from_secs(10), client.access_token()).await.expect("not wedged");
    token.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
    let stats = idp.stats().await;
    assert_eq!(stats["tokenErrors"], json!({}), "no refused grant (no spent token resent): {stats}");
}

#[tokio::test]
async fn a_logout_whose_caller_stops_waiting_still_wipes_and_revokes() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    idp.login(&client).await;
    let refresh = stored_refresh_token(&store, &idp.issuer).unwrap();
    idp.fault(json!({"path": "/token/revocation", "mode": "delay", "delayMs": 500})).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(100), client.logout()).await;
    assert!(gave_up.is_err(), "the caller stopped waiting during the revocation");
    assert!(client.status().is_none(), "signed out at once");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stored_refresh_token(&store, &idp.issuer).is_none(), "wiped");
    assert!(!idp.is_active(&refresh).await, "revoked although nobody waited for it");
}

/// Issue 11, finding 12: an answer that can never become a sign-in ends the device flow at once
/// with its cause, instead of polling until the code expires.
#[tokio::test]
async fn the_device_flow_stops_at_once_on_an_unusable_answer() {
    let idp = Idp::start(60);
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    for (mode, cause) in [("oversize", "larger than"), ("redirect", "302")] {
        idp.fault(json!({"path": "/token", "mode": mode, "times": 1})).await;
        let before = idp.stats().await["token"]["urn:ietf:params:oauth:grant-type:device_code"].as_u64().unwrap_or(0);
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(30), client.login_with_device(|_| {}))
            .await
            .expect("the flow ends by itself")
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("while waiting for approval") && message.contains(cause), "{mode}: {message}");
        let after = idp.stats().await["token"]["urn:ietf:params:oauth:grant-type:device_code"].as_u64().unwrap_or(0);
        // The faulted poll is answered by the fault layer (not counted); any poll after it would be.
        assert_eq!(after - before, 0, "{mode}: no poll after the unusable answer");
        assert!(started.elapsed() < Duration::from_secs(15), "{mode}: ended after the first poll");
        assert!(client.status().is_none());
    }
}
