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
    let env = [
        ("DATABASE_MAX_CONNECTIONS", "16".to_owned()),
        ("REDIS_URL", redis),
    ];
    let (port, api) = Process::api("api", &db.url, &env).await;
    let bench = Bench {
        pool: pool.clone(),
        client: reqwest::Client::new(),
        port,
        key,
    };
    bench.create_agent().await;

    println!("Mini Agent Platform benchmark ({RUNS} runs a phase, {CLIENTS} concurrent clients)");
    let before = CpuUse::now(api.pid(), &[]);
    let accepted = bench.submit(RUNS).await;
    println!(
        "accepted over HTTP (no workers):      {:>8.0} runs/s",
        per_second(RUNS, accepted)
    );
    CpuUse::now(api.pid(), &[]).since(&before).print();

    let mut workers = vec![start_worker(&db.url, 1)];
    let before = CpuUse::now(api.pid(), &workers);
    let drained = bench.until_done().await;
    println!(
        "drained by 1 worker:                  {:>8.0} runs/s",
        per_second(RUNS, drained)
    );
    CpuUse::now(api.pid(), &workers).since(&before).print();
    let one = bench.end_to_end().await;
    println!(
        "end to end, 1 worker:                 {:>8.0} runs/s",
        per_second(RUNS, one)
    );

    workers.push(start_worker(&db.url, 2));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = CpuUse::now(api.pid(), &workers);
    let two = bench.end_to_end().await;
    println!(
        "end to end, 2 workers:                {:>8.0} runs/s",
        per_second(RUNS, two)
    );
    CpuUse::now(api.pid(), &workers).since(&before).print();

    let pickup = bench.pickups().await;
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

    /// Waits until every execution submitted so far is terminal; the time
    /// it took. Counted on the small index of unfinished runs, so the
    /// polling itself costs the database little.
    async fn until_done(&self) -> Duration {
        let started = Instant::now();
        loop {
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM executions WHERE status IN ('queued', 'running')",
            )
            .fetch_one(&self.pool)
            .await
            .expect("count");
            if unfinished == 0 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_mins(10),
                "runs did not finish"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Submits `RUNS` runs while workers run; time from the first submission
    /// until all are terminal.
    async fn end_to_end(&self) -> Duration {
        let started = Instant::now();
        self.submit(RUNS).await;
        self.until_done().await;
        started.elapsed()
    }

    /// Submits runs one at a time on an idle queue; for each, the time from
    /// the start of the transaction recording it to its claim by a worker,
    /// by the database's clock.
    async fn pickups(&self) -> Vec<f64> {
        let mut latencies = Vec::with_capacity(PICKUPS);
        for _ in 0..PICKUPS {
            self.submit(1).await;
            self.until_done().await;
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

fn start_worker(database_url: &str, index: usize) -> Process {
    let env = [
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "16".to_owned()),
        ("WORKER_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("WORKER_CONCURRENCY", "64".to_owned()),
        ("SIMULATED_LATENCY_MS", "0".to_owned()),
    ];
    Process::start(&format!("worker-{index}"), &["worker"], &env)
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

/// CPU seconds used so far by each part of the platform, from /proc.
struct CpuUse {
    api: f64,
    workers: f64,
    postgres: f64,
    redis: f64,
    bench: f64,
}

impl CpuUse {
    fn now(api: u32, workers: &[Process]) -> Self {
        let named = |name: &str| processes_named(name).into_iter().map(cpu_seconds).sum();
        Self {
            api: cpu_seconds(api),
            workers: workers.iter().map(|worker| cpu_seconds(worker.pid())).sum(),
            postgres: named("postgres"),
            redis: named("redis-server"),
            bench: cpu_seconds(std::process::id()),
        }
    }

    fn since(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            api: self.api - before.api,
            workers: self.workers - before.workers,
            postgres: self.postgres - before.postgres,
            redis: self.redis - before.redis,
            bench: self.bench - before.bench,
        }
    }

    fn print(&self) {
        println!(
            "  CPU seconds in that phase: postgres {:.1}, api {:.1}, workers {:.1}, redis {:.1}, load generator {:.1}",
            self.postgres, self.api, self.workers, self.redis, self.bench
        );
    }
}

/// User plus system time of a process, in seconds (Linux clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is parenthesized and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn processes_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}
