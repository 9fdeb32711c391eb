//! [`IosKeychainStore`]: the iOS Keychain with the protection class a session needs.
//!
//! Items are generic passwords (service = the app's service name, account = the key) created
//! with `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`: readable by the background refresh
//! while the phone is locked (after the first unlock since boot), never synchronised to iCloud and
//! never restored onto another device from a backup. An app and its extensions share sessions
//! through a keychain access group. "Not found" is `None`; a locked keychain
//! (`errSecInteractionNotAllowed`) and every other failure are `Unavailable`, never "empty".
//! Compiled for iOS only (cargo check on the project's machines; not run there).

use security_framework::access_control::{ProtectionMode, SecAccessControl};
use security_framework::passwords::{
    PasswordOptions, delete_generic_password_options, generic_password, set_generic_password_options,
};
use sessionkit_core::Secret;

use super::{SecureStore, StoreError};

/// `errSecItemNotFound`.
const NOT_FOUND: i32 = -25300;

/// The iOS Keychain, after first unlock, this device only.
#[derive(Debug, Clone)]
pub struct IosKeychainStore {
    service: String,
    access_group: Option<String>,
}

impl IosKeychainStore {
    /// Items under `service`, in the app's default access group or in `access_group` (shared
    /// with the app's extensions).
    pub fn new(service: &str, access_group: Option<&str>) -> Self {
        Self { service: service.to_owned(), access_group: access_group.map(str::to_owned) }
    }

    fn options(&self, key: &str) -> PasswordOptions {
        let mut options = PasswordOptions::new_generic_password(&self.service, key);
        if let Some(group) = &self.access_group {
            options.set_access_group(group);
        }
        options
    }
}

fn unavailable(error: &security_framework::base::Error) -> StoreError {
    StoreError::Unavailable(format!("the keychain refused (OSStatus {})", error.code()))
}

impl SecureStore for IosKeychainStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        match generic_password(self.options(key)) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(|text| Some(Secret::new(text)))
                .map_err(|_| StoreError::Failed("the stored value is not text".into())),
            Err(error) if error.code() == NOT_FOUND => Ok(None),
            Err(error) => Err(unavailable(&error)),
        }
    }

    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        let mut options = self.options(key);
        let access =
            SecAccessControl::create_with_protection(Some(ProtectionMode::AccessibleAfterFirstUnlockThisDeviceOnly), 0)
                .map_err(|e| unavailable(&e))?;
        options.set_access_control(access);
        // Handed to the Keychain, which is where it belongs.
        set_generic_password_options(value.expose().as_bytes(), options).map_err(|e| unavailable(&e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match delete_generic_password_options(self.options(key)) {
            Ok(()) => Ok(()),
            Err(error) if error.code() == NOT_FOUND => Ok(()),
            Err(error) => Err(unavailable(&error)),
        }
    }

    fn describe(&self) -> String {
        format!("iOS Keychain (after first unlock, this device only; service '{}')", self.service)
    }
}
