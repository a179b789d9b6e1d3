//! Group commit of accepted runs. Each run is recorded and its job queued in
//! one transaction, and every such commit sends the queue's NOTIFY, which
//! PostgreSQL serializes across the whole server: one commit per run would
//! cap how many runs a second the API can accept. So runs without an
//! `Idempotency-Key` go to one task that records whatever has queued up
//! meanwhile in a single transaction.
//!
//! Nothing waits to fill a batch: a lone run commits at once, and under
//! load runs queue up while the previous transaction commits. Each request
//! still learns its own outcome. A run with an `Idempotency-Key` takes its
//! own transaction, which settles the key among concurrent twins.
//!
//! A batch the database refuses for what a run holds is recorded again run
//! by run, so one bad run sinks no other. A batch lost to an outage is not:
//! its commit may have gone through unseen, and recording it again could
//! run every run in it twice. Its requests answer 503, as a lone one would.

use futures::{StreamExt, stream};
use store::executions::{NewExecution, Submission};
use store::{PgPool, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most runs recorded in one transaction.
const MAX_BATCH: usize = 128;

/// Runs recorded at once, each alone, when their batch was refused: few, so
/// they leave connections to the requests still arriving.
const FALLBACK_CONCURRENCY: usize = 4;

/// A run waiting to be recorded, and where its outcome goes.
struct Pending {
    new: NewExecution,
    answer: oneshot::Sender<Result<Submission, StoreError>>,
}

/// A handle for recording accepted runs.
#[derive(Clone)]
pub struct Submissions {
    pool: PgPool,
    sender: mpsc::Sender<Pending>,
}

impl Submissions {
    /// Starts the recording task; it ends once every handle is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(record_batches(pool.clone(), receiver));
        Self { pool, sender }
    }

    /// Records `new` and queues its job: at once with an `Idempotency-Key`,
    /// else with whatever other runs are being submitted meanwhile.
    pub async fn submit(&self, new: NewExecution) -> Result<Submission, StoreError> {
        if new.idempotency.is_some() {
            return store::executions::submit(&self.pool, new).await;
        }
        let (answer, outcome) = oneshot::channel();
        let stopped = || StoreError::unavailable("the recorder of runs has stopped");
        self.sender
            .send(Pending { new, answer })
            .await
            .map_err(|_| stopped())?;
        outcome.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn record_batches(pool: PgPool, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A request given up (its client left, or it timed out) was told
        // nothing: record no run for it, so a retry cannot make two.
        let (news, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .filter(|pending| !pending.answer.is_closed())
            .map(|pending| (pending.new, pending.answer))
            .unzip();
        if news.is_empty() {
            continue;
        }
        for (answer, outcome) in answers.into_iter().zip(record(&pool, news).await) {
            // Gone since the batch began: the run stands, unseen.
            let _ = answer.send(outcome);
        }
    }
}

/// Records `news` in one transaction, else as the module doc says; one
/// outcome for each, in order.
async fn record(pool: &PgPool, news: Vec<NewExecution>) -> Vec<Result<Submission, StoreError>> {
    let count = news.len();
    match store::executions::submit_all(pool, &news).await {
        Ok(executions) => executions
            .into_iter()
            .map(|execution| Ok(Submission::Created(execution)))
            .collect(),
        Err(error @ StoreError::Unavailable(_)) => {
            tracing::warn!(%error, runs = count, "a batch of runs could not be recorded");
            (0..count)
                .map(|_| Err(StoreError::unavailable("a shared commit of runs failed")))
                .collect()
        }
        Err(error) if count > 1 => {
            tracing::warn!(%error, runs = count, "a batch of runs was refused; recording them one by one");
            let alone = news
                .into_iter()
                .map(|new| store::executions::submit(pool, new));
            stream::iter(alone)
                .buffered(FALLBACK_CONCURRENCY)
                .collect()
                .await
        }
        Err(error) => vec![Err(error)],
    }
}
