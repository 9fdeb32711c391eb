use std::time::Duration;

use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::authorize::AuthorizeOptions;
use sessionkit_core::oidc::id_token::IdTokenError;
use sessionkit_core::{Action, CoreError, EndReason, Keys, Session, SessionEvent, SessionRecord, TokenState, UnixTime};

use crate::harness::*;

#[test]
fn login_starts_a_session_persists_it_and_says_so() {
    let mut h = Harness::signed_out(policy());
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::NotSignedIn));
    h.login("alice", "at1", Some("rt1"), 300).unwrap();
    assert_eq!(h.token().as_deref(), Some("at1"));

    let actions = h.actions();
    let records = persisted(&actions);
    assert_eq!(records.len(), 1, "{actions:?}");
    let record = SessionRecord::decode(records[0].expose().as_bytes()).unwrap();
    assert_eq!(record.subject, "alice");
    assert_eq!(record.schema_version, 2);
    assert!(record.refresh_token.unwrap().constant_time_eq("rt1"));
    assert_eq!(record.started_at, h.clock.wall());

    let events = h.events();
    let [SessionEvent::LoggedIn { session_id, subject }] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(subject, "alice");
    assert_eq!(session_id.len(), 43, "a random 256-bit id, not derived from a token");
    assert_eq!(session_id, &record.session_id);
}

#[test]
fn a_wrong_nonce_is_refused_and_its_refresh_token_revoked() {
    let mut h = Harness::signed_out(policy());
    let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let forged = id_token("alice", Some("someone-elses-nonce"), h.clock.wall());
    let response = token_body("at", Some("rt"), Some(&forged), 300);
    let err = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now());
    assert_eq!(err, Err(CoreError::IdToken(IdTokenError::Nonce)));
    assert_eq!(h.session.access_token(h.clock.now()), TokenState::Dead(EndReason::NotSignedIn));
    let actions = h.actions();
    assert!(matches!(actions.as_slice(), [Action::Revoke(r)] if r.token.constant_time_eq("rt")), "{actions:?}");
    assert!(h.events().is_empty());
}

#[test]
fn a_login_response_without_id_token_is_refused() {
    let mut h = Harness::signed_out(policy());
    let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let response = token_body("at", None, None, 300);
    let err = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now());
    assert_eq!(err, Err(CoreError::MissingIdToken));
}

#[test]
fn login_failures_keep_the_current_session() {
    let mut h = Harness::signed_in(policy());
    h.drain();
    let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let busy = HttpResponse::new(503, Vec::new()).with_header("retry-after", "5");
    let err = h.session.handle_login_response(&pending, &busy, &TestVerifier, Keys::Cached, h.clock.now());
    assert_eq!(err, Err(CoreError::Transient { status: Some(503), retry_after: Some(Duration::from_secs(5)) }));
    let refused = error_body(400, "invalid_grant");
    assert!(h.session.handle_login_response(&pending, &refused, &TestVerifier, Keys::Cached, h.clock.now()).is_err());
    assert_eq!(h.token().as_deref(), Some("at1"));
    assert!(h.actions().is_empty(), "nothing wiped or revoked");
}

#[test]
fn every_login_is_a_fresh_session_and_revokes_the_old_refresh_token() {
    let mut h = Harness::signed_in(policy());
    let first = h.session.status().unwrap();
    h.drain();
    h.clock.advance(Duration::from_secs(30));
    h.login("bob", "at2", Some("rt2"), 300).unwrap();
    let second = h.session.status().unwrap();
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(second.subject, "bob");
    assert_eq!(second.started_at, h.clock.wall());
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::Revoke(r) if r.token.constant_time_eq("rt1"))), "{actions:?}");
    assert_eq!(h.token().as_deref(), Some("at2"));
}

#[test]
fn each_login_draws_new_state_nonce_and_pkce() {
    let h = Harness::signed_out(policy());
    let (a, _) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let (b, _) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    for name in ["state", "nonce", "code_challenge"] {
        let get = |u: &sessionkit_core::url::Url| u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert!(get(&a).is_some());
        assert_ne!(get(&a), get(&b), "{name}");
    }
}

/// A client clock 10 minutes off either way: the `Date` header's offset keeps ID token
/// validation right.
#[test]
fn clock_skew_of_ten_minutes_is_absorbed_by_the_server_offset() {
    for skew_secs in [600i64, -600] {
        let mut h = Harness::signed_out(policy());
        let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
        let server_now = h.clock.wall().offset_by_millis(skew_secs * 1000);
        let id = id_token("alice", Some(pending.nonce().expose()), server_now);
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(server_now.as_secs()));
        let response = token_body("at", Some("rt"), Some(&id), 300).with_header("Date", &date);
        h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now()).unwrap();
        assert_eq!(h.session.server_offset_ms(), skew_secs * 1000);
    }
}

/// Without a `Date` header (a browser cannot read one cross-origin) the server's clock is
/// unknown: ten minutes of skew either way still sign in, through a bounded extra leeway; a
/// server twenty minutes ahead does not. Once a `Date` header is seen, the normal leeway is back.
#[test]
fn without_a_date_header_ten_minutes_of_skew_pass_and_twenty_do_not() {
    for (skew_secs, accepted) in [(600i64, true), (-600, true), (1200, false)] {
        let mut h = Harness::signed_out(policy());
        let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
        let server_now = h.clock.wall().offset_by_millis(skew_secs * 1000);
        let id = id_token("alice", Some(pending.nonce().expose()), server_now);
        let response = token_body("at", Some("rt"), Some(&id), 300);
        let result = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now());
        if accepted {
            assert_eq!(result, Ok(()), "skew {skew_secs} s");
        } else {
            assert_eq!(result, Err(CoreError::IdToken(IdTokenError::IssuedAt)), "skew {skew_secs} s");
        }
    }
    // With the server's clock known from a Date header, a token claiming to be issued 10
    // minutes after that clock is refused.
    let mut h = Harness::signed_out(policy());
    let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let future = h.clock.wall().offset_by_millis(600_000);
    let id = id_token("alice", Some(pending.nonce().expose()), future);
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(h.clock.wall().as_secs()));
    let response = token_body("at", Some("rt"), Some(&id), 300).with_header("Date", &date);
    let err = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now());
    assert_eq!(err, Err(CoreError::IdToken(IdTokenError::IssuedAt)));
}

/// An unknown key, or one known only too short (the provider may have rotated since the keys
/// were cached): the driver is asked to refetch, and only the answer with fresh keys counts.
#[test]
fn an_unknown_or_short_key_with_cached_keys_asks_for_a_refetch_without_side_effects() {
    for kid in ["rotated", "short"] {
        let mut h = Harness::signed_out(policy());
        let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "nonce": pending.nonce().expose(),
            "iat": h.clock.wall().as_secs(), "exp": h.clock.wall().as_secs() + 600,
        });
        let token = jwt(serde_json::json!({"alg": "RS256", "kid": kid}), claims, b"good");
        let response = token_body("at", Some("rt"), Some(&token), 300);
        let err = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now());
        assert!(matches!(err, Err(CoreError::IdToken(IdTokenError::Signature(_)))), "{kid}");
        assert!(h.actions().is_empty(), "{kid}: no revocation yet: the driver will retry with fresh keys");
        let err = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::JustFetched, h.clock.now());
        let err = err.expect_err(kid);
        assert!(matches!(h.actions().as_slice(), [Action::Revoke(_)]), "{kid}");
        if kid == "short" {
            let shown = sessionkit_core::SessionError::from(err);
            assert!(matches!(shown, sessionkit_core::SessionError::Misconfigured { .. }), "{shown}");
        }
    }
}

/// A step-up asked for with `acr_values` is checked by the app against what the provider says
/// the sign-in met: the ID token's `acr` and `auth_time` are in the status, kept in the record
/// across a restart, and left as they are by a refresh (they describe the sign-in).
#[test]
fn the_sign_ins_acr_and_auth_time_are_in_the_status_the_record_and_survive_a_refresh() {
    let mut h = Harness::signed_out(policy());
    let options = AuthorizeOptions { acr_values: Some("urn:example:mfa".into()), ..AuthorizeOptions::default() };
    let (_, pending) = h.session.begin_login(&options, None, h.clock.now()).unwrap();
    let authenticated = h.clock.wall().saturating_sub(Duration::from_secs(30));
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "nonce": pending.nonce().expose(),
        "iat": h.clock.wall().as_secs(), "exp": h.clock.wall().as_secs() + 600,
        "auth_time": authenticated.as_secs(), "acr": "urn:example:mfa",
    });
    let id = jwt(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims, b"good");
    let response = token_body("at1", Some("rt1"), Some(&id), 300);
    h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now()).unwrap();

    let status = h.session.status().unwrap();
    assert_eq!(status.acr.as_deref(), Some("urn:example:mfa"));
    assert_eq!(status.authenticated_at, Some(UnixTime::from_secs(authenticated.as_secs())));
    let record = persisted(&h.actions()).pop().unwrap();
    let mut restored = Session::new(client(), metadata(), policy());
    restored.restore(record.expose().as_bytes(), h.clock.now()).unwrap();
    assert_eq!(restored.status().unwrap().acr, status.acr);
    assert_eq!(restored.status().unwrap().authenticated_at, status.authenticated_at);

    // A refresh whose ID token names another `acr` (or none) keeps the sign-in's.
    h.clock.advance(Duration::from_secs(200));
    h.session.request_refresh(h.clock.now());
    h.drain();
    let refreshed_claims = serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "acr": "0",
        "iat": h.clock.wall().as_secs(), "exp": h.clock.wall().as_secs() + 600,
    });
    let refreshed = jwt(serde_json::json!({"alg": "ES256", "kid": "k1"}), refreshed_claims, b"good");
    h.refresh_with(&token_body("at2", Some("rt2"), Some(&refreshed), 300)).unwrap();
    assert_eq!(h.token().as_deref(), Some("at2"));
    assert_eq!(h.session.status().unwrap().acr, status.acr);
    assert_eq!(h.session.status().unwrap().authenticated_at, status.authenticated_at);
}

/// `acr` is only reported: a value that is not printable text is not shown (never cleaned up
/// into one the provider did not send), and one that is not a string does not make the token
/// unreadable.
#[test]
fn an_odd_acr_is_not_shown_and_does_not_refuse_the_sign_in() {
    for odd in
        [serde_json::json!(1), serde_json::json!("mfa\u{1b}[31m"), serde_json::json!(["mfa"]), serde_json::json!({})]
    {
        let mut h = Harness::signed_out(policy());
        let (_, pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "nonce": pending.nonce().expose(),
            "iat": h.clock.wall().as_secs(), "exp": h.clock.wall().as_secs() + 600, "acr": odd,
        });
        let id = jwt(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims, b"good");
        let response = token_body("at1", Some("rt1"), Some(&id), 300);
        h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now()).unwrap();
        assert_eq!(h.session.status().unwrap().acr, None, "{odd}");
    }
}

#[test]
fn without_acr_or_auth_time_the_status_says_none() {
    let h = Harness::signed_in(policy());
    let status = h.session.status().unwrap();
    assert_eq!((status.acr, status.authenticated_at), (None, None));
}
