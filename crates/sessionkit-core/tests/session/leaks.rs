//! No secret in any `Debug` or `Display` of anything the core hands out, over a whole session.

use std::time::Duration;

use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::authorize::AuthorizeOptions;
use sessionkit_core::{Keys, SessionError};

use crate::harness::*;

const SECRETS: [&str; 6] = [
    "SECRET-ACCESS-ONE",
    "SECRET-REFRESH-ONE",
    "SECRET-ACCESS-TWO",
    "SECRET-REFRESH-TWO",
    "SECRET-CODE",
    "SECRET-ID-TOKEN-SIGNATURE",
];

fn assert_clean(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked in: {text}");
    }
}

#[test]
fn a_whole_session_leaks_nothing() {
    let mut h = Harness::signed_out(policy());
    let mut seen = String::new();
    let mut log = |h: &mut Harness, extra: String| {
        seen.push_str(&extra);
        for action in h.actions() {
            seen.push_str(&format!("{action:?}\n"));
        }
        for event in h.events() {
            seen.push_str(&format!("{event:?}\n"));
        }
        seen.push_str(&format!("{:?}\n{:?}\n", h.session, h.session.status()));
    };

    let (url, mut pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let forged = pending.accept_callback("http://127.0.0.1:4711/cb?state=x&code=SECRET-CODE").unwrap_err();
    let callback = format!("http://127.0.0.1:4711/cb?state={state}&code=SECRET-CODE&iss=https%3A%2F%2Fidp.example");
    let code = pending.accept_callback(&callback).unwrap();
    let exchange = pending.token_request(&code);
    log(&mut h, format!("{forged} {forged:?} {code:?} {exchange:?} {pending:?}\n"));

    let id = id_token("alice", Some(pending.nonce().expose()), h.clock.wall());
    let id = format!("{}SECRET-ID-TOKEN-SIGNATURE", &id[..id.rfind('.').unwrap() + 1]);
    let response = token_body("SECRET-ACCESS-ONE", Some("SECRET-REFRESH-ONE"), Some(&id), 300);
    // The tampered signature is refused; the error must not quote the token.
    let refused = h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::JustFetched, h.clock.now());
    let refused = refused.unwrap_err();
    log(&mut h, format!("{refused} {refused:?} {} {response:?}\n", SessionError::from(refused.clone())));

    let good = id_token("alice", Some(pending.nonce().expose()), h.clock.wall());
    let response = token_body("SECRET-ACCESS-ONE", Some("SECRET-REFRESH-ONE"), Some(&good), 300);
    h.session.handle_login_response(&pending, &response, &TestVerifier, Keys::Cached, h.clock.now()).unwrap();
    let token_state = format!("{:?}\n", h.session.access_token(h.clock.now()));
    log(&mut h, token_state);

    h.clock.advance(Duration::from_secs(250));
    h.session.request_refresh(h.clock.now());
    log(&mut h, String::new());
    let garbled = HttpResponse::new(200, br#"{"access_token":"SECRET-ACCESS-TWO","token_type":5}"#.to_vec());
    let err = h.refresh_with(&garbled).unwrap_err();
    log(&mut h, format!("{err} {err:?} {}\n", SessionError::from(err.clone())));
    h.clock.advance(Duration::from_secs(2));
    h.session.request_refresh(h.clock.now());
    h.refresh_with(&token_body("SECRET-ACCESS-TWO", Some("SECRET-REFRESH-TWO"), None, 300)).unwrap();
    log(&mut h, String::new());

    let end = h.session.logout(h.clock.now()).unwrap();
    log(&mut h, format!("{end:?}\n"));

    assert_clean(&seen);
    assert!(
        seen.contains("LoggedIn") && seen.contains("Refreshed") && seen.contains("LoggedOut"),
        "the log covered the session"
    );
}
