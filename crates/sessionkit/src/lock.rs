//! The cross-process refresh lock: an OS file lock, so that two processes sharing one store
//! (two desktop instances, an app and its extension) refresh once between them.
//!
//! The holder refreshes and persists the rotated token before it lets go; the other process,
//! once it gets the lock, re-reads the store and adopts the new token instead of replaying the
//! old one (which providers answer by revoking the whole grant). The OS releases the lock when
//! its holder dies, so a crashed process never blocks the others; a holder that hangs makes
//! the others give up after 15 seconds with a retryable error.
//!
//! In the browser the same role belongs to a Web Lock shared by the origin's tabs. Because the
//! browser store ([`WebStore`](crate::store::WebStore)) reads from a mirror, the lock also keeps
//! it honest: right after taking the lock the mirror is reloaded from IndexedDB, and the lock is
//! released only once this tab's writes have landed there. A closed or crashed tab's lock is
//! released by the browser; a tab that hangs makes the others give up after 15 seconds.

#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

/// The lock file for a store key: `<dir>/sessionkit-<fnv64 of the key>.lock`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn lock_path(dir: &Path, store_key: &str) -> PathBuf {
    // FNV-1a: stable across builds and languages, unlike std's hasher.
    let hash =
        store_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    dir.join(format!("sessionkit-{hash:016x}.lock"))
}

pub(crate) use imp::{LockTarget, acquire};

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::fs::{File, OpenOptions, TryLockError};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::error::Error;

    /// How long to wait for another process's refresh.
    pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(15);
    const POLL: Duration = Duration::from_millis(20);

    /// What to lock: a file.
    #[derive(Debug, Clone)]
    pub(crate) struct LockTarget {
        path: PathBuf,
    }

    impl LockTarget {
        pub(crate) fn new(config: &crate::SessionConfig, store_key: &str) -> Self {
            let dir = config.lock_dir.clone().unwrap_or_else(std::env::temp_dir);
            Self { path: super::lock_path(&dir, store_key) }
        }

        #[cfg(test)]
        pub(crate) fn at(path: PathBuf) -> Self {
            Self { path }
        }

        /// Natively every store read goes to the keystore itself: nothing to bring up to date.
        pub(crate) async fn reload_store(&self) -> Result<(), crate::store::StoreError> {
            Ok(())
        }
    }

    /// A held lock; dropping it releases the lock.
    #[derive(Debug)]
    pub(crate) struct RefreshLock {
        _file: File,
    }

    /// Takes the lock, waiting up to [`LOCK_TIMEOUT`] (on a blocking thread).
    pub(crate) async fn acquire(target: &LockTarget) -> Result<RefreshLock, Error> {
        let path = target.path.clone();
        crate::runtime::run_blocking(move || acquire_blocking(&path)).await.unwrap_or_else(|| {
            Err(Error::RetryLater { message: "the refresh lock task failed".into(), retry_after: None })
        })
    }

    fn acquire_blocking(path: &Path) -> Result<RefreshLock, Error> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::Misconfigured { message: format!("cannot open the refresh lock file: {e}") })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RefreshLock { _file: file }),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_TIMEOUT => std::thread::sleep(POLL),
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::RetryLater {
                        message: "another process has been refreshing for too long".into(),
                        retry_after: None,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::Misconfigured { message: format!("cannot lock the refresh lock file: {e}") });
                }
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::sync::Arc;

    use crate::error::Error;
    use crate::store::{StoreError, WebStore};

    /// How long to wait for another tab's refresh, in milliseconds.
    const LOCK_TIMEOUT_MS: u32 = 15_000;

    /// What to lock: the Web Lock named after the store key, and the browser store to keep in
    /// step with it (none if the app gave another store).
    #[derive(Debug, Clone)]
    pub(crate) struct LockTarget {
        name: String,
        store: Option<Arc<WebStore>>,
    }

    impl LockTarget {
        pub(crate) fn new(config: &crate::SessionConfig, store_key: &str) -> Self {
            Self { name: format!("sessionkit-refresh|{store_key}"), store: config.web_store.clone() }
        }

        /// Brings the store's mirror up to date with what other tabs wrote.
        pub(crate) async fn reload_store(&self) -> Result<(), StoreError> {
            match &self.store {
                Some(store) => store.reload().await,
                None => Ok(()),
            }
        }
    }

    /// A held Web Lock; dropping it releases the lock once this tab's writes are on disk.
    #[derive(Debug)]
    pub(crate) struct RefreshLock {
        release: Option<js_sys::Function>,
        store: Option<Arc<WebStore>>,
    }

    impl Drop for RefreshLock {
        fn drop(&mut self) {
            let (Some(release), store) = (self.release.take(), self.store.take()) else { return };
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(store) = store {
                    store.flushed().await;
                }
                let _ = release.call0(&wasm_bindgen::JsValue::NULL);
            });
        }
    }

    /// Takes the lock (waiting up to 15 s), then reloads the store from IndexedDB.
    pub(crate) async fn acquire(target: &LockTarget) -> Result<RefreshLock, Error> {
        let release = crate::store::web::take_web_lock(&target.name, LOCK_TIMEOUT_MS).await.map_err(|reason| {
            Error::RetryLater {
                message: format!("the cross-tab refresh lock was not granted: {reason}"),
                retry_after: None,
            }
        })?;
        let lock = RefreshLock { release: Some(release), store: target.store.clone() };
        // Without a fresh view, this tab could spend a refresh token another tab already rotated.
        target.reload_store().await.map_err(|e| crate::error::store(&e))?;
        Ok(lock)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::fs::{OpenOptions, TryLockError};
    use std::time::{Duration, Instant};

    use super::imp::LOCK_TIMEOUT;
    use super::*;

    #[test]
    fn paths_are_stable_and_distinct() {
        let dir = Path::new("/tmp");
        assert_eq!(lock_path(dir, "a"), lock_path(dir, "a"));
        assert_ne!(lock_path(dir, "a"), lock_path(dir, "b"));
        assert_eq!(lock_path(dir, ""), dir.join("sessionkit-cbf29ce484222325.lock"));
    }

    /// A holder that dies (SIGKILL, no clean-up) releases the lock: the OS drops it with the
    /// process. `flock -o` (util-linux) plays the other process and holds the lock itself.
    #[tokio::test]
    async fn a_dead_holder_releases_the_lock() {
        let dir = std::env::temp_dir().join(format!("sessionkit-lock-dead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = lock_path(&dir, "k");
        let mut holder = std::process::Command::new("flock")
            .arg("-o")
            .arg(&path)
            .args(["sleep", "20"])
            .spawn()
            .expect("flock(1) is installed");
        // Wait until the other process really holds it.
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("open");
        let mut held = false;
        for _ in 0..100 {
            if matches!(file.try_lock(), Err(TryLockError::WouldBlock)) {
                held = true;
                break;
            }
            let _ = file.unlock();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(held, "the other process took the lock");
        holder.kill().expect("kill");
        holder.wait().expect("reaped");
        let started = Instant::now();
        let lock = acquire(&imp::LockTarget::at(path)).await.expect("the dead holder's lock is free");
        assert!(started.elapsed() < LOCK_TIMEOUT);
        drop(lock);
    }

    #[tokio::test]
    async fn a_held_lock_excludes_another_holder_until_dropped() {
        let dir = std::env::temp_dir().join(format!("sessionkit-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = lock_path(&dir, "k");
        let held = acquire(&imp::LockTarget::at(path.clone())).await.expect("first");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        assert!(matches!(file.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        assert!(file.try_lock().is_ok());
    }
}
