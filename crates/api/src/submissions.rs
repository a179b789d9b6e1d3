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

use futures::future::join_all;
use store::executions::{NewExecution, Submission};
use store::{PgPool, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most runs recorded in one transaction.
const MAX_BATCH: usize = 128;

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
    /// Starts the recording task; it ends once every handle is dropped and
    /// what was sent is recorded.
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
        self.sender
            .send(Pending { new, answer })
            .await
            .map_err(|_| StoreError::closed())?;
        outcome.await.unwrap_or_else(|_| Err(StoreError::closed()))
    }
}

async fn record_batches(pool: PgPool, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (news, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|pending| (pending.new, pending.answer))
            .unzip();
        let outcomes = match store::executions::submit_all(&pool, &news).await {
            Ok(executions) => executions
                .into_iter()
                .map(|execution| Ok(Submission::Created(execution)))
                .collect(),
            // Each on its own, side by side: one run the database refuses
            // must not sink the others, and in an outage all fail at once.
            Err(_) if news.len() > 1 => {
                let alone = news
                    .into_iter()
                    .map(|new| store::executions::submit(&pool, new));
                join_all(alone).await
            }
            Err(error) => vec![Err(error)],
        };
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // The request may be gone (its client left); its run stands.
            let _ = answer.send(outcome);
        }
    }
}
