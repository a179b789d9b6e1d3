//! The in-process backend passes the same scenarios as the Redis one.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_admits_exactly_the_limit_of_150_concurrent_acquires() {
    let limiter = ratelimit::Limiter::local();

    let admitted = common::admitted_under_contention(&limiter, 50, 150).await;

    assert_eq!(admitted, 50);
}

#[tokio::test]
async fn local_window_slides() {
    common::the_window_slides(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_frees_each_slot_one_window_after_its_own_event() {
    common::each_slot_frees_one_window_after_its_own_event(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_refused_acquire_counts_nothing() {
    common::a_refused_acquire_counts_nothing(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_release_frees_the_slot_at_once() {
    common::release_frees_the_slot_at_once(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_release_refunds_only_its_own_event() {
    common::release_refunds_only_its_own_event(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_peek_never_counts() {
    common::peek_never_counts(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_peek_reports_a_full_window_as_refused() {
    common::peek_reports_a_full_window_as_refused(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_waiting_reset_secs_admits() {
    common::waiting_reset_secs_admits(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_lowered_limit_waits_for_the_surplus_to_leave() {
    common::a_lowered_limit_waits_for_the_surplus_to_leave(&ratelimit::Limiter::local()).await;
}

#[tokio::test]
async fn local_ping_always_answers() {
    let limiter = ratelimit::Limiter::local();

    let answer = limiter.ping().await;

    assert!(answer.is_ok());
}
