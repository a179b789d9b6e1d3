//! Group commit of the worker's results: attempts hand their outcome to one
//! writer task, which writes whatever has queued up meanwhile in a single
//! transaction (outcomes, retries and the jobs' "done" marks together).
//!
//! Nothing waits to fill a batch: a lone result is written at once, and
//! under load results queue up while the previous transaction commits, so
//! batches form by themselves. Each attempt still learns whether its own
//! result was written, as it would alone.
//!
//! A database outage pauses writing until the database is back. Any other
//! refusal is about what a result holds, and retrying cannot cure it: the
//! batch is written one by one, and an outcome still refused is replaced by
//! a failure worded by us, so no run stays `running` over its result.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use domain::{ErrorCode, ExecutionError};
use store::StoreError;
use store::attempts::{ClaimedRun, Outcome};
use store::queue::Delivery;
use tokio::sync::{mpsc, oneshot};

use crate::Shared;

/// The most results written in one transaction.
const MAX_BATCH: usize = 128;

/// What to write after an attempt, with its job's "done" mark.
#[derive(Debug)]
pub enum Next {
    /// The run ended: write its outcome.
    Finish(Outcome),
    /// Try again at this time: queue the next attempt's job.
    RetryAt(SystemTime),
    /// Nothing but the job's mark (the run was skipped or stopped).
    Nothing,
}

/// What became of a result handed to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The run's state changed as asked.
    Stored,
    /// Nothing changed: the run had moved on meanwhile (cancelled, or
    /// claimed by a later attempt), or there was nothing to change.
    Unchanged,
    /// The outcome could not be stored, so the run was failed instead.
    FailedInstead,
    /// Nothing could be written: the job, still held by this worker though
    /// no run holds it now, is handed back as a stray and run again.
    Lost,
}

impl Written {
    fn changed(changed: bool) -> Self {
        if changed {
            Written::Stored
        } else {
            Written::Unchanged
        }
    }
}

/// A result to write: the job it answers, the run it claimed, what next.
struct Record {
    delivery: Delivery,
    run: Option<ClaimedRun>,
    next: Next,
}

struct Write {
    record: Record,
    written: oneshot::Sender<Written>,
}

/// A handle for sending results to the writer task.
#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Write>,
}

impl Writer {
    /// Starts the writer task; it ends once every handle is dropped and
    /// what was sent is written.
    pub fn start(shared: Arc<Shared>) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
        let task = tokio::spawn(write_batches(shared, receiver));
        (Self { sender }, task)
    }

    /// Writes `next` for a delivered job (and its claimed run, if any), and
    /// marks the job done; says what became of it.
    pub async fn write(&self, delivery: Delivery, run: Option<ClaimedRun>, next: Next) -> Written {
        let (written, answer) = oneshot::channel();
        let record = Record {
            delivery,
            run,
            next,
        };
        if self.sender.send(Write { record, written }).await.is_err() {
            return Written::Lost;
        }
        answer.await.unwrap_or(Written::Lost)
    }
}

async fn write_batches(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let records: Vec<&Record> = batch.iter().map(|write| &write.record).collect();
        let written = match patiently(|| write_batch(&shared, &records)).await {
            Ok(changed) => changed.into_iter().map(Written::changed).collect(),
            // One bad result must not sink the others: write each alone.
            Err(error) if records.len() > 1 => {
                tracing::warn!(%error, "a batch of results failed; writing them one by one");
                write_one_by_one(&shared, &records).await
            }
            Err(error) => vec![unstorable(&shared, records[0], &error).await],
        };
        for (write, written) in batch.drain(..).zip(written) {
            let _ = write.written.send(written);
        }
    }
}

async fn write_one_by_one(shared: &Shared, records: &[&Record]) -> Vec<Written> {
    let mut written = Vec::with_capacity(records.len());
    for record in records {
        let one = patiently(|| write_batch(shared, std::slice::from_ref(record))).await;
        written.push(match one {
            Ok(changed) => Written::changed(changed[0]),
            Err(error) => unstorable(shared, record, &error).await,
        });
    }
    written
}

/// Deals with a result the database refused for a reason other than an
/// outage, which no retry cures. An outcome is replaced by a failure that
/// can be stored: left unwritten, its run would stay `running` until the
/// job came round again, only for the provider to be called again, most
/// likely to the same end.
async fn unstorable(shared: &Shared, record: &Record, error: &StoreError) -> Written {
    let execution_id = record.delivery.job.execution_id;
    let (Some(run), Next::Finish(outcome)) = (&record.run, &record.next) else {
        tracing::error!(
            %error,
            execution.id = %execution_id,
            "writing a result failed; its job is handed back in a minute or so"
        );
        return Written::Lost;
    };
    tracing::error!(
        %error,
        execution.id = %execution_id,
        "the run's outcome cannot be stored; failing the run instead"
    );
    let instead = Record {
        delivery: record.delivery.clone(),
        run: Some(run.clone()),
        next: Next::Finish(Outcome::Failed(stored_instead(outcome))),
    };
    let instead = [&instead];
    match patiently(|| write_batch(shared, &instead)).await {
        Ok(changed) if changed[0] => Written::FailedInstead,
        Ok(_) => Written::Unchanged,
        Err(error) => {
            tracing::error!(
                %error,
                execution.id = %execution_id,
                "failing the run failed too; its job is handed back in a minute or so"
            );
            Written::Lost
        }
    }
}

/// The failure written when `outcome` cannot be: always storable, since
/// every word of it is ours. A provider's failure keeps its code; only
/// its message is lost.
fn stored_instead(outcome: &Outcome) -> ExecutionError {
    match outcome {
        Outcome::Succeeded { .. } => ExecutionError {
            code: ErrorCode::Internal,
            message: "The model's reply could not be stored.".to_owned(),
        },
        Outcome::Failed(error) => ExecutionError {
            code: error.code,
            message: "The provider's error message could not be stored.".to_owned(),
        },
    }
}

/// Writes a batch in one transaction; says, per record, whether it changed
/// its run.
async fn write_batch(shared: &Shared, batch: &[&Record]) -> Result<Vec<bool>, StoreError> {
    let mut tx = shared.pool.begin().await?;

    let outcomes: Vec<(&ClaimedRun, &Outcome)> = batch
        .iter()
        .filter_map(|record| match (&record.run, &record.next) {
            (Some(run), Next::Finish(outcome)) => Some((run, outcome)),
            _ => None,
        })
        .collect();
    let finished = store::attempts::finish(&mut tx, &outcomes).await?;

    let mut written = Vec::with_capacity(batch.len());
    for record in batch {
        written.push(match (&record.run, &record.next) {
            (Some(run), Next::Finish(_)) => finished.contains(&run.id),
            (Some(run), Next::RetryAt(at)) => {
                store::attempts::schedule_retry(&mut tx, run, *at).await?
            }
            _ => false,
        });
    }

    let deliveries: Vec<&Delivery> = batch.iter().map(|record| &record.delivery).collect();
    store::queue::acknowledge(&mut tx, &shared.context, &deliveries).await?;
    tx.commit().await?;
    Ok(written)
}

/// Retries a database step while the database is unreachable, so an outage
/// pauses runs instead of losing their results. Other errors return at once.
pub async fn patiently<T, F, Fut>(step: F) -> Result<T, StoreError>
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
