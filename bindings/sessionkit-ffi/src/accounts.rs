//! Several users on one device (work and personal) through the FFI: [`AccountList`] forwards to
//! `sessionkit::Accounts`, which keeps one session per account name in one store.

use std::sync::Arc;

use crate::{ClientSettings, DpopSigner, EndSession, ForeignStore, SessionClient, SessionKitError, session_config};

/// The accounts of one provider and client on this device. Keep one per app process: it hands
/// out one session per account and reuses it.
#[derive(uniffi::Object)]
pub struct AccountList {
    inner: sessionkit::Accounts,
}

#[uniffi::export(async_runtime = "tokio")]
impl AccountList {
    /// The accounts of `settings`' provider and client, in `store` (null: the platform's, as
    /// for [`SessionClient::create`]); the settings apply to every account.
    #[uniffi::constructor(default(dpop_signer = None))]
    pub fn new(
        settings: ClientSettings,
        store: Option<Arc<dyn ForeignStore>>,
        dpop_signer: Option<Arc<dyn DpopSigner>>,
    ) -> Result<Arc<Self>, SessionKitError> {
        let inner = sessionkit::Accounts::new(session_config(settings, store, dpop_signer)?)?;
        Ok(Arc::new(Self { inner }))
    }

    /// The account names, in the order they were added (signed in or not).
    pub async fn names(&self) -> Result<Vec<String>, SessionKitError> {
        Ok(sessionkit::boxed::account_names(&self.inner).await?)
    }

    /// The account the app last switched to, if it is still listed.
    pub async fn current(&self) -> Result<Option<String>, SessionKitError> {
        Ok(sessionkit::boxed::current_account(&self.inner).await?)
    }

    /// The session of account `name` (restored, or signed out until it signs in); listed from
    /// now on. A name is 1 to 64 lowercase letters, digits, `.`, `_` or `-` (a stable id such as
    /// "work", not an email address); at most 32 accounts are listed.
    pub async fn open(&self, name: String) -> Result<Arc<SessionClient>, SessionKitError> {
        Ok(SessionClient::wrap(sessionkit::boxed::open_account(&self.inner, &name).await?))
    }

    /// Makes `name` the current account (remembered for the next start) and gives its session.
    pub async fn switch_to(&self, name: String) -> Result<Arc<SessionClient>, SessionKitError> {
        Ok(SessionClient::wrap(sessionkit::boxed::switch_account(&self.inner, &name).await?))
    }

    /// Signs account `name` out (wipe, revoke) and forgets it, leaving the others as they are;
    /// returns its end-session page to open, if the provider has one.
    pub async fn remove(&self, name: String) -> Result<Option<Arc<EndSession>>, SessionKitError> {
        Ok(sessionkit::boxed::remove_account(&self.inner, &name).await?.map(EndSession::from_request))
    }
}
