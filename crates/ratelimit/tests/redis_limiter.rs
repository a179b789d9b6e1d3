//! The Redis backend against a real Redis (`TEST_REDIS_URL`, else
//! 127.0.0.1:6379): shared scenarios, what only Redis has (keys, TTLs,
//! several processes), and Redis going away through a cuttable proxy.

mod common;

use std::time::{Duration, Instant};

use common::{fresh_subject, redis_url, runs};
use ratelimit::{Limiter, LimiterError, Policy};
use redis::AsyncCommands;
use testkit::proxy::TcpProxy;
use tokio::net::TcpListener;

fn limiter() -> Limiter {
    Limiter::redis(&redis_url()).unwrap()
}

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// `url` with its host and port replaced by `addr`, keeping scheme,
/// credentials and database.
fn pointed_at(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, rest) = rest.rsplit_once('@').map_or(("", rest), |(c, r)| (c, r));
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let at = if credentials.is_empty() { "" } else { "@" };

    format!("{scheme}://{credentials}{at}{addr}{path}")
}

/// The `host:port` of the test Redis.
fn upstream(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();

    if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    }
}

async fn acquire_through(limiter: &Limiter, subject: &str, policy: Policy) -> (Duration, bool) {
    let started = Instant::now();
    let outcome = limiter.acquire(subject, policy).await;

    let unavailable = matches!(outcome, Err(LimiterError::Unavailable(_)));
    (started.elapsed(), unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admits_exactly_the_limit_of_150_concurrent_acquires() {
    let limiter = limiter();

    let admitted = common::admitted_under_contention(&limiter, 50, 150).await;

    assert_eq!(admitted, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_redis_share_one_limit() {
    let (first, second) = (limiter(), limiter());
    let subject = fresh_subject();
    let policy = runs(50, 60);
    let mut checks = tokio::task::JoinSet::new();

    for attempt in 0..150 {
        let limiter = if attempt % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let subject = subject.clone();
        checks.spawn(async move { limiter.acquire(&subject, policy).await.unwrap().admitted });
    }
    let admitted = checks.join_all().await.into_iter().filter(|&a| a).count();

    assert_eq!(admitted, 50);
}

#[tokio::test]
async fn redis_window_slides() {
    common::the_window_slides(&limiter()).await;
}

#[tokio::test]
async fn redis_frees_each_slot_one_window_after_its_own_event() {
    common::each_slot_frees_one_window_after_its_own_event(&limiter()).await;
}

#[tokio::test]
async fn redis_refused_acquire_counts_nothing() {
    common::a_refused_acquire_counts_nothing(&limiter()).await;
}

#[tokio::test]
async fn redis_release_frees_the_slot_at_once() {
    common::release_frees_the_slot_at_once(&limiter()).await;
}

#[tokio::test]
async fn redis_release_refunds_only_its_own_event() {
    common::release_refunds_only_its_own_event(&limiter()).await;
}

#[tokio::test]
async fn redis_peek_never_counts() {
    common::peek_never_counts(&limiter()).await;
}

#[tokio::test]
async fn redis_peek_reports_a_full_window_as_refused() {
    common::peek_reports_a_full_window_as_refused(&limiter()).await;
}

#[tokio::test]
async fn redis_waiting_reset_secs_admits() {
    common::waiting_reset_secs_admits(&limiter()).await;
}

#[tokio::test]
async fn redis_lowered_limit_waits_for_the_surplus_to_leave() {
    common::a_lowered_limit_waits_for_the_surplus_to_leave(&limiter()).await;
}

#[tokio::test]
async fn refused_acquires_add_no_member_to_the_set() {
    let limiter = limiter();
    let subject = fresh_subject();
    let policy = runs(2, 60);
    for _ in 0..6 {
        limiter.acquire(&subject, policy).await.unwrap();
    }

    let members: u64 = redis()
        .await
        .zcard(format!("ratelimit:{subject}:runs"))
        .await
        .unwrap();

    assert_eq!(members, 2);
}

#[tokio::test]
async fn an_error_reply_is_unavailable_and_leaves_the_limiter_working() {
    let limiter = limiter();
    let clobbered = fresh_subject();
    let key = format!("ratelimit:{clobbered}:runs");
    let _: () = redis().await.set_ex(key, "x", 60).await.unwrap();

    let outcome = limiter.acquire(&clobbered, runs(5, 60)).await;
    let other = limiter.acquire(&fresh_subject(), runs(5, 60)).await;

    assert!(matches!(outcome, Err(LimiterError::Unavailable(m)) if m.contains("WRONGTYPE")));
    assert!(other.unwrap().admitted);
}

#[tokio::test]
async fn keys_expire_one_window_after_the_newest_event() {
    let limiter = limiter();
    let subject = fresh_subject();

    limiter.acquire(&subject, runs(5, 60)).await.unwrap();
    let ttl_ms: i64 = redis()
        .await
        .pttl(format!("ratelimit:{subject}:runs"))
        .await
        .unwrap();

    assert!((59_000..=60_000).contains(&ttl_ms), "ttl was {ttl_ms} ms");
}

#[tokio::test]
async fn peek_of_an_unknown_subject_creates_no_key() {
    let limiter = limiter();
    let subject = fresh_subject();

    limiter.peek(&subject, runs(5, 60)).await.unwrap();
    let exists: bool = redis()
        .await
        .exists(format!("ratelimit:{subject}:runs"))
        .await
        .unwrap();

    assert!(!exists);
}

#[tokio::test]
async fn cut_redis_is_unavailable_quickly_and_the_same_limiter_recovers() {
    let url = redis_url();
    let proxy = TcpProxy::start(upstream(&url)).await;
    let limiter = Limiter::redis(&pointed_at(&url, proxy.addr())).unwrap();
    let subject = fresh_subject();
    let policy = runs(10, 60);
    assert!(limiter.acquire(&subject, policy).await.unwrap().admitted);

    proxy.cut();
    let (elapsed, unavailable) = acquire_through(&limiter, &subject, policy).await;
    let ping_while_cut = limiter.ping().await;

    assert!(unavailable);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(ping_while_cut.is_err());

    proxy.restore();
    let after = limiter.acquire(&subject, policy).await.unwrap();

    assert!(after.admitted);
    assert_eq!(after.remaining, 8);
    assert!(limiter.ping().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cut_no_stale_pooled_connection_fails_a_check() {
    let url = redis_url();
    let proxy = TcpProxy::start(upstream(&url)).await;
    let limiter = Limiter::redis(&pointed_at(&url, proxy.addr())).unwrap();
    common::admitted_under_contention(&limiter, 100, 16).await;
    proxy.cut();
    assert!(
        limiter
            .acquire(&fresh_subject(), runs(1, 60))
            .await
            .is_err()
    );

    proxy.restore();
    let admitted = common::admitted_under_contention(&limiter, 100, 16).await;

    assert_eq!(admitted, 16);
}

#[tokio::test]
async fn a_redis_that_never_answers_is_unavailable_within_the_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limiter = Limiter::redis(&format!("redis://{}", silent.local_addr().unwrap())).unwrap();

    let (elapsed, unavailable) = acquire_through(&limiter, &fresh_subject(), runs(1, 60)).await;

    assert!(unavailable);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable_at_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let limiter = Limiter::redis(&format!("redis://{port}")).unwrap();

    let (elapsed, unavailable) = acquire_through(&limiter, &fresh_subject(), runs(1, 60)).await;

    assert!(unavailable);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn a_malformed_url_is_refused_up_front() {
    let built = Limiter::redis("not a url");

    assert!(built.is_err());
}

#[tokio::test]
async fn an_invalid_policy_is_refused_without_touching_redis() {
    let limiter = Limiter::redis("redis://127.0.0.1:1").unwrap();
    let zero = Policy {
        limit: 0,
        ..runs(1, 60)
    };

    let outcome = limiter.acquire(&fresh_subject(), zero).await;

    assert!(matches!(outcome, Err(LimiterError::InvalidPolicy(_))));
}

#[test]
fn a_redis_limiter_is_shared_and_a_local_one_is_not() {
    assert!(limiter().is_shared());
    assert!(!Limiter::local().is_shared());
}
