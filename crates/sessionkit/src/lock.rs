//! The cross-context lock: one writer of the shared store at a time across processes (two
//! desktop instances, an app and its extension) or browser tabs, so that they refresh once
//! between them and never write over each other.
//!
//! Every store write of a session happens while this lock is held (see `shared.rs`), and the
//! refresh protocol holds it from the store read before a refresh to the write of the rotated
//! token. The lock is a small trait, [`ContextLock`], so that tests can model processes that
//! die while holding it:
//! - natively, [`FileLock`]: an OS file lock (`flock`), released by the OS when its holder dies.
//!   The file lives in a private per-user directory (`$XDG_RUNTIME_DIR/sessionkit`, else the
//!   user's cache directory, or the app's choice through `lock_dir`: the iOS app group
//!   container, Android's files directory). The directory must be the user's own and not
//!   writable by others, the file is opened without following symlinks, created 0600, and
//!   refused if another user owns it: on a shared machine nobody else can hold or replace it.
//!   The file also carries a generation counter that every write bumps, which other processes
//!   read (8 bytes, no keystore access) to notice a sign-out or a refresh elsewhere quickly.
//! - in the browser, a Web Lock named after the store key, released by the browser when a tab
//!   closes. Because the browser store ([`WebStore`](crate::store::WebStore)) reads from a
//!   mirror, the lock keeps it honest: right after taking it the turn reloads the mirror from
//!   IndexedDB (`Turn::locked`, through `SecureStore::reload`), every write under it is
//!   flushed and checked before it goes (`Turn::save`), and it is released only once this
//!   tab's writes have landed there. Other tabs
//!   hear of changes through the BroadcastChannel, so the generation counter is not used there.
//!
//! A holder that hangs makes the others give up after 15 seconds with a retryable error; they
//! never write or refresh without the lock (the provider's public documents aside). Reads may go
//! without it where nothing follows from them but a read: a start that finds an empty store or
//! a record that restores live (`client.rs`) reads it unlocked.

use crate::error::Error;
use crate::runtime::BoxFuture;

/// How long to wait for another context's turn.
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A held lock: dropping it releases the lock.
pub trait HeldLock: crate::runtime::MaybeSend {
    /// Raises the shared generation counter after a write (called while held) and returns the
    /// new value. Platforms that tell other contexts another way return 0.
    fn bump_generation(&mut self) -> u64 {
        0
    }
}

/// A held lock, boxed (`Send` natively).
#[cfg(not(target_arch = "wasm32"))]
pub type LockGuard = Box<dyn HeldLock + Send>;
/// A held lock, boxed.
#[cfg(target_arch = "wasm32")]
pub type LockGuard = Box<dyn HeldLock>;

/// A lock shared by every context (process, tab) that uses the same store key.
pub trait ContextLock: Send + Sync + 'static {
    /// Takes the lock, waiting at most [`LOCK_TIMEOUT`]; a timeout is
    /// [`Error::RetryLater`]. Never granted to two contexts at once, and released when the
    /// guard is dropped or its context dies.
    fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>>;

    /// The generation counter as it is now: cheap (no keystore access), read on the hot path
    /// at most every quarter second. A change means another context wrote the store.
    fn generation(&self) -> u64 {
        0
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::FileLock;
#[cfg(target_arch = "wasm32")]
pub(crate) use web::WebLock;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::{File, OpenOptions, TryLockError};
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use super::{ContextLock, HeldLock, LOCK_TIMEOUT, LockGuard};
    use crate::error::Error;
    use crate::runtime::BoxFuture;

    const POLL: Duration = Duration::from_millis(20);

    /// The lock file for a store key: `<dir>/sessionkit-<fnv64 of the key>.lock`.
    pub(crate) fn lock_path(dir: &Path, store_key: &str) -> PathBuf {
        // FNV-1a: stable across builds and languages, unlike std's hasher.
        let hash =
            store_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        dir.join(format!("sessionkit-{hash:016x}.lock"))
    }

    fn refused(what: &str, dir: &Path) -> Error {
        Error::Misconfigured {
            message: format!(
                "the refresh lock directory {} {what}; give SessionKit a private directory of this user \
                 (lock_dir: the app's data directory, or the app group container shared with an extension)",
                dir.display()
            ),
        }
    }

    /// The private directory used when the app names none: `$XDG_RUNTIME_DIR/sessionkit`
    /// (per-user, cleared at logout), else the user's cache directory.
    pub(crate) fn default_dir() -> Result<PathBuf, Error> {
        let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
        if let Some(runtime) = absolute("XDG_RUNTIME_DIR") {
            return Ok(runtime.join("sessionkit"));
        }
        if let Some(cache) = absolute("XDG_CACHE_HOME") {
            return Ok(cache.join("sessionkit"));
        }
        if let Some(home) = absolute("HOME") {
            let cache = if cfg!(any(target_os = "macos", target_os = "ios")) { "Library/Caches" } else { ".cache" };
            return Ok(home.join(cache).join("sessionkit"));
        }
        Err(Error::Misconfigured {
            message: "there is no private directory for the refresh lock (no XDG_RUNTIME_DIR or HOME); \
                      set lock_dir to the app's data directory"
                .into(),
        })
    }

    /// Creates `dir` (0700) if needed and checks it is this user's own, not a symlink, and not
    /// writable by anyone else.
    fn prepare_dir(dir: &Path) -> Result<(), Error> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| refused(&format!("cannot be created ({e})"), dir))?;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| refused(&format!("cannot be read ({e})"), dir))?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(refused("is not a directory (or is a symbolic link)", dir));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            if meta.uid() != rustix::process::geteuid().as_raw() {
                return Err(refused("belongs to another user", dir));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(refused("is writable by other users", dir));
            }
        }
        Ok(())
    }

    /// Opens the lock file: created 0600, never through a symlink, and only if it is this
    /// user's own regular file.
    fn open_lock_file(path: &Path, write: bool) -> Result<File, Error> {
        let mut options = OpenOptions::new();
        options.read(true);
        if write {
            options.write(true).create(true).truncate(false);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        let file = options.open(path).map_err(|e| Error::Misconfigured {
            message: format!("cannot open the refresh lock file {}: {e}", path.display()),
        })?;
        let meta = file.metadata().map_err(|e| Error::Misconfigured {
            message: format!("cannot read the refresh lock file {}: {e}", path.display()),
        })?;
        if !meta.is_file() {
            return Err(Error::Misconfigured { message: format!("{} is not a regular file", path.display()) });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            if meta.uid() != rustix::process::geteuid().as_raw() {
                return Err(Error::Misconfigured {
                    message: format!("the refresh lock file {} belongs to another user", path.display()),
                });
            }
        }
        Ok(file)
    }

    fn read_counter(file: &File) -> u64 {
        let mut bytes = [0u8; 8];
        #[cfg(unix)]
        let read = std::os::unix::fs::FileExt::read_at(file, &mut bytes, 0);
        #[cfg(windows)]
        let read = std::os::windows::fs::FileExt::seek_read(file, &mut bytes, 0);
        #[cfg(not(any(unix, windows)))]
        let read: std::io::Result<usize> = { Ok(0) };
        match read {
            Ok(8) => u64::from_le_bytes(bytes),
            _ => 0,
        }
    }

    fn write_counter(file: &File, value: u64) {
        #[cfg(unix)]
        let _ = std::os::unix::fs::FileExt::write_at(file, &value.to_le_bytes(), 0);
        #[cfg(windows)]
        let _ = std::os::windows::fs::FileExt::seek_write(file, &value.to_le_bytes(), 0);
        #[cfg(not(any(unix, windows)))]
        let _ = (file, value);
    }

    /// The native [`ContextLock`]: an OS file lock in a private directory.
    #[derive(Debug)]
    pub struct FileLock {
        path: PathBuf,
        /// A read handle for the generation counter, opened on first use.
        reader: Mutex<Option<File>>,
    }

    impl FileLock {
        /// The lock for `store_key` in `dir` (created 0700 if missing; refused if it is not this
        /// user's private directory), or in the default directory when `dir` is `None`.
        pub fn new(dir: Option<&Path>, store_key: &str) -> Result<Self, Error> {
            let dir = match dir {
                Some(dir) => dir.to_path_buf(),
                None => default_dir()?,
            };
            prepare_dir(&dir)?;
            Ok(Self { path: lock_path(&dir, store_key), reader: Mutex::new(None) })
        }

        /// Where the lock file is.
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    struct HeldFile {
        file: File,
    }

    impl HeldLock for HeldFile {
        fn bump_generation(&mut self) -> u64 {
            let next = read_counter(&self.file).wrapping_add(1);
            write_counter(&self.file, next);
            next
        }
    }

    fn acquire_blocking(path: &Path) -> Result<LockGuard, Error> {
        let file = open_lock_file(path, true)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Box::new(HeldFile { file })),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_TIMEOUT => std::thread::sleep(POLL),
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::RetryLater {
                        message: "another process has held the session lock for too long; try again shortly".into(),
                        retry_after: None,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::Misconfigured { message: format!("cannot lock the refresh lock file: {e}") });
                }
            }
        }
    }

    impl ContextLock for FileLock {
        fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>> {
            let path = self.path.clone();
            Box::pin(async move {
                crate::runtime::run_blocking(move || acquire_blocking(&path)).await.unwrap_or_else(|| {
                    Err(Error::RetryLater { message: "the refresh lock task failed".into(), retry_after: None })
                })
            })
        }

        fn generation(&self) -> u64 {
            let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
            if reader.is_none() {
                *reader = open_lock_file(&self.path, false).ok();
            }
            reader.as_ref().map_or(0, read_counter)
        }
    }

    #[cfg(test)]
    mod tests {
        use std::fs::{OpenOptions, TryLockError};
        use std::time::{Duration, Instant};

        use super::*;

        /// The tests below run one at a time: a test that forks a child (`flock`) duplicates
        /// every open descriptor of the process for a moment, the other test's lock among them,
        /// which then stays held after that test dropped it (this made the second test fail 2
        /// runs in 8 under load).
        static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

        fn private_dir(name: &str) -> PathBuf {
            let dir = std::env::temp_dir().join(format!("sessionkit-lock-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        }

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
            let _serial = SERIAL.lock().await;
            let dir = private_dir("dead");
            let lock = FileLock::new(Some(&dir), "k").expect("private dir");
            // Create the file as the lock would, then let another process hold it.
            drop(lock.acquire().await.expect("free"));
            let mut holder = std::process::Command::new("flock")
                .arg("-o")
                .arg(lock.path())
                .args(["sleep", "20"])
                .spawn()
                .expect("flock(1) is installed");
            let file = OpenOptions::new().write(true).open(lock.path()).expect("open");
            let mut held = false;
            for _ in 0..250 {
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
            let guard = lock.acquire().await.expect("the dead holder's lock is free");
            assert!(started.elapsed() < LOCK_TIMEOUT);
            drop(guard);
        }

        #[tokio::test]
        async fn a_held_lock_excludes_another_holder_until_dropped() {
            let _serial = SERIAL.lock().await;
            let lock = FileLock::new(Some(&private_dir("held")), "k").expect("private dir");
            let held = lock.acquire().await.expect("first");
            let file = OpenOptions::new().write(true).open(lock.path()).expect("open");
            assert!(matches!(file.try_lock(), Err(TryLockError::WouldBlock)));
            drop(held);
            assert!(file.try_lock().is_ok());
        }

        #[tokio::test]
        async fn writes_bump_the_generation_others_read() {
            let dir = private_dir("generation");
            let (mine, theirs) =
                (FileLock::new(Some(&dir), "k").expect("a"), FileLock::new(Some(&dir), "k").expect("b"));
            let before = theirs.generation();
            let mut guard = mine.acquire().await.expect("lock");
            let after = guard.bump_generation();
            assert_eq!(after, before.wrapping_add(1));
            assert_eq!(theirs.generation(), after);
        }

        #[cfg(unix)]
        #[test]
        fn the_lock_directory_and_file_are_private() {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            let dir = private_dir("private").join("nested");
            let lock = FileLock::new(Some(&dir), "k").expect("created");
            assert_eq!(std::fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            drop(runtime.block_on(lock.acquire()).expect("lock"));
            assert_eq!(std::fs::metadata(lock.path()).expect("file").mode() & 0o777, 0o600);

            // A directory others can write to (a shared /tmp) is refused.
            let shared = private_dir("shared");
            std::fs::create_dir_all(&shared).expect("dir");
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
            let error = FileLock::new(Some(&shared), "k").expect_err("refused");
            assert!(error.to_string().contains("writable by other users"), "{error}");
        }

        /// Finding 5 of the concurrency review: a directory of another user (a lock file
        /// pre-created on a shared /tmp) is refused, not used.
        #[cfg(unix)]
        #[test]
        fn a_directory_of_another_user_is_refused() {
            let theirs = if rustix::process::geteuid().is_root() {
                let dir = private_dir("theirs");
                std::fs::create_dir_all(&dir).expect("dir");
                std::os::unix::fs::chown(&dir, Some(65_534), Some(65_534)).expect("chown to nobody");
                dir
            } else {
                // Not root: the root directory is another user's.
                PathBuf::from("/")
            };
            let error = FileLock::new(Some(&theirs), "k").expect_err("refused");
            assert!(error.to_string().contains("belongs to another user"), "{error}");
            assert!(error.to_string().contains("lock_dir"), "the message names the setting to change: {error}");
        }

        /// A lock file replaced by a symlink (to a file the attacker wants us to lock or
        /// truncate) is not followed.
        #[cfg(unix)]
        #[tokio::test]
        async fn a_symlinked_lock_file_is_refused() {
            let dir = private_dir("symlink");
            let lock = FileLock::new(Some(&dir), "k").expect("private dir");
            let target = dir.join("elsewhere");
            std::fs::write(&target, b"not yours").expect("target");
            std::os::unix::fs::symlink(&target, lock.path()).expect("symlink");
            let Err(error) = lock.acquire().await else { panic!("a symlinked lock file was followed") };
            assert!(matches!(error, Error::Misconfigured { .. }), "{error}");
            assert_eq!(std::fs::read(&target).expect("target"), b"not yours");
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod web {
    use std::sync::Arc;

    use super::{ContextLock, HeldLock, LockGuard};
    use crate::error::Error;
    use crate::runtime::BoxFuture;
    use crate::store::WebStore;

    /// How long to wait for another tab's turn, in milliseconds.
    const LOCK_TIMEOUT_MS: u32 = 15_000;

    /// The browser's [`ContextLock`]: the Web Lock named after the store key, and the browser
    /// store to keep in step with it (none if the app gave another store).
    #[derive(Debug, Clone)]
    pub(crate) struct WebLock {
        name: String,
        store: Option<Arc<WebStore>>,
    }

    impl WebLock {
        pub(crate) fn new(store_key: &str, store: Option<Arc<WebStore>>) -> Self {
            Self { name: format!("sessionkit-refresh|{store_key}"), store }
        }
    }

    /// A held Web Lock; dropping it releases the lock once this tab's writes are on disk.
    struct HeldWebLock {
        release: Option<js_sys::Function>,
        store: Option<Arc<WebStore>>,
    }

    impl HeldLock for HeldWebLock {}

    impl Drop for HeldWebLock {
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

    impl ContextLock for WebLock {
        /// Takes the lock, waiting up to 15 s (the turn then reloads the store's mirror).
        fn acquire(&self) -> BoxFuture<'_, Result<LockGuard, Error>> {
            Box::pin(async move {
                let release =
                    crate::store::web::take_web_lock(&self.name, LOCK_TIMEOUT_MS).await.map_err(|reason| {
                        Error::RetryLater {
                            message: format!("the cross-tab refresh lock was not granted: {reason}"),
                            retry_after: None,
                        }
                    })?;
                Ok(Box::new(HeldWebLock { release: Some(release), store: self.store.clone() }) as LockGuard)
            })
        }
    }
}
