//! The one place the driver reads clocks. The core reads none: every call into it gets a
//! [`Now`] from here (the wall clock, and a monotonic clock to catch a wall clock set back).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sessionkit_core::{Now, UnixTime};

/// Reads both clocks.
pub(crate) fn now() -> Now {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    Now::new(UnixTime::from_millis(u64::try_from(wall).unwrap_or(u64::MAX)), origin.elapsed())
}
