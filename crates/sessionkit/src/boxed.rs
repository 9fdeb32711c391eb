//! The client's async calls as boxed futures, for the bindings (the browser's and the mobile
//! one); apps call the `async fn`s themselves. Hidden from the docs and not covered by semver.
//!
//! Why: an `async fn` of this crate awaited in another crate has its state machine, and every
//! one it awaits, compiled again in that crate, and link-time optimisation keeps both copies
//! (they cost the web package 9.4 KB gzipped). Boxed by a plain function here, each state
//! machine is compiled once, in this crate; the binding polls it through a vtable. Each
//! function is exactly its namesake's call.

use sessionkit_core::Secret;

use crate::runtime::BoxFuture;
use crate::{
    Accounts, AuthHeaders, AuthorizeOptions, EndSessionRequest, Error, LoginRequest, SessionClient, SessionConfig,
};

/// [`SessionClient::new`].
pub fn new_client(config: SessionConfig) -> BoxFuture<'static, Result<SessionClient, Error>> {
    Box::pin(SessionClient::new(config))
}

/// [`SessionClient::access_token`].
pub fn access_token(client: &SessionClient) -> BoxFuture<'_, Result<Secret, Error>> {
    Box::pin(client.access_token())
}

/// [`SessionClient::authorize`].
pub fn authorize<'a>(
    client: &'a SessionClient,
    method: &'a str,
    url: &'a str,
) -> BoxFuture<'a, Result<AuthHeaders, Error>> {
    Box::pin(client.authorize(method, url))
}

/// [`SessionClient::begin_login`].
pub fn begin_login<'a>(
    client: &'a SessionClient,
    options: &'a AuthorizeOptions,
) -> BoxFuture<'a, Result<LoginRequest, Error>> {
    Box::pin(client.begin_login(options))
}

/// [`SessionClient::complete_login`].
pub fn complete_login<'a>(
    client: &'a SessionClient,
    request: LoginRequest,
    callback_url: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(client.complete_login(request, callback_url))
}

/// [`SessionClient::begin_redirect_login`].
pub fn begin_redirect_login<'a>(
    client: &'a SessionClient,
    options: &'a AuthorizeOptions,
) -> BoxFuture<'a, Result<String, Error>> {
    Box::pin(client.begin_redirect_login(options))
}

/// [`SessionClient::complete_redirect_login`].
pub fn complete_redirect_login<'a>(
    client: &'a SessionClient,
    callback_url: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(client.complete_redirect_login(callback_url))
}

/// [`SessionClient::logout`].
pub fn logout(client: &SessionClient) -> BoxFuture<'_, Result<Option<EndSessionRequest>, Error>> {
    Box::pin(client.logout())
}

/// [`SessionClient::record_activity`].
pub fn record_activity(client: &SessionClient) -> BoxFuture<'_, ()> {
    Box::pin(client.record_activity())
}

/// [`SessionClient::sync_from_store`].
pub fn sync_from_store(client: &SessionClient) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(client.sync_from_store())
}

/// [`WebStore::open`](crate::store::WebStore::open).
#[cfg(target_arch = "wasm32")]
pub fn open_web_store(
    database: &str,
) -> BoxFuture<'_, Result<std::sync::Arc<crate::store::WebStore>, crate::store::StoreError>> {
    Box::pin(crate::store::WebStore::open(database))
}

/// [`Accounts::names`].
pub fn account_names(accounts: &Accounts) -> BoxFuture<'_, Result<Vec<String>, Error>> {
    Box::pin(accounts.names())
}

/// [`Accounts::current`].
pub fn current_account(accounts: &Accounts) -> BoxFuture<'_, Result<Option<String>, Error>> {
    Box::pin(accounts.current())
}

/// [`Accounts::open`].
pub fn open_account<'a>(accounts: &'a Accounts, name: &'a str) -> BoxFuture<'a, Result<SessionClient, Error>> {
    Box::pin(accounts.open(name))
}

/// [`Accounts::switch_to`].
pub fn switch_account<'a>(accounts: &'a Accounts, name: &'a str) -> BoxFuture<'a, Result<SessionClient, Error>> {
    Box::pin(accounts.switch_to(name))
}

/// [`Accounts::remove`].
pub fn remove_account<'a>(
    accounts: &'a Accounts,
    name: &'a str,
) -> BoxFuture<'a, Result<Option<EndSessionRequest>, Error>> {
    Box::pin(accounts.remove(name))
}
