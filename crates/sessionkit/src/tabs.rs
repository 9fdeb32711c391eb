//! Many tabs, one session (browser only): the origin's tabs that share a store hear from each
//! other on a BroadcastChannel named after its database (or after the store key, for a store of
//! the app's own), beside the Web Lock (`lock.rs`) that orders their writes. Each message names
//! its session (the store key); a session hears only its own.
//!
//! - When this tab's session changed in a way the others must adopt (a sign-in, a refresh, a
//!   sign-out, an end: [`SessionEvent::changes_stored_session`]), it waits until its writes are
//!   in IndexedDB, then says `changed`; the others re-read the store (`sync_from_store`).
//! - When its user is active, it says `activity`; the others count it for the idle timeout
//!   (without saying it again).
//!
//! - A start needs no second read of the store to catch a change made while it read: the first
//!   session of a browser store takes over the channel the store listened to since before its
//!   first read (`WebStore::take_tabs_channel`), with what it heard meanwhile.
//!
//! Messages carry no secret: `{ kind: "changed", key }` or `{ kind: "activity", key }`. The
//! tokens travel only through the encrypted store, under the lock. Where the browser has no
//! BroadcastChannel, each tab keeps the session on its own (still one refresh between them,
//! under the lock).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use sessionkit_core::SessionEvent;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::client::Inner;
use crate::store::WebStore;

const CHANGED: &str = "changed";
const ACTIVITY: &str = "activity";

/// The start states (`Tabs::starting`): starting, with activity heard meanwhile, started.
const STARTING: u8 = 0;
const STARTING_ACTIVE: u8 = 1;
const STARTED: u8 = 2;

/// The handler of the other tabs' messages, kept alive as long as the channel.
type OnMessage = Closure<dyn FnMut(MessageEvent)>;

/// This tab's end of the channel, and the browser store whose writes must land before the
/// other tabs are told. Dropping it leaves the channel.
pub(crate) struct Tabs {
    channel: Option<(BroadcastChannel, OnMessage)>,
    /// This session's name in the messages.
    key: JsValue,
    /// Whether this tab heard every change of the session since the store's mirror was read.
    heard_since_read: bool,
    /// Activity the other tabs reported while this session started (see
    /// [`Tabs::take_activity_heard_while_starting`]), shared with the message handler.
    starting: Arc<AtomicU8>,
    store: Option<Arc<WebStore>>,
    /// How many `changed` messages wait for this tab's writes to land before they go out.
    unsent: tokio::sync::watch::Sender<usize>,
}

impl std::fmt::Debug for Tabs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tabs").field("joined", &self.channel.is_some()).finish_non_exhaustive()
    }
}

impl Tabs {
    /// Joins the channel of the session `store_key`; what the other tabs say of it is applied
    /// to `inner`.
    pub(crate) fn join(store_key: &str, store: Option<Arc<WebStore>>, inner: Weak<Inner>) -> Self {
        let (channel, heard_since_read, active) = match &store {
            Some(store) => match store.take_tabs_channel(store_key) {
                Some(taken) => (Some(taken.channel), taken.unchanged_since_read, taken.active),
                None => (None, false, false),
            },
            None => (BroadcastChannel::new(&format!("sessionkit|{store_key}")).ok(), false, false),
        };
        let key = JsValue::from_str(store_key);
        let starting = Arc::new(AtomicU8::new(if active { STARTING_ACTIVE } else { STARTING }));
        let channel = channel.map(|channel| {
            let ours = key.clone();
            let starting = starting.clone();
            let on_message = OnMessage::new(move |message: MessageEvent| {
                let field = |name: &str| js_sys::Reflect::get(&message.data(), &name.into()).ok();
                if field("key").as_ref() != Some(&ours) {
                    return; // another session's (an account beside this one)
                }
                match field("kind").and_then(|kind| kind.as_string()).as_deref() {
                    Some(CHANGED) => {
                        let Some(inner) = inner.upgrade() else { return };
                        wasm_bindgen_futures::spawn_local(async move {
                            // Stale until a read of the record succeeds (this sync's, or a
                            // later call's): meanwhile the hot path hands out nothing, since
                            // another tab may have signed out.
                            inner.shared.mark_stale();
                            let _ = inner.sync_shared().await;
                        });
                    }
                    Some(ACTIVITY) if !kept_for_the_start(&starting) => count_activity(inner.clone()),
                    _ => {}
                }
            });
            channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            (channel, on_message)
        });
        Self { channel, key, heard_since_read, starting, store, unsent: tokio::sync::watch::Sender::new(0) }
    }

    /// Whether this tab has heard every change another tab made to the session since the
    /// store's mirror was read: then a start can restore from the mirror as it is.
    pub(crate) fn heard_since_read(&self) -> bool {
        self.heard_since_read
    }

    /// Ends the start: whether another tab said its user was active while this one started
    /// (heard since before the store's first read, seconds at most), for the start to count
    /// once its session is restored. Activity heard from now on is counted as it comes.
    pub(crate) fn take_activity_heard_while_starting(&self) -> bool {
        self.starting.swap(STARTED, Ordering::Relaxed) == STARTING_ACTIVE
    }

    fn post(&self, kind: &str) {
        let Some((channel, _)) = &self.channel else { return };
        let message = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&message, &"kind".into(), &kind.into());
        let _ = js_sys::Reflect::set(&message, &"key".into(), &self.key);
        let _ = channel.post_message(&message);
    }

    /// Waits until every write this tab made so far is in IndexedDB and the other tabs have
    /// been told (before a navigation, which would cut both short).
    pub(crate) async fn flushed(&self) {
        if let Some(store) = &self.store {
            store.flushed().await;
        }
        let mut unsent = self.unsent.subscribe();
        let _ = unsent.wait_for(|unsent| *unsent == 0).await;
    }

    /// Tells the other tabs about `events` that changed the stored session, once this tab's
    /// writes have landed (so that they read the new state).
    pub(crate) fn tell(self: &Arc<Self>, events: &[SessionEvent]) {
        if self.channel.is_none() || !events.iter().any(SessionEvent::changes_stored_session) {
            return;
        }
        self.unsent.send_modify(|unsent| *unsent += 1);
        let tabs = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(store) = &tabs.store {
                store.flushed().await;
            }
            tabs.post(CHANGED);
            tabs.unsent.send_modify(|unsent| *unsent = unsent.saturating_sub(1));
        });
    }

    /// Tells the other tabs the user was active here.
    pub(crate) fn tell_activity(&self) {
        self.post(ACTIVITY);
    }
}

/// Until the session is restored, another tab's activity is kept for the start to count
/// (counted at once, it would go to a session not yet restored): true if it was kept.
fn kept_for_the_start(starting: &AtomicU8) -> bool {
    starting.compare_exchange(STARTING, STARTING_ACTIVE, Ordering::Relaxed, Ordering::Relaxed) != Err(STARTED)
}

/// Counts another tab's activity for the session `inner`, if it still exists when the task runs.
pub(crate) fn count_activity(inner: Weak<Inner>) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(inner) = inner.upgrade() {
            inner.note_activity().await;
        }
    });
}

impl Drop for Tabs {
    fn drop(&mut self) {
        if let Some((channel, _)) = &self.channel {
            channel.set_onmessage(None);
            channel.close();
        }
    }
}

#[cfg(test)]
#[path = "tabs_tests.rs"]
mod tests;
