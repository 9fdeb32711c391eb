//! Several users on one device (work and personal): [`Accounts`] keeps one session per account
//! name, side by side in one store, with one provider and one client id.
//!
//! Each account is an ordinary [`SessionClient`] whose store slots, refresh lock and (in the
//! browser) tab messages are keyed by its name, so accounts refresh, expire and sign out alone:
//! nothing one does reaches the other's record. Beside them the store keeps a small index (the
//! account names and the one the app last switched to), rewritten only under its own
//! cross-context lock, so that two processes or tabs adding accounts at once lose neither.
//! The index holds names only: no token, no subject.

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
    open: tokio::sync::Mutex<OpenClients>,
}

/// The clients handed out, by account name: about [`MAX_ACCOUNTS`] pairs (more only if other
/// contexts removed accounts this one still holds), so a list (a map's code cost 3.6 KB gzipped
/// in the browser for nothing at this size).
#[derive(Default)]
struct OpenClients(Vec<(String, SessionClient)>);

impl OpenClients {
    fn get(&self, name: &str) -> Option<SessionClient> {
        self.0.iter().find(|(open, _)| open == name).map(|(_, client)| client.clone())
    }

    /// Keeps `client` for `name` unless one is kept already; returns the one kept.
    fn keep_first(&mut self, name: &str, client: SessionClient) -> SessionClient {
        if let Some(kept) = self.get(name) {
            return kept;
        }
        self.0.push((name.to_owned(), client.clone()));
        client
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(open, _)| open != name);
    }
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Accounts {
    /// The accounts of `config`'s provider and client (its other settings apply to every
    /// account; an account name set on it is ignored). No request and no store access until a
    /// method is called.
    // In the browser the index's Web Lock holds JS values (not `Send`); wasm32 has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn new(mut config: SessionConfig) -> Result<Self, Error> {
        config.account = None;
        let key = format!("{}|accounts", config.store_key());
        let index = SharedStore::new(config.store.clone(), Slots::new(&key), context_lock(&config, &key)?);
        Ok(Self { config, index, open: tokio::sync::Mutex::default() })
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
    /// with the client's own sign-in methods); the account is listed from then on (again, if
    /// another context removed it meanwhile). Calling it again gives the same client. A name is
    /// 1 to 64 lowercase letters, digits, `.`, `_` or `-`; at most [`MAX_ACCOUNTS`] are listed.
    pub async fn open(&self, name: &str) -> Result<SessionClient, Error> {
        self.open_as(name, false).await
    }

    /// Makes `name` the current account (remembered in the store for the next start) and gives
    /// its session, as [`open`](Self::open) does.
    pub async fn switch_to(&self, name: &str) -> Result<SessionClient, Error> {
        self.open_as(name, true).await
    }

    async fn open_as(&self, name: &str, current: bool) -> Result<SessionClient, Error> {
        let config = self.config.for_account(name)?;
        let cached = self.open.lock().await.get(name);
        let (client, made_here) = match cached {
            Some(client) => (client, false),
            None => {
                // Made without holding the map: one slow provider does not hold up the other
                // accounts. Two callers racing keep the first client; the second one is dropped.
                let made = SessionClient::new(config).await?;
                let kept = self.open.lock().await.keep_first(name, made.clone());
                let made_here = kept.same_session(&made);
                (kept, made_here)
            }
        };
        // Listed only once the client exists, and on every call: another context may have
        // removed the account since this one opened it.
        let listed = self
            .update(None, |index, _| {
                if !index.names.iter().any(|listed| listed == name) {
                    if index.names.len() >= MAX_ACCOUNTS {
                        return Err(Error::InvalidInput {
                            message: format!(
                                "there are already {MAX_ACCOUNTS} accounts; remove one before adding another"
                            ),
                        });
                    }
                    index.names.push(name.to_owned());
                }
                if current {
                    index.current = Some(name.to_owned());
                }
                Ok(())
            })
            .await;
        if let Err(error) = listed {
            // Not listed (the list is full, or the store failed): not kept open either.
            // Only the one made here: another caller's, kept before it, is theirs to keep.
            if made_here {
                self.open.lock().await.remove(name);
            }
            return Err(error);
        }
        Ok(client)
    }

    /// Signs account `name` out (as [`SessionClient::logout`]: wipe, revoke, end-session) and
    /// forgets it; the other accounts are not touched. Returns the provider's end-session page
    /// for that account, if it has one. If the sign-out fails, the account stays listed; if
    /// another context signed the account in again meanwhile, it stays listed with that session.
    pub async fn remove(&self, name: &str) -> Result<Option<EndSessionRequest>, Error> {
        let client = self.open(name).await?;
        let end_session = client.logout().await?;
        let session_slot = self.config.for_account(name)?.store_key();
        self.update(Some(&session_slot), |index, signed_in_again| {
            if signed_in_again {
                return Ok(());
            }
            index.names.retain(|listed| listed != name);
            if index.current.as_deref() == Some(name) {
                index.current = None;
            }
            Ok(())
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
        Ok(parse(stored.as_ref()).unwrap_or_default())
    }

    /// Reads, changes and writes the index under its cross-context lock. `change` also hears
    /// whether `slot` (a session record) holds anything, read under the same lock.
    async fn update(
        &self,
        slot: Option<&str>,
        change: impl FnOnce(&mut Index, bool) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut turn = self.index.turn().await;
        turn.locked().await?;
        let index_slot = &self.index.slots.session;
        let stored = turn.load(index_slot).await.map_err(|e| error::store(&e))?;
        // Not a secret (account names): kept to skip a write that would change nothing.
        let stored_text = stored.as_ref().map(|text| text.expose().to_owned());
        let mut index = match parse(stored.as_ref()) {
            Some(index) => index,
            None => {
                // Not ours to read (damaged, or from a newer version): kept aside, not lost, and
                // the list starts again.
                if let Some(damaged) = stored {
                    tracing::warn!("the stored account list could not be read; it is kept aside and a new one started");
                    turn.save(&format!("{index_slot}|unreadable"), damaged).await.map_err(|e| error::store(&e))?;
                }
                Index::default()
            }
        };
        let holds_record = match slot {
            Some(slot) => turn.load(slot).await.map_err(|e| error::store(&e))?.is_some(),
            None => false,
        };
        change(&mut index, holds_record)?;
        let encoded = serde_json::to_string(&index).map_err(|e| Error::StorageUnavailable {
            message: format!("the account list could not be encoded: {e}"),
        })?;
        if stored_text.as_deref() == Some(encoded.as_str()) {
            return Ok(()); // nothing to write: opening a listed account writes nothing
        }
        turn.save(index_slot, Secret::new(encoded)).await.map_err(|e| error::store(&e))
    }
}

/// The maximum number of accounts listed: enough for any person, and a bound on the index.
pub const MAX_ACCOUNTS: usize = 32;

/// The stored index: `None` when there is one that does not read (damaged, or not ours); an
/// absent index is an empty one.
fn parse(stored: Option<&Secret>) -> Option<Index> {
    let Some(stored) = stored else { return Some(Index::default()) };
    if stored.expose().len() > MAX_INDEX_BYTES {
        return None;
    }
    // `from_slice`, as everywhere: `from_str` would put a second JSON parser in the wasm.
    let mut index: Index = serde_json::from_slice(stored.expose().as_bytes()).ok()?;
    // The first MAX_ACCOUNTS valid names, each once (a list: at most 32 to compare against).
    let mut names: Vec<String> = Vec::with_capacity(MAX_ACCOUNTS);
    for name in std::mem::take(&mut index.names) {
        if names.len() < MAX_ACCOUNTS && crate::config::valid_account_name(&name) && !names.contains(&name) {
            names.push(name);
        }
    }
    index.names = names;
    if index.current.as_ref().is_some_and(|current| !index.names.contains(current)) {
        index.current = None;
    }
    Some(index)
}
