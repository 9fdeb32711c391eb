//! [`KeyutilsStore`]: the Linux kernel's session keyring, for headless machines.
//!
//! Each value is a `user` key named `sessionkit:<service>:<key>` in the session keyring of the
//! process's login session, and nowhere else: it is gone when that session ends (logout,
//! reboot), other login sessions of the same user cannot see it, and only processes that
//! possess the session keyring can read it. It is never linked into the user's persistent
//! keyring (which outlives logout for days and is visible from every login session);
//! `keyring-core`'s keyutils store does link there, which is why this one exists. Values are
//! limited to the kernel's 32 KiB for a user key.

use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
use sessionkit_core::Secret;

use super::{SecureStore, StoreError};

/// The kernel's limit on a `user` key's payload.
const MAX_VALUE_BYTES: usize = 32_767;
/// Links read from the session keyring when checking where a key lives.
const MAX_LINKS: usize = 1024;

/// Values in the kernel's session keyring only (see the module guide).
#[derive(Debug)]
pub struct KeyutilsStore {
    keyring: KeyRing,
    service: String,
}

fn map_error(error: KeyError) -> StoreError {
    match error {
        KeyError::AccessDenied | KeyError::PermissionDenied => {
            StoreError::Unavailable("the kernel refused access to the session keyring".into())
        }
        KeyError::KeyExpired | KeyError::KeyRevoked | KeyError::KeyringDoesNotExist => StoreError::Unavailable(
            "the session keyring has expired or was revoked (did the login session end?)".into(),
        ),
        KeyError::QuotaExceeded => StoreError::Unavailable("the user's key quota in the kernel is exhausted".into()),
        KeyError::OutOfMemory => StoreError::Unavailable("the kernel is out of memory for keys".into()),
        other => StoreError::Failed(format!("keyutils error {other}")),
    }
}

impl KeyutilsStore {
    /// The session keyring of this process's login session (it must exist already: `keyctl
    /// session` or a PAM login creates one; this never creates an anonymous one that would
    /// vanish with the process).
    pub fn session(service: &str) -> Result<Self, StoreError> {
        let keyring = KeyRing::from_special_id(KeyRingIdentifier::Session, false).map_err(map_error)?;
        // Without a session keyring of its own (no pam_keyinit: cron, containers, some
        // distributions), the kernel hands out the user's session keyring instead, which every
        // login session of the user shares and which outlives logout: not what this store promises.
        let name = keyring.metadata().map_err(map_error)?;
        if name.get_description().starts_with("_uid_ses.") {
            return Err(StoreError::Unavailable(
                "this process has no session keyring of its own (only the user's shared one); start one with \
                 `keyctl session`, or log in through PAM with pam_keyinit, or choose another store"
                    .into(),
            ));
        }
        Ok(Self { keyring, service: service.to_owned() })
    }

    /// The key of `key` in this keyring itself: the kernel's search also looks into keyrings
    /// linked from it (the user's keyring, a persistent one), whose keys are not ours.
    fn find(&self, key: &str) -> Result<Option<linux_keyutils::Key>, StoreError> {
        let found = match self.keyring.search(&self.description(key)) {
            Ok(found) => found,
            Err(KeyError::KeyDoesNotExist) => return Ok(None),
            // A key invalidated moments ago (a delete) is found until the kernel collects it,
            // and reported as revoked or expired: it is gone, unless the keyring itself is.
            Err(KeyError::KeyRevoked | KeyError::KeyExpired) if self.keyring.metadata().is_ok() => return Ok(None),
            Err(error) => return Err(map_error(error)),
        };
        let direct = self.keyring.get_links(MAX_LINKS).map_err(map_error)?.contains(&found);
        Ok(direct.then_some(found))
    }

    fn description(&self, key: &str) -> String {
        format!("sessionkit:{}:{key}", self.service)
    }
}

impl SecureStore for KeyutilsStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        let Some(found) = self.find(key)? else { return Ok(None) };
        let bytes = match found.read_to_vec() {
            Ok(bytes) => zeroize::Zeroizing::new(bytes),
            // Deleted between the lookup and the read (another process signing out).
            Err(KeyError::KeyRevoked | KeyError::KeyExpired) if self.keyring.metadata().is_ok() => return Ok(None),
            Err(error) => return Err(map_error(error)),
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| StoreError::Failed("the stored value is not text".into()))?;
        Ok(Some(Secret::new(text.to_owned())))
    }

    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::TooLarge);
        }
        // Handed to the kernel's keyring, which is where it belongs. An existing key of this
        // description is updated in place.
        self.keyring.add_key(&self.description(key), value.expose().as_bytes()).map(drop).map_err(map_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.find(key)? {
            Some(found) => match found.invalidate() {
                // Deleted meanwhile by someone else: deleted all the same.
                Err(KeyError::KeyRevoked | KeyError::KeyExpired | KeyError::KeyDoesNotExist) => Ok(()),
                other => other.map_err(map_error),
            },
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("the kernel's session keyring (gone at logout; service '{}')", self.service)
    }
}
