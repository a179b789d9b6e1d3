//! Real `agent-platform worker` processes against the API in this process:
//! many runs across workers, workers killed, stopped or frozen mid-run, runs
//! that outlive the orphan timeout, retries scheduled for later, cancels
//! racing completions, and database sessions lost mid-run. Exactly once is
//! asserted on each execution's terminal write, seen by a trigger.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::process::{Process, free_port, wait_until_healthy};
use support::runs::{
    audit_terminal_writes, eventually, fake_env, job_statuses_of, jobs_by_status, terminal_writes,
};
use support::{Reply, TestApp};
use testkit::fake_provider::{Behaviour, FakeProvider};
use tokio::sync::Semaphore;

/// The orphan timeout of the harness's workers: 1 s heartbeats, 3 missed.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts a worker process with a small pool (several processes share the
/// server's connections with every other test) and `extra` settings.
fn worker(name: &str, app: &TestApp, extra: &[(&str, String)]) -> Process {
    let mut env = vec![("DATABASE_MAX_CONNECTIONS", "4".to_owned())];
    env.extend(extra.iter().cloned());
    Process::worker(name, &app.db.url, &env)
}

/// A simulated provider taking `millis` per reply.
fn latency(millis: u64) -> (&'static str, String) {
    ("SIMULATED_LATENCY_MS", millis.to_string())
}

/// Starts a worker with `extra` settings whose health server listens on a
/// port of its own; waits until it answers and returns the port with it.
async fn worker_with_health(name: &str, app: &TestApp, extra: &[(&str, String)]) -> (u16, Process) {
    let port = free_port();
    let mut env = vec![("WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}"))];
    env.extend(extra.iter().cloned());
    let process = worker(name, app, &env);
    wait_until_healthy(port).await;
    (port, process)
}

/// `GET path` on a worker's health server: the status, the content type and
/// the body.
async fn get_from_worker(port: u16, path: &str) -> (u16, String, String) {
    let reply = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("reach the worker");
    let status = reply.status().as_u16();
    let content_type = reply
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, reply.text().await.expect("a body"))
}

/// Starts a worker that takes `id` and runs it slowly, waits until its
/// attempt began, sends it SIGTERM and waits until it exits. Returns the
/// execution as it was while that worker ran it.
async fn start_then_stop(app: &TestApp, key: &str, id: &str, name: &str) -> serde_json::Value {
    let attempts_before = app.execution(key, id).await["attempts"].clone();
    let grace = ("WORKER_SHUTDOWN_GRACE_SECS", "1".to_owned());
    let mut stopping = worker(name, app, &[latency(60_000), grace]);
    let running = eventually(
        Duration::from_secs(20),
        "the worker began an attempt",
        || async {
            let execution = app.execution(key, id).await;
            (execution["status"] == "running" && execution["attempts"] != attempts_before)
                .then_some(execution)
        },
    )
    .await;
    stopping.signal("TERM");
    assert_eq!(stopping.exit_code(Duration::from_secs(10)).await, Some(0));
    running
}

/// Kills `workers`, then stops the app: a worker left running would
/// reconnect while the test's database is being dropped.
async fn stop(app: TestApp, workers: impl IntoIterator<Item = Process>) {
    for worker in workers {
        worker.kill().await;
    }
    app.stop().await;
}

/// Waits until `count` workers have registered with the queue.
async fn wait_for_workers(app: &TestApp, count: i64) {
    eventually(
        Duration::from_secs(20),
        "the workers registered",
        || async {
            let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.workers")
                .fetch_one(&app.pool)
                .await
                .expect("count workers");
            (registered >= count).then_some(())
        },
    )
    .await;
}

/// Executions counted by status.
async fn count_with_status(app: &TestApp, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM executions WHERE status = $1")
        .bind(status)
        .fetch_one(&app.pool)
        .await
        .expect("count executions")
}

/// Waits until `count` executions are `status`.
async fn wait_for_status(app: &TestApp, status: &str, count: i64, within: Duration) {
    eventually(within, &format!("{count} executions {status}"), || async {
        (count_with_status(app, status).await == count).then_some(())
    })
    .await;
}

/// Submits `count` runs of `Ada`, at most `parallel` at once; returns their
/// ids in no particular order.
async fn submit_many(app: &TestApp, key: &str, count: usize, parallel: usize) -> Vec<String> {
    let slots = Arc::new(Semaphore::new(parallel));
    let mut submissions = tokio::task::JoinSet::new();
    for number in 0..count {
        let call = app
            .call(Method::POST, "/agents/Ada/run")
            .key(key)
            .json(&json!({"task": format!("Task number {number}")}));
        let slots = Arc::clone(&slots);
        submissions.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore open");
            call.send().await
        });
    }
    let replies: Vec<Reply> = submissions.join_all().await;
    replies
        .iter()
        .map(|reply| reply.expect(202).str("id"))
        .collect()
}

/// A fresh platform with no worker, auditing terminal writes, and a tenant
/// with no run limit owning the agent `Ada`; returns the app and the key.
async fn platform() -> (TestApp, String) {
    let app = TestApp::start().await;
    audit_terminal_writes(&app.pool).await;
    let key = app.unlimited_tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    (app, key)
}

/// Asserts that each of `ids` was written terminal exactly once.
async fn assert_written_once(app: &TestApp, ids: &[impl AsRef<str>]) {
    let writes = terminal_writes(&app.pool).await;
    let twice: Vec<_> = writes.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    assert_eq!(writes.len(), ids.len(), "{writes:?}");
    for id in ids {
        let id = id.as_ref().parse().expect("a uuid");
        assert!(writes.contains_key(&id), "{id} never written terminal");
    }
}

#[tokio::test]
async fn five_hundred_runs_across_two_worker_processes_each_complete_exactly_once() {
    let (app, key) = platform().await;
    let workers = [worker("worker-1", &app, &[]), worker("worker-2", &app, &[])];
    wait_for_workers(&app, 2).await;

    let ids = submit_many(&app, &key, 500, 32).await;

    wait_for_status(&app, "succeeded", 500, Duration::from_mins(2)).await;
    let attempts: Vec<(i32, i64)> =
        sqlx::query_as("SELECT attempts, count(*) FROM executions GROUP BY attempts")
            .fetch_all(&app.pool)
            .await
            .expect("count attempts");
    assert_eq!(attempts, [(1, 500)]);
    assert_written_once(&app, &ids).await;
    let mut listed = Vec::new();
    for page in 1..=5 {
        let reply = app
            .get(
                &key,
                &format!("/executions?status=succeeded&page={page}&page_size=100"),
            )
            .await;
        listed.extend(
            reply.expect(200).body["items"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    assert_eq!(listed.len(), 500);
    for execution in &listed {
        assert_eq!(execution["attempts"], 1, "{execution}");
        // RFC 3339 in UTC with milliseconds: text order is time order.
        let times = ["created_at", "started_at", "finished_at"].map(|at| execution[at].as_str());
        assert!(times.is_sorted(), "{execution}");
        let task = execution["task"].as_str().unwrap_or_default();
        assert_eq!(
            execution["output"],
            format!("Simulated gpt-4o reply from Ada: {task}")
        );
    }
    assert_eq!(
        jobs_by_status(&app.pool).await,
        [("Done".to_owned(), 500)].into()
    );
    // apalis keeps the worker that took each job: both had a share.
    let takers: i64 = sqlx::query_scalar("SELECT count(DISTINCT lock_by) FROM apalis.jobs")
        .fetch_one(&app.pool)
        .await
        .expect("count takers");
    assert_eq!(takers, 2);
    stop(app, workers).await;
}

#[tokio::test]
async fn runs_held_by_a_killed_worker_each_reach_one_terminal_state_on_another() {
    let (app, key) = platform().await;
    let mut doomed = worker("doomed", &app, &[latency(2_000)]);
    wait_for_workers(&app, 1).await;
    let ids = submit_many(&app, &key, 8, 8).await;
    wait_for_status(&app, "running", 8, Duration::from_secs(10)).await;

    doomed.signal("KILL");
    let killed_at = Instant::now();
    let survivor = worker("survivor", &app, &[latency(2_000)]);

    // The survivor takes the jobs once the heartbeat lapses, then runs them.
    let within = ORPHAN_TIMEOUT + Duration::from_secs(2) + Duration::from_secs(6);
    wait_for_status(&app, "succeeded", 8, within).await;
    assert!(killed_at.elapsed() < within);
    assert_eq!(doomed.exit_code(Duration::from_secs(5)).await, None);
    assert_written_once(&app, &ids).await;
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM executions")
        .fetch_all(&app.pool)
        .await
        .expect("read attempts");
    // A run the killed worker finished before it died counts one attempt.
    assert!(attempts.iter().all(|n| (1..=2).contains(n)), "{attempts:?}");
    assert!(attempts.contains(&2), "{attempts:?}");
    assert_eq!(
        jobs_by_status(&app.pool).await,
        [("Done".to_owned(), 8)].into()
    );
    stop(app, [survivor]).await;
}

#[tokio::test]
async fn a_worker_sent_sigterm_mid_run_finishes_the_run_takes_no_other_and_exits_0() {
    let (app, key) = platform().await;
    let one_slot = ("WORKER_CONCURRENCY", "1".to_owned());
    let mut stopping = worker("stopping", &app, &[latency(2_000), one_slot]);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Finish what you started").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;
    // Waits for the only slot, which frees after the signal.
    let waiting = app.run(&key, "Ada", "Not for a stopping worker").await;

    stopping.signal("TERM");

    assert_eq!(stopping.exit_code(Duration::from_secs(15)).await, Some(0));
    // Nothing else runs jobs: the run ended because that worker finished it.
    let finished = app.execution(&key, &id).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["attempts"], 1);
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    let left = app.execution(&key, &waiting).await;
    assert_eq!(left["status"], "queued", "{left}");
    assert_eq!(job_statuses_of(&app.pool, &waiting).await, ["Pending"]);
    stop(app, []).await;
}

#[tokio::test]
async fn a_run_longer_than_the_orphan_timeout_is_not_run_again_while_its_worker_lives() {
    let (app, key) = platform().await;
    let slow = worker("slow", &app, &[latency(5_000)]);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Take your time").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;

    let idle = worker("idle", &app, &[]);
    wait_for_workers(&app, 2).await;

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(20))
        .await;
    assert!(
        finished["duration_ms"].as_i64().unwrap_or_default()
            >= i64::try_from(ORPHAN_TIMEOUT.as_millis()).unwrap_or(i64::MAX),
        "{finished}"
    );
    assert_eq!(finished["attempts"], 1, "{finished}");
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [slow, idle]).await;
}

#[tokio::test]
async fn a_retry_scheduled_for_later_is_not_taken_early() {
    let fake = FakeProvider::start().await;
    let task = "Slow down";
    let limited = Behaviour::Status {
        code: 429,
        retry_after: Some(3),
    };
    fake.script(task, vec![limited]);
    let (app, key) = platform().await;
    // Two idle workers polling every 200 ms: either would take a job early.
    let workers = [
        worker("eager-1", &app, &fake_env(&fake)),
        worker("eager-2", &app, &fake_env(&fake)),
    ];
    wait_for_workers(&app, 2).await;

    let id = app.run(&key, "Ada", task).await;

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(20))
        .await;
    assert_eq!(finished["attempts"], 2);
    assert_eq!(finished["provider"], "openai");
    let requests = fake.requests_for(task);
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_secs(3), "retried after {waited:?}");
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done", "Done"]);
    stop(app, workers).await;
}

#[tokio::test]
async fn a_run_accepted_while_its_agent_was_being_deleted_is_cancelled_not_run() {
    let (app, key) = platform().await;
    let id = app.run(&key, "Ada", "Outrun the deletion").await;
    // The deletion's own cancelling missed the run: as when the run commits
    // just after it. Only the agent goes.
    sqlx::query("DELETE FROM agents WHERE name = 'Ada'")
        .execute(&app.pool)
        .await
        .expect("delete the agent");

    let taker = worker("taker", &app, &[]);

    let execution = app
        .wait_status(&key, &id, "cancelled", Duration::from_secs(20))
        .await;
    assert_eq!(execution["error"]["code"], "cancelled", "{execution}");
    assert_eq!(execution["attempts"], 0, "{execution}");
    assert_written_once(&app, &[&id]).await;
    stop(app, [taker]).await;
}

#[tokio::test]
async fn a_run_cancelled_while_queued_is_skipped_by_the_worker_that_takes_its_job() {
    let (app, key) = platform().await;
    let cancelled = app.run(&key, "Ada", "Never mind").await;
    app.call(Method::POST, &format!("/executions/{cancelled}/cancel"))
        .key(&key)
        .send()
        .await
        .expect(202);
    let before = app.execution(&key, &cancelled).await;

    let late = worker("late", &app, &[]);
    let after_it = app.run(&key, "Ada", "Do this instead").await;

    app.wait_status(&key, &after_it, "succeeded", Duration::from_secs(20))
        .await;
    eventually(
        Duration::from_secs(10),
        "the cancelled run's job is done",
        || async { (job_statuses_of(&app.pool, &cancelled).await == ["Done"]).then_some(()) },
    )
    .await;
    let after = app.execution(&key, &cancelled).await;
    assert_eq!(after, before);
    assert_eq!(after["attempts"], 0);
    assert!(after["provider"].is_null(), "{after}");
    stop(app, [late]).await;
}

#[tokio::test]
async fn a_worker_whose_grace_period_runs_out_hands_its_run_back_to_be_taken_at_once() {
    let (app, key) = platform().await;
    let grace = ("WORKER_SHUTDOWN_GRACE_SECS", "1".to_owned());
    let mut stopping = worker("impatient", &app, &[latency(10_000), grace]);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Too long for the grace period").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;
    let taker = worker("taker", &app, &[]);
    wait_for_workers(&app, 2).await;

    stopping.signal("TERM");

    assert_eq!(stopping.exit_code(Duration::from_secs(10)).await, Some(0));
    // Handed back, the job is due at once; left to the orphan timeout, it
    // would wait at least two more seconds for the heartbeat to lapse.
    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_millis(1_500))
        .await;
    // The attempt cut short was handed back with the job: it does not count.
    assert_eq!(finished["attempts"], 1);
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [taker]).await;
}

#[tokio::test]
async fn a_run_whose_last_attempt_died_with_its_worker_is_failed_once() {
    let (app, key) = platform().await;
    let one_attempt = ("MAX_ATTEMPTS", "1".to_owned());
    let doomed = worker("doomed", &app, &[latency(5_000), one_attempt.clone()]);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Last chance").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;

    doomed.signal("KILL");
    let survivor = worker("survivor", &app, &[one_attempt]);

    let failed = app
        .wait_status(&key, &id, "failed", ORPHAN_TIMEOUT + Duration::from_secs(6))
        .await;
    assert_eq!(failed["error"]["code"], "internal", "{failed}");
    assert_eq!(failed["attempts"], 1);
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [doomed, survivor]).await;
}

#[tokio::test]
async fn a_new_run_is_picked_up_at_once_without_waiting_for_the_poll() {
    let (app, key) = platform().await;
    let slow_poll = ("WORKER_POLL_INTERVAL_MS", "20000".to_owned());
    let listening = worker("listening", &app, &[slow_poll]);
    wait_for_workers(&app, 1).await;
    // The first run proves the worker is past start-up and waiting.
    let first = app.run(&key, "Ada", "Warm up").await;
    app.wait_status(&key, &first, "succeeded", Duration::from_secs(30))
        .await;

    let id = app.run(&key, "Ada", "Right away").await;

    // Well inside the 20 s poll: only NOTIFY can have woken the worker.
    app.wait_status(&key, &id, "succeeded", Duration::from_secs(3))
        .await;
    stop(app, [listening]).await;
}

#[tokio::test]
async fn a_busy_worker_takes_no_job_it_has_no_slot_for() {
    let (app, key) = platform().await;
    let one_slot = ("WORKER_CONCURRENCY", "1".to_owned());
    let workers = [
        worker("single-1", &app, &[latency(3_000), one_slot.clone()]),
        worker("single-2", &app, &[latency(3_000), one_slot]),
    ];
    wait_for_workers(&app, 2).await;

    let ids = submit_many(&app, &key, 2, 2).await;

    // Both run at once, one on each worker, long before either could end.
    wait_for_status(&app, "running", 2, Duration::from_secs(2)).await;
    wait_for_status(&app, "succeeded", 2, Duration::from_secs(10)).await;
    assert_written_once(&app, &ids).await;
    let takers: i64 = sqlx::query_scalar("SELECT count(DISTINCT lock_by) FROM apalis.jobs")
        .fetch_one(&app.pool)
        .await
        .expect("count takers");
    assert_eq!(takers, 2);
    stop(app, workers).await;
}

#[tokio::test]
async fn a_worker_frozen_past_the_orphan_timeout_loses_its_run_and_its_late_result_changes_nothing()
{
    let (app, key) = platform().await;
    let (frozen_port, frozen) = worker_with_health("frozen", &app, &[latency(3_000)]).await;
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Survive a pause").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;
    let other = worker("other", &app, &[latency(3_000)]);

    // Frozen, it misses its heartbeats as if dead, though it holds the run.
    frozen.signal("STOP");
    eventually(
        Duration::from_secs(10),
        "another worker took the run",
        || async {
            let execution = app.execution(&key, &id).await;
            (execution["attempts"] == 2).then_some(())
        },
    )
    .await;
    // Thawed, its attempt ends at once (its wait is over) and must lose.
    frozen.signal("CONT");

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(10))
        .await;
    assert_eq!(finished["attempts"], 2);
    assert_written_once(&app, &[&id]).await;
    let writes: Vec<(String, i32)> = sqlx::query_as("SELECT status, attempts FROM terminal_writes")
        .fetch_all(&app.pool)
        .await
        .expect("read the audit");
    assert_eq!(writes, [("succeeded".to_owned(), 2)]);
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    // Its dropped result is counted as skipped, not as a second success.
    let skipped = r#"agent_platform_jobs_total{outcome="skipped"} 1"#;
    let metrics = eventually(Duration::from_secs(10), "the drop counted", || async {
        let (_, _, metrics) = get_from_worker(frozen_port, "/metrics").await;
        metrics
            .lines()
            .any(|line| line == skipped)
            .then_some(metrics)
    })
    .await;
    assert!(
        !metrics.contains(r#"agent_platform_jobs_total{outcome="succeeded"}"#),
        "{metrics}"
    );
    stop(app, [frozen, other]).await;
}

#[tokio::test]
async fn a_worker_that_loses_the_database_mid_run_writes_the_result_once_it_is_back() {
    let (app, key) = platform().await;
    let proxy = testkit::proxy::TcpProxy::start("127.0.0.1:5432").await;
    let through_proxy = app
        .db
        .url
        .replacen("127.0.0.1:5432", &proxy.addr().to_string(), 1);
    assert_ne!(through_proxy, app.db.url, "the test database is not local");
    let env = [("DATABASE_MAX_CONNECTIONS", "4".to_owned()), latency(1_000)];
    let cut_off = Process::worker("cut-off", &through_proxy, &env);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Hold on").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;

    proxy.cut();
    // The outage outlasts both the provider call and the orphan timeout.
    tokio::time::sleep(ORPHAN_TIMEOUT + Duration::from_secs(1)).await;
    proxy.restore();

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(15))
        .await;
    assert_eq!(finished["attempts"], 1, "{finished}");
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [cut_off]).await;
}

#[tokio::test]
async fn cancels_racing_completions_leave_each_run_in_exactly_one_terminal_state() {
    let (app, key) = platform().await;
    let workers = [
        worker("racer-1", &app, &[latency(100)]),
        worker("racer-2", &app, &[latency(100)]),
    ];
    wait_for_workers(&app, 2).await;
    let ids = submit_many(&app, &key, 200, 32).await;

    let mut cancels = tokio::task::JoinSet::new();
    for id in &ids {
        let call = app
            .call(Method::POST, &format!("/executions/{id}/cancel"))
            .key(&key);
        cancels.spawn(call.send());
    }
    let answers: Vec<u16> = cancels
        .join_all()
        .await
        .iter()
        .map(|reply| reply.status)
        .collect();

    // Each answer found the run terminal, or made it so.
    assert_eq!(count_with_status(&app, "queued").await, 0);
    assert_eq!(count_with_status(&app, "running").await, 0);
    assert_written_once(&app, &ids).await;
    let accepted = answers.iter().filter(|status| **status == 202).count();
    let refused = answers.iter().filter(|status| **status == 409).count();
    assert_eq!(accepted + refused, ids.len(), "{answers:?}");
    let cancelled = count_with_status(&app, "cancelled").await;
    let succeeded = count_with_status(&app, "succeeded").await;
    assert_eq!(usize::try_from(cancelled).unwrap_or_default(), accepted);
    assert_eq!(usize::try_from(succeeded).unwrap_or_default(), refused);
    let cancelled_with_output: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM executions WHERE status = 'cancelled' AND output IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(cancelled_with_output, 0);
    eventually(Duration::from_secs(20), "every job done", || async {
        let jobs = jobs_by_status(&app.pool).await;
        (jobs == [("Done".to_owned(), 200)].into()).then_some(())
    })
    .await;
    stop(app, workers).await;
}

#[tokio::test]
async fn a_result_whose_write_loses_its_connection_is_written_on_a_new_one() {
    let (app, key) = platform().await;
    let writer = worker("writer", &app, &[latency(1_000)]);
    wait_for_workers(&app, 1).await;
    let id = app.run(&key, "Ada", "Write me down").await;
    app.wait_status(&key, &id, "running", Duration::from_secs(10))
        .await;
    // Holding the row makes the worker's result write wait on its lock.
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM executions WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *holder)
        .await
        .expect("lock the execution");
    let blocked: i32 = eventually(Duration::from_secs(10), "the write waits", || async {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE 'UPDATE executions%'",
        )
        .fetch_optional(&app.pool)
        .await
        .expect("read activity")
    })
    .await;

    // What a failover or a restart does to every session: end it mid-statement.
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(blocked)
        .execute(&app.pool)
        .await
        .expect("terminate the writer's session");
    holder.rollback().await.expect("release the lock");

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(15))
        .await;
    assert_eq!(finished["attempts"], 1, "{finished}");
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [writer]).await;
}

#[tokio::test]
async fn a_worker_whose_listening_session_ends_still_hears_of_new_runs() {
    let (app, key) = platform().await;
    let slow_poll = ("WORKER_POLL_INTERVAL_MS", "20000".to_owned());
    let listening = worker("listening", &app, &[slow_poll]);
    wait_for_workers(&app, 1).await;
    let first = app.run(&key, "Ada", "Warm up").await;
    app.wait_status(&key, &first, "succeeded", Duration::from_secs(30))
        .await;

    let listening_sessions = || async {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&app.pool)
        .await
        .expect("read activity");
        pids
    };
    let before = listening_sessions().await;
    assert_eq!(before.len(), 1, "{before:?}");

    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .execute(&app.pool)
        .await
        .expect("end the listening session");
    eventually(
        Duration::from_secs(5),
        "the worker listens again",
        || async {
            let now = listening_sessions().await;
            (now.len() == 1 && now != before).then_some(())
        },
    )
    .await;
    let id = app.run(&key, "Ada", "After the reconnect").await;

    // Well inside the 20 s poll: only a renewed LISTEN can have woken it.
    app.wait_status(&key, &id, "succeeded", Duration::from_secs(5))
        .await;
    stop(app, [listening]).await;
}

#[tokio::test]
async fn a_job_locked_to_a_live_worker_that_never_heard_of_it_is_handed_back_and_run() {
    let (app, key) = platform().await;
    // Worker A's one slot is taken by a slow run, so it fetches nothing more.
    let busy = worker(
        "a",
        &app,
        &[("WORKER_CONCURRENCY", "1".to_owned()), latency(30_000)],
    );
    wait_for_workers(&app, 1).await;
    let slow = app.run(&key, "Ada", "slow").await;
    app.wait_status(&key, &slow, "running", Duration::from_secs(10))
        .await;
    let id = app.run(&key, "Ada", "lost in the mail").await;

    // As if A's fetch committed but its reply never reached A: the job is
    // locked to a live worker that does not know of it.
    let locked = sqlx::query(
        "UPDATE apalis.jobs SET status = 'Queued', lock_at = now() - interval '5 minutes', \
         lock_by = (SELECT id FROM apalis.workers LIMIT 1) WHERE status = 'Pending'",
    )
    .execute(&app.pool)
    .await
    .expect("lock the job");
    assert_eq!(locked.rows_affected(), 1, "the job was still pending");
    let other = worker("b", &app, &[]);
    let execution = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(10))
        .await;

    assert_eq!(execution["attempts"], 1);
    stop(app, [busy, other]).await;
}

#[tokio::test]
async fn a_run_handed_back_by_three_stopping_workers_in_turn_is_queued_again_and_succeeds_on_its_first_attempt()
 {
    let (app, key) = platform().await;
    let id = app.run(&key, "Ada", "Outlast three restarts").await;

    let first = start_then_stop(&app, &key, &id, "rolled-1").await;
    let mut handed_back = Vec::new();
    for name in ["rolled-2", "rolled-3"] {
        handed_back.push(app.execution(&key, &id).await);
        start_then_stop(&app, &key, &id, name).await;
    }
    handed_back.push(app.execution(&key, &id).await);
    let last = worker("last", &app, &[]);

    let finished = app
        .wait_status(&key, &id, "succeeded", Duration::from_secs(20))
        .await;
    assert_eq!(finished["attempts"], 1, "{finished}");
    // Only the attempt that counted started the run.
    assert!(
        finished["started_at"].as_str() > first["started_at"].as_str(),
        "{finished}"
    );
    for execution in &handed_back {
        assert_eq!(execution["status"], "queued", "{execution}");
        assert_eq!(execution["attempts"], 0, "{execution}");
        assert_eq!(
            execution["started_at"],
            serde_json::Value::Null,
            "{execution}"
        );
        assert_eq!(
            execution["provider"],
            serde_json::Value::Null,
            "{execution}"
        );
    }
    assert_written_once(&app, &[&id]).await;
    assert_eq!(job_statuses_of(&app.pool, &id).await, ["Done"]);
    stop(app, [last]).await;
}

#[tokio::test]
async fn the_workers_readyz_answers_json_and_503_while_postgres_is_unreachable() {
    let (app, _) = platform().await;
    let proxy = testkit::proxy::TcpProxy::start("127.0.0.1:5432").await;
    let through_proxy = app
        .db
        .url
        .replacen("127.0.0.1:5432", &proxy.addr().to_string(), 1);
    let port = free_port();
    let env = [
        ("DATABASE_MAX_CONNECTIONS", "4".to_owned()),
        ("WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
    ];
    let cut_off = Process::worker("cut-off", &through_proxy, &env);
    wait_until_healthy(port).await;

    let ready = get_from_worker(port, "/readyz").await;
    proxy.cut();
    let unready = get_from_worker(port, "/readyz").await;

    assert_eq!(ready.0, 200, "{ready:?}");
    assert_eq!(ready.1, "application/json", "{ready:?}");
    let body: serde_json::Value = serde_json::from_str(&ready.2).expect("JSON");
    assert_eq!(body, json!({"status": "ok", "postgres": "ok"}));
    assert_eq!(unready.0, 503, "{unready:?}");
    let body: serde_json::Value = serde_json::from_str(&unready.2).expect("JSON");
    assert_eq!(
        body,
        json!({"status": "unavailable", "postgres": "unavailable"})
    );
    stop(app, [cut_off]).await;
}

#[tokio::test]
async fn an_unknown_path_on_the_worker_is_a_404_problem_in_json() {
    let (app, _) = platform().await;
    let (port, probed) = worker_with_health("probed", &app, &[]).await;

    let (status, content_type, body) = get_from_worker(port, "/nothing/here").await;

    assert_eq!(status, 404);
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["status"], 404, "{body}");
    assert_eq!(body["title"], "Not Found", "{body}");
    assert_eq!(body["instance"], "/nothing/here", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("/readyz")),
        "{body}"
    );
    stop(app, [probed]).await;
}

#[tokio::test]
async fn the_workers_counters_of_rare_events_are_at_zero_from_the_start() {
    let (app, _) = platform().await;
    let (port, fresh) = worker_with_health("fresh", &app, &[]).await;

    let (status, _, metrics) = get_from_worker(port, "/metrics").await;

    assert_eq!(status, 200);
    for counter in [
        "agent_platform_jobs_recovered_total",
        "agent_platform_runs_overdue_total",
    ] {
        let line = format!("{counter} 0");
        assert!(
            metrics.lines().any(|sample| sample == line),
            "no {line:?} in:\n{metrics}"
        );
    }
    stop(app, [fresh]).await;
}
