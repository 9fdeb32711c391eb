//! The local provider for these tests: `tests/idp/provider.rs` with test conveniences.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use sessionkit::http::HttpOptions;
use sessionkit::store::{MemoryStore, SecureStore};
use sessionkit::{SessionClient, SessionConfig, SessionConfigBuilder, SessionPolicy};

#[allow(dead_code)] // each user of the shared file needs a different part of it
#[path = "../../../../tests/idp/provider.rs"]
mod provider;

pub use provider::CLIENT_ID;

/// A running provider; methods panic with the provider's message on failure.
pub struct Idp(provider::LocalProvider);

impl Deref for Idp {
    type Target = provider::LocalProvider;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Idp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Idp {
    /// Starts the provider with access tokens living `access_ttl` seconds. Its log goes to
    /// `$TMPDIR/sessionkit-idp-<pid>.log`.
    pub fn start(access_ttl: u64) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp");
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("sessionkit-idp-{}.log", std::process::id())))
                .expect("log file");
        Self(provider::LocalProvider::start(&dir, access_ttl, Stdio::from(log)).unwrap())
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

    pub async fn authorize(&self, url: &str) -> String {
        self.0.authorize(url).await.unwrap()
    }

    pub async fn approve_device(&self, verification_uri_complete: &str) {
        self.0.approve_device(verification_uri_complete).await.unwrap();
    }

    /// Signs `client` in through the two-step flow.
    pub async fn login(&self, client: &SessionClient) {
        let request = client.begin_login(&Default::default()).await.unwrap();
        let callback = self.authorize(request.url()).await;
        client.complete_login(request, &callback).await.unwrap();
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.0.stats().await.unwrap()
    }

    pub async fn refresh_count(&self) -> u64 {
        self.0.refresh_count().await.unwrap()
    }

    pub async fn is_active(&self, token: &str) -> bool {
        self.0.is_active(token).await.unwrap()
    }

    /// A call to the protected test API as an app makes it: headers from `authorize` (a DPoP
    /// proof when the session is bound), and one retry when the API asks for a DPoP nonce.
    pub async fn call_api(&self, client: &SessionClient) -> u16 {
        let url = self.0.api_url();
        for _ in 0..2 {
            let headers = client.authorize("GET", &url).await.unwrap();
            let answer = self
                .0
                .call_api_with(headers.authorization.expose(), headers.dpop.as_ref().map(|p| p.expose()))
                .await
                .unwrap();
            let again = client.note_api_response(
                &url,
                answer.status,
                answer.www_authenticate.as_deref(),
                answer.dpop_nonce.as_deref(),
            );
            if !again {
                return answer.status;
            }
        }
        panic!("the API asked for a nonce twice")
    }

    /// A call to the test API with `token` as a Bearer token, without any proof.
    pub async fn call_api_bearer(&self, token: &str) -> u16 {
        self.0.call_api(token).await.unwrap()
    }

    pub async fn fault(&self, fault: serde_json::Value) {
        self.0.fault(fault).await.unwrap();
    }

    pub async fn reset_stats(&self) {
        self.0.reset_stats().await.unwrap();
    }

    pub async fn clear_faults(&self) {
        self.0.clear_faults().await.unwrap();
    }

    pub async fn refresh_directly(&self, refresh_token: &str) -> u16 {
        self.0.refresh_directly(refresh_token).await.unwrap()
    }
}

/// The stored record's refresh token (to check revocation at the provider).
pub fn stored_refresh_token(store: &MemoryStore, issuer: &str) -> Option<String> {
    let key = format!("{issuer}|{CLIENT_ID}");
    let record = store.load(&key).unwrap()?;
    let value: serde_json::Value = serde_json::from_str(record.expose()).unwrap();
    value["refresh_token"].as_str().map(str::to_owned)
}
