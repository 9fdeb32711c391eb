//! The provider at start-up: discovery and signing keys, with an offline fallback.
//!
//! Both documents are fetched from the provider and validated by the core; a copy of each is
//! kept in the store (they are public, but the store is where this session's state lives). When
//! the provider cannot be reached (network down, 429, 5xx), the last copies are used instead, so
//! that an app started offline still restores its session and uses a token that has not expired.
//! A copy is validated exactly like a fresh document, and a provider that answers with a
//! different issuer or a 4xx is never papered over by the cache. The copies go with the session
//! when it is wiped (logout, expiry): without a session there is nothing to restore offline.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::client::Issuer;
use sessionkit_core::oidc::discovery::{DiscoveryError, ProviderMetadata};
use sessionkit_core::{CoreError, Secret};

use crate::error::{self, Error};
use crate::http::{Transport, TransportError};
use crate::jwks::{Jwks, JwksError};
use crate::store::SecureStore;

#[derive(Serialize, Deserialize, Default)]
struct Cached {
    discovery: Option<String>,
    jwks: Option<String>,
}

fn transient_status(status: u16) -> bool {
    status == 429 || status >= 500
}

async fn load_cache(store: &Arc<dyn SecureStore>, key: &str) -> Cached {
    let (store, key) = (store.clone(), key.to_owned());
    let loaded = crate::runtime::run_blocking(move || store.load(&key)).await;
    match loaded {
        Some(Ok(Some(text))) => serde_json::from_str(text.expose()).unwrap_or_default(),
        _ => Cached::default(),
    }
}

/// Discovers the provider and loads its keys, falling back to the cached copies when the
/// provider is unreachable.
pub(crate) async fn load(
    transport: &Transport,
    issuer: &Issuer,
    store: &Arc<dyn SecureStore>,
    key: &str,
) -> Result<(ProviderMetadata, Jwks), Error> {
    let mut cache: Option<Cached> = None;
    let request = HttpRequest::get_json(issuer.discovery_url());
    let (metadata, fresh_discovery) = match transport.send_idempotent(&request).await {
        Ok(response) if !transient_status(response.status()) => {
            let metadata = ProviderMetadata::from_response(issuer, &response).map_err(CoreError::from)?;
            (metadata, Some(String::from_utf8_lossy(response.body()).into_owned()))
        }
        outcome => {
            let cached = cache.get_or_insert(load_cache(store, key).await);
            let Some(document) = &cached.discovery else {
                return Err(match outcome {
                    Ok(response) => CoreError::Discovery(DiscoveryError::Status(response.status())).into(),
                    Err(e) => error::transport(e),
                });
            };
            tracing::warn!("the provider is unreachable; using the discovery document cached at the last start");
            (ProviderMetadata::from_json(issuer, document.as_bytes()).map_err(CoreError::from)?, None)
        }
    };
    let jwks = Jwks::new(metadata.jwks_uri.clone());
    let fresh_jwks = match jwks.fetch(transport).await {
        Ok((_, document)) => Some(String::from_utf8_lossy(&document).into_owned()),
        Err(JwksError::Transport(
            TransportError::Connect { .. } | TransportError::Timeout { .. } | TransportError::Other { .. },
        )) => None,
        Err(JwksError::Status(status)) if transient_status(status) => None,
        Err(e) => return Err(error::jwks(&e)),
    };
    if fresh_jwks.is_none() {
        let cached = cache.get_or_insert(load_cache(store, key).await);
        let document = cached.jwks.as_deref().ok_or_else(|| Error::RetryLater {
            message: "the provider's signing keys could not be fetched".into(),
            retry_after: None,
        })?;
        jwks.install(document.as_bytes()).map_err(|e| error::jwks(&e))?;
        tracing::warn!("the provider is unreachable; using the signing keys cached at the last start");
    }
    if let (Some(discovery), Some(keys)) = (fresh_discovery, fresh_jwks) {
        let text = serde_json::to_string(&Cached { discovery: Some(discovery), jwks: Some(keys) }).unwrap_or_default();
        let (store, key) = (store.clone(), key.to_owned());
        let saved = crate::runtime::run_blocking(move || store.save(&key, &Secret::new(text))).await;
        if !matches!(saved, Some(Ok(()))) {
            tracing::debug!("the provider documents could not be cached");
        }
    }
    Ok((metadata, jwks))
}
