use std::time::Duration;

use sessionkit_core::{
    Action, Anomaly, EndReason, ExpiryReason, SessionEvent, SessionPolicy, SessionRecord, TokenKind, TokenState,
    UnixTime,
};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

/// 5 min idle, 1 h absolute, 1 min warning; tokens live 1 h so refresh stays out of the way.
fn short_policy() -> SessionPolicy {
    SessionPolicy::builder().idle_timeout(5 * MIN).absolute_lifetime(60 * MIN).warning_lead(MIN).build().unwrap()
}

fn signed_in() -> Harness {
    let mut h = Harness::signed_out(short_policy());
    h.login("alice", "at1", Some("rt1"), 3600).unwrap();
    h.drain();
    h
}

#[test]
fn no_token_after_the_idle_limit_even_before_any_timer_runs() {
    let mut h = signed_in();
    h.clock.advance(5 * MIN - SEC);
    assert_eq!(h.token().as_deref(), Some("at1"));
    h.clock.advance(SEC);
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::IdleTimeout));
}

#[test]
fn idle_timeout_warns_then_ends_wipes_and_revokes() {
    let mut h = signed_in();
    let start = h.clock.wall();
    let events = h.run_until(start.saturating_add(10 * MIN));
    let [
        SessionEvent::ExpiringSoon { reason: ExpiryReason::Idle, time_left, .. },
        SessionEvent::Expired { reason: EndReason::IdleTimeout, .. },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*time_left, MIN);
    assert_eq!(h.session.end_reason(), Some(EndReason::IdleTimeout));
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn the_idle_limit_ends_the_session_at_the_exact_moment() {
    let mut h = signed_in();
    let start = h.clock.wall();
    h.run_until(start.saturating_add(5 * MIN - SEC));
    assert!(h.session.end_reason().is_none());
    h.clock.advance(SEC);
    h.session.handle_timeout(h.clock.now());
    let actions = h.actions();
    assert!(
        matches!(actions.as_slice(), [Action::Wipe, Action::Revoke(r), Action::Revoke(a)]
            if r.token.constant_time_eq("rt1") && r.kind == TokenKind::RefreshToken
                && a.token.constant_time_eq("at1") && a.kind == TokenKind::AccessToken),
        "{actions:?}"
    );
}

#[test]
fn activity_postpones_the_idle_limit_and_rearms_the_warning() {
    let mut h = signed_in();
    for _ in 0..3 {
        let events = h.run_until(h.clock.wall().saturating_add(4 * MIN + 30 * SEC));
        assert!(
            matches!(events.as_slice(), [SessionEvent::ExpiringSoon { reason: ExpiryReason::Idle, .. }]),
            "{events:?}"
        );
        h.session.record_activity(h.clock.now());
    }
    assert_eq!(h.token().as_deref(), Some("at1"));
    assert_eq!(h.session.status().unwrap().idle_deadline, h.clock.wall().saturating_add(5 * MIN));
}

#[test]
fn activity_after_the_idle_limit_does_not_revive_the_session() {
    let mut h = signed_in();
    h.clock.advance(6 * MIN);
    h.session.record_activity(h.clock.now());
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::IdleTimeout));
    assert!(h.events().iter().any(|e| matches!(e, SessionEvent::Expired { reason: EndReason::IdleTimeout, .. })));
}

#[test]
fn activity_is_persisted_at_most_every_quarter_idle() {
    let mut h = signed_in();
    let mut writes = 0;
    for _ in 0..60 {
        h.clock.advance(5 * SEC);
        h.session.record_activity(h.clock.now());
        writes += persisted(&h.actions()).len();
    }
    // 5 minutes of activity every 5 s; a write at most every min(idle/4, 60 s) = 60 s.
    assert_eq!(writes, 5);
}

#[test]
fn the_absolute_limit_ends_an_active_session() {
    let mut h = signed_in();
    let start = h.clock.wall();
    let mut warned = false;
    let mut refreshed = 0;
    // Active every minute for 61 minutes; tokens are refreshed when due.
    for _ in 0..61 {
        let events = h.run_until(h.clock.wall().saturating_add(MIN));
        warned |= events.iter().any(|e| matches!(e, SessionEvent::ExpiringSoon { reason: ExpiryReason::Absolute, .. }));
        if matches!(h.session.access_token(h.clock.now()), TokenState::Renewable) {
            h.session.request_refresh(h.clock.now());
            h.drain();
            refreshed += 1;
            h.refresh_with(&token_body(&format!("at-{refreshed}"), Some(&format!("rt-{refreshed}")), None, 600))
                .unwrap();
        }
        h.session.record_activity(h.clock.now());
        if h.clock.wall() >= start.saturating_add(60 * MIN) {
            break;
        }
    }
    assert!(warned, "warned before the absolute end");
    assert!(refreshed > 0);
    assert_eq!(h.session.end_reason(), Some(EndReason::AbsoluteLifetime));
    assert!(h.token().is_none());
}

#[test]
fn a_clock_set_back_is_reported_and_does_not_stretch_the_session() {
    let mut h = signed_in();
    h.clock.advance(4 * MIN);
    h.session.handle_timeout(h.clock.now());
    h.drain();
    // The user sets the clock back an hour; a minute and a bit later the idle limit has passed.
    h.clock.set_wall_back(60 * MIN);
    h.clock.advance(61 * SEC);
    h.session.handle_timeout(h.clock.now());
    let events = h.events();
    assert!(
        events.iter().any(|e| matches!(e, SessionEvent::AnomalySuspected { anomaly: Anomaly::ClockJumpedBack { by }, .. } if *by >= 59 * MIN)),
        "{events:?}"
    );
    assert_eq!(h.session.end_reason(), Some(EndReason::IdleTimeout));
}

#[test]
fn the_high_water_mark_is_persisted_for_restarts() {
    let mut h = signed_in();
    h.clock.advance(2 * MIN);
    h.session.record_activity(h.clock.now());
    let record = SessionRecord::decode(persisted(&h.actions())[0].expose().as_bytes()).unwrap();
    assert_eq!(record.last_seen_at, h.clock.wall());
    assert_eq!(record.last_activity_at, h.clock.wall());
}

#[test]
fn store_write_failures_are_reported_and_retried() {
    let mut h = signed_in();
    h.session.handle_persist_failed(h.clock.now());
    assert!(matches!(h.events().as_slice(), [SessionEvent::StorageProblem { .. }]));
    assert_eq!(h.token().as_deref(), Some("at1"), "the session continues in memory");
    assert_eq!(h.session.poll_timeout(), Some(h.clock.wall().saturating_add(10 * SEC)));
    h.clock.advance(10 * SEC);
    h.session.handle_timeout(h.clock.now());
    assert_eq!(persisted(&h.actions()).len(), 1);
}

#[test]
fn timers_always_make_progress() {
    // Whatever the session's state, running every timer up to 10 hours takes a bounded number of steps.
    let mut h = signed_in();
    let mut steps = 0;
    let end = h.clock.wall().saturating_add(10 * 60 * MIN);
    while let Some(at) = h.session.poll_timeout() {
        assert!(at >= UnixTime::EPOCH);
        if at > end {
            break;
        }
        h.clock.advance_to(at);
        h.session.handle_timeout(h.clock.now());
        h.drain();
        steps += 1;
        assert!(steps < 100, "timer loop");
    }
    assert_eq!(h.session.end_reason(), Some(EndReason::IdleTimeout));
}
