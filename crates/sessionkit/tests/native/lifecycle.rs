//! A session's life against the real provider: sign-in, refresh with rotation, limits, logout.

use std::time::Duration;

use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{EndReason, Error, ExpiryReason, SessionClient, SessionEvent, SessionPolicy};
use tokio::sync::broadcast::Receiver;

use crate::idp::{Idp, stored_refresh_token};

/// Waits for the first event matching `pick`, failing after `limit`.
pub async fn wait_for(
    events: &mut Receiver<SessionEvent>,
    limit: Duration,
    pick: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    tokio::time::timeout(limit, async {
        loop {
            let event = events.recv().await.expect("the event stream is open");
            if pick(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching event within {limit:?}"))
}

#[tokio::test]
async fn code_flow_with_pkce_signs_in_and_the_token_works() {
    let idp = Idp::start(60);
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let mut events = client.subscribe();
    idp.login(&client).await;
    let event = wait_for(&mut events, Duration::from_secs(5), |e| matches!(e, SessionEvent::LoggedIn { .. })).await;
    assert!(matches!(event, SessionEvent::LoggedIn { subject, .. } if subject == "alice"));
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
    assert_eq!(client.status().unwrap().subject, "alice");
    // The provider offers DPoP, and the default policy takes it (tests/native/dpop.rs).
    assert_eq!(client.token_type().as_deref(), Some("DPoP"));
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_the_old_one_is_dead() {
    let idp = Idp::start(2);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    let mut events = client.subscribe();
    idp.login(&client).await;
    let first = stored_refresh_token(&store, &idp.issuer).expect("a refresh token was stored");
    // The timer refreshes at half the 2 s lifetime.
    let event = wait_for(&mut events, Duration::from_secs(10), |e| matches!(e, SessionEvent::Refreshed { .. })).await;
    assert!(matches!(event, SessionEvent::Refreshed { rotated: true, .. }), "{event:?}");
    let second = stored_refresh_token(&store, &idp.issuer).expect("the rotated token was stored");
    assert_ne!(first, second);
    assert!(!idp.is_active(&first).await, "the rotated-out token is no longer valid");
    assert!(idp.is_active(&second).await);
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
}

#[tokio::test]
async fn logout_wipes_then_revokes_and_offers_end_session() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    idp.login(&client).await;
    let refresh = stored_refresh_token(&store, &idp.issuer).unwrap();
    assert!(idp.is_active(&refresh).await);
    let access = client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
    let mut events = client.subscribe();

    let end = client.logout().await.unwrap().expect("the provider has an end_session_endpoint");
    assert!(stored_refresh_token(&store, &idp.issuer).is_none(), "wiped from the store");
    assert!(!idp.is_active(&refresh).await, "revoked at the provider");
    assert!(!idp.is_active(access.expose()).await, "the access token died with its grant");
    assert!(end.url.expose().starts_with(&format!("{}/session/end?", idp.issuer)));
    assert!(end.url.expose().contains("id_token_hint="));
    assert!(end.url.expose().contains("post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%2Flogged-out"));
    wait_for(&mut events, Duration::from_secs(2), |e| matches!(e, SessionEvent::LoggedOut { .. })).await;
    assert!(matches!(client.access_token().await, Err(Error::ReauthenticationRequired { .. })));
    assert_eq!(client.end_reason(), Some(EndReason::SignedOut));
}

#[tokio::test]
async fn idle_timeout_warns_then_ends_the_session() {
    let idp = Idp::start(60);
    let policy = SessionPolicy::builder()
        .idle_timeout(Duration::from_secs(3))
        .warning_lead(Duration::from_secs(1))
        .absolute_lifetime(Duration::from_secs(600))
        .build()
        .unwrap();
    let (client, store) = idp.client(policy).await;
    let mut events = client.subscribe();
    idp.login(&client).await;
    let refresh = stored_refresh_token(&store, &idp.issuer).unwrap();
    let warning =
        wait_for(&mut events, Duration::from_secs(8), |e| matches!(e, SessionEvent::ExpiringSoon { .. })).await;
    assert!(matches!(warning, SessionEvent::ExpiringSoon { reason: ExpiryReason::Idle, .. }), "{warning:?}");
    let expired = wait_for(&mut events, Duration::from_secs(8), |e| matches!(e, SessionEvent::Expired { .. })).await;
    assert!(matches!(expired, SessionEvent::Expired { reason: EndReason::IdleTimeout, .. }), "{expired:?}");
    assert!(matches!(client.access_token().await, Err(Error::ReauthenticationRequired { .. })));
    assert!(stored_refresh_token(&store, &idp.issuer).is_none());
    assert!(!idp.is_active(&refresh).await, "an idle-expired session's refresh token is revoked");
}

#[tokio::test]
async fn the_absolute_lifetime_ends_a_session_in_use() {
    let idp = Idp::start(60);
    let policy = SessionPolicy::builder()
        .idle_timeout(Duration::from_secs(3))
        .warning_lead(Duration::from_secs(1))
        .absolute_lifetime(Duration::from_secs(4))
        .refresh_lead(Duration::from_secs(1))
        .build()
        .unwrap();
    let (client, _store) = idp.client(policy).await;
    let mut events = client.subscribe();
    idp.login(&client).await;
    let busy = {
        let client = client.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                client.record_activity().await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let expired = wait_for(&mut events, Duration::from_secs(10), |e| matches!(e, SessionEvent::Expired { .. })).await;
    assert!(matches!(expired, SessionEvent::Expired { reason: EndReason::AbsoluteLifetime, .. }), "{expired:?}");
    busy.abort();
}

#[tokio::test]
async fn a_fresh_token_is_served_from_memory_even_with_the_store_locked() {
    let idp = Idp::start(60);
    let (client, store) = idp.client(SessionPolicy::default()).await;
    idp.login(&client).await;
    store.set_unavailable(true);
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
}

#[tokio::test]
async fn loopback_sign_in_through_a_browser() {
    let idp = std::sync::Arc::new(Idp::start(60));
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let browser = idp.clone();
    let open = move |url: &str| {
        let url = url.to_owned();
        assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "an ephemeral loopback port: {url}");
        tokio::spawn(async move {
            let callback = browser.authorize(&url).await;
            // The browser follows the redirect to the loopback listener.
            let page = reqwest::get(&callback).await.unwrap();
            assert_eq!(page.status(), 200);
        });
        Ok(())
    };
    client.login_with_browser(Default::default(), open, Duration::from_secs(20)).await.unwrap();
    assert_eq!(client.status().unwrap().subject, "alice");
}

#[tokio::test]
async fn a_forged_callback_is_refused_and_the_login_can_still_complete() {
    let idp = Idp::start(60);
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = idp.authorize(request.url()).await;
    let forged = callback.replace("state=", "state=x");
    let err = client.complete_login(request, &forged).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(client.status().is_none());
}

#[tokio::test]
async fn device_flow_signs_in_when_the_user_approves() {
    let idp = std::sync::Arc::new(Idp::start(60));
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let phone = idp.clone();
    let show = move |code: &sessionkit::DeviceCode| {
        assert!(!code.user_code.is_empty());
        let url = code.verification_uri_complete.clone().expect("the provider sends the complete URI");
        tokio::spawn(async move { phone.approve_device(&url).await });
    };
    tokio::time::timeout(Duration::from_secs(30), client.login_with_device(show)).await.unwrap().unwrap();
    assert_eq!(client.status().unwrap().subject, "alice");
    assert_eq!(client.token_type().as_deref(), Some("DPoP"), "each poll carried a proof of the session's key");
    client.access_token().await.unwrap();
    assert_eq!(idp.call_api(&client).await, 200);
    let stats = idp.stats().await;
    assert!(stats["token"]["urn:ietf:params:oauth:grant-type:device_code"].as_u64().unwrap() >= 1);
}

/// A sign-in that outlives the app: the pending login is sealed in the store, a new client (the
/// app started again) completes it, and it works once.
#[tokio::test]
async fn a_redirect_sign_in_survives_a_restart_and_completes_once() {
    let idp = Idp::start(60);
    let store = std::sync::Arc::new(MemoryStore::new());
    let first = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    let url = first.begin_redirect_login(&Default::default()).await.unwrap();
    let pending_key = format!("{}|sessionkit-test|pending", idp.issuer);
    let pending = store.load(&pending_key).unwrap().expect("the pending login is in the store");
    let record: serde_json::Value = serde_json::from_str(pending.expose()).unwrap();
    let verifier = record["verifier"].as_str().unwrap();
    assert!(verifier.len() >= 43 && !url.contains(verifier), "the PKCE verifier stays out of the URL");
    drop(first);
    let callback = idp.authorize(&url).await;

    let restarted = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    restarted.complete_redirect_login(&callback).await.unwrap();
    assert_eq!(restarted.status().unwrap().subject, "alice");
    assert_eq!(idp.call_api(&restarted).await, 200);

    // Single use: the same callback again finds no login in progress, and loses nothing.
    let err = restarted.complete_redirect_login(&callback).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(restarted.status().is_some());
    // The pending record held the PKCE verifier; it is gone from the store.
    assert!(store.load(&pending_key).unwrap().is_none());
}
