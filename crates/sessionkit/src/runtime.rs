//! The platform's runtime and clocks, in one place: natively tokio and the OS clocks, in the
//! browser its event loop, `setTimeout`, `Date.now()` and `performance.now()`.
//!
//! Everything else in the driver calls these and nothing platform-specific: [`now`] (the only
//! clock read; the core reads none), [`monotonic`], [`sleep`], [`spawn`] (the timer task, the
//! web store's persistence request) and [`run_blocking`] (keystore calls, which block on D-Bus
//! or XPC natively and do not exist as blocking calls in the browser).

use sessionkit_core::{Now, UnixTime};

pub use imp::{BoxFuture, MaybeSend};
pub(crate) use imp::{monotonic, run_blocking, sleep, spawn, try_spawn, wall_millis};

/// Reads both clocks.
pub(crate) fn now() -> Now {
    Now::new(UnixTime::from_millis(wall_millis()), monotonic())
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::future::Future;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    /// `Send` natively, where tasks move between threads.
    pub trait MaybeSend: Send {}
    impl<T: Send> MaybeSend for T {}

    /// A boxed future of the injectable traits ([`Clock`](crate::clock::Clock) aside, which is
    /// synchronous): `Send` natively.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    pub(crate) fn wall_millis() -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Time since the first call, from a clock that never goes back.
    pub(crate) fn monotonic() -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    pub(crate) async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    pub(crate) fn spawn(task: impl Future<Output = ()> + MaybeSend + 'static) {
        tokio::spawn(task);
    }

    /// Spawns where a runtime is at hand (a `Drop` may run on any thread); false otherwise.
    pub(crate) fn try_spawn(task: impl Future<Output = ()> + MaybeSend + 'static) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return false };
        runtime.spawn(task);
        true
    }

    /// Runs a blocking call on tokio's blocking pool; `None` if it panicked.
    pub(crate) async fn run_blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        tokio::task::spawn_blocking(call).await.ok()
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::future::Future;
    use std::time::Duration;

    /// Nothing in the browser, where futures stay on the one thread and hold `JsValue`s.
    pub trait MaybeSend {}
    impl<T> MaybeSend for T {}

    /// A boxed future of the injectable traits: not `Send` in the browser.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + 'a>>;

    pub(crate) fn wall_millis() -> u64 {
        // Date.now() is a whole number of milliseconds, never negative in practice.
        let now = js_sys::Date::now();
        if now.is_finite() && now > 0.0 { now as u64 } else { 0 }
    }

    #[wasm_bindgen::prelude::wasm_bindgen]
    extern "C" {
        /// `performance.now()`, imported directly: it is read on the token's hot path.
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        fn performance_now() -> f64;
    }

    /// `performance.now()`: monotonic, in windows and workers alike.
    pub(crate) fn monotonic() -> Duration {
        let now = performance_now();
        Duration::from_secs_f64(if now.is_finite() { now.max(0.0) / 1000.0 } else { 0.0 })
    }

    pub(crate) async fn sleep(duration: Duration) {
        let millis = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into()).ok();
            if let Some(set_timeout) = set_timeout {
                let _ = js_sys::Function::from(set_timeout).call2(&js_sys::global(), &resolve, &millis.into());
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }

    pub(crate) fn spawn(task: impl Future<Output = ()> + MaybeSend + 'static) {
        wasm_bindgen_futures::spawn_local(task);
    }

    /// The browser's event loop is always at hand.
    pub(crate) fn try_spawn(task: impl Future<Output = ()> + MaybeSend + 'static) -> bool {
        spawn(task);
        true
    }

    /// There are no blocking keystores in the browser: the call runs at once.
    pub(crate) async fn run_blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        Some(call())
    }
}
