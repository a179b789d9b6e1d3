//! One claimed run: call the model under the run timeout (or until the run
//! is stopped), decide what comes next, and hand that to the writer.
//!
//! Idempotent by construction: the claim and every write are guarded by the
//! execution's status and attempt number, so a job delivered twice (or one
//! that outlived its worker's heartbeat) changes nothing the second time.
//! The outcome and the job's "done" mark commit in one transaction.

use std::time::{Duration, Instant, SystemTime};

use domain::{ErrorCode, ExecutionError};
use models::{ModelCall, ProviderError};
use store::attempts::{ClaimedRun, Outcome};
use store::queue::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::writer::{Next, Writer, Written};
use crate::{Shared, retry};

/// What an attempt came to.
enum Attempt {
    Replied(models::Reply),
    Failed(ProviderError),
    TimedOut,
    Stopped,
}

/// Runs one attempt of a claimed run and writes what it came to.
pub async fn execute(
    shared: &Shared,
    writer: &Writer,
    delivery: Delivery,
    run: ClaimedRun,
    stop: CancellationToken,
) {
    let provider = shared.adapters.for_model(run.model).provider();
    let span = tracing::info_span!(
        "job",
        execution.id = %run.id,
        task.id = %delivery.task_id,
        attempt = run.attempt,
        model = %run.model,
        provider = %provider,
        request_id = run.request_id.as_deref().unwrap_or_default(),
    );
    async {
        metrics::counter!("agent_platform_attempts_total", "provider" => provider.as_str())
            .increment(1);
        tracing::info!("attempt started");

        let started = Instant::now();
        let attempt = attempt(shared, &run, stop).await;
        let elapsed = started.elapsed();
        shared.inflight.attempt_over(&delivery);

        let (label, next) = decide(shared, &run, attempt);
        let writes_state = !matches!(next, Next::Nothing);
        let written = writer.write(delivery, Some(run), next).await;
        // The run moved on meanwhile (cancelled, or claimed again): what
        // this attempt came to counts as nothing, or runs would count twice.
        let dropped = writes_state && written == Written::Unchanged;
        let label = match written {
            _ if dropped => "skipped",
            Written::Stored | Written::Unchanged => label,
            Written::FailedInstead => "failed",
            // Logged by the writer; the job runs again and is counted then.
            Written::Lost => return,
        };
        metrics::histogram!("agent_platform_attempt_duration_seconds", "outcome" => label)
            .record(elapsed.as_secs_f64());
        metrics::counter!("agent_platform_jobs_total", "outcome" => label).increment(1);
        if dropped {
            tracing::info!(
                "the run moved on meanwhile (cancelled, or claimed again): result dropped"
            );
        } else {
            let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(outcome = label, elapsed_ms, "attempt finished");
        }
    }
    .instrument(span)
    .await;
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

/// What to write after an attempt, and its label for metrics and logs.
fn decide(shared: &Shared, run: &ClaimedRun, attempt: Attempt) -> (&'static str, Next) {
    match attempt {
        Attempt::Replied(reply) => {
            let outcome = Outcome::Succeeded {
                output: reply.output,
                tool_calls: reply.tool_calls,
                usage: reply.usage,
            };
            ("succeeded", Next::Finish(outcome))
        }
        // Whoever stopped it (the client's cancel, the sweeper) wrote its state.
        Attempt::Stopped => ("cancelled", Next::Nothing),
        Attempt::TimedOut => {
            metrics::counter!("agent_platform_provider_errors_total", "code" => ErrorCode::Timeout.as_str())
                .increment(1);
            let seconds = shared.config.run_timeout.as_secs();
            let error = ExecutionError {
                code: ErrorCode::Timeout,
                message: format!("The model did not answer within the run timeout ({seconds} s)."),
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
    }
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
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(error = %error.message, delay_ms, "transient failure; retrying");
    ("retried", Next::RetryAt(SystemTime::now() + delay))
}
