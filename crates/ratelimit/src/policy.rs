//! What a limit is and what checking one answers: policies, decisions, permits.
//!
//! Kept apart from the two backends so that both speak the same values and the
//! HTTP layer can build its headers without knowing where counts live.

use std::fmt;
use std::time::Duration;

use crate::LimiterError;

/// Which of a tenant's limits a check counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyName {
    /// Authenticated requests of any kind.
    Requests,
    /// Accepted runs.
    Runs,
}

impl PolicyName {
    /// The name used in keys and in the `RateLimit-Policy` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Runs => "runs",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `limit` events in any interval of length `window`.
///
/// The fields are public for the HTTP layer's headers; the limiters refuse a
/// policy with `limit` 0 or a window shorter than one second
/// ([`LimiterError::InvalidPolicy`]). [`Policy::new`] checks the same up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Which limit this is.
    pub name: PolicyName,
    /// Events admitted per window; at least 1.
    pub limit: u32,
    /// The sliding window's length; at least one second.
    pub window: Duration,
}

impl Policy {
    /// A policy of `limit` events per `window`, checked.
    pub fn new(name: PolicyName, limit: u32, window: Duration) -> Result<Self, LimiterError> {
        let policy = Self {
            name,
            limit,
            window,
        };

        policy.validate()?;
        Ok(policy)
    }

    /// Refuses a limit of zero and windows under a second, as the API does.
    pub(crate) fn validate(self) -> Result<(), LimiterError> {
        if self.limit == 0 || self.window < Duration::from_secs(1) {
            return Err(LimiterError::InvalidPolicy(self));
        }
        Ok(())
    }

    /// The key this policy's events are counted under for `subject`.
    pub(crate) fn key(self, subject: &str) -> String {
        format!("ratelimit:{subject}:{}", self.name)
    }

    /// The answer to an `acquire`, from the events counted after it: admitted
    /// exactly when the event was counted, which is when it has a permit.
    pub(crate) fn decide(self, counted: u32, reset: Duration, permit: Option<Permit>) -> Decision {
        Decision {
            policy: self,
            admitted: permit.is_some(),
            remaining: self.limit.saturating_sub(counted),
            reset,
            permit,
        }
    }

    /// The answer to a `peek`: admitted when a slot is free, never a permit.
    pub(crate) fn observe(self, counted: u32, reset: Duration) -> Decision {
        let remaining = self.limit.saturating_sub(counted);

        Decision {
            policy: self,
            admitted: remaining > 0,
            remaining,
            reset,
            permit: None,
        }
    }
}

/// The answer to one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The policy that was checked.
    pub policy: Policy,
    /// Whether the event is allowed (for a peek: whether one would be).
    pub admitted: bool,
    /// Slots left in the window after this decision.
    pub remaining: u32,
    /// Time until a slot frees: until the oldest counted event leaves the
    /// window, or, when the window is full, until enough have left that one
    /// more would be admitted. Zero when nothing is counted.
    pub reset: Duration,
    /// Present when `acquire` admitted the event: hands the slot back.
    pub permit: Option<Permit>,
}

impl Decision {
    /// [`Decision::reset`] rounded up to whole seconds, so a client that waits
    /// that long finds a free slot.
    pub fn reset_secs(&self) -> u64 {
        let secs = self.reset.as_nanos().div_ceil(1_000_000_000);

        u64::try_from(secs).unwrap_or(u64::MAX)
    }
}

/// One admitted event, which [`crate::Limiter::release`] can take back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    pub(crate) key: String,
    pub(crate) member: Member,
}

impl Permit {
    /// The key the event is counted under.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// How each backend names one event within its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// The sorted-set member written by the Redis script.
    Redis(String),
    /// The in-process limiter's sequence number.
    Local(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision_with_reset(reset: Duration) -> Decision {
        let policy = Policy::new(PolicyName::Runs, 1, Duration::from_mins(1)).unwrap();

        policy.decide(1, reset, None)
    }

    #[test]
    fn reset_secs_rounds_a_fraction_up() {
        let decision = decision_with_reset(Duration::from_millis(1_200));

        assert_eq!(decision.reset_secs(), 2);
    }

    #[test]
    fn reset_secs_rounds_a_single_nanosecond_up_to_a_second() {
        let decision = decision_with_reset(Duration::from_nanos(1));

        assert_eq!(decision.reset_secs(), 1);
    }

    #[test]
    fn reset_secs_keeps_whole_seconds_and_zero() {
        assert_eq!(decision_with_reset(Duration::from_secs(3)).reset_secs(), 3);
        assert_eq!(decision_with_reset(Duration::ZERO).reset_secs(), 0);
    }

    #[test]
    fn a_policy_needs_a_positive_limit_and_a_window_of_a_second() {
        let zero = Policy::new(PolicyName::Requests, 0, Duration::from_mins(1));
        let short = Policy::new(PolicyName::Requests, 5, Duration::from_millis(999));

        assert!(matches!(zero, Err(LimiterError::InvalidPolicy(_))));
        assert!(matches!(short, Err(LimiterError::InvalidPolicy(_))));
    }

    #[test]
    fn keys_name_the_subject_and_the_policy() {
        let policy = Policy::new(PolicyName::Requests, 5, Duration::from_mins(1)).unwrap();

        assert_eq!(policy.key("t1"), "ratelimit:t1:requests");
    }

    #[test]
    fn remaining_never_goes_below_zero_when_more_are_counted_than_allowed() {
        let policy = Policy::new(PolicyName::Runs, 2, Duration::from_mins(1)).unwrap();

        let decision = policy.decide(5, Duration::from_secs(1), None);

        assert_eq!(decision.remaining, 0);
        assert!(!decision.admitted);
    }
}
