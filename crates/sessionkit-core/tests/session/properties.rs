//! Property tests of the invariants, over random schedules and random bytes.

use std::time::Duration;

use proptest::prelude::*;
use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::authorize::AuthorizeOptions;
use sessionkit_core::oidc::client::Issuer;
use sessionkit_core::oidc::discovery::ProviderMetadata;
use sessionkit_core::oidc::id_token::{IdTokenCheck, validate_id_token};
use sessionkit_core::oidc::token::TokenOutcome;
use sessionkit_core::{Action, Secret, SessionPolicy, SessionRecord, TokenState, UnixTime};

use crate::harness::*;

#[derive(Clone, Debug)]
enum Step {
    Wait(u64),
    Activity,
    Timer,
    AskForToken,
    RefreshAnswer(u8),
    ClockBack(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..400).prop_map(Step::Wait),
        2 => Just(Step::Activity),
        2 => Just(Step::Timer),
        3 => Just(Step::AskForToken),
        3 => (0u8..5).prop_map(Step::RefreshAnswer),
        1 => (1u64..4000).prop_map(Step::ClockBack),
    ]
}

fn small_policy() -> SessionPolicy {
    SessionPolicy::builder()
        .idle_timeout(Duration::from_secs(600))
        .absolute_lifetime(Duration::from_secs(3600))
        .warning_lead(Duration::from_secs(60))
        .refresh_lead(Duration::from_secs(30))
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No access token is ever handed out after the idle or absolute limit, and refresh never
    /// moves the absolute limit, whatever happens in between. The model measures time by the
    /// monotonic clock, which the user cannot set back.
    #[test]
    fn no_token_after_a_limit_and_absolute_is_fixed(steps in proptest::collection::vec(step(), 1..120)) {
        let policy = small_policy();
        let mut h = Harness::signed_out(policy);
        h.login("alice", "at0", Some("rt0"), 300).unwrap();
        h.drain();
        let absolute = h.session.status().unwrap().absolute_deadline;
        let mut elapsed = Duration::ZERO; // true time since sign-in
        let mut last_activity = Duration::ZERO;
        let mut n = 0;
        for step in steps {
            match step {
                Step::Wait(secs) => { h.clock.advance(Duration::from_secs(secs)); elapsed += Duration::from_secs(secs); }
                Step::Activity => {
                    h.session.record_activity(h.clock.now());
                    if elapsed < policy.idle_timeout() + last_activity && elapsed < policy.absolute_lifetime() {
                        last_activity = elapsed;
                    }
                }
                Step::Timer => h.session.handle_timeout(h.clock.now()),
                Step::AskForToken => { h.session.request_refresh(h.clock.now()); }
                Step::RefreshAnswer(kind) => {
                    n += 1;
                    let response = match kind {
                        0 => token_body(&format!("at{n}"), Some(&format!("rt{n}")), None, 300),
                        1 => token_body(&format!("at{n}"), None, None, 120),
                        2 => HttpResponse::new(503, Vec::new()),
                        3 => error_body(400, "invalid_grant"),
                        _ => HttpResponse::new(200, b"garbage".to_vec()),
                    };
                    let _ = h.refresh_with(&response);
                }
                Step::ClockBack(secs) => h.clock.set_wall_back(Duration::from_secs(secs)),
            }
            h.actions();
            h.events();
            if let TokenState::Fresh(_) = h.session.access_token(h.clock.now()) {
                prop_assert!(elapsed < policy.absolute_lifetime(), "token after the absolute limit");
                prop_assert!(elapsed < last_activity + policy.idle_timeout(), "token after the idle limit");
            }
            if let Some(status) = h.session.status() {
                prop_assert_eq!(status.absolute_deadline, absolute);
            }
        }
    }

    #[test]
    fn token_parsing_never_panics(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512), retry in ".{0,40}") {
        let response = HttpResponse::new(status, body).with_header("retry-after", &retry).with_header("date", &retry);
        let _ = TokenOutcome::classify(&response, UnixTime::from_secs(START));
        let _ = response.server_date();
    }

    #[test]
    fn json_shaped_token_bodies_never_panic(at in any::<Option<String>>(), ty in any::<Option<String>>(), exp in any::<Option<i64>>(), rt in any::<Option<String>>()) {
        let body = serde_json::json!({"access_token": at, "token_type": ty, "expires_in": exp, "refresh_token": rt});
        let _ = TokenOutcome::classify(&HttpResponse::new(200, body.to_string().into_bytes()), UnixTime::EPOCH);
    }

    #[test]
    fn discovery_record_and_id_token_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), text in ".{0,300}") {
        let issuer = Issuer::parse(ISSUER).unwrap();
        let _ = ProviderMetadata::from_json(&issuer, &bytes);
        let _ = SessionRecord::decode(&bytes);
        let _ = SessionRecord::decode(text.as_bytes());
        let check = IdTokenCheck {
            issuer: ISSUER, client_id: CLIENT_ID, nonce: None, subject: None, max_age: None,
            server_now: UnixTime::from_secs(START), leeway: Duration::from_secs(60), provider_algorithms: &[],
        };
        let _ = validate_id_token(&Secret::from(text.as_str()), &check, &TestVerifier);
        let dotted = format!("{text}.{text}.{text}");
        let _ = validate_id_token(&Secret::new(dotted), &check, &TestVerifier);
    }

    #[test]
    fn callbacks_never_panic(query in ".{0,300}", path in "[a-z/]{0,10}") {
        let h = Harness::signed_out(policy());
        let (_, mut pending) = h.session.begin_login(&AuthorizeOptions::default(), None, h.clock.now()).unwrap();
        let _ = pending.accept_callback(&format!("http://127.0.0.1:4711/{path}?{query}"));
        let _ = pending.accept_callback(&query);
    }

    #[test]
    fn restore_of_random_bytes_never_wipes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut h = Harness::signed_out(policy());
        let _ = h.session.restore(&bytes, h.clock.now());
        prop_assert!(h.actions().iter().all(|a| !matches!(a, Action::Wipe)));
    }
}
