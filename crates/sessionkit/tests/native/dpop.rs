//! DPoP (RFC 9449) against the real provider: node-oidc-provider binds the tokens to the key and
//! checks every proof at its token endpoint; the test API (tests/idp/server.mjs) checks the
//! proofs of API calls (signature, key binding, htm, htu, ath, iat, jti replay, nonce).

use std::time::Duration;

use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{DpopPolicy, Error, SessionPolicy};

use crate::idp::{CLIENT_ID, Idp, stored_refresh_token};

fn lazy(dpop: DpopPolicy) -> SessionPolicy {
    SessionPolicy::builder().background_refresh(false).dpop(dpop).build().unwrap()
}

fn stored_record(store: &MemoryStore, issuer: &str) -> serde_json::Value {
    let record = store.load(&format!("{issuer}|{CLIENT_ID}")).unwrap().expect("a stored session");
    serde_json::from_str(record.expose()).unwrap()
}

#[tokio::test]
async fn a_dpop_session_binds_its_tokens_and_proves_every_use() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy(DpopPolicy::WhenSupported)).await;
    let request = client.begin_login(&Default::default()).await.unwrap();
    assert!(request.url().contains("dpop_jkt="), "the code is bound to the key (RFC 9449 section 10)");
    let callback = idp.authorize(request.url()).await;
    client.complete_login(request, &callback).await.unwrap();
    assert_eq!(client.token_type().as_deref(), Some("DPoP"));
    let record = stored_record(&store, &idp.issuer);
    let key = record["dpop_key"].as_str().expect("the key is kept with the session").to_owned();
    assert!(key.starts_with("ES256."), "an ES256 key");

    // The API checks the proof and the binding.
    assert_eq!(idp.call_api(&client).await, 200);
    let token = client.access_token().await.unwrap();
    assert_eq!(idp.call_api_bearer(token.expose()).await, 401, "the token without its proof is refused");
    let dpop_without_proof = idp.call_api_with(&format!("DPoP {}", token.expose()), None).await.unwrap();
    assert_eq!(dpop_without_proof.status, 401);
    let headers = client.authorize("GET", &idp.api_url()).await.unwrap();
    let proof = headers.dpop.as_ref().expect("a proof for a bound token");
    let first = idp.call_api_with(headers.authorization.expose(), Some(proof.expose())).await.unwrap();
    assert_eq!(first.status, 200);
    let replayed = idp.call_api_with(headers.authorization.expose(), Some(proof.expose())).await.unwrap();
    assert_eq!(replayed.status, 401, "a proof is single-use (jti)");
    // A proof made for another URL does not fit this one (htu).
    let elsewhere = client.authorize("GET", &format!("{}/__test/other", idp.issuer)).await.unwrap();
    let wrong_url =
        idp.call_api_with(elsewhere.authorization.expose(), elsewhere.dpop.as_ref().map(|p| p.expose())).await.unwrap();
    assert_eq!(wrong_url.status, 401);
    let problems = idp.stats().await["apiProofErrors"].clone();
    let expected = serde_json::json!(["one DPoP header required", "replayed jti", "htu"]);
    assert_eq!(problems, expected, "refused for the right reasons");

    // The refresh token is bound too: alone it is refused, with the session's proof it works.
    let refresh = stored_refresh_token(&store, &idp.issuer).unwrap();
    assert_eq!(idp.refresh_directly(&refresh).await, 400, "a stolen refresh token is useless without the key");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refreshed = client.access_token().await.unwrap();
    assert_ne!(refreshed.expose(), token.expose());
    assert_eq!(idp.refresh_count().await, 2, "the stolen attempt and the session's own");
    assert_eq!(client.token_type().as_deref(), Some("DPoP"));
    assert_eq!(idp.call_api(&client).await, 200);
    assert_eq!(stored_record(&store, &idp.issuer)["dpop_key"], record["dpop_key"], "one key for the session");

    // A new sign-in is a new session with a new key.
    idp.login(&client).await;
    let public = |stored: &str| stored.splitn(4, '.').take(3).collect::<Vec<_>>().join(".");
    let next = stored_record(&store, &idp.issuer)["dpop_key"].as_str().expect("a key").to_owned();
    assert_ne!(public(&next), public(&key), "a new key pair");
}

#[tokio::test]
async fn nonces_asked_by_the_token_endpoint_and_the_api_are_answered_with_one_retry() {
    let idp = Idp::start(2);
    idp.require_dpop_nonces(true, true).await.unwrap();
    let (client, _store) = idp.client(lazy(DpopPolicy::WhenSupported)).await;
    idp.login(&client).await;
    let stats = idp.stats().await;
    assert_eq!(stats["tokenErrors"]["use_dpop_nonce"], 1, "one challenge: {stats}");
    assert_eq!(stats["token"]["authorization_code"], 2, "answered with one retry: {stats}");

    // The API asks for its own nonce once; the retry carries it, and so do later calls.
    let url = idp.api_url();
    let headers = client.authorize("GET", &url).await.unwrap();
    let first = idp.call_api_with(headers.authorization.expose(), headers.dpop.as_ref().map(|p| p.expose())).await;
    let first = first.unwrap();
    assert_eq!(first.status, 401);
    let again =
        client.note_api_response(&url, first.status, first.www_authenticate.as_deref(), first.dpop_nonce.as_deref());
    assert!(again, "a use_dpop_nonce challenge asks for one retry: {first:?}");
    assert_eq!(idp.call_api(&client).await, 200);
    assert_eq!(idp.call_api(&client).await, 200);
    // Another refusal is not a nonce challenge: no retry.
    assert!(!client.note_api_response(&url, 401, Some("DPoP error=\"invalid_token\""), None));

    // The refresh carries the token endpoint's nonce from the start.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    client.access_token().await.unwrap();
    let stats = idp.stats().await;
    assert_eq!(stats["token"]["refresh_token"], 1, "{stats}");
    assert_eq!(stats["tokenErrors"]["use_dpop_nonce"], 1, "the remembered nonce was used: {stats}");
}

#[tokio::test]
async fn a_bearer_answer_is_refused_when_dpop_is_required() {
    let idp = Idp::start(60);
    let (client, _store) = idp.client(lazy(DpopPolicy::Required)).await;
    idp.fault(serde_json::json!({ "path": "/token", "mode": "bearer" })).await;
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = idp.authorize(request.url()).await;
    let error = client.complete_login(request, &callback).await.unwrap_err();
    assert!(matches!(&error, Error::Misconfigured { .. }), "the provider's setup, not a passing fault: {error:?}");
    assert!(error.to_string().contains("Bearer token although DPoP is required"), "{error}");
    assert!(client.status().is_none(), "no session from a downgraded answer");
    // Without the fault, the same client signs in with DPoP.
    idp.login(&client).await;
    assert_eq!(client.token_type().as_deref(), Some("DPoP"));
}

#[tokio::test]
async fn with_dpop_off_the_tokens_are_bearer_and_no_key_is_made() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(lazy(DpopPolicy::Off)).await;
    let request = client.begin_login(&Default::default()).await.unwrap();
    assert!(!request.url().contains("dpop_jkt"));
    let callback = idp.authorize(request.url()).await;
    client.complete_login(request, &callback).await.unwrap();
    assert_eq!(client.token_type().as_deref(), Some("Bearer"));
    assert!(stored_record(&store, &idp.issuer).get("dpop_key").is_none());
    let headers = client.authorize("get", &idp.api_url()).await.unwrap();
    assert!(headers.dpop.is_none() && headers.authorization.expose().starts_with("Bearer "));
    assert_eq!(idp.call_api(&client).await, 200);
    let token = client.access_token().await.unwrap();
    assert_eq!(idp.call_api_bearer(token.expose()).await, 200);
    // Bad input to authorize is refused with a typed error.
    assert!(matches!(client.authorize("GET", "not a url").await, Err(Error::InvalidInput { .. })));
    assert!(matches!(client.authorize("GE T", &idp.api_url()).await, Err(Error::InvalidInput { .. })));
    // No token over plain http, except to this machine by its IP literal (or `localhost`).
    for url in ["http://api.example/me", "http://127.0.0.1.nip.io/me", "ftp://127.0.0.1/me"] {
        assert!(matches!(client.authorize("GET", url).await, Err(Error::InvalidInput { .. })), "{url}");
    }
    for url in ["http://127.0.0.1:8080/me", "http://[::1]/me", "http://localhost/me"] {
        assert!(client.authorize("GET", url).await.is_ok(), "{url}");
    }
}

#[tokio::test]
async fn a_bound_session_refuses_a_bearer_refresh_and_revokes_what_it_brought() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(lazy(DpopPolicy::WhenSupported)).await;
    idp.login(&client).await;
    assert_eq!(client.token_type().as_deref(), Some("DPoP"));
    let revoked_before = idp.stats().await["revocation"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // The provider rotates the refresh token but answers with a Bearer token: a downgrade.
    idp.fault(serde_json::json!({ "path": "/token", "mode": "bearer" })).await;
    let error = client.access_token().await.unwrap_err();
    assert!(matches!(&error, Error::ReauthenticationRequired { .. }), "{error:?}");
    assert!(error.to_string().contains("with a Bearer token (a downgrade)"), "{error}");
    assert!(client.status().is_none(), "the session ends: its refresh token is spent");
    assert!(store.load(&format!("{}|{CLIENT_ID}", idp.issuer)).unwrap().is_none(), "and is wiped");
    let revoked = idp.stats().await["revocation"].as_u64().unwrap() - revoked_before;
    assert_eq!(revoked, 2, "the tokens the downgraded answer brought are revoked, never used");
}

/// Keys that can be lost, as a cleared browser storage or a wiped key store loses them (fault
/// injection over the real native key store); it also records which keys were made and deleted.
#[derive(Default)]
struct LosableKeys {
    keys: sessionkit::dpop::SoftwareKeys,
    lost: std::sync::atomic::AtomicBool,
    made: std::sync::Mutex<Vec<sessionkit::dpop::DpopKey>>,
    deleted: std::sync::Mutex<Vec<sessionkit::dpop::DpopKey>>,
}

impl LosableKeys {
    fn made(&self) -> Vec<sessionkit::dpop::DpopKey> {
        self.made.lock().unwrap().clone()
    }
    fn deleted(&self) -> Vec<sessionkit::dpop::DpopKey> {
        self.deleted.lock().unwrap().clone()
    }
}

impl sessionkit::dpop::DpopKeys for LosableKeys {
    fn create(
        &self,
        algorithm: sessionkit::dpop::DpopAlgorithm,
    ) -> sessionkit::BoxFuture<'_, Result<sessionkit::dpop::DpopKey, sessionkit::dpop::DpopError>> {
        Box::pin(async move {
            let key = self.keys.create(algorithm).await?;
            self.made.lock().unwrap().push(key.clone());
            Ok(key)
        })
    }
    fn sign<'a>(
        &'a self,
        key: &'a sessionkit::dpop::DpopKey,
        input: &'a [u8],
    ) -> sessionkit::BoxFuture<'a, Result<Vec<u8>, sessionkit::dpop::DpopError>> {
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(sessionkit::dpop::DpopError::KeyMissing) });
        }
        self.keys.sign(key, input)
    }
    fn delete<'a>(&'a self, key: &'a sessionkit::dpop::DpopKey) -> sessionkit::BoxFuture<'a, ()> {
        self.deleted.lock().unwrap().push(key.clone());
        self.keys.delete(key)
    }
}

#[tokio::test]
async fn a_lost_dpop_key_ends_the_session_and_says_why() {
    for path in ["an API call", "a refresh"] {
        // Access tokens of 60 s for the API call (no refresh can come first), 2 s for the refresh.
        let idp = Idp::start(if path == "an API call" { 60 } else { 2 });
        let keys = std::sync::Arc::new(LosableKeys::default());
        let store = std::sync::Arc::new(MemoryStore::new());
        let config = idp.config_builder(lazy(DpopPolicy::WhenSupported), store.clone()).dpop_keys(keys.clone());
        let client = sessionkit::SessionClient::new(config.build().unwrap()).await.unwrap();
        let mut events = client.subscribe();
        idp.login(&client).await;
        assert_eq!(idp.call_api(&client).await, 200);
        let revoked_before = idp.stats().await["revocation"].as_u64().unwrap();
        keys.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        let refreshes = idp.refresh_count().await;
        let error = if path == "an API call" {
            let error = client.authorize("GET", &idp.api_url()).await.unwrap_err();
            assert_eq!(idp.refresh_count().await, refreshes, "the API call's own proof found the key gone");
            error
        } else {
            tokio::time::sleep(Duration::from_millis(2200)).await;
            client.access_token().await.unwrap_err()
        };
        assert!(matches!(&error, Error::ReauthenticationRequired { .. }), "{path}: {error:?}");
        assert!(error.to_string().contains("no longer in its key store"), "{path}: {error}");
        assert!(client.status().is_none(), "{path}: the session ended");
        assert!(store.load(&format!("{}|{CLIENT_ID}", idp.issuer)).unwrap().is_none(), "{path}: and was wiped");
        let anomaly = crate::lifecycle::wait_for(&mut events, Duration::from_secs(2), |e| {
            matches!(e, sessionkit::SessionEvent::AnomalySuspected { .. })
        })
        .await;
        assert!(
            matches!(
                anomaly,
                sessionkit::SessionEvent::AnomalySuspected { anomaly: sessionkit::Anomaly::DpopKeyLost, .. }
            ),
            "{path}: {anomaly:?}"
        );
        assert!(idp.stats().await["revocation"].as_u64().unwrap() > revoked_before, "{path}: its tokens revoked");
    }
}

/// Every sign-in that ends without a session forgets its key; a session's key goes at logout.
#[tokio::test]
async fn keys_of_sign_ins_that_never_complete_and_of_ended_sessions_are_forgotten() {
    let idp = Idp::start(60);
    let keys = std::sync::Arc::new(LosableKeys::default());
    let config = idp.config_builder(lazy(DpopPolicy::WhenSupported), std::sync::Arc::new(MemoryStore::new()));
    let client = sessionkit::SessionClient::new(config.dpop_keys(keys.clone()).build().unwrap()).await.unwrap();
    // A redirect sign-in replaced by a newer one.
    client.begin_redirect_login(&Default::default()).await.unwrap();
    let url = client.begin_redirect_login(&Default::default()).await.unwrap();
    assert_eq!(keys.deleted(), keys.made()[..1].to_vec(), "the replaced sign-in's key");
    // The provider refuses the newer one.
    let state = url.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let refusal = format!("http://127.0.0.1/callback?error=access_denied&state={state}&iss={}", idp.issuer);
    let error = client.complete_redirect_login(&refusal).await.unwrap_err();
    assert!(error.to_string().contains("access_denied"), "{error}");
    assert_eq!(keys.deleted(), keys.made(), "and the refused sign-in's key");
    // A completed sign-in keeps its key until logout.
    idp.login(&client).await;
    assert_eq!(keys.made().len(), 3);
    assert_eq!(keys.deleted().len(), 2);
    client.logout().await.unwrap();
    assert_eq!(keys.deleted(), keys.made(), "the session's key went with it");
}

/// A sign-in the app drops (the request, or the future waiting for a device approval) deletes
/// its key in the background: nothing stays in the platform's key store.
#[tokio::test]
async fn a_dropped_sign_in_forgets_its_key() {
    let idp = Idp::start(60);
    let keys = std::sync::Arc::new(LosableKeys::default());
    let config = idp.config_builder(lazy(DpopPolicy::WhenSupported), std::sync::Arc::new(MemoryStore::new()));
    let client = sessionkit::SessionClient::new(config.dpop_keys(keys.clone()).build().unwrap()).await.unwrap();
    let all_deleted = || async {
        for _ in 0..100 {
            if !keys.made().is_empty() && keys.deleted() == keys.made() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    let request = client.begin_login(&Default::default()).await.unwrap();
    assert_eq!(keys.made().len(), 1);
    drop(request);
    assert!(all_deleted().await, "the dropped request's key: {:?} of {:?}", keys.deleted(), keys.made());

    let waiting = tokio::time::timeout(Duration::from_millis(500), client.login_with_device(|_| {})).await;
    assert!(waiting.is_err(), "still waiting for the user when dropped");
    assert_eq!(keys.made().len(), 2);
    assert!(all_deleted().await, "the dropped device sign-in's key");
    assert!(client.status().is_none());
}
