//! Benchmarks: "what is the access token now?" (the hot path every API call takes) and
//! token-response parsing. Run with `cargo bench -p sessionkit-core`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, dead_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sessionkit_core::http::HttpResponse;
use sessionkit_core::oidc::token::TokenOutcome;
use sessionkit_core::{TokenState, UnixTime};

#[path = "../tests/session/harness.rs"]
mod harness;

use harness::{Harness, policy, token_body};

fn access_token(c: &mut Criterion) {
    let mut h = Harness::signed_in(policy());
    h.drain();
    h.clock.advance(Duration::from_secs(30));
    let now = h.clock.now();
    assert!(matches!(h.session.access_token(now), TokenState::Fresh(_)));
    c.bench_function("access_token/fresh", |b| {
        b.iter(|| match black_box(&h.session).access_token(black_box(now)) {
            TokenState::Fresh(token) => token.len(),
            _ => 0,
        })
    });
}

fn parse_token_response(c: &mut Criterion) {
    let id = harness::id_token("alice", None, UnixTime::from_secs(harness::START));
    let response = token_body(&"a".repeat(900), Some(&"r".repeat(40)), Some(&id), 300);
    assert!(matches!(TokenOutcome::classify(&response, UnixTime::EPOCH), TokenOutcome::Tokens(_)));
    c.bench_function("token_response/parse", |b| {
        b.iter(|| TokenOutcome::classify(black_box(&response), UnixTime::EPOCH))
    });
    let error =
        HttpResponse::new(400, br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#.to_vec());
    c.bench_function("token_response/parse_error", |b| {
        b.iter(|| TokenOutcome::classify(black_box(&error), UnixTime::EPOCH))
    });
}

criterion_group!(benches, access_token, parse_token_response);
criterion_main!(benches);
