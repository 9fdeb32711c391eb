//! [`SessionPolicy`]: the session's time limits, checked once when the policy is built.
//!
//! Build one with [`SessionPolicy::builder`] (defaults follow the OWASP Session Management
//! Cheat Sheet for a low-risk app: 15 minutes idle, 8 hours absolute) and call
//! [`SessionPolicyBuilder::build`]; an invalid combination is a [`PolicyError`] that says
//! which rule it broke. The policy also says whether sessions are bound to a DPoP key
//! ([`DpopPolicy`]). High-value apps should lower the idle timeout to 2-5 minutes.

use std::time::Duration;

use crate::time::plain_duration;

pub use crate::oidc::dpop::DpopPolicy;

/// The largest clock leeway accepted: beyond this, token times stop meaning anything.
pub const MAX_CLOCK_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// Time limits for one session. Immutable once built; every field is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    idle_timeout: Duration,
    absolute_lifetime: Duration,
    refresh_lead: Duration,
    clock_leeway: Duration,
    warning_lead: Duration,
    background_refresh: bool,
    dpop: DpopPolicy,
}

/// Why a policy was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A limit was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The idle timeout was longer than the absolute lifetime, so it could never apply.
    #[error("the idle timeout ({}) must not be longer than the absolute lifetime ({}): shorten it, or lengthen the lifetime", plain_duration(*.idle), plain_duration(*.absolute))]
    IdleExceedsAbsolute {
        /// The idle timeout asked for.
        idle: Duration,
        /// The absolute lifetime asked for.
        absolute: Duration,
    },
    /// The warning would fire as soon as the user stopped interacting, or never before the end.
    #[error("the warning lead ({}) must be shorter than the idle timeout ({}): shorten the warning lead", plain_duration(*.warning), plain_duration(*.idle))]
    WarningNotBeforeIdle {
        /// The warning lead asked for.
        warning: Duration,
        /// The idle timeout asked for.
        idle: Duration,
    },
    /// The clock leeway was above [`MAX_CLOCK_LEEWAY`].
    #[error("the clock leeway ({}) must be at most 5 minutes", plain_duration(*.0))]
    LeewayTooLarge(Duration),
    /// The refresh lead was not shorter than the absolute lifetime.
    #[error("the refresh lead ({}) must be shorter than the absolute lifetime ({}): shorten the refresh lead", plain_duration(*.lead), plain_duration(*.absolute))]
    RefreshLeadTooLong {
        /// The refresh lead asked for.
        lead: Duration,
        /// The absolute lifetime asked for.
        absolute: Duration,
    },
}

impl SessionPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> SessionPolicyBuilder {
        SessionPolicyBuilder { policy: Self::DEFAULT }
    }

    const DEFAULT: Self = Self {
        idle_timeout: Duration::from_secs(15 * 60),
        absolute_lifetime: Duration::from_secs(8 * 60 * 60),
        refresh_lead: Duration::from_secs(60),
        clock_leeway: Duration::from_secs(60),
        warning_lead: Duration::from_secs(2 * 60),
        background_refresh: true,
        dpop: DpopPolicy::WhenSupported,
    };

    /// The session ends after this long without recorded activity.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The session ends this long after sign-in, whatever happens; refresh never extends it.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }

    /// How long before the access token expires a refresh is started. Capped per token at
    /// half its lifetime, so that short-lived tokens do not refresh in a loop.
    pub fn refresh_lead(&self) -> Duration {
        self.refresh_lead
    }

    /// Tolerance for clock differences when checking ID token times.
    pub fn clock_leeway(&self) -> Duration {
        self.clock_leeway
    }

    /// How long before the idle or absolute limit an "expiring soon" event is emitted.
    pub fn warning_lead(&self) -> Duration {
        self.warning_lead
    }

    /// Whether the timer refreshes ahead of expiry (default) or only callers of
    /// `access_token` trigger refreshes (lazy refresh, as AppAuth does).
    pub fn background_refresh(&self) -> bool {
        self.background_refresh
    }

    /// Whether sessions are bound to a DPoP key (RFC 9449): off, when the provider supports it
    /// (default), or required.
    pub fn dpop(&self) -> DpopPolicy {
        self.dpop
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Builds a [`SessionPolicy`]; [`build`](Self::build) validates the combination.
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionPolicyBuilder {
    policy: SessionPolicy,
}

impl SessionPolicyBuilder {
    /// See [`SessionPolicy::idle_timeout`].
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.policy.idle_timeout = value;
        self
    }

    /// See [`SessionPolicy::absolute_lifetime`].
    pub fn absolute_lifetime(mut self, value: Duration) -> Self {
        self.policy.absolute_lifetime = value;
        self
    }

    /// See [`SessionPolicy::refresh_lead`].
    pub fn refresh_lead(mut self, value: Duration) -> Self {
        self.policy.refresh_lead = value;
        self
    }

    /// See [`SessionPolicy::clock_leeway`].
    pub fn clock_leeway(mut self, value: Duration) -> Self {
        self.policy.clock_leeway = value;
        self
    }

    /// See [`SessionPolicy::warning_lead`].
    pub fn warning_lead(mut self, value: Duration) -> Self {
        self.policy.warning_lead = value;
        self
    }

    /// See [`SessionPolicy::background_refresh`].
    pub fn background_refresh(mut self, value: bool) -> Self {
        self.policy.background_refresh = value;
        self
    }

    /// See [`SessionPolicy::dpop`].
    pub fn dpop(mut self, value: DpopPolicy) -> Self {
        self.policy.dpop = value;
        self
    }

    /// The policy, or the first rule it breaks.
    pub fn build(self) -> Result<SessionPolicy, PolicyError> {
        let p = self.policy;
        if p.idle_timeout.is_zero() {
            return Err(PolicyError::Zero("idle timeout"));
        }
        if p.absolute_lifetime.is_zero() {
            return Err(PolicyError::Zero("absolute lifetime"));
        }
        if p.idle_timeout > p.absolute_lifetime {
            return Err(PolicyError::IdleExceedsAbsolute { idle: p.idle_timeout, absolute: p.absolute_lifetime });
        }
        if p.warning_lead >= p.idle_timeout {
            return Err(PolicyError::WarningNotBeforeIdle { warning: p.warning_lead, idle: p.idle_timeout });
        }
        if p.clock_leeway > MAX_CLOCK_LEEWAY {
            return Err(PolicyError::LeewayTooLarge(p.clock_leeway));
        }
        if p.refresh_lead >= p.absolute_lifetime {
            return Err(PolicyError::RefreshLeadTooLong { lead: p.refresh_lead, absolute: p.absolute_lifetime });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn defaults_are_valid() {
        let policy = SessionPolicy::builder().build().expect("defaults");
        assert_eq!(policy, SessionPolicy::default());
        assert_eq!(policy.idle_timeout(), 15 * MIN);
        assert_eq!(policy.absolute_lifetime(), 8 * 60 * MIN);
    }

    #[test]
    fn refusals_name_the_values_in_plain_words() {
        let refused =
            SessionPolicy::builder().idle_timeout(10 * MIN).absolute_lifetime(5 * MIN).warning_lead(MIN).build();
        assert_eq!(
            refused.expect_err("refused").to_string(),
            "the idle timeout (10 minutes) must not be longer than the absolute lifetime (5 minutes): shorten it, or \
             lengthen the lifetime"
        );
        let refused = SessionPolicy::builder().clock_leeway(Duration::from_secs(301)).build();
        assert_eq!(
            refused.expect_err("refused").to_string(),
            "the clock leeway (301 seconds) must be at most 5 minutes"
        );
    }

    #[test]
    fn each_rule_is_enforced() {
        let b = SessionPolicy::builder;
        assert_eq!(b().idle_timeout(Duration::ZERO).build(), Err(PolicyError::Zero("idle timeout")));
        assert_eq!(b().absolute_lifetime(Duration::ZERO).build(), Err(PolicyError::Zero("absolute lifetime")));
        assert!(matches!(
            b().idle_timeout(10 * MIN).absolute_lifetime(5 * MIN).warning_lead(MIN).build(),
            Err(PolicyError::IdleExceedsAbsolute { .. })
        ));
        assert!(matches!(
            b().idle_timeout(2 * MIN).warning_lead(2 * MIN).build(),
            Err(PolicyError::WarningNotBeforeIdle { .. })
        ));
        assert!(matches!(b().clock_leeway(6 * MIN).build(), Err(PolicyError::LeewayTooLarge(_))));
        assert!(matches!(
            b().idle_timeout(MIN)
                .warning_lead(Duration::from_secs(10))
                .absolute_lifetime(MIN)
                .refresh_lead(MIN)
                .build(),
            Err(PolicyError::RefreshLeadTooLong { .. })
        ));
    }

    #[test]
    fn errors_say_what_to_fix() {
        let err = SessionPolicy::builder().idle_timeout(2 * MIN).warning_lead(3 * MIN).build().expect_err("invalid");
        assert!(err.to_string().contains("warning lead"), "{err}");
    }
}
