//! The provider at start-up: discovery and signing keys, from the stored copies when they are
//! recent, else from the network with an offline fallback.
//!
//! Both documents are validated by the core, and a copy of each is kept in the store with the
//! time it was fetched (they are public, but the store is where this session's state lives).
//! - **Recent copies** (fetched under [`STORED_COPY_MAX_AGE`] ago): the start uses them and
//!   makes no request, so a stored, still-fresh token is handed out without a round trip. A
//!   second after the start (`REVALIDATION_DELAY`), [`revalidate`] fetches both documents in
//!   the background: fresh keys are used at once, the copies are renewed, and a provider that now answers with a different
//!   issuer, an invalid document or a 4xx loses its copies, so that the next start asks the
//!   network and says what is wrong (never papered over). An unknown `kid` refetches the keys
//!   at once, as always (`jwks/`).
//! - **Older or no copies**: the start fetches; when the provider cannot be reached (network
//!   down, 429, 5xx), the last copies are used however old, so that an app started offline
//!   still restores its session. A different issuer or a 4xx is never papered over.
//!
//! The copies go with the session when it is wiped (logout, expiry): without a session there is
//! nothing to restore, and the next sign-in starts from the network.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionkit_core::http::HttpRequest;
use sessionkit_core::oidc::client::Issuer;
use sessionkit_core::oidc::discovery::{DiscoveryError, ProviderMetadata};
use sessionkit_core::{CoreError, Secret, UnixTime};

use crate::error::{self, Error};
use crate::http::{Transport, TransportError};
use crate::jwks::{Jwks, JwksError};
use crate::shared::SharedStore;

/// How old the stored copies may be for a start that makes no request.
pub(crate) const STORED_COPY_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Serialize, Deserialize, Default)]
struct Cached {
    discovery: Option<String>,
    jwks: Option<String>,
    /// When both were fetched (epoch ms); absent in copies written before it existed.
    #[serde(default)]
    fetched_at: Option<u64>,
}

/// Where the start-up documents came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The provider, just now (or the copies, because it could not be reached).
    Network,
    /// Recent stored copies, without a request: to be revalidated in the background.
    Stored,
}

/// The recent stored copies, validated as fresh documents are, if there are such.
fn stored_start(issuer: &Issuer, cached: &Cached, now: UnixTime) -> Option<(ProviderMetadata, Jwks)> {
    let fetched_at = UnixTime::from_millis(cached.fetched_at?);
    // A copy from the future (the clock was set back) is not trusted as recent.
    if fetched_at > now || now.saturating_duration_since(fetched_at) >= STORED_COPY_MAX_AGE {
        return None;
    }
    let metadata = ProviderMetadata::from_json(issuer, cached.discovery.as_deref()?.as_bytes()).ok()?;
    let jwks = Jwks::new(metadata.jwks_uri.clone());
    jwks.install(cached.jwks.as_deref()?.as_bytes()).ok()?;
    Some((metadata, jwks))
}

async fn save_cache(shared: &SharedStore, discovery: String, jwks: String, now: UnixTime) {
    let cached = Cached { discovery: Some(discovery), jwks: Some(jwks), fetched_at: Some(now.as_millis()) };
    let text = serde_json::to_string(&cached).unwrap_or_default();
    // Public documents: written outside the session's turn (see `SharedStore::save_unordered`).
    if shared.save_unordered(&shared.slots.provider, Secret::new(text)).await.is_err() {
        tracing::debug!("the provider documents could not be cached");
    }
}

async fn load_cache(shared: &SharedStore) -> Cached {
    match shared.load_unordered(&shared.slots.provider).await {
        // `from_slice`, as everywhere: `from_str` would put a second JSON parser in the wasm.
        Ok(Some(text)) => serde_json::from_slice(text.expose().as_bytes()).unwrap_or_default(),
        _ => Cached::default(),
    }
}

/// The provider's documents for a start: the recent stored copies, else the network (falling
/// back to older copies when the provider is unreachable).
pub(crate) async fn load(
    transport: &Transport,
    issuer: &Issuer,
    shared: &SharedStore,
    now: UnixTime,
) -> Result<(ProviderMetadata, Jwks, Source), Error> {
    let stored = load_cache(shared).await;
    if let Some((metadata, jwks)) = stored_start(issuer, &stored, now) {
        tracing::debug!("started from the provider documents stored at the last start; revalidated in the background");
        return Ok((metadata, jwks, Source::Stored));
    }
    let mut cache: Option<Cached> = Some(stored);
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
        save_cache(shared, discovery, keys, now).await;
    }
    Ok((metadata, jwks, Source::Network))
}

/// After a start from stored copies: fetches both documents again. Fresh keys go into `jwks`
/// at once (when the discovery document is the one `in_use`) and the copies are renewed (only while `keep_copies` says a session still wants
/// them). A provider that now refuses the discovery request (4xx), names another issuer or
/// serves an invalid document loses its copies, so the next start fetches and reports it; an
/// unreachable one keeps them.
pub(crate) async fn revalidate(
    transport: &Transport,
    issuer: &Issuer,
    shared: &SharedStore,
    in_use: &ProviderMetadata,
    jwks: &Jwks,
    now: UnixTime,
    keep_copies: impl Fn() -> bool,
) {
    let request = HttpRequest::get_json(issuer.discovery_url());
    let response = match transport.send_idempotent(&request).await {
        Ok(response) if !response.is_transient() => response,
        _ => return, // unreachable now: the copies stay, and the next start tries again
    };
    let refused = match ProviderMetadata::from_response(issuer, &response) {
        Ok(fresh) => {
            // The keys come from the address the fresh document names. Only when it is the one
            // in use do they replace the live keys; a provider that moved its documents is
            // followed from the next start (the running session keeps what it started with).
            let moved = fresh != *in_use;
            let fetched = if moved {
                tracing::warn!("the provider's discovery document changed; the new one is used from the next start");
                Jwks::new(fresh.jwks_uri.clone()).fetch(transport).await
            } else {
                jwks.fetch(transport).await
            };
            match fetched {
                Ok((_, keys)) => {
                    if keep_copies() {
                        let discovery = String::from_utf8_lossy(response.body()).into_owned();
                        save_cache(shared, discovery, String::from_utf8_lossy(&keys).into_owned(), now).await;
                        // A logout while this was written: its wipe may have come first.
                        if !keep_copies() {
                            let _ = shared.delete_unordered(&shared.slots.provider).await;
                        }
                    }
                    return;
                }
                Err(JwksError::Transport(_)) => return,
                Err(JwksError::Status(status)) if sessionkit_core::http::is_transient_status(status) => return,
                Err(error) => error.to_string(),
            }
        }
        Err(error) => error.to_string(),
    };
    tracing::warn!(%refused, "the provider's documents no longer validate; the stored copies are dropped, and the next start fetches them");
    let _ = shared.delete_unordered(&shared.slots.provider).await;
}
