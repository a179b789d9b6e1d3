//! One job: claim its execution, call the model, write the outcome.
//!
//! Idempotent by construction: the claim and every write are guarded by the
//! execution's status and attempt number, so a job delivered twice (or one
//! that outlived its worker's heartbeat) changes nothing the second time.
//! The outcome and the job's "done" mark commit in one transaction.

use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use domain::{ErrorCode, ExecutionError, Model};
use models::{ModelCall, ProviderError};
use store::StoreError;
use store::executions::{Claim, ClaimedRun, Outcome};
use store::queue::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::{Shared, retry};

/// What an attempt came to.
enum Attempt {
    Replied(models::Reply),
    Failed(ProviderError),
    TimedOut,
    Stopped,
}

/// Runs one delivered job to its end. Never fails: database outages are
/// waited out, and anything else is recorded on the execution.
pub async fn execute(shared: &Shared, delivery: Delivery) {
    let span = tracing::info_span!(
        "job",
        execution.id = %delivery.job.execution_id,
        task.id = %delivery.task_id,
        attempt = Empty,
        model = Empty,
        provider = Empty,
        request_id = Empty,
    );
    async {
        let stop = shared.inflight.start(&delivery);
        if let Err(error) = process(shared, &delivery, stop).await {
            tracing::error!(%error, "job failed; the execution stays as it was for the next delivery");
        }
        shared.inflight.finish(&delivery);
    }
    .instrument(span)
    .await;
}

async fn process(
    shared: &Shared,
    delivery: &Delivery,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let providers: Vec<_> = Model::ALL
        .into_iter()
        .map(|model| (model, shared.adapters.for_model(model).provider()))
        .collect();
    let claim = patiently(|| {
        store::executions::claim(
            &shared.pool,
            delivery.job.execution_id,
            shared.config.max_attempts,
            &providers,
        )
    })
    .await?;

    let run = match claim {
        Claim::Run(run) => run,
        Claim::Skip => {
            metrics::counter!("agent_platform_jobs_total", "outcome" => "skipped").increment(1);
            return acknowledge_only(shared, delivery).await;
        }
        Claim::Exhausted => {
            tracing::warn!("the last attempt's worker stopped; the run is failed");
            metrics::counter!("agent_platform_jobs_total", "outcome" => "failed").increment(1);
            return acknowledge_only(shared, delivery).await;
        }
    };
    shared.inflight.claimed(delivery);
    record_run(&run, shared);

    let started = Instant::now();
    let attempt = attempt(shared, &run, stop).await;
    let elapsed = started.elapsed();
    conclude(shared, delivery, &run, attempt, elapsed).await
}

fn record_run(run: &ClaimedRun, shared: &Shared) {
    let span = tracing::Span::current();
    let provider = shared.adapters.for_model(run.model).provider();
    span.record("attempt", run.attempt);
    span.record("model", tracing::field::display(run.model));
    span.record("provider", tracing::field::display(provider));
    if let Some(request_id) = &run.request_id {
        span.record("request_id", tracing::field::display(request_id));
    }
    metrics::counter!("agent_platform_attempts_total", "provider" => provider.as_str())
        .increment(1);
    tracing::info!("attempt started");
}

/// Calls the model under the run timeout, unless the run is stopped first.
async fn attempt(shared: &Shared, run: &ClaimedRun, stop: CancellationToken) -> Attempt {
    let adapter = shared.adapters.for_model(run.model);
    let call = ModelCall {
        model: run.model,
        agent_name: &run.agent_name,
        prompt: &run.prompt,
    };
    tokio::select! {
        reply = tokio::time::timeout(shared.config.run_timeout, adapter.complete(call)) => match reply {
            Ok(Ok(reply)) => Attempt::Replied(reply),
            Ok(Err(error)) => Attempt::Failed(error),
            Err(_) => Attempt::TimedOut,
        },
        // Dropping the provider call aborts its HTTP request.
        () = stop.cancelled() => Attempt::Stopped,
    }
}

/// Writes what the attempt came to, and marks the job done, in one
/// transaction.
async fn conclude(
    shared: &Shared,
    delivery: &Delivery,
    run: &ClaimedRun,
    attempt: Attempt,
    elapsed: Duration,
) -> Result<(), StoreError> {
    let (label, next) = match attempt {
        Attempt::Replied(reply) => (
            "succeeded",
            Next::Finish(Outcome::Succeeded {
                output: reply.output,
                tool_calls: reply.tool_calls,
                usage: reply.usage,
            }),
        ),
        Attempt::Stopped => ("cancelled", Next::Nothing),
        Attempt::TimedOut => {
            metrics::counter!("agent_platform_provider_errors_total", "code" => ErrorCode::Timeout.as_str()).increment(1);
            let timeout = shared.config.run_timeout.as_secs();
            let error = ExecutionError {
                code: ErrorCode::Timeout,
                message: format!("The model did not answer within {timeout} seconds."),
            };
            retry_or_fail(shared, run, error, None)
        }
        Attempt::Failed(error) => {
            metrics::counter!("agent_platform_provider_errors_total", "code" => error.code().as_str()).increment(1);
            let failure = ExecutionError {
                code: error.code(),
                message: error.to_string(),
            };
            if error.is_transient() {
                retry_or_fail(shared, run, failure, error.retry_after())
            } else {
                ("failed", Next::Finish(Outcome::Failed(failure)))
            }
        }
    };
    metrics::histogram!("agent_platform_attempt_duration_seconds", "outcome" => label)
        .record(elapsed.as_secs_f64());
    metrics::counter!("agent_platform_jobs_total", "outcome" => label).increment(1);

    let written = patiently(|| write(shared, delivery, run, &next)).await?;
    if !written && !matches!(next, Next::Nothing) {
        tracing::info!("the run moved on meanwhile (cancelled, or claimed again): result dropped");
    } else {
        tracing::info!(
            outcome = label,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "attempt finished"
        );
    }
    Ok(())
}

/// What to write after an attempt.
enum Next {
    Finish(Outcome),
    RetryAt(SystemTime),
    Nothing,
}

fn retry_or_fail(
    shared: &Shared,
    run: &ClaimedRun,
    error: ExecutionError,
    retry_after: Option<Duration>,
) -> (&'static str, Next) {
    if run.attempt >= shared.config.max_attempts {
        return ("failed", Next::Finish(Outcome::Failed(error)));
    }
    let delay = retry::delay_after(run.attempt, shared.config.retry_base_delay, retry_after);
    tracing::info!(error = %error.message, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "transient failure; retrying");
    ("retried", Next::RetryAt(SystemTime::now() + delay))
}

async fn write(
    shared: &Shared,
    delivery: &Delivery,
    run: &ClaimedRun,
    next: &Next,
) -> Result<bool, StoreError> {
    let mut tx = shared.pool.begin().await?;
    let written = match next {
        Next::Finish(outcome) => store::executions::finish(&mut tx, run, outcome.clone()).await?,
        Next::RetryAt(at) => store::executions::schedule_retry(&mut tx, run, *at).await?,
        Next::Nothing => false,
    };
    store::queue::acknowledge(&mut tx, &shared.context, delivery).await?;
    tx.commit().await?;
    Ok(written)
}

async fn acknowledge_only(shared: &Shared, delivery: &Delivery) -> Result<(), StoreError> {
    patiently(|| async {
        let mut conn = shared.pool.acquire().await?;
        store::queue::acknowledge(&mut conn, &shared.context, delivery).await
    })
    .await
}

/// Retries a database step while the database is unreachable, so an outage
/// pauses runs instead of losing their results. Other errors return at once.
async fn patiently<T, F, Fut>(step: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    step.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times(),
    )
    .when(|error| matches!(error, StoreError::Unavailable(_)))
    .notify(|error, delay| tracing::warn!(%error, ?delay, "database unavailable; waiting"))
    .await
}
