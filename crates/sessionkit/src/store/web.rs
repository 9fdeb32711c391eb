//! [`WebStore`]: the browser's store. Records live in IndexedDB, each sealed with AES-GCM under
//! a non-extractable WebCrypto key kept in the same database (script can use the key, never
//! read it out); nothing goes to localStorage, sessionStorage or cookies.
//!
//! The client's store calls are synchronous, IndexedDB and WebCrypto are not; so the store
//! keeps an in-memory mirror that reads come from, and applies writes to IndexedDB in order,
//! one after the other, in the background. The points that need the disk, not the mirror, get
//! it through the two `SecureStore` methods this store gives meaning to:
//! - `reload` (the mirror replaced with what IndexedDB holds): right after the cross-tab lock is
//!   taken (to see a token another tab rotated), before a start restores a record without the
//!   lock (unless its tab heard every change since the open's read: `take_tabs_channel`), and
//!   for a tab told by another that the session changed;
//! - `flush` (every write so far on disk, and the slot's failed one reported): after each write
//!   made under the lock, so that the lock goes only once the write landed. A refreshed token
//!   whose write failed keeps the lock held and the session retrying, never a spent refresh
//!   token on disk for another tab to replay (other failed writes are retried as well).
//!
//! A background write that fails is reported by `flush` for its slot (as `Unavailable`, so the
//! session retries and keeps its tokens in memory) until a later write to the slot lands. A
//! record that no longer opens (its key was evicted or the record altered) reads as absent: a
//! clean signed-out start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sessionkit_core::Secret;
use wasm_bindgen::prelude::*;

use super::{SecureStore, StoreError};
use crate::runtime::BoxFuture;

/// The largest record accepted (session records are a few KB).
const MAX_VALUE_BYTES: usize = 64 * 1024;

#[wasm_bindgen(module = "/src/store/web.js")]
extern "C" {
    #[wasm_bindgen(js_name = sealAndPut, catch)]
    async fn seal_and_put(database: &str, slot: &str, plaintext: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn remove(database: &str, slot: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = loadAll, catch)]
    async fn load_all(database: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = loadFirst, catch)]
    async fn load_first(database: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = openTabsChannel, catch)]
    fn open_tabs_channel(database: &str) -> Result<web_sys::BroadcastChannel, JsValue>;
    #[wasm_bindgen(js_name = adoptWatcher)]
    fn adopt_watcher(id: u32, key: &str) -> JsValue;
    #[wasm_bindgen(js_name = dropWatcher)]
    fn drop_watcher(id: u32);
    #[wasm_bindgen(js_name = requestPersistence)]
    async fn request_persistence() -> JsValue;
    #[wasm_bindgen(js_name = acquireLock, catch)]
    pub(crate) async fn acquire_lock(name: &str, timeout_ms: u32) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = createSigningKey, catch)]
    pub(crate) async fn create_signing_key(database: &str, id: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = signWithKey, catch)]
    pub(crate) async fn sign_with_key(database: &str, id: &str, data: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = deleteSigningKey, catch)]
    pub(crate) async fn delete_signing_key(database: &str, id: &str) -> Result<(), JsValue>;
}

/// The browser's encrypted IndexedDB store. Open it with [`WebStore::open`].
#[derive(Debug)]
pub struct WebStore {
    shared: Arc<Shared>,
    /// Set once the browser agreed to keep the storage (asked in the background).
    persistent: Arc<AtomicBool>,
    /// The tabs' channel of this database, listened to since before the open's read (an id in
    /// web.js; 0 once a session took it over, or if there is none): see [`WebStore::take_tabs_channel`].
    watcher: AtomicU32,
}

/// The tabs' channel of a store's database, as a session takes it over from the store.
pub(crate) struct TabsChannel {
    pub(crate) channel: web_sys::BroadcastChannel,
    /// Whether the channel was listened to since before the store's mirror was read, and heard
    /// no change of this session from another tab: the mirror is then as new as IndexedDB for
    /// this session (a later change will be heard).
    pub(crate) unchanged_since_read: bool,
    /// Whether another tab said its user was active meanwhile.
    pub(crate) active: bool,
}

#[derive(Debug)]
struct Shared {
    database: String,
    state: Mutex<State>,
    /// The sequence number of the last write applied to IndexedDB.
    written: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    mirror: HashMap<String, Secret>,
    /// The sequence number of the last write queued.
    queued: u64,
    /// Per slot, why its last background write failed (until a later write to it lands).
    failed: HashMap<String, String>,
    /// While reloads are under way: the slots written, by sequence number. A write queued
    /// after a reload began may be missing from its snapshot; the mirror's value is kept.
    reloads: usize,
    written_during_reload: Vec<(u64, String)>,
    /// Reloads in the order their reads of IndexedDB began, and the latest one applied: a
    /// reload whose read began earlier than an applied one's leaves the mirror as it is (it
    /// would bring back an older snapshot; several sessions may share this store).
    reads_begun: u64,
    read_applied: u64,
}

enum Write {
    Put(String, Secret),
    Delete(String),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a write; it runs after every write queued before it.
    fn enqueue(self: &Arc<Self>, write: Write) {
        let sequence = {
            let mut state = self.state();
            state.queued += 1;
            let sequence = state.queued;
            if state.reloads > 0 {
                let slot = match &write {
                    Write::Put(slot, _) | Write::Delete(slot) => slot.clone(),
                };
                state.written_during_reload.push((sequence, slot));
            }
            sequence
        };
        let shared = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut written = shared.written.subscribe();
            let _ = written.wait_for(|done| *done + 1 >= sequence).await;
            let (slot, result) = match &write {
                Write::Put(slot, value) => (slot, seal_and_put(&shared.database, slot, value.expose()).await),
                Write::Delete(slot) => (slot, remove(&shared.database, slot).await),
            };
            match result {
                Ok(()) => {
                    shared.state().failed.remove(slot);
                }
                Err(error) => {
                    let reason = describe_js_error(&error);
                    tracing::warn!(%reason, "a write to IndexedDB failed; the session stays in memory");
                    shared.state().failed.insert(slot.clone(), reason);
                }
            }
            shared.written.send_modify(|done| *done = (*done).max(sequence));
        });
    }

    /// Waits until every write queued so far is on disk (or has failed).
    async fn flushed(&self) {
        let target = self.state().queued;
        let mut written = self.written.subscribe();
        let _ = written.wait_for(|done| *done >= target).await;
    }
}

/// A reload under way: while one is, writes note their slot (see `State::reloads`). Ended
/// explicitly, or on drop if the reload was abandoned.
struct Reloading<'a> {
    shared: &'a Shared,
    queued_before: u64,
    ended: bool,
}

impl<'a> Reloading<'a> {
    fn begin(shared: &'a Shared) -> Self {
        let mut state = shared.state();
        state.reloads += 1;
        Self { shared, queued_before: state.queued, ended: false }
    }

    fn end(mut self, state: &mut State) {
        self.ended = true;
        Self::leave(state);
    }

    fn leave(state: &mut State) {
        state.reloads -= 1;
        if state.reloads == 0 {
            state.written_during_reload.clear();
        }
    }
}

impl Drop for Reloading<'_> {
    fn drop(&mut self) {
        if !self.ended {
            Self::leave(&mut self.shared.state());
        }
    }
}

impl WebStore {
    /// Opens (or creates) the IndexedDB database `database` and reads the stored records (or
    /// takes the read the package started while its module loaded: `loadFirst` in web.js); a
    /// second later, asks the browser, in the background, to keep this origin's storage
    /// (`navigator.storage.persist()`). IndexedDB being unusable (some private modes) is
    /// [`StoreError::Unavailable`].
    pub async fn open(database: &str) -> Result<Arc<Self>, StoreError> {
        let store = Arc::new(Self {
            shared: Arc::new(Shared {
                database: database.to_owned(),
                state: Mutex::new(State::default()),
                written: tokio::sync::watch::Sender::new(0),
            }),
            persistent: Arc::new(AtomicBool::new(false)),
            watcher: AtomicU32::new(0),
        });
        store.read_into_mirror(true).await?;
        // Asked a second after the open, and not awaited: Firefox asks the user and answers
        // only when they choose, Chromium holds IndexedDB calls back until it has answered,
        // which would slow the start's reads; nothing the store does depends on the answer.
        let answer = Arc::clone(&store.persistent);
        crate::runtime::spawn(async move {
            crate::runtime::sleep(std::time::Duration::from_secs(1)).await;
            let agreed = request_persistence().await.as_bool().unwrap_or(false);
            answer.store(agreed, Ordering::Relaxed);
        });
        Ok(store)
    }

    /// The mirror replaced with what IndexedDB holds (see `reload`). `first`: the open's read,
    /// which may be the one the package started while the module loaded (`loadFirst`).
    async fn read_into_mirror(&self, first: bool) -> Result<(), StoreError> {
        let reloading = Reloading::begin(&self.shared);
        self.shared.flushed().await;
        let read = {
            let mut state = self.shared.state();
            state.reads_begun += 1;
            state.reads_begun
        };
        let entries = if first {
            // [records, watcher]: the watcher is the store's until a session takes it over.
            load_first(&self.shared.database).await.map(|loaded| {
                let loaded = js_sys::Array::from(&loaded);
                self.watcher.store(loaded.get(1).as_f64().unwrap_or(0.0) as u32, Ordering::Relaxed);
                loaded.get(0)
            })
        } else {
            load_all(&self.shared.database).await
        };
        let mut state = self.shared.state();
        let written_since: Vec<String> = state
            .written_during_reload
            .iter()
            .filter(|(sequence, _)| *sequence > reloading.queued_before)
            .map(|(_, slot)| slot.clone())
            .collect();
        reloading.end(&mut state);
        if read < state.read_applied {
            return Ok(());
        }
        let entries = entries
            .map_err(|e| StoreError::Unavailable(format!("IndexedDB could not be read: {}", describe_js_error(&e))))?;
        state.read_applied = read;
        let mut mirror = parse_entries(&entries);
        for slot in written_since {
            match state.mirror.get(&slot) {
                Some(value) => mirror.insert(slot, value.clone()),
                None => mirror.remove(&slot),
            };
        }
        state.mirror = mirror;
        Ok(())
    }

    /// Whether the browser agreed to keep this origin's storage under pressure (false until it
    /// answered, a second or so after [`WebStore::open`]).
    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Waits until every write made so far is in IndexedDB (before a navigation, or before
    /// letting another tab take the refresh lock).
    pub async fn flushed(&self) {
        self.shared.flushed().await;
    }

    /// For the session `key`: the tabs' channel of this database. The first session to ask
    /// takes over the one listened to since before the open's read, with what it heard (see
    /// [`TabsChannel`]); any later one gets a new channel, heard from now on. `None` where the
    /// browser has no BroadcastChannel.
    pub(crate) fn take_tabs_channel(&self, key: &str) -> Option<TabsChannel> {
        let id = self.watcher.swap(0, Ordering::Relaxed);
        if id != 0 {
            let taken = adopt_watcher(id, key);
            if !taken.is_undefined() {
                let taken = js_sys::Array::from(&taken);
                if let Ok(channel) = taken.get(0).dyn_into::<web_sys::BroadcastChannel>() {
                    return Some(TabsChannel {
                        channel,
                        unchanged_since_read: !taken.get(1).is_truthy(),
                        active: taken.get(2).is_truthy(),
                    });
                }
            }
        }
        let channel = open_tabs_channel(&self.shared.database).ok()?;
        Some(TabsChannel { channel, unchanged_since_read: false, active: false })
    }
}

impl Drop for WebStore {
    fn drop(&mut self) {
        let id = *self.watcher.get_mut();
        if id != 0 {
            drop_watcher(id);
        }
    }
}

/// `[[slot, plaintext | null], ...]` from `loadAll`, as a map; unreadable records are left out.
fn parse_entries(entries: &JsValue) -> HashMap<String, Secret> {
    let mut mirror = HashMap::new();
    for entry in js_sys::Array::from(entries).iter() {
        let pair = js_sys::Array::from(&entry);
        let Some(slot) = pair.get(0).as_string() else { continue };
        match pair.get(1).as_string() {
            Some(plaintext) => {
                mirror.insert(slot, Secret::new(plaintext));
            }
            None => tracing::warn!(%slot, "a stored record does not open under this database's key; ignored"),
        }
    }
    mirror
}

/// A JS error's name and message, e.g. "QuotaExceededError: ...". Never a stored value: the
/// helpers throw only IndexedDB, WebCrypto and lock errors.
pub(crate) fn describe_js_error(error: &JsValue) -> String {
    let field = |name: &str| js_sys::Reflect::get(error, &name.into()).ok().and_then(|v| v.as_string());
    match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {}", message.chars().take(200).collect::<String>()),
        (Some(name), None) => name,
        _ => "unknown error".to_owned(),
    }
}

impl SecureStore for WebStore {
    /// Replaces the mirror with what IndexedDB holds now (after this store's own writes have
    /// landed): what other tabs wrote becomes visible. Records that do not open read as absent.
    /// A slot this tab wrote while the snapshot was read keeps the mirror's (newer) value.
    fn reload(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.read_into_mirror(false))
    }

    /// Waits until every write accepted so far is in IndexedDB (or has failed); reports a
    /// failure of the last write to `key`, the slot's own (another slot's does not count).
    fn flush<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.shared.flushed().await;
            match self.shared.state().failed.get(key) {
                Some(reason) => Err(StoreError::Unavailable(format!("a write to IndexedDB failed: {reason}"))),
                None => Ok(()),
            }
        })
    }

    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        Ok(self.shared.state().mirror.get(key).cloned())
    }

    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::TooLarge);
        }
        self.shared.state().mirror.insert(key.to_owned(), value.clone());
        self.shared.enqueue(Write::Put(key.to_owned(), value.clone()));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.shared.state().mirror.remove(key);
        self.shared.enqueue(Write::Delete(key.to_owned()));
        Ok(())
    }

    fn describe(&self) -> String {
        let kept = if self.is_persistent() { "persistent" } else { "best-effort" };
        format!("IndexedDB, AES-GCM sealed ({kept})")
    }
}

/// Takes the browser's Web Lock `name` (waiting up to `timeout_ms`); returns its release function.
pub(crate) async fn take_web_lock(name: &str, timeout_ms: u32) -> Result<js_sys::Function, String> {
    let release = acquire_lock(name, timeout_ms).await.map_err(|e| describe_js_error(&e))?;
    release.dyn_into::<js_sys::Function>().map_err(|_| "the lock gave no release function".to_owned())
}

#[cfg(test)]
#[path = "web_tests.rs"]
pub(crate) mod tests;
