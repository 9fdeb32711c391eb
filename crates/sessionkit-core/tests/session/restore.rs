use std::time::Duration;

use sessionkit_core::session::RecordError;
use sessionkit_core::{
    Action, Anomaly, CoreError, EndReason, Keys, Session, SessionEvent, SessionRecord, StorageProblem, StoreChange,
    TokenState,
};

use crate::harness::*;

const MIN: Duration = Duration::from_secs(60);

/// A record persisted by a signed-in session, and the clock at that moment.
fn stored() -> (Vec<u8>, ManualClock) {
    let mut h = Harness::signed_in(policy());
    let record = persisted(&h.actions()).pop().unwrap();
    (record.expose().as_bytes().to_vec(), h.clock)
}

fn fresh_session() -> Session {
    Session::new(client(), metadata(), policy())
}

#[test]
fn a_restored_session_hands_out_its_token() {
    let (record, mut clock) = stored();
    clock.advance(MIN);
    let mut session = fresh_session();
    session.restore(&record, clock.now()).unwrap();
    assert!(matches!(session.access_token(clock.now()), TokenState::Fresh(t) if t.expose() == "at1"));
    assert!(matches!(session.poll_event(), Some(SessionEvent::Restored { subject, .. }) if subject == "alice"));
    assert!(session.poll_action().is_none(), "restoring writes nothing");
}

#[test]
fn limits_persist_across_restarts() {
    let (record, mut clock) = stored();
    clock.advance(16 * MIN);
    let mut session = fresh_session();
    session.restore(&record, clock.now()).unwrap();
    assert_eq!(session.access_token(clock.now()), TokenState::Dead(EndReason::IdleTimeout));
    let actions: Vec<_> = std::iter::from_fn(|| session.poll_action()).collect();
    assert!(matches!(actions.as_slice(), [Action::Wipe, Action::Revoke(_), Action::Revoke(_)]), "{actions:?}");
}

#[test]
fn unreadable_records_are_left_alone() {
    let mut session = fresh_session();
    let clock = ManualClock::new();
    for bytes in [&b"{not json"[..], b"{\"schema_version\":1}", b"", &[0xff; 10]] {
        let err = session.restore(bytes, clock.now()).unwrap_err();
        assert!(matches!(err, CoreError::Record(RecordError::Corrupt(_))), "{err:?}");
    }
    let newer = br#"{"schema_version":3,"whatever":true}"#;
    assert_eq!(session.restore(newer, clock.now()), Err(CoreError::Record(RecordError::UnsupportedVersion(3))));
    assert!(session.poll_action().is_none(), "never wiped");
    assert!(matches!(
        session.poll_event(),
        Some(SessionEvent::StorageProblem { problem: StorageProblem::Unreadable, .. })
    ));
    assert_eq!(session.access_token(clock.now()), TokenState::Dead(EndReason::NotSignedIn));
}

#[test]
fn a_record_for_another_client_is_refused() {
    let (record, clock) = stored();
    let mut value: serde_json::Value = serde_json::from_slice(&record).unwrap();
    value["client_id"] = "other-app".into();
    let mut session = fresh_session();
    let err = session.restore(value.to_string().as_bytes(), clock.now());
    assert_eq!(err, Err(CoreError::Record(RecordError::DifferentClient)));
}

#[test]
fn a_clock_earlier_than_the_record_is_an_anomaly() {
    let (record, mut clock) = stored();
    clock.set_wall_back(30 * MIN);
    let mut session = fresh_session();
    session.restore(&record, clock.now()).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::AnomalySuspected { anomaly: Anomaly::ClockJumpedBack { .. }, .. }))
    );
}

#[test]
fn another_context_rotated_the_token_so_we_adopt_it_instead_of_refreshing() {
    // Two contexts share one store. B refreshes; A, about to refresh, reads the store first.
    let mut a = Harness::signed_in(policy());
    let record = persisted(&a.actions()).pop().unwrap();
    let mut b = Harness::with(fresh_session(), a.clock.clone());
    b.session.restore(record.expose().as_bytes(), b.clock.now()).unwrap();
    b.drain();

    for h in [&mut a, &mut b] {
        h.clock.advance(Duration::from_secs(250));
    }
    b.session.request_refresh(b.clock.now());
    b.drain();
    b.refresh_with(&token_body("at2", Some("rt2"), None, 300)).unwrap();
    let rotated = persisted(&b.actions()).pop().unwrap();

    a.session.request_refresh(a.clock.now());
    let change = a.session.handle_store_changed(Some(rotated.expose().as_bytes()), a.clock.now()).unwrap();
    assert_eq!(change, StoreChange::Adopted);
    assert!(a.actions().iter().all(|x| !matches!(x, Action::Refresh(_))), "the stale refresh is dropped");
    assert_eq!(a.token().as_deref(), Some("at2"));
    // Seeing the same record again changes nothing.
    let again = a.session.handle_store_changed(Some(rotated.expose().as_bytes()), a.clock.now()).unwrap();
    assert_eq!(again, StoreChange::Unchanged);
    // And a later answer to a refresh it no longer waits for is revoked, not used.
    let late = a.session.handle_refresh_response(
        &token_body("at3", Some("rt3"), None, 300),
        &TestVerifier,
        Keys::Cached,
        a.clock.now(),
    );
    assert!(late.is_err());
    assert_eq!(a.token().as_deref(), Some("at2"));
}

#[test]
fn an_empty_store_means_signed_out_elsewhere() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    assert_eq!(h.session.handle_store_changed(None, h.clock.now()).unwrap(), StoreChange::Ended);
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::Revoked));
    let actions = h.actions();
    // The other context wiped; the tokens are revoked again from here (it may not have known them).
    assert!(matches!(actions.as_slice(), [Action::Revoke(_), Action::Revoke(_)]), "no wipe: {actions:?}");
    assert!(matches!(h.events().as_slice(), [SessionEvent::Expired { reason: EndReason::Revoked, .. }]));
}

#[test]
fn an_empty_store_after_a_failed_write_is_not_a_logout() {
    let mut h = Harness::signed_out(policy());
    h.login("alice", "at1", Some("rt1"), 300).unwrap();
    // The sign-in's record never reached the store.
    while h.session.poll_action().is_some() {}
    h.session.handle_persist_failed(h.clock.now());
    assert_eq!(h.session.handle_store_changed(None, h.clock.now()).unwrap(), StoreChange::Unchanged);
    assert_eq!(h.token().as_deref(), Some("at1"));
}

#[test]
fn a_sign_in_elsewhere_is_adopted() {
    let (record, clock) = stored();
    let mut h = Harness::with(fresh_session(), clock);
    assert_eq!(h.session.handle_store_changed(Some(&record), h.clock.now()).unwrap(), StoreChange::Adopted);
    assert_eq!(h.token().as_deref(), Some("at1"));
    let decoded = SessionRecord::decode(&record).unwrap();
    assert_eq!(h.session.status().unwrap().session_id, decoded.session_id);
}

#[test]
fn restores_live_agrees_with_what_restore_does() {
    let (record, mut clock) = stored();
    let mut other_client: serde_json::Value = serde_json::from_slice(&record).unwrap();
    other_client["client_id"] = "other-app".into();
    let other_client = other_client.to_string().into_bytes();
    // Live a minute later: restoring writes and wipes nothing.
    clock.advance(MIN);
    let mut session = fresh_session();
    assert!(session.restores_live(&record, clock.now()));
    session.restore(&record, clock.now()).unwrap();
    assert!(session.poll_action().is_none(), "a live restore writes nothing");
    assert!(matches!(session.access_token(clock.now()), TokenState::Fresh(_)));
    // Not live: unreadable, another client's, or past a limit (which restore ends and wipes).
    let session = fresh_session();
    for bytes in [&b"{not json"[..], b"", &other_client] {
        assert!(!session.restores_live(bytes, clock.now()));
    }
    clock.advance(15 * MIN);
    let mut session = fresh_session();
    assert!(!session.restores_live(&record, clock.now()), "the idle limit has passed");
    session.restore(&record, clock.now()).unwrap();
    assert!(matches!(session.poll_action(), Some(Action::Wipe)));
}
