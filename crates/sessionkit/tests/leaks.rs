//! Every log line, at trace level, across a whole session: no token, code or verifier in any.
//!
//! A test binary of its own: the capture is the process-wide tracing subscriber, which a shared
//! binary's other tests would race with (tracing caches per-callsite interest globally).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, dead_code)]
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessionkit::SessionPolicy;

#[path = "native/idp.rs"]
mod idp;

use idp::{Idp, stored_refresh_token};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn trace_logs_of_a_whole_session_contain_no_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let idp = Idp::start(2);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = idp.authorize(request.url()).await;
    let code = url_param(&callback, "code");
    client.complete_login(request, &callback).await.unwrap();
    let mut secrets = vec![code, client.access_token().await.unwrap().expose().to_owned()];
    secrets.extend(stored_refresh_token(&store, &idp.issuer));
    // The session is DPoP-bound: its private key (in the stored record) and a proof are secrets too.
    let record =
        sessionkit::store::SecureStore::load(&*store, &format!("{}|{}", idp.issuer, idp::CLIENT_ID)).unwrap().unwrap();
    let record: serde_json::Value = serde_json::from_str(record.expose()).unwrap();
    // Stored as `<alg>.<x>.<y>.<handle>`; natively the handle is the private key.
    let stored = record["dpop_key"].as_str().expect("a DPoP key in the record");
    secrets.push(stored.splitn(4, '.').nth(3).expect("the handle").to_owned());
    let headers = client.authorize("GET", &idp.api_url()).await.unwrap();
    secrets.push(headers.dpop.as_ref().expect("a proof").expose().to_owned());
    let mut shown = format!("{headers:?} {client:?} {}", headers.authorization);
    assert!(idp.call_api(&client).await == 200);
    tokio::time::sleep(Duration::from_millis(2500)).await; // a background refresh happens
    secrets.push(client.access_token().await.unwrap().expose().to_owned());
    secrets.extend(stored_refresh_token(&store, &idp.issuer));
    let after = client.authorize("POST", &idp.api_url()).await.unwrap();
    secrets.push(after.dpop.as_ref().expect("a proof").expose().to_owned());
    shown.push_str(&format!("{after:?} {client:?} {} {:?}", after.authorization, client.status()));
    let end = client.logout().await.unwrap().unwrap();
    secrets.push(url_param(end.url.expose(), "id_token_hint"));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("session event"), "the capture saw the session's logs");
    assert!(logs.contains("Refreshed") && logs.contains("LoggedOut"), "the capture covered the whole session");
    for secret in secrets {
        assert!(secret.len() >= 20, "a real secret, not an empty match");
        assert!(!logs.contains(&secret), "a secret appeared in the logs");
        assert!(!shown.contains(&secret), "a secret appeared in Debug or Display");
    }
}

fn url_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(|v| v.replace("%2B", "+").replace("%2F", "/").replace("%3D", "="))
        .unwrap_or_default()
}
