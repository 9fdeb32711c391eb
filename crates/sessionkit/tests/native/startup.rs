//! Start-up without the network: a stored session whose token is still fresh is handed out from
//! the store alone (the provider's documents from their stored copies), then the documents are
//! revalidated in the background; a provider that no longer validates loses the copies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{Error, SessionClient, SessionPolicy};

use crate::idp::{CLIENT_ID, Idp};

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
