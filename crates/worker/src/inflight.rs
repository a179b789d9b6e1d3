//! The runs this worker holds, so it can stop one the client cancelled and,
//! on a hard stop, hand the unfinished ones back to the queue with the
//! attempts they began.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use store::queue::Delivery;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Shared;

/// How often running executions are checked for cancellation: a cancelled
/// run stops within this, well inside the contract's one second.
const CANCEL_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The jobs this worker holds, by apalis task id.
#[derive(Default)]
pub struct InFlight {
    runs: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    delivery: Delivery,
    /// The execution and the attempt begun for it, while that attempt is in
    /// progress: only then can a status other than `running` mean it was
    /// cancelled, and only then is there an attempt to give back.
    attempt: Option<(Uuid, u32)>,
    stop: CancellationToken,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere cannot leave this map half-updated: recover it.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a job this worker holds, and the execution and attempt it
    /// began for it, if any; the token is cancelled when that run should stop.
    pub fn hold(&self, delivery: &Delivery, attempt: Option<(Uuid, u32)>) -> CancellationToken {
        let stop = CancellationToken::new();
        let entry = Entry {
            delivery: delivery.clone(),
            attempt,
            stop: stop.clone(),
        };
        self.lock().insert(delivery.task_id.to_string(), entry);
        stop
    }

    /// Notes that a job's attempt is over and its result on its way to the
    /// writer: from now on a hard stop leaves that attempt counted, since
    /// its result may well be written.
    pub fn attempt_over(&self, delivery: &Delivery) {
        if let Some(entry) = self.lock().get_mut(&delivery.task_id.to_string()) {
            entry.attempt = None;
        }
    }

    /// Forgets a job that is finished with.
    pub fn release(&self, delivery: &Delivery) {
        self.lock().remove(&delivery.task_id.to_string());
    }

    /// Takes every job still held, for handing back on a hard stop, with
    /// the attempts still in progress among them.
    pub fn drain(&self) -> (Vec<Delivery>, Vec<(Uuid, u32)>) {
        let entries: Vec<Entry> = self.lock().drain().map(|(_, entry)| entry).collect();
        let attempts = entries.iter().filter_map(|entry| entry.attempt).collect();
        let jobs = entries.into_iter().map(|entry| entry.delivery).collect();
        (jobs, attempts)
    }

    fn running(&self) -> Vec<Uuid> {
        self.lock()
            .values()
            .filter_map(|entry| entry.attempt.map(|(id, _)| id))
            .collect()
    }

    fn stop(&self, executions: &[Uuid]) {
        for entry in self.lock().values() {
            if entry
                .attempt
                .is_some_and(|(id, _)| executions.contains(&id))
            {
                entry.stop.cancel();
            }
        }
    }

    /// The ids of the jobs held.
    pub fn task_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// How many jobs are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Stops runs whose execution is no longer `running` (cancelled by the
/// client, or failed by the sweeper), so their provider calls are aborted.
pub async fn watch_cancellations(shared: Arc<Shared>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(CANCEL_CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        let running = shared.inflight.running();
        if running.is_empty() {
            continue;
        }
        match store::attempts::not_running(&shared.pool, &running).await {
            Ok(ended) if !ended.is_empty() => shared.inflight.stop(&ended),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cancellation check failed; trying again"),
        }
    }
}
