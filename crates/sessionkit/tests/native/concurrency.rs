//! One refresh however many callers: in a process, and across clients sharing one store.

use std::sync::Arc;
use std::time::Duration;

use sessionkit::{SessionClient, SessionPolicy};

use crate::idp::Idp;

fn lazy() -> SessionPolicy {
    // No background refresh: the callers are the only ones who can trigger it.
    SessionPolicy::builder().background_refresh(false).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_on_an_expired_token_make_one_refresh() {
    let idp = Idp::start(2);
    let (client, _store) = idp.client(lazy()).await;
    idp.login(&client).await;
    let before = client.access_token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(idp.refresh_count().await, 0);

    let calls: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap().expose().to_owned());
    }
    assert_eq!(idp.refresh_count().await, 1, "exactly one token request for 100 callers");
    assert!(tokens.iter().all(|t| t == &tokens[0]), "all callers got the refreshed token");
    assert_ne!(tokens[0], before.expose());
    assert_eq!(idp.call_api(&client).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_a_store_refresh_once_and_both_stay_signed_in() {
    let idp = Idp::start(2);
    let store = Arc::new(sessionkit::store::MemoryStore::new());
    let lock_dir = std::env::temp_dir().join(format!("sessionkit-test-locks-{}", std::process::id()));
    std::fs::create_dir_all(&lock_dir).unwrap();
    let config = |store: Arc<sessionkit::store::MemoryStore>| {
        idp.config_builder(lazy(), store).lock_dir(lock_dir.clone()).build().unwrap()
    };
    let a = SessionClient::new(config(store.clone())).await.unwrap();
    idp.login(&a).await;
    let b = SessionClient::new(config(store.clone())).await.unwrap();
    assert_eq!(b.status().unwrap().subject, "alice", "b restored a's session from the shared store");

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.expose(), tb.expose(), "the second adopted the first's rotated token");
    assert_eq!(idp.refresh_count().await, 1);
    let stats = idp.stats().await;
    assert_eq!(stats["tokenErrors"], serde_json::json!({}), "no replayed refresh token");
    assert_eq!(idp.call_api(&a).await, 200);
}
