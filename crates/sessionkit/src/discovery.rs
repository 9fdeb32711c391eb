//! The provider at start-up: discovery and signing keys, with an offline fallback.
//!
//! Both documents are fetched from the provider and validated by the core; a copy of each is
//! kept in the store (they are public, but the store is where this session's state lives). When
//! the provider cannot be reached (network down, 429, 5xx), the last copies are used instead, so
//! that an app started offline still restores its session and uses a token that has not expired.
//! A copy is validated exactly like a fresh document, and a provider that answers with a
//! different issuer or a 4xx is never papered over by the cache. The copies go with the session
//! when it is wiped (logout, expiry): without a session there is nothing to restore offline.

use serde::{Deserialize, Serialize};
use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::client::Issuer;
use sessionkit_core::oidc::discovery::{DiscoveryError, ProviderMetadata};
use sessionkit_core::{CoreError, Secret};

use crate::error::{self, Error};
use crate::http::{Transport, TransportError};
use crate::jwks::{Jwks, JwksError};
use crate::shared::SharedStore;

#[derive(Serialize, Deserialize, Default)]
struct Cached {
    discovery: Option<String>,
    jwks: Option<String>,
}

async fn load_cache(shared: &SharedStore) -> Cached {
    match shared.load_unordered(&shared.slots.provider).await {
        Ok(Some(text)) => serde_json::from_str(text.expose()).unwrap_or_default(),
        _ => Cached::default(),
    }
}

/// Discovers the provider and loads its keys, falling back to the cached copies when the
/// provider is unreachable.
pub(crate) async fn load(
    transport: &Transport,
    issuer: &Issuer,
    shared: &SharedStore,
) -> Result<(ProviderMetadata, Jwks), Error> {
    let mut cache: Option<Cached> = None;
    let request = HttpRequest::get_json(issuer.discovery_url());
    let (metadata, fresh_discovery) = match transport.send_idempotent(&request).await {
        Ok(response) if !response.is_transient() => {
            let metadata = ProviderMetadata::from_response(issuer, &response).map_err(CoreError::from)?;
            (metadata, Some(String::from_utf8_lossy(response.body()).into_owned()))
        }
        outcome => {
            let cached = cache.get_or_insert(load_cache(shared).await);
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
        Err(JwksError::Status(status)) if sessionkit_core::http::is_transient_status(status) => None,
        Err(e) => return Err(error::jwks(&e)),
    };
    if fresh_jwks.is_none() {
        let cached = cache.get_or_insert(load_cache(shared).await);
        let document = cached.jwks.as_deref().ok_or_else(|| Error::RetryLater {
            message: "the provider's signing keys could not be fetched".into(),
            retry_after: None,
        })?;
        jwks.install(document.as_bytes()).map_err(|e| error::jwks(&e))?;
        tracing::warn!("the provider is unreachable; using the signing keys cached at the last start");
    }
    if let (Some(discovery), Some(keys)) = (fresh_discovery, fresh_jwks) {
        let text = serde_json::to_string(&Cached { discovery: Some(discovery), jwks: Some(keys) }).unwrap_or_default();
        // Public documents: written outside the session's turn (see `SharedStore::save_unordered`).
        if shared.save_unordered(&shared.slots.provider, Secret::new(text)).await.is_err() {
            tracing::debug!("the provider documents could not be cached");
        }
    }
    Ok((metadata, jwks))
}
