//! The Redis backend: one sorted set per subject and policy, shared by every
//! API replica, checked by one Lua script in one round trip.
//!
//! Separate from the in-process limiter because everything here can fail or
//! stall: calls go through `Connections`, which bounds each by a short
//! timeout and turns any failure into [`LimiterError::Unavailable`].

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::LimiterError;
use crate::connections::Connections;
use crate::policy::{Decision, Member, Permit, Policy};

/// The check itself; see the script for the steps and why each is there.
static WINDOW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("window.lua")));

/// What the script answers: events counted after the check, microseconds
/// until a slot frees, and the member added (none when refused or peeking).
type Reply = (i64, i64, Option<String>);

/// Counts events in Redis.
#[derive(Clone, Debug)]
pub struct RedisLimiter {
    connections: Connections,
}

impl RedisLimiter {
    /// A limiter for the Redis at `url`, giving up on any call after `timeout`.
    ///
    /// Connects lazily: an unreachable Redis shows in the first check (or
    /// [`RedisLimiter::ping`]), not here. Only a malformed URL fails here.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, LimiterError> {
        let connections = Connections::new(url, timeout)?;

        Ok(Self { connections })
    }

    /// Counts the event if a slot is free; refused events count nothing.
    pub async fn acquire(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        policy.validate()?;
        let key = policy.key(subject);
        let suffix = format!("{:016x}", rand::random::<u64>());

        let (counted, reset, member) = self.check(&key, policy, &suffix).await?;

        let permit = member.map(|member| Permit {
            key,
            member: Member::Redis(member),
        });
        Ok(policy.decide(clamp(counted), micros(reset), permit))
    }

    /// Reports the window without counting anything.
    pub async fn peek(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        policy.validate()?;
        let key = policy.key(subject);

        let (counted, reset, _) = self.check(&key, policy, "").await?;

        Ok(policy.observe(clamp(counted), micros(reset)))
    }

    /// Takes back exactly the permit's event; its slot is free at once.
    ///
    /// A permit from the in-process limiter names nothing here and is ignored.
    pub async fn release(&self, permit: &Permit) -> Result<(), LimiterError> {
        let Member::Redis(member) = &permit.member else {
            return Ok(());
        };
        let mut command = redis::cmd("ZREM");
        command.arg(&permit.key).arg(member);

        self.connections.query(&command).await
    }

    /// Checks that Redis answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        self.connections.query(&redis::cmd("PING")).await
    }

    /// Runs the script; an empty `suffix` makes it a read-only look.
    async fn check(&self, key: &str, policy: Policy, suffix: &str) -> Result<Reply, LimiterError> {
        let window_us = u64::try_from(policy.window.as_micros()).unwrap_or(u64::MAX);
        let mut invocation = WINDOW.key(key);
        invocation.arg(policy.limit).arg(window_us).arg(suffix);

        self.connections.invoke(&invocation).await
    }
}

fn clamp(counted: i64) -> u32 {
    u32::try_from(counted.max(0)).unwrap_or(u32::MAX)
}

fn micros(reset: i64) -> Duration {
    Duration::from_micros(u64::try_from(reset).unwrap_or(0))
}
