//! Sign-in callbacks that are forged, refused or slow: the loopback page tells the browser the
//! real outcome, and nothing a local process sends can abort or burn the user's sign-in.

use std::time::Duration;

use reqwest::Url;
use serde_json::json;
use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{Error, SessionClient, SessionPolicy};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::oneshot;

use crate::idp::Idp;

/// The loopback listener's address, from the authorization URL's `redirect_uri`.
fn listener_of(authorization_url: &str) -> (String, String) {
    let url = Url::parse(authorization_url).unwrap();
    let redirect = url.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap().1.into_owned();
    let redirect = Url::parse(&redirect).unwrap();
    (format!("{}:{}", redirect.host_str().unwrap(), redirect.port().unwrap()), redirect.to_string())
}

/// What the browser saw: status and page text.
async fn visit(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Signs in with `login_with_browser`; `browse` plays the browser (and whoever else reaches the
/// port) with the authorization URL and reports what it saw.
async fn browser_sign_in<F, Fut>(
    idp: &std::sync::Arc<Idp>,
    client: &SessionClient,
    browse: F,
) -> (Result<(), Error>, Vec<(u16, String)>)
where
    F: FnOnce(std::sync::Arc<Idp>, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<(u16, String)>> + Send + 'static,
{
    let (seen_tx, seen) = oneshot::channel();
    let idp = idp.clone();
    let open = move |url: &str| {
        let url = url.to_owned();
        tokio::spawn(async move {
            let _ = seen_tx.send(browse(idp, url).await);
        });
        Ok(())
    };
    let result = client.login_with_browser(Default::default(), open, Duration::from_secs(30)).await;
    (result, tokio::time::timeout(Duration::from_secs(30), seen).await.unwrap().unwrap())
}

#[tokio::test]
async fn a_forged_callback_and_a_silent_connection_do_not_stop_the_loopback_sign_in() {
    let idp = std::sync::Arc::new(Idp::start(60));
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let (result, seen) = browser_sign_in(&idp, &client, |idp, url| async move {
        let (address, _) = listener_of(&url);
        // A local process connects and sends nothing, holding its connection open; and it
        // opens and drops hundreds of connections (once, a cap on connections in all ended the
        // listener, and with it the user's sign-in).
        let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
        for _ in 0..300 {
            drop(tokio::net::TcpStream::connect(&address).await.unwrap());
        }
        let callback = idp.authorize(&url).await;
        // Another one sends a callback with a made-up state before the browser arrives.
        let forged = visit(&callback.replace("state=", "state=forged")).await;
        let real = visit(&callback).await;
        let _ = silent.shutdown().await;
        vec![forged, real]
    })
    .await;
    result.unwrap();
    assert_eq!(client.status().unwrap().subject, "alice");
    assert_eq!(seen[0].0, 400, "the forged callback is refused: {}", seen[0].1);
    assert!(seen[0].1.contains("Not this sign-in"), "{}", seen[0].1);
    assert_eq!(seen[1].0, 200, "{}", seen[1].1);
    assert!(seen[1].1.contains("You are signed in"), "{}", seen[1].1);
}

#[tokio::test]
async fn the_loopback_page_reports_a_token_answer_that_fails_its_checks() {
    let idp = std::sync::Arc::new(Idp::start(60));
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    // The code exchange answers with an ID token for another nonce (a replayed sign-in).
    idp.fault(json!({"path": "/token", "mode": "tamper", "tamper": "nonce"})).await;
    let (result, seen) = browser_sign_in(&idp, &client, |idp, url| async move {
        let callback = idp.authorize(&url).await;
        vec![visit(&callback).await]
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    assert!(client.status().is_none());
    let (status, page) = &seen[0];
    assert_eq!(*status, 400);
    assert!(page.contains("Sign-in failed") && !page.contains("You are signed in"), "{page}");
    assert!(page.contains("nonce"), "the page names the cause: {page}");
}

#[tokio::test]
async fn the_loopback_page_reports_the_providers_refusal() {
    let idp = std::sync::Arc::new(Idp::start(60));
    let (client, _store) = idp.client(SessionPolicy::default()).await;
    let (result, seen) = browser_sign_in(&idp, &client, |idp, url| async move {
        // The provider's answer carries this sign-in's state, and an error instead of a code.
        let callback = Url::parse(&idp.authorize(&url).await).unwrap();
        let mut refused = callback.clone();
        refused.query_pairs_mut().clear();
        for (key, value) in callback.query_pairs() {
            if key != "code" {
                refused.query_pairs_mut().append_pair(&key, &value);
            }
        }
        refused.query_pairs_mut().append_pair("error", "access_denied").append_pair("error_description", "<b>no</b>");
        vec![visit(refused.as_str()).await]
    })
    .await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("access_denied"), "{error}");
    let (status, page) = &seen[0];
    assert_eq!(*status, 400);
    assert!(page.contains("access_denied") && page.contains("&lt;b&gt;no&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>"), "the provider's text is escaped: {page}");
}

/// Issue 11, finding 3: a forged callback used to delete the pending redirect sign-in.
#[tokio::test]
async fn a_forged_redirect_callback_keeps_the_pending_sign_in_for_the_real_one() {
    let idp = Idp::start(60);
    let store = std::sync::Arc::new(MemoryStore::new());
    let client = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    let url = client.begin_redirect_login(&Default::default()).await.unwrap();
    let pending_key = format!("{}|sessionkit-test|pending", idp.issuer);
    let callback = idp.authorize(&url).await;
    for forged in [callback.replace("state=", "state=forged"), "not a url".to_owned()] {
        let error = client.complete_redirect_login(&forged).await.unwrap_err();
        assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
        assert!(store.load(&pending_key).unwrap().is_some(), "the pending sign-in is kept");
    }
    client.complete_redirect_login(&callback).await.unwrap();
    assert_eq!(client.status().unwrap().subject, "alice");
    assert!(store.load(&pending_key).unwrap().is_none(), "used once, then gone");
}
