//! Benchmarks: "what is the access token now?" (the hot path every API call takes),
//! token-response parsing, and a DPoP proof (ES256 with the p256 crate, the native signer).
//! Run with `cargo bench -p sessionkit-core`.
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

/// A DPoP proof for an API call: header and claims (fresh `jti`, `ath`, nonce), the signature
/// with the P-256 key natively used (`p256`, as `sessionkit`'s `SoftwareKeys`), and assembly.
fn dpop_proof(c: &mut Criterion) {
    use p256::ecdsa::signature::Signer as _;
    use sessionkit_core::oidc::dpop::{DpopAlgorithm, DpopError, DpopPublicKey, DpopSigner, ProofFor, proof};

    struct Key(p256::ecdsa::SigningKey);
    impl DpopSigner for Key {
        fn algorithm(&self) -> DpopAlgorithm {
            DpopAlgorithm::Es256
        }
        fn public_key(&self) -> DpopPublicKey {
            use base64::Engine as _;
            let point = self.0.verifying_key().to_encoded_point(false);
            let b64 = |c: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c);
            DpopPublicKey::P256 { x: b64(point.x().unwrap()), y: b64(point.y().unwrap()) }
        }
        fn sign(&self, input: &[u8]) -> Result<Vec<u8>, DpopError> {
            let signature: p256::ecdsa::Signature = self.0.sign(input);
            Ok(signature.to_bytes().to_vec())
        }
    }
    let key = Key(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap());
    let url = sessionkit_core::url::Url::parse("https://api.example/v1/orders?page=2").unwrap();
    let token = sessionkit_core::Secret::from("a".repeat(900));
    let request = ProofFor {
        method: "GET",
        url: &url,
        access_token: Some(&token),
        nonce: Some("server-nonce-0123456789"),
        issued_at: UnixTime::from_secs(1_800_000_000),
    };
    c.bench_function("dpop/proof_es256", |b| b.iter(|| proof(black_box(&key), black_box(&request)).unwrap()));
}

criterion_group!(benches, access_token, parse_token_response, dpop_proof);
criterion_main!(benches);
