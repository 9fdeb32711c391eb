//! Version 2 of the record and the rules of its writer. Nobody edits
//! `tests/fixtures/session-record-v2.json` (see `record_v1.rs`). A version-1 record reads as
//! revision 0 and is written back as version 2; a write never replaces a newer revision; nothing
//! is written for a session that ended; an idle limit is decided on the shared record.

use std::time::Duration;

use sessionkit_core::{
    Action, EndReason, Now, Secret, Session, SessionPolicy, SessionRecord, StoreChange, TokenState, UnixTime,
};

use crate::harness::*;

const FROZEN_V1: &str = include_str!("../fixtures/session-record-v1.json");
const FROZEN_V2: &str = include_str!("../fixtures/session-record-v2.json");
const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

/// 5 min idle, 1 h absolute; tokens live 1 h so refreshes stay out of the way.
fn short_policy() -> SessionPolicy {
    SessionPolicy::builder().idle_timeout(5 * MIN).absolute_lifetime(60 * MIN).warning_lead(MIN).build().unwrap()
}

fn decoded(record: &Secret) -> SessionRecord {
    SessionRecord::decode(record.expose().as_bytes()).unwrap()
}

/// Two contexts over one store: `a` signed in and wrote; `b` restored what it wrote.
fn two_contexts() -> (Harness, Harness) {
    let mut a = Harness::signed_out(short_policy());
    a.login("alice", "at1", Some("rt1"), 3600).unwrap();
    a.drain();
    let stored = a.store.clone().expect("the sign-in was written");
    let mut b = Harness::with(Session::new(client(), metadata(), short_policy()), a.clock.clone());
    b.session.restore(stored.expose().as_bytes(), b.clock.now()).unwrap();
    b.store = Some(stored);
    b.drain();
    (a, b)
}

#[test]
fn version_2_records_are_read() {
    let record = SessionRecord::decode(FROZEN_V2.as_bytes()).unwrap();
    assert_eq!(record.schema_version, 2);
    assert_eq!(record.revision, 7);
    assert_eq!(record.session_id, "Zt0v2q8pX1c4nB7kL3wR9sY6uE5aH2jM0dF8gK1iO4p");
    assert!(record.access_token.constant_time_eq("frozen-v2-access-token"));
    assert!(record.refresh_token.as_ref().unwrap().constant_time_eq("frozen-v2-refresh-token"));
    assert_eq!(record.last_activity_at, UnixTime::from_millis(1_800_000_060_000));
    assert_eq!(record.server_offset_ms, 250);
}

#[test]
fn a_version_1_record_reads_as_revision_0_and_is_written_back_as_version_2() {
    assert_eq!(SessionRecord::decode(FROZEN_V1.as_bytes()).unwrap().revision, 0);
    let mut clock = ManualClock::new();
    clock.advance_to(UnixTime::from_millis(1_800_000_120_000));
    let mut session = Session::new(client(), metadata(), short_policy());
    session.restore(FROZEN_V1.as_bytes(), clock.now()).unwrap();
    let mut h = Harness::with(session, clock);
    h.store = Some(Secret::new(FROZEN_V1.to_owned()));
    h.drain();
    // Activity a minute later is written: over the version-1 record, as version 2.
    h.clock.advance(MIN);
    h.session.record_activity(h.clock.now());
    h.drain();
    let written = decoded(h.store.as_ref().unwrap());
    assert_eq!(written.schema_version, 2);
    assert_eq!(written.revision, 1);
    assert_eq!(written.session_id, "4q1Jm7mR1oX6m0r8k8Cq3b2E2iQm7JH0a1m3b3Zc9xU");
    assert!(written.refresh_token.as_ref().unwrap().constant_time_eq("frozen-refresh-token"));
    assert_eq!(written.last_activity_at, h.clock.wall());
    assert_eq!(written.started_at, UnixTime::from_millis(1_800_000_000_000));
}

#[test]
fn a_write_never_replaces_a_newer_revision() {
    let (mut a, mut b) = two_contexts();
    // `b` refreshes and writes the rotated refresh token (a newer revision).
    b.clock.advance(MIN);
    b.session.request_refresh(b.clock.now());
    b.drain();
    b.refresh_with(&token_body("at2", Some("rt2"), None, 3600)).unwrap();
    b.drain();
    let newer = b.store.clone().unwrap();
    assert!(decoded(&newer).revision > 1);
    // `a`, which knows only the spent `rt1`, has something to write (activity) over it.
    a.clock.advance(2 * MIN);
    a.session.record_activity(a.clock.now());
    let write = a.session.prepare_write(Some(newer.expose().as_bytes()), a.clock.now()).unwrap().unwrap();
    let written = decoded(&write.record);
    assert!(written.revision > decoded(&newer).revision, "above the store's revision");
    assert!(written.refresh_token.unwrap().constant_time_eq("rt2"), "the newer refresh token is kept");
    assert!(written.access_token.constant_time_eq("at2"));
    assert_eq!(written.last_activity_at, a.clock.wall(), "and the activity added");
    a.session.handle_persisted(&write);
    assert_eq!(a.token().as_deref(), Some("at2"));
    // Written once, it has nothing more to write over the same record.
    assert!(a.session.prepare_write(Some(write.record.expose().as_bytes()), a.clock.now()).unwrap().is_none());
}

#[test]
fn nothing_is_written_for_a_session_that_ended() {
    let (mut a, _b) = two_contexts();
    let stored = a.store.clone().unwrap();
    a.clock.advance(MIN);
    a.session.record_activity(a.clock.now());
    a.session.logout(a.clock.now()).unwrap();
    // A write taken before the logout finds nothing to write after it.
    assert!(a.session.prepare_write(Some(stored.expose().as_bytes()), a.clock.now()).unwrap().is_none());
    assert!(a.session.wipe_applies_to(stored.expose().as_bytes()));
    // If the record is seen again (a stale writer elsewhere), it is wiped again, never adopted.
    let change = a.session.handle_store_changed(Some(stored.expose().as_bytes()), a.clock.now()).unwrap();
    assert_eq!(change, StoreChange::Unchanged);
    assert!(a.actions().iter().any(|action| matches!(action, Action::Wipe)));
    assert_eq!(a.session.access_token(a.clock.now()), TokenState::Dead(EndReason::SignedOut));
}

#[test]
fn a_later_sign_in_elsewhere_is_not_wiped_by_an_older_logout() {
    let (mut a, mut b) = two_contexts();
    a.session.logout(a.clock.now()).unwrap();
    // `b` signed in anew meanwhile: its record is not the ended session's.
    b.login("alice", "at9", Some("rt9"), 3600).unwrap();
    b.drain();
    let later = b.store.clone().unwrap();
    assert!(!a.session.wipe_applies_to(later.expose().as_bytes()));
}

#[test]
fn an_idle_context_ends_the_session_only_if_the_shared_record_is_idle_too() {
    let (mut idle, mut busy) = two_contexts();
    // `busy` has activity every minute and writes it; `idle` has none.
    for _ in 0..6 {
        busy.clock.advance(MIN);
        idle.clock.advance(MIN);
        busy.session.record_activity(busy.clock.now());
        busy.drain();
    }
    // Past its own idle limit, `idle` asks for the shared record instead of ending.
    idle.session.handle_timeout(idle.clock.now());
    let actions: Vec<Action> = std::iter::from_fn(|| idle.session.poll_action()).collect();
    assert!(matches!(actions.as_slice(), [Action::SyncWithStore]), "{actions:?}");
    assert!(idle.session.end_reason().is_none());
    let shared = busy.store.clone().unwrap();
    idle.session.handle_store_changed(Some(shared.expose().as_bytes()), idle.clock.now()).unwrap();
    assert_eq!(idle.token().as_deref(), Some("at1"), "the shared activity keeps it alive");
    // Nobody active for the whole limit: now it ends, wiped and revoked.
    idle.clock.advance(5 * MIN + SEC);
    idle.session.handle_timeout(idle.clock.now());
    assert!(matches!(idle.session.poll_action(), Some(Action::SyncWithStore)));
    idle.session.handle_store_changed(Some(shared.expose().as_bytes()), idle.clock.now()).unwrap();
    assert_eq!(idle.session.end_reason(), Some(EndReason::IdleTimeout));
    let actions: Vec<Action> = std::iter::from_fn(|| idle.session.poll_action()).collect();
    assert!(matches!(actions.first(), Some(Action::Wipe)), "{actions:?}");
    assert!(actions.iter().any(|action| matches!(action, Action::Revoke(_))));
}

#[test]
fn a_pending_idle_check_does_not_wake_the_driver_again_at_once() {
    // Found by the simulation (seed 23): activity not yet written, the idle limit reached, the
    // store unreadable. The flush deadline had passed, so the timer fired at the same instant
    // forever.
    let mut h = Harness::signed_out(short_policy());
    h.login("alice", "at1", Some("rt1"), 3600).unwrap();
    h.drain();
    h.clock.advance(30 * SEC);
    h.session.record_activity(h.clock.now()); // not written: within the write interval
    h.clock.advance(5 * MIN);
    h.session.handle_timeout(h.clock.now());
    assert!(matches!(h.session.poll_action(), Some(Action::SyncWithStore)));
    h.session.handle_store_unreadable(h.clock.now());
    let now: Now = h.clock.now();
    let next = h.session.poll_timeout().unwrap();
    assert!(next > now.wall, "the next deadline is in the future");
    assert!(h.session.end_reason().is_none(), "unreadable is not idle");
}
