//! The cross-process refresh lock: an OS file lock, so that two processes sharing one store
//! (two desktop instances, an app and its extension) refresh once between them.
//!
//! The holder refreshes and persists the rotated token before it lets go; the other process,
//! once it gets the lock, re-reads the store and adopts the new token instead of replaying the
//! old one (which providers answer by revoking the whole grant). The OS releases the lock when
//! its holder dies, so a crashed process never blocks the others; a holder that hangs makes
//! the others give up after 15 seconds with a retryable error.
//!
//! In the browser the same role belongs to Web Locks across tabs, which the web package will
//! bring; until then the wasm build has no cross-tab exclusion (within one page the client's
//! single-flight gate already allows one refresh at a time).

use std::path::{Path, PathBuf};

/// The lock file for a store key: `<dir>/sessionkit-<fnv64 of the key>.lock`.
pub(crate) fn lock_path(dir: &Path, store_key: &str) -> PathBuf {
    // FNV-1a: stable across builds and languages, unlike std's hasher.
    let hash =
        store_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    dir.join(format!("sessionkit-{hash:016x}.lock"))
}

pub(crate) use imp::acquire;

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::fs::{File, OpenOptions, TryLockError};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::error::Error;

    /// How long to wait for another process's refresh.
    pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(15);
    const POLL: Duration = Duration::from_millis(20);

    /// A held lock; dropping it releases the lock.
    #[derive(Debug)]
    pub(crate) struct RefreshLock {
        _file: File,
    }

    /// Takes the lock, waiting up to [`LOCK_TIMEOUT`] (on a blocking thread).
    pub(crate) async fn acquire(path: PathBuf) -> Result<RefreshLock, Error> {
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
    use std::path::PathBuf;

    use crate::error::Error;

    /// No cross-tab lock yet in the browser (see the module guide).
    #[derive(Debug)]
    pub(crate) struct RefreshLock;

    pub(crate) async fn acquire(_path: PathBuf) -> Result<RefreshLock, Error> {
        Ok(RefreshLock)
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
        let lock = acquire(path).await.expect("the dead holder's lock is free");
        assert!(started.elapsed() < LOCK_TIMEOUT);
        drop(lock);
    }

    #[tokio::test]
    async fn a_held_lock_excludes_another_holder_until_dropped() {
        let dir = std::env::temp_dir().join(format!("sessionkit-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = lock_path(&dir, "k");
        let held = acquire(path.clone()).await.expect("first");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        assert!(matches!(file.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        assert!(file.try_lock().is_ok());
    }
}
