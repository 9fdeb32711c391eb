//! SessionKit for progressive web apps: the `sessionkit` crate compiled to wasm32, wrapped for
//! JavaScript with wasm-bindgen. The npm package's `index.js` puts the public API on top
//! (`SessionKit`, the `Error` subclasses, activity tracking, the authorized `fetch`); this crate
//! is the thin layer between it and the Rust client:
//!
//! - [`config`]: the JS config object read into a `SessionConfig`;
//! - [`convert`]: events, status and errors as plain JS values.
//!
//! Storage (IndexedDB sealed with a non-extractable AES-GCM key), the cross-tab refresh lock
//! (Web Locks), the messages between tabs and the waits for IndexedDB writes are in the
//! `sessionkit` crate, beside the native stores and lock, so every session rule stays in one
//! place; nothing here decides anything.
#![cfg(target_arch = "wasm32")]
#![forbid(unsafe_code)]

mod config;
mod convert;
#[cfg(test)]
mod shapes_tests;

use sessionkit::{SessionClient, SessionEvent};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use tokio::sync::broadcast::error::RecvError;
use wasm_bindgen::prelude::*;

type Listeners = RefCell<Vec<(u32, js_sys::Function)>>;

/// A method's work as a JS promise. Boxed, so that every method shares one instance of
/// wasm-bindgen's promise wrapper instead of each getting its own copy.
fn promise(work: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> js_sys::Promise {
    let work: std::pin::Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(work);
    wasm_bindgen_futures::future_to_promise(work)
}

struct Shared {
    client: SessionClient,
    listeners: Listeners,
    next_listener: Cell<u32>,
}

/// One user's session in this browser, shared by the origin's tabs. Created by
/// `WebSession.create(config)`.
#[wasm_bindgen]
pub struct WebSession {
    shared: Rc<Shared>,
}

fn js_error(error: sessionkit::Error) -> JsValue {
    convert::error(error)
}

/// The client configuration from the JS object, over the encrypted IndexedDB store it names,
/// and the account it asks for, if any.
async fn read_config(config: &JsValue) -> Result<(sessionkit::SessionConfig, Option<String>), JsValue> {
    let (builder, settings) = config::read(config).map_err(js_error)?;
    let store = sessionkit::boxed::open_web_store(&settings.store_name)
        .await
        .map_err(|e| js_error(sessionkit::Error::StorageUnavailable { message: e.to_string() }))?;
    Ok((builder.web_store(store).build().map_err(js_error)?, settings.account))
}

impl WebSession {
    fn wrap(client: SessionClient) -> Self {
        let shared = Rc::new(Shared { client, listeners: RefCell::new(Vec::new()), next_listener: Cell::new(1) });
        pump_events(&shared);
        WebSession { shared }
    }
}

/// Several users in this browser (work and personal), one session each: `sessionkit::Accounts`
/// for JavaScript. Created by `WebAccounts.create(config)`.
#[wasm_bindgen]
pub struct WebAccounts {
    inner: Rc<sessionkit::Accounts>,
}

#[wasm_bindgen]
impl WebAccounts {
    /// The accounts of the config's provider and client (its `account` is ignored).
    pub async fn create(config: JsValue) -> Result<WebAccounts, JsValue> {
        let (session_config, _) = read_config(&config).await?;
        Ok(WebAccounts { inner: Rc::new(sessionkit::Accounts::new(session_config).map_err(js_error)?) })
    }

    /// The account names, in the order they were added.
    pub fn names(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let names = sessionkit::boxed::account_names(&inner).await.map_err(js_error)?;
            Ok(names.into_iter().map(JsValue::from).collect::<js_sys::Array>().into())
        })
    }

    /// The account last switched to, or `null`.
    pub fn current(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            Ok(sessionkit::boxed::current_account(&inner).await.map_err(js_error)?.map_or(JsValue::NULL, JsValue::from))
        })
    }

    /// The session of account `name` (listed from now on).
    pub fn open(&self, name: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            Ok(WebSession::wrap(sessionkit::boxed::open_account(&inner, &name).await.map_err(js_error)?).into())
        })
    }

    /// Makes `name` the current account and resolves to its session.
    #[wasm_bindgen(js_name = switchTo)]
    pub fn switch_to(&self, name: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            Ok(WebSession::wrap(sessionkit::boxed::switch_account(&inner, &name).await.map_err(js_error)?).into())
        })
    }

    /// Signs account `name` out in every tab and forgets it; resolves to its end-session URL or `null`.
    pub fn remove(&self, name: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let end_session = sessionkit::boxed::remove_account(&inner, &name).await.map_err(js_error)?;
            Ok(end_session.map_or(JsValue::NULL, |request| request.url.expose().into()))
        })
    }
}

#[wasm_bindgen]
impl WebSession {
    /// Opens the encrypted store, discovers the provider, restores a stored session (an evicted
    /// or unreadable store is a clean signed-out start), and joins the other tabs. With
    /// `config.account`, the session of that account (listed in `WebAccounts` from then on).
    pub async fn create(config: JsValue) -> Result<WebSession, JsValue> {
        let (session_config, account) = read_config(&config).await?;
        let client = match account {
            Some(name) => {
                let accounts = sessionkit::Accounts::new(session_config).map_err(js_error)?;
                sessionkit::boxed::open_account(&accounts, &name).await
            }
            None => sessionkit::boxed::new_client(session_config).await,
        };
        Ok(WebSession::wrap(client.map_err(js_error)?))
    }

    /// Starts a sign-in: keeps the pending login (PKCE verifier, state, nonce) sealed in the
    /// store and resolves to the authorization URL to navigate to.
    #[wasm_bindgen(js_name = beginLogin)]
    pub fn begin_login(&self, options: JsValue) -> js_sys::Promise {
        let shared = self.shared.clone();
        promise(async move {
            let options = config::authorize_options(&options).map_err(js_error)?;
            // Resolves once the pending login is on disk: the page may navigate away.
            let url = sessionkit::boxed::begin_redirect_login(&shared.client, &options).await.map_err(js_error)?;
            Ok(url.into())
        })
    }

    /// Completes the sign-in with the URL the provider redirected to.
    #[wasm_bindgen(js_name = handleRedirectCallback)]
    pub fn handle_redirect_callback(&self, url: String) -> js_sys::Promise {
        let shared = self.shared.clone();
        promise(async move {
            sessionkit::boxed::complete_redirect_login(&shared.client, &url).await.map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A fresh access token: from memory, or after one refresh shared by every caller and tab.
    #[wasm_bindgen(js_name = getAccessToken)]
    pub fn get_access_token(&self) -> js_sys::Promise {
        // A fresh token is the answer `access_token` gives at once (nothing changed elsewhere,
        // nothing to refresh): handed over as a settled promise, without a future per call.
        if let Some(token) = self.shared.client.fresh_access_token() {
            return js_sys::Promise::resolve(&JsValue::from_str(token.expose()));
        }
        let shared = self.shared.clone();
        promise(async move {
            let token = sessionkit::boxed::access_token(&shared.client).await.map_err(js_error)?;
            Ok(token.expose().into())
        })
    }

    /// The access token if it is fresh now, synchronously (no refresh, no store read); `None`
    /// when the caller must await `getAccessToken()`.
    #[wasm_bindgen(js_name = freshAccessToken)]
    pub fn fresh_access_token(&self) -> JsValue {
        // Handed to the page, which asked for the token to send it to its API.
        self.shared.client.fresh_access_token().map_or(JsValue::UNDEFINED, |token| JsValue::from_str(token.expose()))
    }

    /// The headers for one request to the app's API: `{ authorization, dpop }`, `dpop` (a fresh
    /// proof for this method and URL) only when the session is DPoP-bound.
    #[wasm_bindgen(js_name = authHeaders)]
    pub fn auth_headers(&self, method: String, url: String) -> js_sys::Promise {
        let shared = self.shared.clone();
        promise(async move {
            let headers = sessionkit::boxed::authorize(&shared.client, &method, &url).await.map_err(js_error)?;
            let out = js_sys::Object::new();
            // Handed to the page, which asked for them to send to its API.
            let _ = js_sys::Reflect::set(&out, &"authorization".into(), &headers.authorization.expose().into());
            if let Some(proof) = &headers.dpop {
                let _ = js_sys::Reflect::set(&out, &"dpop".into(), &proof.expose().into());
            }
            Ok(out.into())
        })
    }

    /// Reads an API answer for DPoP (its nonce); true when the request should be sent once more
    /// with fresh headers (the API asked for its nonce).
    #[wasm_bindgen(js_name = noteApiResponse)]
    pub fn note_api_response(
        &self,
        url: String,
        status: u16,
        www_authenticate: Option<String>,
        dpop_nonce: Option<String>,
    ) -> bool {
        self.shared.client.note_api_response(&url, status, www_authenticate.as_deref(), dpop_nonce.as_deref())
    }

    /// The token type for the Authorization header (`Bearer` unless the provider says otherwise).
    #[wasm_bindgen(js_name = tokenType)]
    pub fn token_type(&self) -> Option<String> {
        self.shared.client.token_type()
    }

    /// Signs out: wipes the session (memory and IndexedDB), tells the other tabs, revokes the
    /// tokens (retried later if the provider cannot be reached), and resolves to the provider's
    /// end-session URL (or `null`).
    pub fn logout(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        promise(async move {
            let end_session = sessionkit::boxed::logout(&shared.client).await.map_err(js_error)?;
            Ok(end_session.map_or(JsValue::NULL, |request| request.url.expose().into()))
        })
    }

    /// Counts user activity for the idle timeout, here and in the other tabs.
    #[wasm_bindgen(js_name = recordActivity)]
    pub fn record_activity(&self) {
        let client = self.shared.client.clone();
        wasm_bindgen_futures::spawn_local(async move { sessionkit::boxed::record_activity(&client).await });
    }

    /// Re-reads the store (for a tab coming back to the foreground).
    #[wasm_bindgen(js_name = syncFromStore)]
    pub fn sync_from_store(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        promise(async move {
            sessionkit::boxed::sync_from_store(&shared.client).await.map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The session's identity and deadlines (epoch milliseconds), or `null` when signed out.
    pub fn status(&self) -> JsValue {
        convert::status(self.shared.client.status(), &self.shared.client.store_description())
    }

    /// Calls `listener(event)` for every session event; returns an id for `offEvent`.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, listener: js_sys::Function) -> u32 {
        let id = self.shared.next_listener.get();
        self.shared.next_listener.set(id.wrapping_add(1));
        self.shared.listeners.borrow_mut().push((id, listener));
        id
    }

    /// Stops calling the listener `id`.
    #[wasm_bindgen(js_name = offEvent)]
    pub fn off_event(&self, id: u32) {
        self.shared.listeners.borrow_mut().retain(|(listener_id, _)| *listener_id != id);
    }
}

/// Forwards the client's events to the JS listeners.
fn pump_events(shared: &Rc<Shared>) {
    let mut events = shared.client.subscribe();
    let weak: Weak<Shared> = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let event: SessionEvent = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let Some(shared) = weak.upgrade() else { return };
            let value = convert::event(&event);
            let listeners: Vec<js_sys::Function> = shared.listeners.borrow().iter().map(|(_, f)| f.clone()).collect();
            for listener in listeners {
                // A listener that throws must not stop the others or the pump.
                let _ = listener.call1(&JsValue::NULL, &value);
            }
        }
    });
}
