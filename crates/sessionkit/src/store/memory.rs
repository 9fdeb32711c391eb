//! [`MemoryStore`]: a store that lives and dies with the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use sessionkit_core::Secret;

use super::{SecureStore, StoreError};

/// An in-memory store. [`MemoryStore::set_unavailable`] makes every call fail as a locked
/// keystore would, [`MemoryStore::set_writes_fail`] only the writes (a full disk), for failure
/// tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, Secret>>,
    unavailable: AtomicBool,
    writes_fail: AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the store behave as locked (`true`) or available again (`false`).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Makes writes and deletes fail (`true`) while reads still work, or work again (`false`).
    pub fn set_writes_fail(&self, fail: bool) {
        self.writes_fail.store(fail, Ordering::SeqCst);
    }

    fn check_write(&self) -> Result<(), StoreError> {
        self.check()?;
        if self.writes_fail.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("the memory store is set to refuse writes".into()))
        } else {
            Ok(())
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("the memory store is set to fail".into()))
        } else {
            Ok(())
        }
    }
}

impl SecureStore for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        self.check()?;
        Ok(self.values.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned())
    }

    fn save(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        self.check_write()?;
        self.values.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_write()?;
        self.values.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory (not persisted)".into()
    }

    fn may_block(&self) -> bool {
        false
    }
}
