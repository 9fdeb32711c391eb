//! Many tabs, one session: a BroadcastChannel named after the store tells the origin's other
//! tabs when this one signed in, refreshed, signed out or saw the session end (they re-read the
//! store), and when its user was active (they count it for the idle timeout).
//!
//! Messages carry no secret: `{ kind: "changed" }` or `{ kind: "activity" }`. The tokens travel
//! only through the encrypted store, under the refresh lock.

use sessionkit::SessionClient;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

const CHANGED: &str = "changed";
const ACTIVITY: &str = "activity";

/// This tab's end of the channel. Dropping it closes the channel.
pub(crate) struct Tabs {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Tabs {
    /// Joins the channel `name`; what other tabs say is applied to `client`. `None` where the
    /// browser has no BroadcastChannel (the session then works per tab, still one refresh).
    pub(crate) fn join(name: &str, client: SessionClient) -> Option<Self> {
        let channel = BroadcastChannel::new(&format!("sessionkit|{name}")).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
            let kind = js_sys::Reflect::get(&message.data(), &"kind".into()).ok().and_then(|k| k.as_string());
            let client = client.clone();
            match kind.as_deref() {
                Some(CHANGED) => wasm_bindgen_futures::spawn_local(async move {
                    let _ = client.sync_from_store().await;
                }),
                Some(ACTIVITY) => wasm_bindgen_futures::spawn_local(async move { client.record_activity().await }),
                _ => {}
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Self { channel, _on_message: on_message })
    }

    fn post(&self, kind: &str) {
        let message = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&message, &"kind".into(), &kind.into());
        let _ = self.channel.post_message(&message);
    }

    /// Tells the other tabs to re-read the store.
    pub(crate) fn changed(&self) {
        self.post(CHANGED);
    }

    /// Tells the other tabs the user was active here.
    pub(crate) fn activity(&self) {
        self.post(ACTIVITY);
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
