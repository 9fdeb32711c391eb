//! Client benchmarks against the real local provider: `cargo bench -p sessionkit`.
//!
//! 1. `access_token()` on a fresh token: polled once with a no-op waker (it completes without
//!    awaiting), median of 11 batches of 200,000 calls.
//! 2. A burst of 10,000 concurrent `access_token()` calls on an expired token: the token
//!    requests the provider counted (goal: exactly 1) and the burst's wall time against one
//!    refresh round trip (goal: within 1.5x), median of 5 runs each; and the same burst on a
//!    fresh token, which is what spawning and running 10,000 tasks costs by itself.
//! 3. Start-up with a stored session: `SessionClient::new` (discovery, JWKS, store read,
//!    restore), median of 15.
//! 4. `authorize()` for an API call on a DPoP-bound session (fresh token): the headers with a
//!    new ES256 proof, median of 11 batches of 2,000 calls; and on a Bearer session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs, unreachable_pub, dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use sessionkit::store::MemoryStore;
use sessionkit::{SessionClient, SessionPolicy};

#[path = "../tests/native/idp.rs"]
mod idp;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn lazy() -> SessionPolicy {
    SessionPolicy::builder().background_refresh(false).build().unwrap()
}

async fn hot_path() {
    let idp = idp::Idp::start(3600);
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    idp.login(&client).await;
    let mut context = Context::from_waker(Waker::noop());
    let mut batches = Vec::new();
    for _ in 0..11 {
        let calls = 200_000;
        let start = Instant::now();
        for _ in 0..calls {
            let mut call = std::pin::pin!(client.access_token());
            match call.as_mut().poll(&mut context) {
                Poll::Ready(Ok(token)) => {
                    std::hint::black_box(token);
                }
                other => panic!("a fresh token must be ready at once: {:?}", other.map(|r| r.is_ok())),
            }
        }
        batches.push(start.elapsed().as_nanos() as f64 / calls as f64);
    }
    println!("access_token() on a fresh token: median {:.1} ns per call (11 batches of 200,000)", median(batches));
}

/// 10,000 tasks asking for a token at once; the wall time in milliseconds.
async fn burst_of_10_000(client: &SessionClient) -> f64 {
    let start = Instant::now();
    let calls: Vec<_> = (0..10_000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0
}

async fn burst() {
    let idp = idp::Idp::start(1);
    let (client, _store) = idp.client(lazy()).await;
    idp.login(&client).await;
    let mut singles = Vec::new();
    let mut bursts = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let start = Instant::now();
        client.access_token().await.unwrap();
        singles.push(start.elapsed().as_secs_f64() * 1000.0);

        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = idp.refresh_count().await;
        bursts.push(burst_of_10_000(&client).await);
        requests.push(idp.refresh_count().await - before);
    }
    // The same burst on a fresh token: what 10,000 tasks cost with no refresh at all.
    let mut baselines = Vec::new();
    for _ in 0..5 {
        client.access_token().await.unwrap();
        baselines.push(burst_of_10_000(&client).await);
    }
    let (single, burst, baseline) = (median(singles), median(bursts), median(baselines));
    println!("one refresh round trip (1 caller): median {single:.2} ms");
    println!("10,000 concurrent callers on a fresh token (no refresh; the burst's own cost): median {baseline:.2} ms");
    println!(
        "10,000 concurrent callers on an expired token: median {burst:.2} ms ({:.2}x one refresh), token requests per burst: {requests:?}",
        burst / single
    );
}

async fn startup() {
    let idp = idp::Idp::start(3600);
    let store = Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    idp.login(&first).await;
    drop(first);
    let mut times = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        let client = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(client.status().is_some());
    }
    println!(
        "start-up with a stored session (discovery + JWKS + store read + restore): median {:.2} ms",
        median(times)
    );
}

async fn authorize() {
    let idp = idp::Idp::start(3600);
    for (dpop, name) in [(sessionkit::DpopPolicy::WhenSupported, "DPoP"), (sessionkit::DpopPolicy::Off, "Bearer")] {
        let policy = SessionPolicy::builder().dpop(dpop).build().unwrap();
        let (client, _store) = idp.client(policy).await;
        idp.login(&client).await;
        assert_eq!(client.token_type().as_deref(), Some(name));
        let url = format!("{}/__test/api", idp.issuer);
        let mut batches = Vec::new();
        for _ in 0..11 {
            let calls = 2_000;
            let start = Instant::now();
            for _ in 0..calls {
                std::hint::black_box(client.authorize("GET", &url).await.unwrap());
            }
            batches.push(start.elapsed().as_nanos() as f64 / 1000.0 / calls as f64);
        }
        println!("authorize() on a {name} session: median {:.1} us per call (11 batches of 2,000)", median(batches));
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful: run either way.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        hot_path().await;
        burst().await;
        startup().await;
        authorize().await;
    });
}
