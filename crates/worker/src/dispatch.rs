//! The dispatcher: waits for a free slot, takes up to that many due jobs,
//! and starts a run for each.
//!
//! It sleeps until NOTIFY says a job was inserted or the poll interval
//! passes, whichever is first. On shutdown it stops taking jobs, gives the
//! runs in flight the grace period to finish, then aborts the rest and hands
//! their jobs back to the queue so another worker takes them at once.

use std::sync::Arc;
use std::time::Duration;

use domain::RunJob;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Shared, execute};

/// The channel apalis's insert trigger notifies.
const INSERT_CHANNEL: &str = "apalis::job::insert";

/// The most jobs taken in one fetch.
const MAX_BATCH: usize = 32;

/// How long to back off after the database failed a fetch.
const FETCH_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Dispatches jobs until `shutdown`, then winds down.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listening = listen_for_inserts(shared.clone(), wake.clone(), shutdown.clone());
    let listener_task = tokio::spawn(listening);
    // Listen before the first fetch: a job inserted between that fetch and
    // LISTEN would otherwise wait for the poll interval.
    wake.notified().await;

    let slots = Arc::new(Semaphore::new(shared.config.concurrency));
    let mut runs = JoinSet::new();
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let taken = take_jobs(&shared, &slots, first, &mut runs).await;
        while runs.try_join_next().is_some() {}
        if taken == 0 {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(shared.config.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
    }

    listener_task.abort();
    wind_down(&shared, runs).await;
}

/// Fetches up to the number of free slots and starts a run for each job.
/// Returns how many were taken.
async fn take_jobs(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    first: OwnedSemaphorePermit,
    runs: &mut JoinSet<()>,
) -> usize {
    let mut permits = vec![first];
    let wanted = (1 + slots.available_permits()).min(MAX_BATCH);
    while permits.len() < wanted {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }

    let mut config = apalis_postgres::Config::default()
        .queue(RunJob::QUEUE)
        .heartbeat_interval(shared.config.heartbeat)
        .missed_heartbeats(shared.config.missed_heartbeats as usize);
    config.batch_size = permits.len();
    let deliveries = match store::queue::fetch(&shared.pool, &config, &shared.context).await {
        Ok(deliveries) => deliveries,
        Err(error) => {
            tracing::warn!(%error, "fetching jobs failed; retrying shortly");
            tokio::time::sleep(FETCH_ERROR_PAUSE).await;
            return 0;
        }
    };

    let taken = deliveries.len();
    for (delivery, permit) in deliveries.into_iter().zip(permits) {
        let shared = shared.clone();
        runs.spawn(async move {
            execute::execute(&shared, delivery).await;
            drop(permit);
        });
    }
    taken
}

/// Forwards apalis's insert notifications for our queue to `wake`. The
/// listener reconnects by itself; notifications sent while it is away are
/// lost, which the interval poll covers.
async fn listen_for_inserts(shared: Arc<Shared>, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut listener = loop {
        match connect_listener(&shared).await {
            Ok(listener) => break listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for new jobs yet; polling meanwhile");
                wake.notify_one();
                tokio::select! {
                    () = tokio::time::sleep(shared.config.poll_interval) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    };
    wake.notify_one();
    loop {
        tokio::select! {
            notification = listener.recv() => match notification {
                Ok(notification) if notification.payload().contains(RunJob::QUEUE) => wake.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "lost the NOTIFY connection; reconnecting");
                    tokio::time::sleep(FETCH_ERROR_PAUSE).await;
                }
            },
            () = shutdown.cancelled() => return,
        }
    }
}

async fn connect_listener(shared: &Shared) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen(INSERT_CHANNEL).await?;
    Ok(listener)
}

/// Gives in-flight runs the grace period, then aborts what is left and hands
/// those jobs back to the queue.
async fn wind_down(shared: &Shared, mut runs: JoinSet<()>) {
    let in_flight = runs.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            grace_secs = shared.config.shutdown_grace.as_secs(),
            "finishing runs in flight"
        );
    }
    let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
        while runs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return;
    }

    runs.abort_all();
    while runs.join_next().await.is_some() {}
    let unfinished = shared.inflight.drain();
    match store::queue::release(&shared.pool, &shared.context, &unfinished).await {
        Ok(released) => {
            tracing::warn!(
                released,
                "grace period over: handed unfinished runs back to the queue"
            );
        }
        // Not lost: they are recovered once this worker's heartbeat lapses.
        Err(error) => tracing::error!(%error, "could not hand unfinished runs back"),
    }
}
