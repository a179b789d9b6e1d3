//! Rate limits end to end, against the real Redis: exact sliding windows
//! shared by API replicas, what counts and what does not, the headers, and
//! what happens while Redis is away.

mod support;

use std::time::Duration;

use domain::limits::DEMO_TENANTS;
use domain::{Limit, TenantLimits};
use reqwest::Method;
use serde_json::json;
use support::process::Process;
use support::{Options, Reply, TestApp};
use testkit::proxy::TcpProxy;

/// The API with a Redis limiter reached through `redis_url`.
async fn app_on_redis(redis_url: &str, on_error: api::OnLimiterError) -> TestApp {
    let limiter = ratelimit::Limiter::redis(redis_url).expect("redis limiter");
    TestApp::with(Options {
        limiter,
        on_limiter_error: on_error,
        ..Options::default()
    })
    .await
}

async fn app() -> TestApp {
    app_on_redis(
        testkit::services::redis_url().await,
        api::OnLimiterError::Allow,
    )
    .await
}

/// A tenant with these limits, its key, and an agent to run.
async fn tenant_with(app: &TestApp, runs: Limit, requests: Limit) -> String {
    let name = format!("t{}", uuid::Uuid::now_v7().simple());
    store::tenants::create(&app.pool, &name, TenantLimits { runs, requests })
        .await
        .expect("tenant");
    let key = store::keys::create(&app.pool, &name)
        .await
        .expect("key")
        .expect("tenant")
        .reveal()
        .to_owned();
    let agent = json!({"name": "Runner", "role": "a runner", "description": "Runs."});
    app.call(Method::POST, "/agents")
        .key(&key)
        .json(&agent)
        .send()
        .await
        .expect(201);
    key
}

fn limit(limit: u32, window_secs: u32) -> Limit {
    Limit { limit, window_secs }
}

async fn run(app: &TestApp, key: &str) -> Reply {
    app.call(Method::POST, "/agents/Runner/run")
        .key(key)
        .json(&json!({"task": "go"}))
        .send()
        .await
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds")
}

#[tokio::test]
async fn the_third_run_of_two_per_window_is_refused_until_retry_after() {
    let app = app().await;
    let key = tenant_with(&app, limit(2, 3), limit(6000, 60)).await;

    run(&app, &key).await.expect(202);
    run(&app, &key).await.expect(202);
    let refused = run(&app, &key).await;

    let problem = refused.problem(429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("run limit of 2 per 3 s"),
        "{problem}"
    );
    let wait = retry_after(&refused);
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    run(&app, &key).await.expect(202);
    app.stop().await;
}

#[tokio::test]
async fn the_demo_tenant_c_gets_two_runs_a_minute() {
    let app = app().await;
    let (name, runs) = DEMO_TENANTS[2];
    let limits = TenantLimits {
        runs,
        ..TenantLimits::default()
    };
    store::tenants::ensure_demo(&app.pool, name, limits)
        .await
        .expect("demo tenant");
    let agent = json!({"name": "Runner", "role": "a runner", "description": "Runs."});
    app.call(Method::POST, "/agents")
        .key("tenant_c")
        .json(&agent)
        .send()
        .await
        .expect(201);

    run(&app, "tenant_c").await.expect(202);
    run(&app, "tenant_c").await.expect(202);
    let refused = run(&app, "tenant_c").await;

    refused.problem(429);
    assert!(
        (55..=60).contains(&retry_after(&refused)),
        "{:?}",
        refused.header("retry-after")
    );
    app.stop().await;
}

#[tokio::test]
async fn in_no_window_are_more_runs_admitted_than_the_limit() {
    let app = app().await;
    let key = tenant_with(&app, limit(3, 4), limit(6000, 60)).await;

    for _ in 0..3 {
        run(&app, &key).await.expect(202);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    run(&app, &key).await.problem(429);
    tokio::time::sleep(Duration::from_millis(2300)).await;

    run(&app, &key).await.expect(202);
    app.stop().await;
}

#[tokio::test]
async fn runs_refused_with_404_or_422_consume_no_run_quota() {
    let app = app().await;
    let key = tenant_with(&app, limit(3, 60), limit(6000, 60)).await;

    for _ in 0..10 {
        let path = "/agents/Nobody/run";
        app.call(Method::POST, path)
            .key(&key)
            .json(&json!({"task": "go"}))
            .send()
            .await
            .problem(404);
        run_with(&app, &key, &json!({"task": ""}))
            .await
            .problem(422);
        run_with(&app, &key, &json!({"task": "go", "model": "gpt-5"}))
            .await
            .problem(422);
    }

    for _ in 0..3 {
        run(&app, &key).await.expect(202);
    }
    run(&app, &key).await.problem(429);
    app.stop().await;
}

async fn run_with(app: &TestApp, key: &str, body: &serde_json::Value) -> Reply {
    app.call(Method::POST, "/agents/Runner/run")
        .key(key)
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn requests_refused_with_429_consume_nothing() {
    let app = app().await;
    // The agent is created before the request limit is lowered, so setup
    // requests do not count.
    let key = tenant_with(&app, limit(60, 60), limit(6000, 60)).await;
    lower_request_limit(&app, limit(5, 2)).await;

    for _ in 0..5 {
        app.call(Method::GET, "/tools")
            .key(&key)
            .send()
            .await
            .expect(200);
    }
    for _ in 0..10 {
        app.call(Method::GET, "/tools")
            .key(&key)
            .send()
            .await
            .problem(429);
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // Had the refusals counted, the window would still be full.
    for _ in 0..5 {
        app.call(Method::GET, "/tools")
            .key(&key)
            .send()
            .await
            .expect(200);
    }
    app.stop().await;
}

/// Changes every tenant's request limit, then waits out the key cache.
async fn lower_request_limit(app: &TestApp, requests: Limit) {
    sqlx::query("UPDATE tenants SET request_limit = $1, request_window_secs = $2")
        .bind(i32::try_from(requests.limit).unwrap())
        .bind(i32::try_from(requests.window_secs).unwrap())
        .execute(&app.pool)
        .await
        .expect("lower the limit");
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

#[tokio::test]
async fn a_run_refused_by_its_limit_hands_its_request_slot_back() {
    let app = app().await;
    let key = tenant_with(&app, limit(1, 60), limit(6000, 60)).await;
    run(&app, &key).await.expect(202);

    for _ in 0..5 {
        run(&app, &key).await.problem(429);
    }
    let after = app.call(Method::GET, "/tools").key(&key).send().await;

    // The agent's creation, the accepted run and this request: 3 of 6000.
    let state = after.header("ratelimit").expect("RateLimit");
    assert!(state.contains("\"requests\";r=5997;"), "{state}");
    app.stop().await;
}

#[tokio::test]
async fn headers_report_the_policies_on_success_errors_and_refusals() {
    let app = app().await;
    let key = tenant_with(&app, limit(2, 60), limit(6000, 60)).await;

    let listed = app.call(Method::GET, "/tools").key(&key).send().await;
    let accepted = run(&app, &key).await;
    let invalid = run_with(&app, &key, &json!({"task": ""})).await;
    run(&app, &key).await.expect(202);
    let refused = run(&app, &key).await;

    listed.expect(200);
    assert_eq!(
        listed.header("ratelimit-policy"),
        Some("\"requests\";q=6000;w=60")
    );
    assert_eq!(listed.header("x-ratelimit-limit"), Some("6000"));
    assert_eq!(listed.header("x-ratelimit-remaining"), Some("5998"));

    accepted.expect(202);
    assert_eq!(
        accepted.header("ratelimit-policy"),
        Some("\"requests\";q=6000;w=60, \"runs\";q=2;w=60")
    );
    let state = accepted.header("ratelimit").unwrap();
    assert!(
        state.starts_with("\"requests\";r=5997;t=") && state.contains(", \"runs\";r=1;t="),
        "{state}"
    );
    assert_eq!(accepted.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(accepted.header("x-ratelimit-remaining"), Some("1"));

    invalid.problem(422);
    assert!(
        invalid
            .header("ratelimit")
            .unwrap()
            .contains("\"runs\";r=1;"),
        "{invalid:?}"
    );

    refused.problem(429);
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        refused.header("x-ratelimit-reset"),
        refused.header("retry-after")
    );
    assert!(
        refused
            .header("ratelimit")
            .unwrap()
            .contains("\"runs\";r=0;"),
        "{refused:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_run_refused_by_the_request_limit_reports_both_policies_and_waits_for_both() {
    let app = app().await;
    // Three requests: the agent's creation, a run and a list.
    let key = tenant_with(&app, limit(1, 60), limit(3, 30)).await;
    run(&app, &key).await.expect(202);
    app.call(Method::GET, "/tools")
        .key(&key)
        .send()
        .await
        .expect(200);

    let refused = run(&app, &key).await;

    assert!(refused.detail(429).contains("request limit"), "{refused:?}");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"requests\";q=3;w=30, \"runs\";q=1;w=60")
    );
    let state = refused.header("ratelimit").unwrap();
    let runs_reset: u64 = state
        .split("\"runs\";r=0;t=")
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no spent runs policy in {state}"));
    // The request slot frees within 30 s, the run slot only after about
    // 60: a client waiting less than the longer would be refused again.
    assert!(runs_reset > 30, "{state}");
    assert_eq!(retry_after(&refused), runs_reset);
    app.stop().await;
}

#[tokio::test]
async fn while_redis_is_away_allow_mode_admits_and_limiting_resumes_after() {
    let proxy = TcpProxy::start(redis_address().await).await;
    let app = app_on_redis(
        &format!("redis://{}", proxy.addr()),
        api::OnLimiterError::Allow,
    )
    .await;
    let key = tenant_with(&app, limit(1, 60), limit(6000, 60)).await;
    run(&app, &key).await.expect(202);
    run(&app, &key).await.problem(429);

    proxy.cut();
    let during = run(&app, &key).await;
    proxy.restore();
    let after = run(&app, &key).await;

    during.expect(202);
    after.problem(429);
    app.stop().await;
}

#[tokio::test]
async fn while_redis_is_away_deny_mode_answers_503_and_is_not_ready() {
    let proxy = TcpProxy::start(redis_address().await).await;
    let app = app_on_redis(
        &format!("redis://{}", proxy.addr()),
        api::OnLimiterError::Deny,
    )
    .await;
    let key = tenant_with(&app, limit(5, 60), limit(6000, 60)).await;

    proxy.cut();
    let refused = app.call(Method::GET, "/tools").key(&key).send().await;
    let readiness = app.call(Method::GET, "/readyz").send().await;
    proxy.restore();
    let resumed = app.call(Method::GET, "/tools").key(&key).send().await;

    refused.problem(503);
    assert!(refused.header("retry-after").is_some());
    readiness.expect(503);
    assert_eq!(readiness.body["redis"], "unavailable");
    resumed.expect(200);
    app.stop().await;
}

async fn redis_address() -> String {
    let url = testkit::services::redis_url().await;
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test]
async fn two_api_replicas_admit_exactly_the_limit_between_them() {
    let app = app().await;
    let key = tenant_with(&app, limit(20, 60), limit(6000, 60)).await;
    let redis = [("REDIS_URL", testkit::services::redis_url().await.to_owned())];
    let replicas = [
        Process::api("api-0", &app.db.url, &redis).await,
        Process::api("api-1", &app.db.url, &redis).await,
    ];
    let ports: Vec<u16> = replicas.iter().map(|(port, _)| *port).collect();

    let client = reqwest::Client::new();
    let submissions = (0..200).map(|index| {
        let url = format!("http://127.0.0.1:{}/agents/Runner/run", ports[index % 2]);
        let request = client
            .post(url)
            .header("x-api-key", &key)
            .json(&json!({"task": "go"}));
        async move { request.send().await.expect("submit").status().as_u16() }
    });
    let statuses = futures::future::join_all(submissions).await;

    assert_eq!(
        statuses.iter().filter(|status| **status == 202).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 429).count(),
        180,
        "{statuses:?}"
    );
    drop(replicas);
    app.stop().await;
}
