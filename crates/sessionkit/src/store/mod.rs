//! Where sessions are kept: one small trait, [`SecureStore`], and its backends.
//!
//! - [`KeyringStore`]: the OS keystore through the keyring-core v4 family (Linux: the Secret
//!   Service, or keyutils linked into the user's persistent keyring; the Apple, Windows and
//!   Android stores plug into the same type).
//! - `KeyutilsStore` (Linux): the kernel's session keyring only, gone at logout.
//! - `WebStore` (wasm32 only): the browser's IndexedDB, each record sealed with AES-GCM under a
//!   non-extractable WebCrypto key.
//! - [`MemoryStore`]: in-process only, for tests and for apps that want no persistence. It can
//!   be told to fail, to test how the session survives a locked store.
//!
//! [`platform_default`] is each native platform's choice, the one the FFI uses (the browser's
//! store is `WebStore`).
//!
//! The rules every backend follows: a missing entry is `Ok(None)`; a store that is locked,
//! unreachable or refuses access is [`StoreError::Unavailable`], never "empty", so a read
//! failure can never look like a signed-out user and wipe a session; there is no plaintext
//! fallback. Values are the core's encoded records, already secret.

#[cfg(target_os = "ios")]
mod ios;
#[cfg(not(target_arch = "wasm32"))]
mod keyring;
#[cfg(target_os = "linux")]
mod keyutils;
mod memory;
#[cfg(target_arch = "wasm32")]
pub(crate) mod web;

#[cfg(target_os = "ios")]
pub use ios::IosKeychainStore;
#[cfg(not(target_arch = "wasm32"))]
pub use keyring::KeyringStore;
#[cfg(target_os = "linux")]
pub use keyutils::KeyutilsStore;
pub use memory::MemoryStore;
use sessionkit_core::Secret;
#[cfg(target_arch = "wasm32")]
pub use web::WebStore;

/// The platform's own store for `service`: on iOS the Keychain (after first unlock, this device
/// only; in `access_group` when given, to share the session with the app's extensions), on
/// macOS the Data Protection keychain, on Android the Keystore-backed store, on Linux the Secret
/// Service (the kernel's session keyring when built without the `secret-service` feature), on
/// Windows the Credential Manager. `access_group` applies to iOS only.
#[cfg(not(target_arch = "wasm32"))]
pub fn platform_default(
    service: &str,
    #[cfg_attr(not(target_os = "ios"), expect(unused_variables))] access_group: Option<&str>,
) -> Result<std::sync::Arc<dyn SecureStore>, StoreError> {
    #[cfg(target_os = "ios")]
    return Ok(std::sync::Arc::new(IosKeychainStore::new(service, access_group)));
    #[cfg(target_os = "macos")]
    return Ok(std::sync::Arc::new(KeyringStore::apple_protected(service)?));
    #[cfg(target_os = "android")]
    return Ok(std::sync::Arc::new(KeyringStore::android_keystore(service)?));
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    return Ok(std::sync::Arc::new(KeyringStore::secret_service(service)?));
    #[cfg(all(target_os = "linux", not(feature = "secret-service")))]
    return Ok(std::sync::Arc::new(KeyutilsStore::session(service)?));
    #[cfg(target_os = "windows")]
    return Ok(std::sync::Arc::new(KeyringStore::windows_credential_manager(service)?));
    #[cfg(not(any(
        target_os = "ios",
        target_os = "macos",
        target_os = "android",
        target_os = "linux",
        target_os = "windows"
    )))]
    return Err(StoreError::Unavailable(format!("no platform store on this system for {service}")));
}

/// Why the store could not do what was asked. Messages never contain the stored value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Locked, unreachable, or access denied: try again later; nothing was changed.
    #[error("the secure store is unavailable: {0}")]
    Unavailable(String),
    /// The value is too large for this store.
    #[error("the value is too large for the secure store")]
    TooLarge,
    /// Anything else the backend reported.
    #[error("the secure store failed: {0}")]
    Failed(String),
}

/// A keystore holding small secret values under string keys.
///
/// Calls may block (D-Bus, Keychain); the client runs them on a blocking thread.
pub trait SecureStore: Send + Sync + 'static {
    /// The value under `key`, or `None` if there is none.
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError>;
    /// Replaces the value under `key`.
    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError>;
    /// Removes the value under `key`; removing a missing value succeeds.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// A short description for status displays ("Secret Service", "memory").
    fn describe(&self) -> String;

    /// Whether calls may block the thread (a keystore over D-Bus or XPC): the client then runs
    /// them on a blocking thread. A store answering from memory says `false` and is called
    /// in place (which also keeps tests on one thread, in virtual time).
    fn may_block(&self) -> bool {
        true
    }

    /// For a store that reads from a mirror of its backing storage (the browser's): brings the
    /// mirror up to date, so that what other contexts wrote is seen. Others: nothing to do.
    fn reload(&self) -> crate::runtime::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// For a store that writes in the background (the browser's): waits until every write
    /// accepted so far is durable, and reports whether the last write to `key` failed. Others:
    /// nothing to do (their writes are durable when `save` or `delete` returns). A store that
    /// wraps another passes `reload` and `flush` through.
    fn flush<'a>(&'a self, _key: &'a str) -> crate::runtime::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
