//! Prometheus metrics, scraped from the real processes: the API's and a
//! worker's `/metrics` each count a run that went through them.

mod support;

use std::time::Duration;

use serde_json::json;
use support::TestApp;
use support::process::{Process, free_port, wait_until_healthy};
use support::runs::eventually;

async fn scrape(port: u16) -> String {
    let reply = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(reply.status().as_u16(), 200);
    reply.text().await.expect("metrics text")
}

/// The value of the sample whose line starts with `series`, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn the_api_and_the_worker_each_count_a_run_on_their_own_metrics() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let (api_port, api) = Process::api("api", &app.db.url, &[]).await;
    let worker_port = free_port();
    let worker = Process::worker(
        "worker",
        &app.db.url,
        &[("WORKER_LISTEN_ADDR", format!("127.0.0.1:{worker_port}"))],
    );
    wait_until_healthy(worker_port).await;

    let client = reqwest::Client::new();
    let submitted = client
        .post(format!("http://127.0.0.1:{api_port}/agents/Ada/run"))
        .header("x-api-key", &key)
        .json(&json!({"task": "count me"}))
        .send()
        .await
        .expect("submit");
    let id = submitted
        .json::<serde_json::Value>()
        .await
        .expect("execution")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.wait_status(&key, &id, "succeeded", Duration::from_secs(10))
        .await;

    let api_metrics = scrape(api_port).await;
    assert_eq!(
        sample(&api_metrics, "agent_platform_runs_enqueued_total"),
        Some(1.0),
        "{api_metrics}"
    );
    let series = r#"agent_platform_http_requests_total{method="POST",route="/agents/{ref}/run",status="202"}"#;
    assert_eq!(sample(&api_metrics, series), Some(1.0), "{api_metrics}");
    assert!(
        api_metrics.contains("agent_platform_http_request_duration_seconds_bucket"),
        "{api_metrics}"
    );
    let worker_metrics = eventually(Duration::from_secs(10), "the worker's gauges", || async {
        let metrics = scrape(worker_port).await;
        metrics
            .contains("agent_platform_queue_depth")
            .then_some(metrics)
    })
    .await;
    let succeeded = r#"agent_platform_jobs_total{outcome="succeeded"}"#;
    assert_eq!(
        sample(&worker_metrics, succeeded),
        Some(1.0),
        "{worker_metrics}"
    );
    let attempts = r#"agent_platform_attempts_total{provider="simulated"}"#;
    assert_eq!(
        sample(&worker_metrics, attempts),
        Some(1.0),
        "{worker_metrics}"
    );
    assert!(
        worker_metrics.contains("agent_platform_attempt_duration_seconds_bucket"),
        "{worker_metrics}"
    );
    assert_eq!(
        sample(&worker_metrics, "agent_platform_queue_depth"),
        Some(0.0),
        "{worker_metrics}"
    );
    worker.kill().await;
    drop(api);
    app.stop().await;
}
