//! Per-tenant sliding-window rate limits, counted in Redis or in process.
//!
//! A [`Policy`] allows at most `limit` events in *any* interval of length
//! `window`: an event counts from the moment it is admitted until exactly one
//! window later, so a slot frees when its own event leaves, not at a fixed
//! boundary. [`Limiter::acquire`] admits and counts an event or refuses it and
//! counts nothing; [`Limiter::peek`] only looks; [`Limiter::release`] hands an
//! admitted event's slot back.
//!
//! Two backends keep the same rule:
//! - [`RedisLimiter`] keeps each window as a sorted set in Redis, changed by
//!   one Lua script that reads Redis's clock, so every replica shares the
//!   counts and the limit holds across all of them.
//! - [`LocalLimiter`] keeps them in this process on the monotonic clock, for
//!   when no Redis is configured; limits are then per replica.
//!
//! Errors: every Redis, pool or timeout failure is
//! [`LimiterError::Unavailable`], returned within the configured timeout
//! (250 ms by default); whether to admit or refuse then is the caller's call.
//! A policy outside the API's bounds is [`LimiterError::InvalidPolicy`].
//!
//! Known limits of the Redis backend: a call that times out after Redis ran
//! the script has counted an event the caller never learns about (it leaves
//! with its window); a jump of Redis's wall clock moves every window with it.

mod connections;
mod local;
mod policy;
mod shared;

use std::time::Duration;

pub use local::LocalLimiter;
pub use policy::{Decision, Permit, Policy, PolicyName};
pub use shared::RedisLimiter;

/// How long a Redis call may take, all steps included, before it counts as
/// unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Why a check could not be answered.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LimiterError {
    /// Redis could not be reached, refused the command or did not answer in
    /// time. Nothing is known about the count.
    #[error("rate limit store unavailable: {0}")]
    Unavailable(String),
    /// The policy's limit is zero or its window shorter than a second.
    #[error("invalid rate limit policy: {} per {:?}", .0.limit, .0.window)]
    InvalidPolicy(Policy),
}

/// A rate limiter on either backend; cheap to clone, and clones share counts.
#[derive(Clone, Debug)]
pub enum Limiter {
    /// Shared by every replica through Redis.
    Redis(RedisLimiter),
    /// Kept in this process only.
    Local(LocalLimiter),
}

impl Limiter {
    /// A limiter on the Redis at `url`, with [`DEFAULT_TIMEOUT`].
    ///
    /// Connects lazily, and replaces broken connections as it goes: a Redis
    /// restart needs no restart here.
    pub fn redis(url: &str) -> Result<Self, LimiterError> {
        RedisLimiter::new(url, DEFAULT_TIMEOUT).map(Self::Redis)
    }

    /// A limiter in this process's memory.
    pub fn local() -> Self {
        Self::Local(LocalLimiter::new())
    }

    /// Whether counts are shared with other processes (true for Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Admits and counts the event if `subject` has a slot free under
    /// `policy`; otherwise refuses it and counts nothing.
    pub async fn acquire(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        match self {
            Self::Redis(redis) => redis.acquire(subject, policy).await,
            Self::Local(local) => local.acquire(subject, policy),
        }
    }

    /// Reports what `acquire` would decide, counting nothing; never a permit.
    pub async fn peek(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        match self {
            Self::Redis(redis) => redis.peek(subject, policy).await,
            Self::Local(local) => local.peek(subject, policy),
        }
    }

    /// Refunds an admitted event (say, the run failed a later check): its
    /// slot is free again at once. Releasing twice changes nothing.
    pub async fn release(&self, permit: &Permit) -> Result<(), LimiterError> {
        match self {
            Self::Redis(redis) => redis.release(permit).await,
            Self::Local(local) => {
                local.release(permit);
                Ok(())
            }
        }
    }

    /// Checks that the backend answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        match self {
            Self::Redis(redis) => redis.ping().await,
            Self::Local(_) => Ok(()),
        }
    }
}
