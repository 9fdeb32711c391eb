//! Interop with a provider no one here wrote: Keycloak, configured as its documentation
//! recommends for a public client (PKCE S256 required, device grant on, refresh token rotation
//! with reuse detection, short access tokens). `scripts/keycloak-test` starts it, creates the
//! realm and runs these tests; they are `#[ignore]`d in a plain `cargo test`, which has no
//! Keycloak.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::http::HttpOptions;
use sessionkit::store::{MemoryStore, SecureStore};
use sessionkit::{Error, SessionClient, SessionConfig, SessionPolicy};

const REALM: &str = "demo";
const CLIENT_ID: &str = "sessionkit";
const USER: &str = "alice";
const PASSWORD: &str = "alice-password";

/// The running Keycloak (from `scripts/keycloak-test`).
struct Keycloak {
    base: String,
    issuer: String,
    ca_pem: Vec<u8>,
    admin_password: String,
}

fn keycloak() -> Keycloak {
    let base = std::env::var("SESSIONKIT_KEYCLOAK_URL").expect("run these through scripts/keycloak-test");
    let ca = std::env::var("SESSIONKIT_KEYCLOAK_CA").expect("SESSIONKIT_KEYCLOAK_CA");
    Keycloak {
        issuer: format!("{base}/realms/{REALM}"),
        base,
        ca_pem: std::fs::read(ca).expect("the CA"),
        admin_password: std::env::var("SESSIONKIT_KEYCLOAK_ADMIN_PASSWORD").expect("the admin password"),
    }
}

impl Keycloak {
    fn config(&self, client_id: &str, store: Arc<dyn SecureStore>, lock_dir: &std::path::Path) -> SessionConfig {
        SessionConfig::builder(&self.issuer, client_id)
            .redirect_uri("http://127.0.0.1/callback")
            .post_logout_redirect_uri("http://127.0.0.1/logged-out")
            .scopes(&["offline_access"])
            .policy(SessionPolicy::builder().background_refresh(false).build().unwrap())
            .store(store)
            .http(HttpOptions { trust_only_roots_pem: vec![self.ca_pem.clone()], ..HttpOptions::default() })
            .lock_dir(lock_dir.to_path_buf())
            .build()
            .unwrap()
    }

    fn http(&self, cookies: bool) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(cookies)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// The admin REST API, as the master realm's admin.
    async fn admin(&self, path: &str) -> serde_json::Value {
        let http = self.http(false);
        let token: serde_json::Value = http
            .post(format!("{}/realms/master/protocol/openid-connect/token", self.base))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", &self.admin_password),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap();
        let response =
            http.get(format!("{}/admin/realms/{REALM}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "admin {path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn user_id(&self) -> String {
        let users = self.admin(&format!("/users?username={USER}&exact=true")).await;
        users[0]["id"].as_str().unwrap().to_owned()
    }

    /// The user's sessions at Keycloak, online and offline (`offline_access` makes an offline one).
    async fn server_sessions(&self, client_uuid: &str) -> usize {
        let user = self.user_id().await;
        let online = self.admin(&format!("/users/{user}/sessions")).await;
        let offline = self.admin(&format!("/users/{user}/offline-sessions/{client_uuid}")).await;
        online.as_array().unwrap().len() + offline.as_array().unwrap().len()
    }

    async fn client_uuid(&self, client_id: &str) -> String {
        let clients = self.admin(&format!("/clients?clientId={client_id}")).await;
        clients[0]["id"].as_str().unwrap().to_owned()
    }

    /// How many refresh token grants Keycloak recorded (realm events).
    async fn refreshes(&self) -> usize {
        self.admin("/events?type=REFRESH_TOKEN&max=1000").await.as_array().unwrap().len()
    }
}

/// Plays the user in a browser: follows redirects, fills Keycloak's forms (login, consent),
/// and stops at a redirect to the app's loopback address, whose URL it returns.
struct Browser {
    http: reqwest::Client,
    base: String,
    user: (&'static str, &'static str),
}

/// The first form on a page: its action (HTML entities decoded) and the names of its inputs.
fn first_form(html: &str) -> Option<(String, String)> {
    let form = &html[html.find("<form")?..];
    let action = form.split("action=\"").nth(1)?.split('"').next()?.replace("&amp;", "&");
    let end = form.find("</form>").unwrap_or(form.len());
    Some((action, form[..end].to_owned()))
}

impl Browser {
    fn new(keycloak: &Keycloak) -> Self {
        Self { http: keycloak.http(true), base: keycloak.base.clone(), user: (USER, PASSWORD) }
    }

    /// Goes to `url` and through every page until the app's redirect (returned) or a page
    /// without a form (`None`: the flow ended at the provider, as the device flow does).
    async fn walk(&self, url: &str, user_code: Option<&str>) -> Option<String> {
        let mut response = self.http.get(url).send().await.unwrap();
        for _ in 0..15 {
            if response.status().is_redirection() {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                if location.starts_with("http://127.0.0.1") {
                    return Some(location);
                }
                let next = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
                response = self.http.get(next).send().await.unwrap();
                continue;
            }
            let html = response.text().await.unwrap();
            let (action, form) = first_form(&html)?;
            let fields: Vec<(&str, &str)> = if form.contains("name=\"password\"") {
                vec![("username", self.user.0), ("password", self.user.1)]
            } else if form.contains("name=\"accept\"") {
                vec![("accept", "Yes")]
            } else if form.contains("name=\"device_user_code\"") {
                vec![("device_user_code", user_code.expect("a user code"))]
            } else {
                panic!("an unexpected form at {action}: {form}");
            };
            let action = if action.starts_with('/') { format!("{}{action}", self.base) } else { action };
            response = self.http.post(&action).form(&fields).send().await.unwrap();
        }
        panic!("the browser went through 15 pages without an end");
    }
}

/// Signs `client` in through the browser; returns the browser (it holds Keycloak's cookies).
async fn signed_in(keycloak: &Keycloak, client: &SessionClient) -> Browser {
    let browser = Browser::new(keycloak);
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = browser.walk(request.url(), None).await.expect("redirected back to the app");
    client.complete_login(request, &callback).await.unwrap();
    browser
}

fn stored_refresh_token(store: &MemoryStore, issuer: &str) -> Option<String> {
    let record = store.load(&format!("{issuer}|{CLIENT_ID}")).unwrap()?;
    let record: serde_json::Value = serde_json::from_str(record.expose()).unwrap();
    record["refresh_token"].as_str().map(str::to_owned)
}

#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn code_flow_refresh_with_rotation_and_a_logout_that_ends_the_providers_session() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let store = Arc::new(MemoryStore::new());
    let client = SessionClient::new(keycloak.config(CLIENT_ID, store.clone(), &locks)).await.unwrap();
    let client_uuid = keycloak.client_uuid(CLIENT_ID).await;
    let sessions_before = keycloak.server_sessions(&client_uuid).await;
    let browser = signed_in(&keycloak, &client).await;
    let status = client.status().unwrap();
    assert_eq!(status.subject, keycloak.user_id().await, "Keycloak's subject is the user's id");
    assert_eq!(status.display_name.as_deref(), Some(USER), "shown by the name people know (preferred_username)");
    assert!(keycloak.server_sessions(&client_uuid).await > sessions_before);

    // The client's access tokens last 10 s: the refresh is due at half-life.
    let first = client.access_token().await.unwrap();
    let first_refresh = stored_refresh_token(&store, &keycloak.issuer).unwrap();
    let refreshes = keycloak.refreshes().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let second = client.access_token().await.unwrap();
    assert_ne!(first.expose(), second.expose(), "refreshed");
    let rotated = stored_refresh_token(&store, &keycloak.issuer).unwrap();
    assert_ne!(first_refresh, rotated, "Keycloak rotated the refresh token and the new one is stored");
    assert_eq!(keycloak.refreshes().await, refreshes + 1, "one refresh grant");

    let end = client.logout().await.unwrap().expect("Keycloak has an end-session endpoint");
    assert!(end.url.expose().starts_with(&format!("{}/protocol/openid-connect/logout?", keycloak.issuer)));
    assert!(store.load(&format!("{}|{CLIENT_ID}", keycloak.issuer)).unwrap().is_none(), "wiped");
    // The app opens the end-session page in the browser; Keycloak ends its session and sends
    // the browser back with the state the app can check.
    let back = browser.walk(end.url.expose(), None).await.expect("back at the post-logout redirect");
    assert!(back.starts_with("http://127.0.0.1/logged-out"), "{back}");
    assert!(back.contains(&format!("state={}", end.state.expose())), "{back}");
    // The revocation ended the offline session, the end-session page the browser's: none is left.
    assert_eq!(keycloak.server_sessions(&client_uuid).await, sessions_before, "no session left at the provider");
    let refused = reqwest_refresh(&keycloak, &rotated).await;
    assert_eq!(refused, 400, "the revoked refresh token is dead at Keycloak");
}

/// DPoP (RFC 9449) with a provider no one here wrote: Keycloak advertises it, binds the tokens
/// to the key, and its UserInfo endpoint (a resource server) checks the proof.
#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn dpop_bound_tokens_work_at_keycloak() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let client = SessionClient::new(keycloak.config(CLIENT_ID, Arc::new(MemoryStore::new()), &locks)).await.unwrap();
    let metadata = client.metadata();
    assert!(metadata.dpop_signing_algs.iter().any(|alg| alg == "ES256"), "{:?}", metadata.dpop_signing_algs);
    let _browser = signed_in(&keycloak, &client).await;
    assert_eq!(client.token_type().as_deref(), Some("DPoP"), "Keycloak bound the tokens to the key");
    let userinfo = metadata.userinfo_endpoint.expect("Keycloak has a UserInfo endpoint").as_str().to_owned();
    let http = keycloak.http(false);
    // UserInfo with the session's headers: the token and a fresh proof.
    let with_proof = || async {
        let headers = client.authorize("GET", &userinfo).await.unwrap();
        let request = http.get(&userinfo).header("authorization", headers.authorization.expose());
        request.header("dpop", headers.dpop.as_ref().expect("a proof").expose()).send().await.unwrap().status()
    };
    assert_eq!(with_proof().await, 200, "UserInfo accepted the token with its proof");
    let token = client.access_token().await.unwrap();
    let bearer = http.get(&userinfo).bearer_auth(token.expose()).send().await.unwrap();
    assert_eq!(bearer.status(), 401, "the token alone is refused");
    // The refresh is signed with the same key, and the new token is bound too.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refreshed = client.access_token().await.unwrap();
    assert_ne!(refreshed.expose(), token.expose());
    assert_eq!(with_proof().await, 200);
    client.logout().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn the_device_flow_works_where_pkce_is_required() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let client = SessionClient::new(keycloak.config(CLIENT_ID, Arc::new(MemoryStore::new()), &locks)).await.unwrap();
    let base = keycloak.base.clone();
    let browser = Browser::new(&keycloak);
    let (shown, code) = tokio::sync::oneshot::channel();
    let login = client.login_with_device(move |code| {
        let _ = shown.send((code.verification_uri_complete.clone(), code.user_code.clone()));
    });
    let approve = async move {
        let (complete, user_code) = code.await.unwrap();
        let url = complete.unwrap_or_else(|| format!("{base}/realms/{REALM}/device"));
        browser.walk(&url, Some(&user_code)).await
    };
    let (signed_in, _) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(login, approve) })
        .await
        .expect("the device flow ends");
    signed_in.unwrap();
    assert!(client.status().is_some());
    client.logout().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn two_clients_sharing_a_store_refresh_once_and_reuse_detection_never_fires() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let store = Arc::new(MemoryStore::new());
    let first = SessionClient::new(keycloak.config(CLIENT_ID, store.clone(), &locks)).await.unwrap();
    let _browser = signed_in(&keycloak, &first).await;
    let second = SessionClient::new(keycloak.config(CLIENT_ID, store.clone(), &locks)).await.unwrap();
    assert!(second.status().is_some(), "the second context restored the session");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refreshes = keycloak.refreshes().await;
    let (a, b) = tokio::join!(first.access_token(), second.access_token());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(keycloak.refreshes().await, refreshes + 1, "one refresh for both");
    // A replayed refresh token would make Keycloak revoke the grant: both keep working.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (c, d) = tokio::join!(second.access_token(), first.access_token());
    assert!(c.is_ok() && d.is_ok(), "{c:?} {d:?}");
    assert_eq!(keycloak.refreshes().await, refreshes + 2);
    assert_eq!(a.expose(), b.expose(), "the second context adopted the first one's refreshed token");
    first.logout().await.unwrap();
}

/// Issue 11, finding 13: a user without Keycloak's `offline_access` role is refused an
/// offline token at the code exchange (`not_allowed`); the message says so.
#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn a_user_without_the_offline_role_is_told_why() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let client = SessionClient::new(keycloak.config(CLIENT_ID, Arc::new(MemoryStore::new()), &locks)).await.unwrap();
    let mut browser = Browser::new(&keycloak);
    browser.user = ("bob", "bob-password");
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = browser.walk(request.url(), None).await.expect("redirected back");
    let error = client.complete_login(request, &callback).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("not_allowed") && message.contains("Offline tokens not allowed"), "{message}");
    assert!(!message.contains("Other("), "no Debug text: {message}");
    assert!(client.status().is_none());
}

#[tokio::test]
#[ignore = "needs Keycloak: run scripts/keycloak-test"]
async fn a_refused_offline_access_says_what_happened() {
    let keycloak = keycloak();
    let locks = tempfile_dir();
    let client = SessionClient::new(keycloak.config("sessionkit-no-offline", Arc::new(MemoryStore::new()), &locks))
        .await
        .unwrap();
    let request = client.begin_login(&Default::default()).await.unwrap();
    let callback = Browser::new(&keycloak).walk(request.url(), None).await.expect("redirected back with an error");
    let error = client.complete_login(request, &callback).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("invalid_scope"), "{message}");
    assert!(!message.contains("Other("), "no Debug text: {message}");
    assert!(matches!(error, Error::InvalidInput { .. } | Error::Misconfigured { .. }), "{error:?}");
}

/// Sends a refresh grant directly (as a process that kept a copy would).
async fn reqwest_refresh(keycloak: &Keycloak, refresh_token: &str) -> u16 {
    keycloak
        .http(false)
        .post(format!("{}/protocol/openid-connect/token", keycloak.issuer))
        .form(&[("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", refresh_token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A private directory for the cross-process lock (each test its own).
fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sessionkit-kc-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("locks")
}
