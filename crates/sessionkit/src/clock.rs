//! [`Clock`]: where the driver reads the time, injectable so that tests run in virtual time.
//!
//! The driver reads the clock through the one [`Clock`] of its [`SessionConfig`](crate::SessionConfig)
//! and nothing else: [`SystemClock`] (the default) reads the OS wall clock and a monotonic
//! clock (in the browser `Date.now()` and `performance.now()`). A test gives a clock that
//! follows tokio's paused time, so that hours of session life (expiry, idle and absolute
//! limits, backoff) pass in milliseconds and every run is the same. Sleeping stays with the
//! runtime (`tokio::time::sleep`, which follows paused time too).
//!
//! What can go wrong: a clock whose wall time goes back is handled by the core (reported once,
//! never stretching a session); a monotonic reading that goes back is a bug of the clock.

use sessionkit_core::Now;

/// A source of time: a wall-clock reading and a monotonic one, taken together.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Now;
}

/// The platform's clocks (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        crate::runtime::now()
    }
}
