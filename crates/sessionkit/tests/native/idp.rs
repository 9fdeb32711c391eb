//! Starts the local provider on a free port and talks to its test endpoints.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sessionkit::http::HttpOptions;
use sessionkit::store::{MemoryStore, SecureStore};
use sessionkit::{SessionClient, SessionConfig, SessionConfigBuilder, SessionPolicy};

pub const CLIENT_ID: &str = "sessionkit-test";

pub struct Idp {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    pub ca_pem: Vec<u8>,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

impl Idp {
    /// Starts the provider with access tokens living `access_ttl` seconds.
    pub fn start(access_ttl: u64) -> Self {
        let dir = idp_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/idp has no node_modules: run scripts/test (it runs npm ci there)"
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env("IDP_ACCESS_TTL", access_ttl.to_string())
            .env("IDP_AUTO_APPROVE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(std::env::temp_dir().join(format!("sessionkit-idp-{}.log", std::process::id())))
                    .expect("log file"),
            ))
            .spawn()
            .expect("node is installed");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("the provider prints its address");
        // Keep draining: the provider logs notices to stdout and must never hit a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let info: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let issuer = info["issuer"].as_str().expect("issuer").to_owned();
        assert!(issuer.starts_with("https://127.0.0.1:"), "{issuer}");
        let ca_pem = std::fs::read(info["ca"].as_str().expect("ca")).expect("the CA file");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem).unwrap()])
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { child, _stdin: stdin, issuer, ca_pem, http }
    }

    pub fn http_options(&self) -> HttpOptions {
        HttpOptions { trust_only_roots_pem: vec![self.ca_pem.clone()], ..HttpOptions::default() }
    }

    pub fn config_builder(&self, policy: SessionPolicy, store: Arc<dyn SecureStore>) -> SessionConfigBuilder {
        SessionConfig::builder(&self.issuer, CLIENT_ID)
            .redirect_uri("http://127.0.0.1/callback")
            .post_logout_redirect_uri("http://127.0.0.1/logged-out")
            .scopes(&["offline_access", "profile"])
            .policy(policy)
            .store(store)
            .http(self.http_options())
    }

    pub fn config(&self, policy: SessionPolicy, store: Arc<dyn SecureStore>) -> SessionConfig {
        self.config_builder(policy, store).build().unwrap()
    }

    pub async fn client(&self, policy: SessionPolicy) -> (SessionClient, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let client = SessionClient::new(self.config(policy, store.clone())).await.unwrap();
        (client, store)
    }

    /// Plays the browser: follows the authorization URL through the provider's (auto-approved)
    /// login and consent until it redirects to the loopback redirect URI; returns that URL.
    pub async fn authorize(&self, url: &str) -> String {
        let mut next = url.to_owned();
        for _ in 0..12 {
            let response = self.http.get(&next).send().await.unwrap();
            let location = response
                .headers()
                .get("location")
                .unwrap_or_else(|| panic!("expected a redirect, got {}", response.status()))
                .to_str()
                .unwrap()
                .to_owned();
            if location.starts_with("http://127.0.0.1") || location.starts_with("http://[::1]") {
                return location;
            }
            next = if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location };
        }
        panic!("the provider never redirected back");
    }

    /// Plays the user on their phone: opens the device verification page, submits the code,
    /// confirms, and follows the (auto-approved) login and consent to the end.
    pub async fn approve_device(&self, verification_uri_complete: &str) {
        let hidden = |html: &str, name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in the page")) + marker.len();
            html[start..start + html[start..].find('"').unwrap()].to_owned()
        };
        let page = self.http.get(verification_uri_complete).send().await.unwrap().text().await.unwrap();
        let device_url = format!("{}/device", self.issuer);
        let form = [("xsrf", hidden(&page, "xsrf")), ("user_code", hidden(&page, "user_code"))];
        let page = self.http.post(&device_url).form(&form).send().await.unwrap().text().await.unwrap();
        let form =
            [("xsrf", hidden(&page, "xsrf")), ("user_code", hidden(&page, "user_code")), ("confirm", "yes".into())];
        let mut response = self.http.post(&device_url).form(&form).send().await.unwrap();
        for _ in 0..12 {
            let Some(location) = response.headers().get("location") else { break };
            let location = location.to_str().unwrap().to_owned();
            let next = if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location };
            response = self.http.get(&next).send().await.unwrap();
        }
        assert_eq!(response.status(), 200, "the device flow ended on its success page");
    }

    /// Signs `client` in through the two-step flow.
    pub async fn login(&self, client: &SessionClient) {
        let request = client.begin_login(&Default::default()).unwrap();
        let callback = self.authorize(request.url()).await;
        client.complete_login(request, &callback).await.unwrap();
    }

    /// Queues a fault in the provider's fault layer (see tests/idp/server.mjs).
    pub async fn fault(&self, fault: serde_json::Value) {
        let response = self.http.post(format!("{}/__test/fault", self.issuer)).json(&fault).send().await.unwrap();
        assert_eq!(response.status(), 204);
    }

    pub async fn clear_faults(&self) {
        self.http.post(format!("{}/__test/faults/clear", self.issuer)).send().await.unwrap();
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Refreshes with `refresh_token` directly, as another (now dead) process would have.
    pub async fn refresh_directly(&self, refresh_token: &str) -> u16 {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLIENT_ID)];
        self.http.post(format!("{}/token", self.issuer)).form(&form).send().await.unwrap().status().as_u16()
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.http.get(format!("{}/__test/stats", self.issuer)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn refresh_count(&self) -> u64 {
        self.stats().await["token"]["refresh_token"].as_u64().unwrap_or(0)
    }

    /// Whether the provider still considers `token` active (RFC 7662).
    pub async fn is_active(&self, token: &str) -> bool {
        let response = self
            .http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("introspector", Some("introspector-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["active"].as_bool().unwrap()
    }

    /// Calls the provider's protected test API with a bearer token.
    pub async fn call_api(&self, token: &str) -> u16 {
        self.http.get(format!("{}/__test/api", self.issuer)).bearer_auth(token).send().await.unwrap().status().as_u16()
    }
}

/// The stored record's refresh token (to check revocation at the provider).
pub fn stored_refresh_token(store: &MemoryStore, client_issuer: &str) -> Option<String> {
    let key = format!("{client_issuer}|{CLIENT_ID}");
    let record = store.load(&key).unwrap()?;
    let value: serde_json::Value = serde_json::from_str(record.expose()).unwrap();
    value["refresh_token"].as_str().map(str::to_owned)
}
