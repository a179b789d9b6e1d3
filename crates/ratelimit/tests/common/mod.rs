//! Scenarios both backends must pass, and the helpers they share.
//!
//! Each scenario takes a ready `Limiter` and a fresh subject, so the Redis and
//! the in-process test files assert exactly the same behaviour.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit::{Limiter, Policy, PolicyName};
use tokio::task::JoinSet;

/// The Redis the tests use: `TEST_REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A subject no other test (or earlier run) has used.
pub fn fresh_subject() -> String {
    format!("test-{}", uuid::Uuid::now_v7())
}

/// `limit` runs per `window_secs` seconds.
pub fn runs(limit: u32, window_secs: u64) -> Policy {
    Policy::new(PolicyName::Runs, limit, Duration::from_secs(window_secs)).unwrap()
}

/// Fires `attempts` acquires at once; returns how many were admitted.
pub async fn admitted_under_contention(limiter: &Limiter, limit: u32, attempts: usize) -> usize {
    let subject = Arc::new(fresh_subject());
    let policy = runs(limit, 60);
    let mut checks = JoinSet::new();

    for _ in 0..attempts {
        let (limiter, subject) = (limiter.clone(), Arc::clone(&subject));
        checks.spawn(async move { limiter.acquire(&subject, policy).await.unwrap().admitted });
    }

    checks
        .join_all()
        .await
        .into_iter()
        .filter(|&admitted| admitted)
        .count()
}

pub async fn the_window_slides(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(3, 2);
    for _ in 0..3 {
        assert!(limiter.acquire(&subject, policy).await.unwrap().admitted);
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let halfway = limiter.acquire(&subject, policy).await.unwrap();

    assert!(!halfway.admitted);
    assert_eq!(halfway.remaining, 0);
    assert!(halfway.reset > Duration::from_millis(500));
    assert!(halfway.reset <= Duration::from_secs(1));

    tokio::time::sleep(halfway.reset + Duration::from_millis(300)).await;
    let after = limiter.acquire(&subject, policy).await.unwrap();

    assert!(after.admitted);
    assert_eq!(after.remaining, 2);
}

/// Events admitted at different times free their slots one by one, each one
/// window after its own admission: no fixed window boundary resets them all.
pub async fn each_slot_frees_one_window_after_its_own_event(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(2, 2);
    assert!(limiter.acquire(&subject, policy).await.unwrap().admitted);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(limiter.acquire(&subject, policy).await.unwrap().admitted);

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let first_freed = limiter.acquire(&subject, policy).await.unwrap();
    let second = limiter.acquire(&subject, policy).await.unwrap();

    assert!(first_freed.admitted);
    assert!(!second.admitted);
    assert!(second.reset > Duration::from_millis(300));
    assert!(second.reset < Duration::from_secs(1));
}

pub async fn a_refused_acquire_counts_nothing(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(2, 60);
    let first = limiter.acquire(&subject, policy).await.unwrap();
    limiter.acquire(&subject, policy).await.unwrap();

    for _ in 0..5 {
        assert!(!limiter.acquire(&subject, policy).await.unwrap().admitted);
    }
    limiter
        .release(first.permit.as_ref().unwrap())
        .await
        .unwrap();
    let after_refund = limiter.acquire(&subject, policy).await.unwrap();
    let then = limiter.acquire(&subject, policy).await.unwrap();

    assert!(after_refund.admitted);
    assert_eq!(after_refund.remaining, 0);
    assert!(!then.admitted);
}

pub async fn release_frees_the_slot_at_once(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(1, 60);
    let held = limiter.acquire(&subject, policy).await.unwrap();
    assert!(!limiter.acquire(&subject, policy).await.unwrap().admitted);

    limiter
        .release(held.permit.as_ref().unwrap())
        .await
        .unwrap();
    let again = limiter.acquire(&subject, policy).await.unwrap();

    assert!(again.admitted);
    assert!(again.permit.is_some());
}

pub async fn release_refunds_only_its_own_event(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(3, 60);
    let first = limiter.acquire(&subject, policy).await.unwrap();
    limiter.acquire(&subject, policy).await.unwrap();

    let permit = first.permit.unwrap();
    limiter.release(&permit).await.unwrap();
    limiter.release(&permit).await.unwrap();
    let peeked = limiter.peek(&subject, policy).await.unwrap();

    assert_eq!(peeked.remaining, 2);
}

pub async fn peek_never_counts(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(2, 60);

    for _ in 0..10 {
        let look = limiter.peek(&subject, policy).await.unwrap();
        assert!(look.admitted);
        assert_eq!(look.remaining, 2);
        assert_eq!(look.reset, Duration::ZERO);
        assert!(look.permit.is_none());
    }
    let counted = limiter.acquire(&subject, policy).await.unwrap();
    let look = limiter.peek(&subject, policy).await.unwrap();

    assert_eq!(counted.remaining, 1);
    assert_eq!(look.remaining, 1);
    assert!(look.reset > Duration::from_secs(59));
}

pub async fn peek_reports_a_full_window_as_refused(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(1, 60);
    limiter.acquire(&subject, policy).await.unwrap();

    let look = limiter.peek(&subject, policy).await.unwrap();

    assert!(!look.admitted);
    assert_eq!(look.remaining, 0);
    assert!(look.permit.is_none());
}

pub async fn waiting_reset_secs_admits(limiter: &Limiter) {
    let subject = fresh_subject();
    let policy = runs(1, 2);
    limiter.acquire(&subject, policy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = limiter.acquire(&subject, policy).await.unwrap();
    let wait = Duration::from_secs(refused.reset_secs());

    assert!(!refused.admitted);
    assert_eq!(refused.reset_secs(), 2);
    assert!(wait >= refused.reset);

    tokio::time::sleep(wait).await;
    let after_waiting = limiter.acquire(&subject, policy).await.unwrap();

    assert!(after_waiting.admitted);
}

/// After the limit is lowered below what is counted, a slot frees only when
/// the surplus has left too: here the newest event, not the oldest.
pub async fn a_lowered_limit_waits_for_the_surplus_to_leave(limiter: &Limiter) {
    let subject = fresh_subject();
    limiter.acquire(&subject, runs(3, 60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    limiter.acquire(&subject, runs(3, 60)).await.unwrap();
    limiter.acquire(&subject, runs(3, 60)).await.unwrap();

    let refused = limiter.acquire(&subject, runs(1, 60)).await.unwrap();

    assert!(!refused.admitted);
    assert_eq!(refused.remaining, 0);
    assert!(refused.reset > Duration::from_millis(59_600));
}
