//! Time as the core sees it: values handed in by the driver, never read from a clock.
//!
//! [`UnixTime`] is a wall-clock instant in milliseconds since the Unix epoch; it is what
//! session limits and token expiry are measured in, because those must survive restarts.
//! [`Now`] is one reading of the driver's clocks: the wall clock plus a monotonic clock
//! whose origin is arbitrary. The pair lets the core notice a wall clock that was set back
//! (see [`ClockGuard`]); a monotonic clock alone cannot survive restarts, and a wall
//! clock alone can be moved by the user to stretch a session.
//!
//! What can go wrong: a monotonic clock that stops during suspend (Linux `CLOCK_MONOTONIC`)
//! makes the wall clock look like it jumped forward on resume. That direction is safe
//! (sessions end sooner, never later) and is not reported as an anomaly.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A wall-clock instant: whole milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

// Kotlin sees a `java.time.Instant`, Swift a `Date`.
#[cfg(feature = "uniffi")]
uniffi::custom_type!(UnixTime, std::time::SystemTime, {
    lower: |time| std::time::UNIX_EPOCH + Duration::from_millis(time.0),
    // Before the epoch is the epoch: times only come back from the app as given to it.
    try_lift: |system| {
        let since_epoch = system.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(UnixTime(duration_millis(since_epoch)))
    },
});

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: Self = Self(0);

    /// From milliseconds since the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// From whole seconds since the epoch (JWT `NumericDate`), saturating.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + duration`, saturating at the far future.
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(duration)))
    }

    /// `self - duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(duration)))
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Shifts by a signed number of milliseconds (a server-time offset), saturating.
    pub fn offset_by_millis(self, offset: i64) -> Self {
        Self(self.0.saturating_add_signed(offset))
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A duration as people read it in a message: "15 minutes", "90 seconds", "250 ms".
pub(crate) fn plain_duration(duration: Duration) -> String {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        // Below a millisecond (fractional seconds from a configuration): every digit, so that
        // two values a message compares never read the same.
        let fraction = format!("{:09}", duration.subsec_nanos());
        return format!("{}.{} seconds", duration.as_secs(), fraction.trim_end_matches('0'));
    }
    let millis = duration_millis(duration);
    let unit = |count: u64, one: &str| if count == 1 { format!("1 {one}") } else { format!("{count} {one}s") };
    match millis {
        0 => "0 seconds".to_owned(),
        m if m.is_multiple_of(3_600_000) => unit(m / 3_600_000, "hour"),
        m if m.is_multiple_of(60_000) => unit(m / 60_000, "minute"),
        m if m.is_multiple_of(1_000) => unit(m / 1_000, "second"),
        m => format!("{m} ms"),
    }
}

/// One reading of the driver's clocks, taken at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The wall clock (what the OS says the time is).
    pub wall: UnixTime,
    /// A monotonic clock with an arbitrary origin (`Instant`, `performance.now()`).
    pub monotonic: Duration,
}

impl Now {
    /// A reading of both clocks.
    pub const fn new(wall: UnixTime, monotonic: Duration) -> Self {
        Self { wall, monotonic }
    }
}

/// How far the wall clock may fall behind the monotonic clock before the core calls it a
/// jump. NTP slews are far smaller; a user setting the clock back is far larger.
pub(crate) const CLOCK_JUMP_TOLERANCE: Duration = Duration::from_secs(5);

/// Keeps the session's notion of time from going backwards.
///
/// The effective time is the wall clock, but never earlier than the last effective time
/// plus the monotonic time elapsed since. A wall clock set back therefore cannot extend an
/// idle or absolute limit, and the jump is reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClockGuard {
    high_water: UnixTime,
    last_monotonic: Option<Duration>,
}

/// A backwards jump of the wall clock, as noticed by [`ClockGuard::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BackwardJump {
    pub(crate) by: Duration,
}

impl ClockGuard {
    /// Starts from a known earliest time (a restored record's `last_seen_at`, or the epoch).
    pub(crate) fn starting_at(high_water: UnixTime) -> Self {
        Self { high_water, last_monotonic: None }
    }

    /// The latest effective time observed; persisted so that restarts keep it.
    pub(crate) fn high_water(&self) -> UnixTime {
        self.high_water
    }

    /// The earliest time `now` can be: the high-water mark plus the monotonic time since.
    fn expected(&self, now: Now) -> UnixTime {
        match self.last_monotonic {
            Some(last) if now.monotonic >= last => self.high_water.saturating_add(now.monotonic - last),
            _ => self.high_water,
        }
    }

    /// The effective time for a read-only query (the hot path): the wall clock, but never
    /// earlier than the monotonic clock allows.
    pub(crate) fn effective(&self, now: Now) -> UnixTime {
        now.wall.max(self.expected(now))
    }

    /// Takes a clock reading, advances the high-water mark and reports a backwards jump.
    pub(crate) fn observe(&mut self, now: Now) -> (UnixTime, Option<BackwardJump>) {
        let expected = self.expected(now);
        self.last_monotonic = Some(now.monotonic);
        let jump = (now.wall.saturating_add(CLOCK_JUMP_TOLERANCE) < expected)
            .then(|| BackwardJump { by: expected.saturating_duration_since(now.wall) });
        self.high_water = now.wall.max(expected);
        (self.high_water, jump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            (Duration::ZERO, "0 seconds"),
            (Duration::from_millis(250), "250 ms"),
            (Duration::from_millis(1500), "1500 ms"),
            (Duration::from_secs(1), "1 second"),
            (Duration::from_secs(90), "90 seconds"),
            (Duration::from_secs(60), "1 minute"),
            (Duration::from_secs(15 * 60), "15 minutes"),
            (Duration::from_secs(8 * 3600), "8 hours"),
            (Duration::new(300, 400_000), "300.0004 seconds"),
            (Duration::new(0, 1), "0.000000001 seconds"),
        ];
        for (duration, text) in cases {
            assert_eq!(plain_duration(duration), text);
        }
    }

    fn at(wall_secs: u64, mono_secs: u64) -> Now {
        Now::new(UnixTime::from_secs(wall_secs), Duration::from_secs(mono_secs))
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime::EPOCH.saturating_sub(Duration::from_secs(1)), UnixTime::EPOCH);
        assert_eq!(UnixTime::from_millis(u64::MAX).saturating_add(Duration::from_secs(1)).as_millis(), u64::MAX);
        assert_eq!(UnixTime::from_secs(5).saturating_duration_since(UnixTime::from_secs(9)), Duration::ZERO);
        assert_eq!(UnixTime::from_secs(5).offset_by_millis(-6000), UnixTime::EPOCH);
        assert_eq!(UnixTime::from_secs(5).offset_by_millis(1000), UnixTime::from_secs(6));
    }

    #[test]
    fn steady_clocks_report_nothing() {
        let mut guard = ClockGuard::starting_at(UnixTime::EPOCH);
        assert_eq!(guard.observe(at(1000, 10)), (UnixTime::from_secs(1000), None));
        assert_eq!(guard.observe(at(1060, 70)), (UnixTime::from_secs(1060), None));
    }

    #[test]
    fn wall_clock_set_back_is_reported_and_ignored() {
        let mut guard = ClockGuard::starting_at(UnixTime::EPOCH);
        guard.observe(at(10_000, 10));
        let (effective, jump) = guard.observe(at(9_000, 20));
        assert_eq!(effective, UnixTime::from_secs(10_010));
        assert_eq!(jump, Some(BackwardJump { by: Duration::from_secs(1010) }));
        assert_eq!(guard.effective(at(9_000, 20)), UnixTime::from_secs(10_010));
        // Read-only queries follow the monotonic clock too, before any further observation.
        assert_eq!(guard.effective(at(9_000, 80)), UnixTime::from_secs(10_070));
    }

    #[test]
    fn forward_jump_after_suspend_is_taken_silently() {
        let mut guard = ClockGuard::starting_at(UnixTime::EPOCH);
        guard.observe(at(1000, 10));
        assert_eq!(guard.observe(at(9000, 11)), (UnixTime::from_secs(9000), None));
    }

    #[test]
    fn restart_with_earlier_clock_is_reported() {
        let mut guard = ClockGuard::starting_at(UnixTime::from_secs(5000));
        let (effective, jump) = guard.observe(at(4000, 0));
        assert_eq!(effective, UnixTime::from_secs(5000));
        assert!(jump.is_some());
    }

    #[test]
    fn small_slews_are_tolerated() {
        let mut guard = ClockGuard::starting_at(UnixTime::EPOCH);
        guard.observe(at(1000, 100));
        let (_, jump) = guard.observe(at(1098, 200));
        assert_eq!(jump, None);
    }
}
