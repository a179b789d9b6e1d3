//! The platform's benchmark: real release processes on this machine.
//!
//! `cargo bench --bench platform` prints runs accepted per second over
//! HTTP, runs completed per second with one and two worker processes
//! (simulated provider, zero latency), the pickup latency of one run on an
//! idle queue, and the peak RSS of the API and the workers. It uses its own
//! database (dropped afterwards), the local Redis for rate limits, and a
//! tenant whose limits are lifted, so it measures the platform, not its
//! limiter.

// The test harness's database and process helpers, of which the benchmark
// uses a part.
#[allow(dead_code)]
#[path = "../support/db.rs"]
mod db;
#[allow(dead_code)]
#[path = "../support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use domain::{Limit, TenantLimits};
use futures::StreamExt;
use process::Process;
use serde_json::json;
use store::PgPool;

/// Runs per throughput phase.
const RUNS: usize = 5_000;
/// Submissions in flight at once.
const CLIENTS: usize = 64;
/// Runs timed one by one for pickup latency.
const PICKUPS: usize = 200;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = db::TestDb::create().await;
    let pool = db.pool(4);
    let key = lifted_tenant(&pool).await;
    let redis = testkit::services::redis_url().await.to_owned();
    let (port, api) = start_api(&db.url, &redis);
    wait_until_healthy(port).await;
    let bench = Bench {
        pool: pool.clone(),
        client: reqwest::Client::new(),
        port,
        key,
    };
    bench.create_agent().await;

    println!("Mini Agent Platform benchmark ({RUNS} runs a phase, {CLIENTS} concurrent clients)");
    let accepted = bench.submit(RUNS).await;
    println!(
        "accepted over HTTP (no workers):      {:>8.0} runs/s",
        per_second(RUNS, accepted)
    );

    let mut workers = vec![start_worker(&db.url, 1)];
    let drained = bench.until_done(RUNS).await;
    println!(
        "drained by 1 worker:                  {:>8.0} runs/s",
        per_second(RUNS, drained)
    );
    let one = bench.end_to_end(2 * RUNS).await;
    println!(
        "end to end, 1 worker:                 {:>8.0} runs/s",
        per_second(RUNS, one)
    );

    workers.push(start_worker(&db.url, 2));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let two = bench.end_to_end(3 * RUNS).await;
    println!(
        "end to end, 2 workers:                {:>8.0} runs/s",
        per_second(RUNS, two)
    );

    let pickup = bench.pickups(3 * RUNS).await;
    println!(
        "pickup on an idle queue (n={PICKUPS}):      p50 {:>5.1} ms   p99 {:>5.1} ms",
        percentile(&pickup, 0.50),
        percentile(&pickup, 0.99)
    );

    println!(
        "peak RSS, API:                        {:>8.1} MB",
        peak_rss_mb(api.pid())
    );
    for (index, worker) in workers.iter().enumerate() {
        println!(
            "peak RSS, worker {}:                   {:>8.1} MB",
            index + 1,
            peak_rss_mb(worker.pid())
        );
    }

    drop(workers);
    drop(api);
    pool.close().await;
    db.drop_now().await;
}

struct Bench {
    pool: PgPool,
    client: reqwest::Client,
    port: u16,
    key: String,
}

impl Bench {
    async fn create_agent(&self) {
        let agent =
            json!({"name": "Bencher", "role": "a benchmark", "description": "Answers fast."});
        let reply = self
            .client
            .post(format!("http://127.0.0.1:{}/agents", self.port))
            .header("x-api-key", &self.key)
            .json(&agent)
            .send()
            .await
            .expect("create the agent");
        assert_eq!(reply.status().as_u16(), 201, "create the agent");
    }

    /// Submits `count` runs, `CLIENTS` at a time; the time it took.
    async fn submit(&self, count: usize) -> Duration {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/agents/Bencher/run", self.port);
        let statuses: Vec<u16> = futures::stream::iter(0..count)
            .map(|index| {
                let request = self
                    .client
                    .post(&url)
                    .header("x-api-key", &self.key)
                    .json(&json!({"task": format!("task {index}")}));
                async move {
                    request
                        .send()
                        .await
                        .map_or(0, |reply| reply.status().as_u16())
                }
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let refused = statuses.iter().filter(|status| **status != 202).count();
        assert_eq!(refused, 0, "{refused} submissions were not accepted");
        elapsed
    }

    /// Waits until `total` executions in all are terminal; the time it took.
    async fn until_done(&self, total: usize) -> Duration {
        let started = Instant::now();
        loop {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM executions WHERE status IN ('succeeded', 'failed', 'cancelled')",
            )
            .fetch_one(&self.pool)
            .await
            .expect("count");
            if usize::try_from(done).unwrap_or(0) >= total {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_mins(10),
                "runs did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Submits `RUNS` runs while workers run; time from the first submission
    /// until `total` executions are terminal.
    async fn end_to_end(&self, total: usize) -> Duration {
        let started = Instant::now();
        self.submit(RUNS).await;
        self.until_done(total).await;
        started.elapsed()
    }

    /// Submits runs one at a time on an idle queue; for each, the time from
    /// its commit to its claim by a worker, by the database's clock.
    async fn pickups(&self, done_before: usize) -> Vec<f64> {
        let mut latencies = Vec::with_capacity(PICKUPS);
        for index in 0..PICKUPS {
            self.submit(1).await;
            self.until_done(done_before + index + 1).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rows: Vec<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (started_at - created_at))::float8 * 1000 FROM executions \
             ORDER BY created_at DESC LIMIT $1",
        )
        .bind(i64::try_from(PICKUPS).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .expect("latencies");
        latencies.extend(rows);
        latencies
    }
}

async fn lifted_tenant(pool: &PgPool) -> String {
    let lifted = Limit {
        limit: 1_000_000_000,
        window_secs: 60,
    };
    store::tenants::create(
        pool,
        "bench",
        TenantLimits {
            runs: lifted,
            requests: lifted,
        },
    )
    .await
    .expect("tenant");
    store::keys::create(pool, "bench")
        .await
        .expect("key")
        .expect("tenant")
        .reveal()
        .to_owned()
}

fn start_api(database_url: &str, redis_url: &str) -> (u16, Process) {
    let port = free_port();
    let env = [
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "16".to_owned()),
        ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("REDIS_URL", redis_url.to_owned()),
    ];
    (port, Process::start("api", &["api"], &env))
}

fn start_worker(database_url: &str, index: usize) -> Process {
    let env = [
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "16".to_owned()),
        ("WORKER_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("WORKER_CONCURRENCY", "32".to_owned()),
        ("SIMULATED_LATENCY_MS", "0".to_owned()),
    ];
    Process::start(&format!("worker-{index}"), &["worker"], &env)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

async fn wait_until_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..400 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|reply| reply.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the API did not become healthy");
}

#[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn percentile(samples: &[f64], quantile: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// The process's peak resident set (`VmHWM`), in megabytes.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kilobytes: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kilobytes / 1024.0
}
