//! Measures the limiter: checks per second with N concurrent tasks, and the
//! p50/p99 latency of one check.
//!
//! `cargo run --release -p ratelimit --example limiter_bench -- [TASKS] [SECONDS] [--local]`
//!
//! Runs against `TEST_REDIS_URL` (else 127.0.0.1:6379) unless `--local`. The
//! limit is lifted so every check is admitted: the write path, the costlier
//! one. Each task has its own subject and a one-second window, so each sorted
//! set holds about one second of that task's checks.

use std::time::{Duration, Instant};

use ratelimit::{Limiter, Policy, PolicyName};
use tokio::task::JoinSet;

struct Options {
    tasks: usize,
    run_for: Duration,
    local: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    let limiter = build_limiter(options.local)?;
    limiter.ping().await?;

    let started = Instant::now();
    let mut latencies = run(&limiter, &options).await?;
    let elapsed = started.elapsed();

    report(&options, &mut latencies, elapsed);
    Ok(())
}

fn parse_args() -> Result<Options, Box<dyn std::error::Error>> {
    let mut numbers = Vec::new();
    let mut local = false;

    for arg in std::env::args().skip(1) {
        if arg == "--local" {
            local = true;
        } else {
            numbers.push(arg.parse::<u64>()?);
        }
    }

    Ok(Options {
        tasks: usize::try_from(numbers.first().copied().unwrap_or(32))?,
        run_for: Duration::from_secs(numbers.get(1).copied().unwrap_or(5)),
        local,
    })
}

fn build_limiter(local: bool) -> Result<Limiter, ratelimit::LimiterError> {
    if local {
        return Ok(Limiter::local());
    }
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());

    Limiter::redis(&url)
}

/// Every task checks in a loop until the time is up; returns all latencies.
async fn run(
    limiter: &Limiter,
    options: &Options,
) -> Result<Vec<Duration>, ratelimit::LimiterError> {
    let policy = Policy::new(PolicyName::Requests, u32::MAX, Duration::from_secs(1))?;
    let deadline = Instant::now() + options.run_for;
    let mut tasks = JoinSet::new();

    for task in 0..options.tasks {
        let limiter = limiter.clone();
        let subject = format!("bench-{}-{task}", std::process::id());
        tasks.spawn(async move { check_until(&limiter, &subject, policy, deadline).await });
    }

    let mut latencies = Vec::new();
    for outcome in tasks.join_all().await {
        latencies.extend(outcome?);
    }
    Ok(latencies)
}

async fn check_until(
    limiter: &Limiter,
    subject: &str,
    policy: Policy,
    deadline: Instant,
) -> Result<Vec<Duration>, ratelimit::LimiterError> {
    let mut latencies = Vec::new();

    while Instant::now() < deadline {
        let started = Instant::now();
        limiter.acquire(subject, policy).await?;
        latencies.push(started.elapsed());

        // The local limiter never waits: without this, one task would hold a
        // worker thread until the deadline and the others would never start.
        tokio::task::yield_now().await;
    }
    Ok(latencies)
}

fn report(options: &Options, latencies: &mut [Duration], elapsed: Duration) {
    let backend = if options.local { "local" } else { "redis" };
    let checks = u32::try_from(latencies.len()).unwrap_or(u32::MAX);
    latencies.sort_unstable();
    let percentile = |p: usize| latencies.get(latencies.len() * p / 100).copied();

    println!(
        "{backend}: {} tasks, {:.1} s, {checks} checks, {:.0} checks/s, p50 {:?}, p99 {:?}",
        options.tasks,
        elapsed.as_secs_f64(),
        f64::from(checks) / elapsed.as_secs_f64(),
        percentile(50).unwrap_or_default(),
        percentile(99).unwrap_or_default(),
    );
}
