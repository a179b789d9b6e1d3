//! When to try again after a transient provider error.
//!
//! Delays grow exponentially from the configured base with random jitter
//! (so runs that failed together do not retry together), never shorter than
//! the provider's `Retry-After`, and never longer than [`MAX_DELAY`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The longest wait between attempts, whatever `Retry-After` says: a run
/// must finish well inside its hard deadline.
pub const MAX_DELAY: Duration = Duration::from_mins(2);

/// The wait before the attempt after `attempt` (1-based).
pub fn delay_after(attempt: u32, base: Duration, retry_after: Option<Duration>) -> Duration {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(base)
        .with_factor(2.0)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(MAX_DELAY);
    backoff.max(retry_after.unwrap_or_default()).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter() {
        let base = Duration::from_secs(1);

        let first = delay_after(1, base, None);
        let second = delay_after(2, base, None);

        assert!(
            (Duration::from_secs(1)..Duration::from_secs(2)).contains(&first),
            "{first:?}"
        );
        assert!(
            (Duration::from_secs(2)..Duration::from_secs(4)).contains(&second),
            "{second:?}"
        );
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let base = Duration::from_millis(10);

        assert!(delay_after(1, base, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(
            delay_after(1, base, Some(Duration::from_hours(1))),
            MAX_DELAY
        );
    }
}
