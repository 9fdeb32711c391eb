//! Several users on one device (work and personal): [`Accounts`] keeps one session per account
//! name, side by side in one store, with one provider and one client id.
//!
//! Each account is an ordinary [`SessionClient`] whose store slots, refresh lock and (in the
//! browser) tab channel are keyed by its name, so accounts refresh, expire and sign out alone:
//! nothing one does reaches the other's record. Beside them the store keeps a small index (the
//! account names and the one the app last switched to), rewritten only under its own
//! cross-context lock, so that two processes or tabs adding accounts at once lose neither.
//! The index holds names only: no token, no subject.

use std::collections::BTreeMap;

use sessionkit_core::Secret;
use sessionkit_core::oidc::logout::EndSessionRequest;

use crate::client::context_lock;
use crate::error::{self, Error};
use crate::shared::{SharedStore, Slots};
use crate::{SessionClient, SessionConfig};

/// The longest index accepted from the store (a few names; anything larger is not ours).
const MAX_INDEX_BYTES: usize = 16 * 1024;

/// The stored index: account names in the order they were added, and the current one.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Index {
    names: Vec<String>,
    current: Option<String>,
}

/// The accounts of one provider and client on this device. Cheap to share (`Arc`); one per
/// process is enough, as it hands out one [`SessionClient`] per account and reuses it.
pub struct Accounts {
    config: SessionConfig,
    index: SharedStore,
    open: tokio::sync::Mutex<BTreeMap<String, SessionClient>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Accounts {
    /// The accounts of `config`'s provider and client (its other settings apply to every
    /// account; an account name set on it is ignored). No I/O until a method is called.
    // In the browser the index's Web Lock holds JS values (not `Send`); wasm32 has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn new(mut config: SessionConfig) -> Result<Self, Error> {
        config.account = None;
        let key = format!("{}|accounts", config.store_key());
        let index = SharedStore::new(config.store.clone(), Slots::new(&key), context_lock(&config, &key)?);
        Ok(Self { config, index, open: tokio::sync::Mutex::new(BTreeMap::new()) })
    }

    /// The account names, in the order they were added (signed in or not: see each one's
    /// [`SessionClient::status`]).
    pub async fn names(&self) -> Result<Vec<String>, Error> {
        Ok(self.read().await?.names)
    }

    /// The account the app last switched to, if it is still listed.
    pub async fn current(&self) -> Result<Option<String>, Error> {
        Ok(self.read().await?.current)
    }

    /// The session of account `name` (restored from the store, or signed out until it signs in
    /// with the client's own sign-in methods); the account is listed from now on. Calling it
    /// again gives the same client. A name is 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    pub async fn open(&self, name: &str) -> Result<SessionClient, Error> {
        let config = self.config.for_account(name)?;
        let mut open = self.open.lock().await;
        if let Some(client) = open.get(name) {
            return Ok(client.clone());
        }
        self.update(|index| {
            if !index.names.iter().any(|listed| listed == name) {
                index.names.push(name.to_owned());
            }
        })
        .await?;
        let client = SessionClient::new(config).await?;
        open.insert(name.to_owned(), client.clone());
        Ok(client)
    }

    /// Makes `name` the current account (remembered in the store for the next start) and gives
    /// its session, as [`open`](Self::open) does.
    pub async fn switch_to(&self, name: &str) -> Result<SessionClient, Error> {
        let client = self.open(name).await?;
        self.update(|index| index.current = Some(name.to_owned())).await?;
        Ok(client)
    }

    /// Signs account `name` out (as [`SessionClient::logout`]: wipe, revoke, end-session) and
    /// forgets it; the other accounts are not touched. Returns the provider's end-session page
    /// for that account, if it has one. If the sign-out fails, the account stays listed.
    pub async fn remove(&self, name: &str) -> Result<Option<EndSessionRequest>, Error> {
        let client = self.open(name).await?;
        let end_session = client.logout().await?;
        self.update(|index| {
            index.names.retain(|listed| listed != name);
            if index.current.as_deref() == Some(name) {
                index.current = None;
            }
        })
        .await?;
        self.open.lock().await.remove(name);
        Ok(end_session)
    }

    /// Reads the index under its lock: in the browser, taking the lock brings this tab's view of
    /// the store up to date with what other tabs wrote.
    async fn read(&self) -> Result<Index, Error> {
        let mut turn = self.index.turn().await;
        turn.locked().await?;
        let slot = &self.index.slots.session;
        let stored = turn.load(slot).await.map_err(|e| error::store(&e))?;
        Ok(parse(stored.as_ref()))
    }

    /// Read, change and write the index under its cross-context lock.
    async fn update(&self, change: impl FnOnce(&mut Index)) -> Result<(), Error> {
        let mut turn = self.index.turn().await;
        turn.locked().await?;
        let slot = &self.index.slots.session;
        let mut index = parse(turn.load(slot).await.map_err(|e| error::store(&e))?.as_ref());
        change(&mut index);
        let encoded = serde_json::to_string(&index).map_err(|e| Error::StorageUnavailable {
            message: format!("the account list could not be encoded: {e}"),
        })?;
        turn.save(slot, Secret::new(encoded)).await.map_err(|e| error::store(&e))
    }
}

/// The stored index; an unreadable one (damaged, or not ours) reads as empty, as a clean start:
/// the sessions themselves are untouched and reappear when their accounts are opened.
fn parse(stored: Option<&Secret>) -> Index {
    let Some(stored) = stored.filter(|s| s.expose().len() <= MAX_INDEX_BYTES) else { return Index::default() };
    let mut index: Index = serde_json::from_str(stored.expose()).unwrap_or_default();
    index.names.retain(|name| crate::config::valid_account_name(name));
    index.names.dedup();
    if index.current.as_ref().is_some_and(|current| !index.names.contains(current)) {
        index.current = None;
    }
    index
}
