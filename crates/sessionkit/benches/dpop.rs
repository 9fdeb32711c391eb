//! A DPoP proof as the desktop driver makes it (criterion): the core's header and claims (fresh
//! `jti`, `ath`, a nonce) signed by `SoftwareKeys` (ring, the key parsed once and kept).
//! `cargo bench -p sessionkit --bench dpop`. The pure-Rust `p256` signer (only the mobile
//! cross-check's code, without `mobile-crypto`) is measured by `cargo bench -p sessionkit-core --bench hot_path -- dpop`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sessionkit::dpop::{DpopAlgorithm, DpopKeys, SoftwareKeys};
use sessionkit_core::oidc::dpop::{ProofFor, UnsignedProof};
use sessionkit_core::url::Url;
use sessionkit_core::{Secret, UnixTime};

fn proof(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let keys = SoftwareKeys::default();
    let key = runtime.block_on(keys.create(DpopAlgorithm::Es256)).unwrap();
    let url = Url::parse("https://api.example/v1/orders?page=2").unwrap();
    let token = Secret::from("a".repeat(900));
    let request = ProofFor {
        method: "GET",
        url: &url,
        access_token: Some(&token),
        nonce: Some("server-nonce-0123456789"),
        issued_at: UnixTime::from_secs(1_800_000_000),
    };
    c.bench_function("dpop/proof_es256_desktop", |b| {
        b.iter(|| {
            let unsigned = UnsignedProof::new(key.algorithm, &key.public_key, black_box(&request)).unwrap();
            let signature = runtime.block_on(keys.sign(&key, unsigned.signing_input())).unwrap();
            unsigned.finish(&signature).unwrap()
        })
    });
}

criterion_group!(benches, proof);
criterion_main!(benches);
