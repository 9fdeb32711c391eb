//! The tabs' channel as a session starts, in headless Chromium (wasm-bindgen-test, with the
//! store's tests): what another tab says while this session is restored is kept for the end
//! of the start, and only what names this session.

use wasm_bindgen_test::wasm_bindgen_test;

use super::*;
use crate::store::web::tests::{delete_db, say_from_another_tab, store_with_record};

/// Joins as the session `key` of the store, as `SessionClient::new` does before its restore
/// (no client behind it: nothing here may reach one).
fn join(key: &str, store: &Arc<WebStore>) -> Tabs {
    let tabs = Tabs::join(key, Some(store.clone()), Weak::new());
    assert!(tabs.channel.is_some(), "browsers here have BroadcastChannel");
    tabs
}

#[wasm_bindgen_test]
async fn activity_said_after_the_join_and_before_the_restore_ended_is_reported_at_its_end() {
    let (db, store) = store_with_record().await;
    let tabs = join("alice", &store);
    // The restore is under way: another tab's user is active.
    say_from_another_tab(&db, "activity", "alice").await;
    assert!(tabs.take_activity_heard_while_starting(), "kept for the end of the start");
    // Reported once: the start has ended.
    assert!(!tabs.take_activity_heard_while_starting());
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_start_nobody_spoke_of_has_no_activity_to_report() {
    let (db, store) = store_with_record().await;
    let tabs = join("alice", &store);
    assert!(!tabs.take_activity_heard_while_starting());
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn activity_said_before_the_join_is_kept_for_the_start_too() {
    let (db, store) = store_with_record().await;
    say_from_another_tab(&db, "activity", "alice").await;
    let tabs = join("alice", &store);
    assert!(tabs.take_activity_heard_while_starting());
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn another_sessions_activity_is_not_kept_before_the_join_nor_after() {
    let (db, store) = store_with_record().await;
    say_from_another_tab(&db, "activity", "bob").await;
    let tabs = join("alice", &store);
    say_from_another_tab(&db, "activity", "bob").await;
    say_from_another_tab(&db, "changed", "bob").await;
    assert!(!tabs.take_activity_heard_while_starting(), "bob's, not alice's");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_change_of_the_session_during_the_start_is_not_activity() {
    let (db, store) = store_with_record().await;
    let tabs = join("alice", &store);
    say_from_another_tab(&db, "changed", "alice").await;
    assert!(!tabs.take_activity_heard_while_starting());
    delete_db(&db).await;
}
