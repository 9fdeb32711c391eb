//! The tabs' channel as a session starts, in headless Chromium (wasm-bindgen-test, with the
//! store's tests): what another tab says while this session is restored is kept for the end
//! of the start, and only what names this session.

use std::sync::Weak;

use wasm_bindgen_test::wasm_bindgen_test;

use super::*;
use crate::store::web::tests::{delete_db, say_from_another_tab, store_with_record};

/// Joins as the session `key` of the store, as `SessionClient::new` does before its restore
/// (no client behind it: nothing here may reach one).
fn join(key: &str, store: &Arc<WebStore>) -> Tabs {
    Tabs::join(key, Some(store.clone()), Weak::new())
}

#[wasm_bindgen_test]
async fn activity_said_after_the_join_and_before_the_restore_ended_is_counted_at_its_end() {
    let (db, store) = store_with_record().await;
    let tabs = join("alice", &store);
    // The restore is under way: another tab's user is active.
    say_from_another_tab(&db, "activity", "alice").await;
    assert!(tabs.take_activity_heard_while_starting(), "kept for the end of the start");
    // Counted once: the start has ended, what comes now is counted as it comes.
    assert!(!tabs.take_activity_heard_while_starting());
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_start_nobody_spoke_of_has_no_activity_to_count() {
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
async fn another_sessions_activity_during_the_start_is_not_kept() {
    let (db, store) = store_with_record().await;
    let tabs = join("alice", &store);
    say_from_another_tab(&db, "activity", "bob").await;
    say_from_another_tab(&db, "changed", "bob").await;
    assert!(!tabs.take_activity_heard_while_starting(), "bob's, not alice's");
    delete_db(&db).await;
}
