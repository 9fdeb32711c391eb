//! [`KeyringStore`]: the OS keystore through `keyring-core`.
//!
//! Each value is one credential with service `sessionkit` (or the app's own service name) and
//! the key as the user name. On Linux, `KeyringStore::secret_service` (the `secret-service`
//! feature, on by default) uses the desktop's Secret Service (GNOME Keyring, KWallet) over D-Bus, and
//! [`KeyringStore::keyutils_persistent`] the kernel's keyrings as `keyring-core` uses them (see
//! there; [`KeyutilsStore`](super::KeyutilsStore) is the session keyring only). Other platforms'
//! `keyring-core` stores are passed to [`KeyringStore::with_store`]; the Apple, Windows and
//! Android ones have constructors here, compiled on their own targets.

use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error};
use sessionkit_core::Secret;

use super::{SecureStore, StoreError};

/// A store backed by a `keyring-core` credential store.
pub struct KeyringStore {
    store: Arc<CredentialStore>,
    service: String,
    name: &'static str,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore").field("service", &self.service).field("backend", &self.name).finish()
    }
}

fn map_error(error: Error) -> StoreError {
    match error {
        Error::NoStorageAccess(_) => {
            StoreError::Unavailable("access to the keystore was refused or it is locked".into())
        }
        Error::PlatformFailure(_) => StoreError::Unavailable("the keystore service did not answer".into()),
        Error::TooLong(..) => StoreError::TooLarge,
        // Described by kind only: some variants carry the stored bytes.
        Error::BadEncoding(_) | Error::BadDataFormat(..) => {
            StoreError::Failed("the keystore holds a value SessionKit cannot read".into())
        }
        Error::BadStoreFormat(_) => StoreError::Failed("the keystore's own data is damaged".into()),
        Error::Invalid(..) => StoreError::Failed("the keystore refused the entry's name or attributes".into()),
        Error::Ambiguous(_) => StoreError::Failed("the keystore holds several entries under one name".into()),
        Error::NoDefaultStore | Error::NotSupportedByStore(_) => {
            StoreError::Failed("the keystore does not support this operation".into())
        }
        Error::NoEntry => StoreError::Failed("the keystore entry is missing".into()),
        _ => StoreError::Failed("the keystore reported an unknown error".into()),
    }
}

impl KeyringStore {
    /// Wraps any `keyring-core` store (Apple, Windows, Android, ...).
    pub fn with_store(store: Arc<CredentialStore>, service: &str, name: &'static str) -> Self {
        Self { store, service: service.to_owned(), name }
    }

    /// The Secret Service of the user's D-Bus session (GNOME Keyring, KWallet).
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    pub fn secret_service(service: &str) -> Result<Self, StoreError> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "Secret Service"))
    }

    /// The kernel's keyrings as `keyring-core` uses them: each value is added to the session
    /// keyring *and linked into the user's persistent keyring*, so it survives logout until
    /// that keyring expires (3 days of disuse by default, `/proc/sys/kernel/keys/
    /// persistent_keyring_expiry`) and is visible from every login session of the user. Choose
    /// it only for that; [`KeyutilsStore`](super::KeyutilsStore) keeps the session keyring only.
    #[cfg(target_os = "linux")]
    pub fn keyutils_persistent(service: &str) -> Result<Self, StoreError> {
        let store = linux_keyutils_keyring_store::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "kernel keyutils, linked into the persistent keyring (kept after logout)"))
    }

    /// The Data Protection keychain (iOS; signed and sandboxed macOS apps): items in the app's
    /// default access group, not synchronised to iCloud.
    #[cfg(any(target_os = "ios", target_os = "macos"))]
    pub fn apple_protected(service: &str) -> Result<Self, StoreError> {
        let store = apple_native_keyring_store::protected::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "Apple Data Protection keychain"))
    }

    /// The macOS login keychain (unsigned command-line and desktop apps).
    #[cfg(target_os = "macos")]
    pub fn macos_keychain(service: &str) -> Result<Self, StoreError> {
        let store = apple_native_keyring_store::keychain::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "macOS keychain"))
    }

    /// The Windows Credential Manager.
    #[cfg(target_os = "windows")]
    pub fn windows_credential_manager(service: &str) -> Result<Self, StoreError> {
        let store = windows_native_keyring_store::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "Windows Credential Manager"))
    }

    /// Android's Keystore-backed store. The app must have handed its `Context` to the
    /// `android-native-keyring-store` library first (its `initializeNdkContext`).
    #[cfg(target_os = "android")]
    pub fn android_keystore(service: &str) -> Result<Self, StoreError> {
        let store = android_native_keyring_store::Store::new().map_err(map_error)?;
        Ok(Self::with_store(store, service, "Android Keystore"))
    }

    fn entry(&self, key: &str) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.store, &self.service, key).map_err(map_error)
    }
}

impl SecureStore for KeyringStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        match self.entry(key)?.get_secret() {
            Ok(bytes) => String::from_utf8(bytes)
                .map(|text| Some(Secret::new(text)))
                .map_err(|_| StoreError::Failed("the stored value is not text".into())),
            Err(Error::NoEntry) => Ok(None),
            Err(error) => Err(map_error(error)),
        }
    }

    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        // Handed to the OS keystore, which is where it belongs.
        self.entry(key)?.set_secret(value.expose().as_bytes()).map_err(map_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(error) => Err(map_error(error)),
        }
    }

    fn describe(&self) -> String {
        format!("{} (service '{}')", self.name, self.service)
    }
}
