//! The in-process backend: the same sliding windows as the Redis script, kept
//! in this process's memory, for when no Redis is configured.
//!
//! Limits are then per replica. Separate from the Redis backend because
//! nothing here waits or fails on I/O: one lock, held for a few steps.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::LimiterError;
use crate::policy::{Decision, Member, Permit, Policy};

/// How often idle windows are looked for, so that subjects never seen again
/// do not keep their last events forever.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Counts events in this process, on the monotonic clock.
#[derive(Clone, Debug)]
pub struct LocalLimiter {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    windows: HashMap<String, Window>,
    next_id: u64,
    last_sweep: Instant,
}

/// One key's counted events, oldest first.
#[derive(Debug)]
struct Window {
    length: Duration,
    events: VecDeque<Event>,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at: Instant,
    id: u64,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        let state = State {
            windows: HashMap::new(),
            next_id: 0,
            last_sweep: Instant::now(),
        };

        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Counts the event if a slot is free; refused events count nothing.
    pub fn acquire(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        policy.validate()?;
        let key = policy.key(subject);
        let mut state = self.lock();

        // The time is read under the lock so that events enter each window in
        // time order, which trimming from the front relies on.
        let now = Instant::now();
        state.sweep(now);
        let id = state.issue_id();
        let window = state.window(&key, policy.window);
        window.trim(now);

        let admitted = window.events.len() < limit(policy);
        if admitted {
            window.events.push_back(Event { at: now, id });
        }

        let (counted, reset) = (window.counted(), window.reset(policy, now));
        let permit = admitted.then_some(Permit {
            key,
            member: Member::Local(id),
        });
        Ok(policy.decide(counted, reset, permit))
    }

    /// Reports the window without counting anything.
    pub fn peek(&self, subject: &str, policy: Policy) -> Result<Decision, LimiterError> {
        policy.validate()?;
        let key = policy.key(subject);
        let mut state = self.lock();
        let now = Instant::now();

        let Some(window) = state.windows.get_mut(&key) else {
            return Ok(policy.observe(0, Duration::ZERO));
        };
        window.trim(now);
        let decision = policy.observe(window.counted(), window.reset(policy, now));

        state.drop_if_empty(&key);
        Ok(decision)
    }

    /// Takes back exactly the permit's event; its slot is free at once.
    ///
    /// A permit from the Redis limiter names nothing here and is ignored.
    pub fn release(&self, permit: &Permit) {
        let Member::Local(id) = permit.member else {
            return;
        };
        let mut state = self.lock();

        if let Some(window) = state.windows.get_mut(&permit.key) {
            window.events.retain(|event| event.id != id);
        }
        state.drop_if_empty(&permit.key);
    }

    /// No step under the lock leaves a window half-changed, so a poisoned
    /// lock's data is still sound: use it rather than stop rate limiting.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Ids only need to be unique, not dense: refused events use one up too.
    fn issue_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn window(&mut self, key: &str, length: Duration) -> &mut Window {
        let window = self
            .windows
            .entry(key.to_owned())
            .or_insert_with(|| Window {
                length,
                events: VecDeque::new(),
            });

        window.length = length;
        window
    }

    fn drop_if_empty(&mut self, key: &str) {
        if self.windows.get(key).is_some_and(|w| w.events.is_empty()) {
            self.windows.remove(key);
        }
    }

    /// Drops every window whose newest event has left it. Looks at one event
    /// per window, so a sweep stays cheap however large the limits are.
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }

        self.windows.retain(|_, window| {
            window
                .events
                .back()
                .is_some_and(|newest| window.holds(newest, now))
        });
        self.last_sweep = now;
    }
}

impl Window {
    /// Same rule as the Redis script: an event counts while
    /// `now - at < length`.
    fn holds(&self, event: &Event, now: Instant) -> bool {
        now.duration_since(event.at) < self.length
    }

    fn trim(&mut self, now: Instant) {
        while let Some(oldest) = self.events.front() {
            if self.holds(oldest, now) {
                break;
            }
            self.events.pop_front();
        }
    }

    fn counted(&self) -> u32 {
        u32::try_from(self.events.len()).unwrap_or(u32::MAX)
    }

    /// Time until a slot frees: the oldest event leaving, or, when more than
    /// the limit are counted, the last of the surplus leaving.
    fn reset(&self, policy: Policy, now: Instant) -> Duration {
        let surplus = self.events.len().saturating_sub(limit(policy));

        self.events.get(surplus).map_or(Duration::ZERO, |event| {
            (event.at + self.length).saturating_duration_since(now)
        })
    }
}

fn limit(policy: Policy) -> usize {
    usize::try_from(policy.limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyName;

    fn runs(limit: u32) -> Policy {
        Policy::new(PolicyName::Runs, limit, Duration::from_mins(1)).unwrap()
    }

    fn windows_held(limiter: &LocalLimiter) -> usize {
        limiter.lock().windows.len()
    }

    #[test]
    fn a_window_is_dropped_once_its_last_event_is_released() {
        let limiter = LocalLimiter::new();
        let decision = limiter.acquire("t1", runs(5)).unwrap();

        limiter.release(&decision.permit.unwrap());

        assert_eq!(windows_held(&limiter), 0);
    }

    #[test]
    fn peeking_at_an_unknown_subject_keeps_nothing() {
        let limiter = LocalLimiter::new();

        limiter.peek("t1", runs(5)).unwrap();

        assert_eq!(windows_held(&limiter), 0);
    }

    #[test]
    fn a_window_never_holds_more_events_than_its_limit() {
        let limiter = LocalLimiter::new();

        for _ in 0..100 {
            limiter.acquire("t1", runs(3)).unwrap();
        }

        assert_eq!(limiter.lock().windows["ratelimit:t1:runs"].events.len(), 3);
    }

    #[test]
    fn a_sweep_drops_windows_whose_newest_event_has_left() {
        let limiter = LocalLimiter::new();
        limiter.acquire("t1", runs(5)).unwrap();
        limiter.acquire("t2", runs(5)).unwrap();

        limiter
            .lock()
            .sweep(Instant::now() + Duration::from_secs(61));

        assert_eq!(windows_held(&limiter), 0);
    }

    #[test]
    fn a_sweep_keeps_windows_still_counting() {
        let limiter = LocalLimiter::new();
        limiter.acquire("t1", runs(5)).unwrap();

        limiter
            .lock()
            .sweep(Instant::now() + Duration::from_secs(31));

        assert_eq!(windows_held(&limiter), 1);
    }

    #[test]
    fn a_permit_from_redis_is_ignored() {
        let limiter = LocalLimiter::new();
        limiter.acquire("t1", runs(1)).unwrap();
        let foreign = Permit {
            key: "ratelimit:t1:runs".to_owned(),
            member: Member::Redis("1-abc".to_owned()),
        };

        limiter.release(&foreign);

        assert!(!limiter.acquire("t1", runs(1)).unwrap().admitted);
    }
}
