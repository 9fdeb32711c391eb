use std::time::Duration;

use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::id_token::IdTokenError;
use sessionkit_core::session::{BACKOFF_CAP, RETRY_AFTER_CAP};
use sessionkit_core::{
    Action, Anomaly, CoreError, EndReason, Keys, RefreshStart, SessionEvent, SessionRecord, TokenState, UnixTime,
};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);

/// Signed in with a 300 s token: due at 240 s (60 s lead), expired at 300 s.
fn due() -> Harness {
    let mut h = Harness::signed_in(policy());
    h.drain();
    h.clock.advance(240 * SEC);
    h
}

#[test]
fn token_states_across_a_tokens_life() {
    let mut h = Harness::signed_in(policy());
    h.clock.advance(239 * SEC);
    assert_eq!(h.token().as_deref(), Some("at1"));
    h.clock.advance(SEC);
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Renewable);

    // Without a refresh token the token is used until it expires, then the session is dead.
    let mut h = Harness::signed_out(policy());
    h.login("alice", "at1", None, 300).unwrap();
    h.clock.advance(299 * SEC);
    assert_eq!(h.token().as_deref(), Some("at1"));
    h.clock.advance(SEC);
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::AccessTokenExpired));
    h.drain();
    h.session.handle_timeout(h.clock.now());
    assert!(matches!(h.actions().as_slice(), [Action::Wipe]));
}

#[test]
fn the_timer_refreshes_ahead_of_expiry() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    assert_eq!(h.session.poll_timeout(), Some(h.clock.wall().saturating_add(240 * SEC)));
    h.run_until(h.clock.wall().saturating_add(250 * SEC));
    assert_eq!(h.clock.wall(), UnixTime::from_secs(START + 240), "stopped at the refresh");
    // run_until consumed the Refresh action; the session waits for its answer.
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::InFlight);
}

#[test]
fn without_background_refresh_only_callers_refresh() {
    let policy = sessionkit_core::SessionPolicy::builder().background_refresh(false).build().unwrap();
    let mut h = Harness::signed_in(policy);
    h.drain();
    let events = h.run_until(h.clock.wall().saturating_add(250 * SEC));
    assert!(events.is_empty(), "{events:?}");
    assert!(h.actions().is_empty(), "the timer queued no refresh");
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Renewable);
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::Started);
}

#[test]
fn short_tokens_refresh_at_half_life_not_in_a_loop() {
    let mut h = Harness::signed_out(policy());
    h.login("alice", "at1", Some("rt1"), 10).unwrap();
    let status = h.session.status().unwrap();
    assert_eq!(status.refresh_due_at, h.clock.wall().saturating_add(5 * SEC));
}

#[test]
fn one_refresh_however_many_callers() {
    let mut h = due();
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::Started);
    for _ in 0..100 {
        assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::InFlight);
    }
    let actions = h.actions();
    assert_eq!(actions.iter().filter(|a| matches!(a, Action::Refresh(_))).count(), 1);
    let Some(Action::Refresh(request)) = actions.first() else { panic!("{actions:?}") };
    assert_eq!(request.url.as_str(), "https://idp.example/token");
    assert_eq!(request.body.as_ref().unwrap().expose(), "grant_type=refresh_token&refresh_token=rt1&client_id=app");
}

#[test]
fn rotation_is_persisted_before_it_is_announced() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.drain();
    let absolute = h.session.status().unwrap().absolute_deadline;
    h.refresh_with(&token_body("at2", Some("rt2"), None, 300)).unwrap();
    assert_eq!(h.token().as_deref(), Some("at2"));

    let actions = h.actions();
    let records = persisted(&actions);
    assert_eq!(records.len(), 1);
    let record = SessionRecord::decode(records[0].expose().as_bytes()).unwrap();
    assert!(record.refresh_token.unwrap().constant_time_eq("rt2"));
    assert!(record.access_token.constant_time_eq("at2"));
    assert_eq!(record.access_token_expires_at, h.clock.wall().saturating_add(300 * SEC));

    let events = h.events();
    assert!(matches!(events.as_slice(), [SessionEvent::Refreshed { rotated: true, .. }]), "{events:?}");
    assert_eq!(h.session.status().unwrap().absolute_deadline, absolute, "refresh never extends the absolute limit");
}

#[test]
fn without_rotation_the_refresh_token_is_kept() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.drain();
    h.refresh_with(&token_body("at2", None, None, 300)).unwrap();
    let record = SessionRecord::decode(persisted(&h.actions())[0].expose().as_bytes()).unwrap();
    assert!(record.refresh_token.unwrap().constant_time_eq("rt1"));
    assert!(matches!(h.events().as_slice(), [SessionEvent::Refreshed { rotated: false, .. }]));
}

#[test]
fn invalid_grant_ends_the_session_without_retrying() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.drain();
    let err = h.refresh_with(&error_body(400, "invalid_grant")).unwrap_err();
    assert!(matches!(err, CoreError::TokenRefused(_)));
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::RefreshRejected));
    let actions = h.actions();
    assert!(matches!(actions.as_slice(), [Action::Wipe]), "no revocation of a dead token, no retry: {actions:?}");
    assert!(matches!(h.events().as_slice(), [SessionEvent::Expired { reason: EndReason::RefreshRejected, .. }]));
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::Impossible(EndReason::RefreshRejected));
    assert_eq!(h.session.poll_timeout(), None);
}

/// Issue 11, finding 4: a refusal of the client, not of the grant, says nothing about the user's
/// session. It is kept, the old token stays usable while valid, and the refresh backs off.
#[test]
fn a_refusal_that_is_not_the_grants_keeps_the_session() {
    for (status, code, configuration) in [
        (400, "invalid_client", true),
        (401, "invalid_client", true),
        (400, "unauthorized_client", true),
        (400, "unsupported_grant_type", true),
        (401, "invalid_token", false),
        (400, "invalid_request", false),
    ] {
        let mut h = due();
        h.session.request_refresh(h.clock.now());
        h.drain();
        let err = h.refresh_with(&error_body(status, code)).unwrap_err();
        let CoreError::RefreshDeclined(error, wait) = &err else { panic!("{code}: {err:?}") };
        assert_eq!(error.code.as_str(), code);
        assert_eq!(*wait, Some(SEC), "{code}: backs off like a transient failure");
        let message = err.to_string();
        assert!(message.contains(code) && message.contains("the session is kept"), "{message}");
        assert!(!message.contains("Other("), "no Debug text: {message}");
        let action = sessionkit_core::SessionError::from(err);
        assert_eq!(matches!(action, sessionkit_core::SessionError::Misconfigured { .. }), configuration, "{action:?}");
        assert!(!matches!(action, sessionkit_core::SessionError::ReauthenticationRequired { .. }), "{action:?}");
        assert!(h.actions().is_empty(), "{code}: nothing wiped or revoked");
        assert!(h.events().is_empty(), "{code}: no end");
        assert_eq!(h.token().as_deref(), Some("at1"), "{code}: the valid token stays usable");
        let until = h.clock.wall().saturating_add(SEC);
        assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::BackingOff { until });
    }
    // A proxy's 401 that is not an OAuth error at all: kept too.
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    let err = h.refresh_with(&HttpResponse::new(401, b"{\"message\":\"Unauthorized\"}".to_vec())).unwrap_err();
    assert!(matches!(err, CoreError::TokenMalformed(_)), "{err:?}");
    assert_eq!(h.token().as_deref(), Some("at1"));
}

/// Issue 11, finding 4: OpenID Connect Core 12.2 lets a refresh answer carry the sign-in's ID
/// token again, with its original `iat`; that is no anomaly.
#[test]
fn a_refreshed_id_token_with_the_original_iat_is_accepted() {
    let mut h = Harness::signed_in(policy());
    let signed_in_at = h.clock.wall();
    h.drain();
    // Long after sign-in (past the 10 min an `iat` may be old at sign-in), kept alive by activity.
    for _ in 0..4 {
        h.clock.advance(240 * SEC);
        h.session.record_activity(h.clock.now());
        h.session.request_refresh(h.clock.now());
        h.drain();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID,
            "iat": signed_in_at.as_secs(), "exp": signed_in_at.as_secs() + 3600,
        });
        let original = jwt(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims, b"good");
        h.refresh_with(&token_body("at2", Some("rt2"), Some(&original), 300)).unwrap();
        h.drain();
    }
    assert!(h.session.status().is_some());
    // A future `iat` is still refused.
    h.clock.advance(240 * SEC);
    h.session.request_refresh(h.clock.now());
    h.drain();
    let future = id_token("alice", None, h.clock.wall().saturating_add(3600 * SEC));
    assert_eq!(
        h.refresh_with(&token_body("at3", Some("rt3"), Some(&future), 300)).unwrap_err(),
        CoreError::IdToken(IdTokenError::IssuedAt)
    );
}

#[test]
fn transient_failures_keep_the_session_and_honour_retry_after() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.drain();
    let busy = HttpResponse::new(503, b"busy".to_vec()).with_header("Retry-After", "30");
    let err = h.refresh_with(&busy).unwrap_err();
    assert_eq!(err, CoreError::Transient { status: Some(503), retry_after: Some(30 * SEC) });
    assert!(h.actions().is_empty(), "nothing wiped");
    // The old token still works until it expires.
    assert_eq!(h.token().as_deref(), Some("at1"));
    let until = h.clock.wall().saturating_add(30 * SEC);
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::BackingOff { until });
    assert_eq!(h.session.poll_timeout(), Some(until));
    h.clock.advance(30 * SEC);
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::Started);
}

#[test]
fn retry_after_is_capped() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    let limited = HttpResponse::new(429, Vec::new()).with_header("Retry-After", "86400");
    h.refresh_with(&limited).unwrap_err();
    let until = h.clock.wall().saturating_add(RETRY_AFTER_CAP);
    assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::BackingOff { until });
}

#[test]
fn network_failures_back_off_exponentially_to_a_cap() {
    let mut h = due();
    let mut delays = Vec::new();
    for _ in 0..9 {
        assert_eq!(h.session.request_refresh(h.clock.now()), RefreshStart::Started);
        h.session.handle_refresh_failure(h.clock.now());
        let RefreshStart::BackingOff { until } = h.session.request_refresh(h.clock.now()) else { panic!() };
        let delay = until.saturating_duration_since(h.clock.wall());
        delays.push(delay.as_secs());
        h.clock.advance(delay);
        // Keep the session alive for the test: the idle limit is not what is tested here.
        h.session.record_activity(h.clock.now());
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(BACKOFF_CAP, 60 * SEC);
    assert!(h.actions().iter().all(|a| !matches!(a, Action::Wipe)));
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Renewable, "expired, still renewable");
}

#[test]
fn an_unreadable_answer_is_transient() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    let err = h.refresh_with(&HttpResponse::new(200, b"<html>captive portal</html>".to_vec())).unwrap_err();
    assert!(matches!(err, CoreError::TokenMalformed(_)));
    assert!(matches!(h.session.request_refresh(h.clock.now()), RefreshStart::BackingOff { .. }));
}

#[test]
fn a_refreshed_id_token_for_another_user_ends_the_session() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.drain();
    let other = id_token("mallory", None, h.clock.wall());
    let err = h.refresh_with(&token_body("at2", Some("rt2"), Some(&other), 300)).unwrap_err();
    assert_eq!(err, CoreError::IdToken(IdTokenError::SubjectChanged));
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::Anomaly));
    let events = h.events();
    assert!(
        events.iter().any(|e| matches!(e, SessionEvent::AnomalySuspected { anomaly: Anomaly::SubjectChanged, .. }))
    );
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::Wipe)));
    assert!(actions.iter().any(|a| matches!(a, Action::Revoke(r) if r.token.constant_time_eq("rt2"))));
}

#[test]
fn a_refreshed_id_token_for_the_same_user_is_accepted() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    let same = id_token("alice", None, h.clock.wall());
    h.refresh_with(&token_body("at2", Some("rt2"), Some(&same), 300)).unwrap();
    assert_eq!(h.token().as_deref(), Some("at2"));
}

#[test]
fn an_answer_arriving_after_logout_is_revoked_not_used() {
    let mut h = due();
    h.session.request_refresh(h.clock.now());
    h.session.logout(h.clock.now()).unwrap();
    h.drain();
    let err = h.refresh_with(&token_body("at2", Some("rt2"), None, 300)).unwrap_err();
    assert_eq!(err, CoreError::NoSession(EndReason::SignedOut));
    assert!(matches!(h.actions().as_slice(), [Action::Revoke(r)] if r.token.constant_time_eq("rt2")));
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::SignedOut));
}

#[test]
fn a_refresh_answer_nobody_asked_for_is_ignored() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    let err = h.refresh_with(&token_body("at9", Some("rt9"), None, 300)).unwrap_err();
    assert!(matches!(err, CoreError::NoSession(_)));
    assert_eq!(h.token().as_deref(), Some("at1"));
}

#[test]
fn the_access_token_lifetime_counts_from_the_request() {
    let mut h = due();
    let sent = h.clock.now();
    h.session.request_refresh(sent);
    h.clock.advance(3 * SEC);
    h.session
        .handle_refresh_response(&token_body("at2", None, None, 300), &TestVerifier, Keys::Cached, h.clock.now())
        .unwrap();
    assert_eq!(h.session.status().unwrap().access_expires_at, sent.wall.saturating_add(300 * SEC));
}
