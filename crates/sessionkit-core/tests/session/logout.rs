use sessionkit_core::{Action, EndReason, Revocation, SessionEvent, TokenKind, TokenState};

use crate::harness::*;

#[test]
fn logout_wipes_first_then_revokes_then_offers_end_session() {
    let mut h = Harness::signed_in(policy());
    let session_id = h.session.status().unwrap().session_id;
    h.drain();
    let end = h.session.logout(h.clock.now()).unwrap().expect("provider has an end_session_endpoint");
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::SignedOut));

    let actions = h.actions();
    // Wipe first; then the refresh token (which ends the grant at most providers), then the
    // access token (for providers where it would outlive its refresh token).
    let [Action::Wipe, Action::Revoke(refresh), Action::Revoke(access)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let request = refresh.request();
    assert_eq!(request.url.as_str(), "https://idp.example/token/revocation");
    assert_eq!(request.body.unwrap().expose(), "token=rt1&token_type_hint=refresh_token&client_id=app");
    assert_eq!(access.request().body.unwrap().expose(), "token=at1&token_type_hint=access_token&client_id=app");

    assert_eq!(h.events(), vec![SessionEvent::LoggedOut { session_id }]);
    let url = sessionkit_core::url::Url::parse(end.url.expose()).unwrap();
    let get = |n: &str| url.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned());
    assert!(url.as_str().starts_with("https://idp.example/session/end?"));
    assert!(get("id_token_hint").is_some());
    assert_eq!(get("post_logout_redirect_uri").as_deref(), Some("http://127.0.0.1:4711/bye"));
    assert!(end.state.constant_time_eq(&get("state").unwrap()));
}

#[test]
fn logout_is_idempotent_and_cancels_pending_work() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    h.clock.advance(std::time::Duration::from_secs(250));
    h.session.request_refresh(h.clock.now());
    h.session.logout(h.clock.now()).unwrap();
    let actions = h.actions();
    assert!(actions.iter().all(|a| !matches!(a, Action::Refresh(_) | Action::Persist(_))), "{actions:?}");
    assert_eq!(h.events().iter().filter(|e| matches!(e, SessionEvent::LoggedOut { .. })).count(), 1);
    assert!(h.session.logout(h.clock.now()).unwrap().is_none());
    assert!(matches!(h.actions().as_slice(), [Action::Wipe]), "a second logout still wipes the store");
    assert!(h.events().is_empty(), "a second logout announces nothing");
    assert_eq!(h.session.poll_timeout(), None);
}

/// A logout drops a pending idle check with the other work of the ended session: what remains is
/// the wipe, then the revocations (refresh token first). (Before the session module was split,
/// the check stayed queued and cost the driver a lock and a read for a second, empty wipe.)
#[test]
fn logout_drops_a_pending_idle_check() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    h.clock.advance(policy().idle_timeout() + std::time::Duration::from_secs(1));
    h.session.request_refresh(h.clock.now());
    h.session.logout(h.clock.now()).unwrap();
    let actions: Vec<Action> = std::iter::from_fn(|| h.session.poll_action()).collect();
    assert!(
        matches!(
            actions.as_slice(),
            [
                Action::Wipe,
                Action::Revoke(Revocation { kind: TokenKind::RefreshToken, .. }),
                Action::Revoke(Revocation { kind: TokenKind::AccessToken, .. })
            ]
        ),
        "{actions:?}"
    );
}

#[test]
fn a_new_login_after_logout_starts_clean() {
    let mut h = Harness::signed_in(policy());
    let first = h.session.status().unwrap().session_id;
    h.session.logout(h.clock.now()).unwrap();
    h.drain();
    h.login("alice", "at2", Some("rt2"), 300).unwrap();
    let actions = h.actions();
    assert!(actions.iter().all(|a| !matches!(a, Action::Revoke(_))), "the old token was revoked at logout already");
    assert_ne!(h.session.status().unwrap().session_id, first);
    assert_eq!(h.token().as_deref(), Some("at2"));
}
