//! Group commit of the worker's results: attempts hand their outcome to one
//! writer task, which writes whatever has queued up meanwhile in a single
//! transaction (outcomes, retries and the jobs' "done" marks together).
//!
//! Nothing waits to fill a batch: a lone result is written at once, and
//! under load results queue up while the previous transaction commits, so
//! batches form by themselves. Each attempt still learns whether its own
//! result was written, as it would alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
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

struct Write {
    delivery: Delivery,
    run: Option<ClaimedRun>,
    next: Next,
    written: oneshot::Sender<bool>,
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
    /// marks the job done. `true` if the run's state changed; `false` if it
    /// had moved on meanwhile, or for [`Next::Nothing`].
    pub async fn write(&self, delivery: Delivery, run: Option<ClaimedRun>, next: Next) -> bool {
        let (written, answer) = oneshot::channel();
        let write = Write {
            delivery,
            run,
            next,
            written,
        };
        if self.sender.send(write).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

async fn write_batches(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let written = match patiently(|| write_batch(&shared, &batch)).await {
            Ok(written) => written,
            // One bad result must not sink the others: write each alone.
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, "a batch of results failed; writing them one by one");
                write_one_by_one(&shared, &batch).await
            }
            Err(error) => {
                tracing::error!(%error, "writing a result failed; its job is recovered after this worker stops");
                vec![false]
            }
        };
        for (write, written) in batch.drain(..).zip(written) {
            let _ = write.written.send(written);
        }
    }
}

async fn write_one_by_one(shared: &Shared, batch: &[Write]) -> Vec<bool> {
    let mut written = Vec::with_capacity(batch.len());
    for write in batch {
        let one = patiently(|| write_batch(shared, std::slice::from_ref(write))).await;
        if let Err(error) = &one {
            tracing::error!(%error, execution.id = %write.delivery.job.execution_id, "writing a result failed");
        }
        written.push(one.is_ok_and(|written| written[0]));
    }
    written
}

/// Writes a batch in one transaction; says, per write, whether it changed
/// its run.
async fn write_batch(shared: &Shared, batch: &[Write]) -> Result<Vec<bool>, StoreError> {
    let mut tx = shared.pool.begin().await?;

    let outcomes: Vec<(&ClaimedRun, &Outcome)> = batch
        .iter()
        .filter_map(|write| match (&write.run, &write.next) {
            (Some(run), Next::Finish(outcome)) => Some((run, outcome)),
            _ => None,
        })
        .collect();
    let finished = store::attempts::finish(&mut tx, &outcomes).await?;

    let mut written = Vec::with_capacity(batch.len());
    for write in batch {
        written.push(match (&write.run, &write.next) {
            (Some(run), Next::Finish(_)) => finished.contains(&run.id),
            (Some(run), Next::RetryAt(at)) => {
                store::attempts::schedule_retry(&mut tx, run, *at).await?
            }
            _ => false,
        });
    }

    let deliveries: Vec<&Delivery> = batch.iter().map(|write| &write.delivery).collect();
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
