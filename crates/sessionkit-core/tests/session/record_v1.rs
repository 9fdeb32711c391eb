//! The frozen version-1 record. Nobody edits `tests/fixtures/session-record-v1.json`: if this
//! test fails, a change broke reading sessions that users already have on their devices.

use std::time::Duration;

use sessionkit_core::{Now, Session, SessionRecord, TokenState, UnixTime};

use crate::harness::*;

const FROZEN: &str = include_str!("../fixtures/session-record-v1.json");

#[test]
fn version_1_records_are_read() {
    let record = SessionRecord::decode(FROZEN.as_bytes()).unwrap();
    assert_eq!(record.schema_version, 1);
    assert_eq!(record.session_id, "4q1Jm7mR1oX6m0r8k8Cq3b2E2iQm7JH0a1m3b3Zc9xU");
    assert_eq!(record.issuer, "https://idp.example");
    assert_eq!(record.client_id, "app");
    assert_eq!(record.subject, "alice");
    assert!(record.access_token.constant_time_eq("frozen-access-token"));
    assert_eq!(record.token_type, "Bearer");
    assert_eq!(record.access_token_issued_at, UnixTime::from_millis(1_800_000_000_000));
    assert_eq!(record.access_token_expires_at, UnixTime::from_millis(1_800_000_300_000));
    assert!(record.refresh_token.as_ref().unwrap().constant_time_eq("frozen-refresh-token"));
    assert!(record.id_token.is_some());
    assert_eq!(record.scope.as_deref(), Some("openid offline_access"));
    assert_eq!(record.started_at, UnixTime::from_millis(1_800_000_000_000));
    assert_eq!(record.last_activity_at, UnixTime::from_millis(1_800_000_060_000));
    assert_eq!(record.last_seen_at, UnixTime::from_millis(1_800_000_060_000));
    assert_eq!(record.server_offset_ms, -1500);
}

#[test]
fn a_version_1_record_restores_a_working_session() {
    let mut session = Session::new(client(), metadata(), policy());
    let now = Now::new(UnixTime::from_millis(1_800_000_120_000), Duration::from_secs(5));
    session.restore(FROZEN.as_bytes(), now).unwrap();
    assert!(matches!(session.access_token(now), TokenState::Fresh(t) if t.expose() == "frozen-access-token"));
    assert_eq!(session.server_offset_ms(), -1500);
}

#[test]
fn what_this_build_writes_reads_back() {
    let mut h = Harness::signed_in(policy());
    let record = persisted(&h.actions()).pop().unwrap();
    let decoded = SessionRecord::decode(record.expose().as_bytes()).unwrap();
    let encoded_again = decoded.encode();
    assert_eq!(encoded_again.expose(), record.expose());
}
