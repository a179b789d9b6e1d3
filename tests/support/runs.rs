//! What the run, provider and worker suites share: submitting runs and
//! polling executions, adapters pointed at the fake provider, and an audit of
//! the database that shows each execution was written terminal exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use store::PgPool;
use testkit::fake_provider::FakeProvider;
use uuid::Uuid;

use super::{Reply, TestApp};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(25);

/// The states an execution never leaves.
pub const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// The key the fake provider is called with.
pub const FAKE_KEY: &str = "test-key";

impl TestApp {
    /// Creates a tenant whose run and request limits no test reaches, and
    /// returns a key for it: suites that submit many runs measure the
    /// platform, not the limiter.
    pub async fn unlimited_tenant(&self, name: &str) -> String {
        let lifted = domain::Limit {
            limit: 1_000_000,
            window_secs: 1,
        };
        let limits = domain::TenantLimits {
            runs: lifted,
            requests: lifted,
        };
        self.tenant_with_limits(name, limits).await
    }

    /// `POST /agents/{agent}/run` with `body`, whatever the answer.
    pub async fn submit(&self, key: &str, agent: &str, body: &Value) -> Reply {
        self.post(key, &format!("/agents/{agent}/run"), body).await
    }

    /// Runs `agent` on `task` with the default model; returns the
    /// execution's id once accepted.
    pub async fn run(&self, key: &str, agent: &str, task: &str) -> String {
        self.submit(key, agent, &json!({"task": task}))
            .await
            .expect(202)
            .str("id")
    }

    /// The execution as the API shows it now.
    pub async fn execution(&self, key: &str, id: &str) -> Value {
        let reply = self.get(key, &format!("/executions/{id}")).await;
        reply.expect(200);
        reply.body
    }

    /// What the execution says was sent to the model (`?include=request`).
    pub async fn sent_request(&self, key: &str, id: &str) -> Value {
        let reply = self
            .get(key, &format!("/executions/{id}?include=request"))
            .await;
        reply.expect(200);
        reply.body["request"].clone()
    }

    /// Polls an execution until it is `status`, failing at once if it ends
    /// in another state, or after `within`.
    pub async fn wait_status(&self, key: &str, id: &str, status: &str, within: Duration) -> Value {
        eventually(within, &format!("execution {id} {status}"), || async move {
            let execution = self.execution(key, id).await;
            let now = execution["status"].as_str().unwrap_or_default();
            assert!(
                now == status || !TERMINAL.contains(&now),
                "execution {id} ended {now}, not {status}: {execution}"
            );
            (now == status).then_some(execution)
        })
        .await
    }
}

/// Polls `check` until it yields a value, failing after `within` with
/// `what` in the message. Tests synchronise on conditions, never on sleeps.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Adapters whose live providers are `fake`, keyed [`FAKE_KEY`]; the
/// simulated provider (unused then) has no latency.
pub fn fake_adapters(fake: &FakeProvider) -> models::AdapterConfig {
    models::AdapterConfig {
        openai: models::ProviderSettings {
            api_key: Some(FAKE_KEY.into()),
            base_url: fake.openai_base_url(),
        },
        anthropic: models::ProviderSettings {
            api_key: Some(FAKE_KEY.into()),
            base_url: fake.anthropic_base_url(),
        },
        ..super::simulated()
    }
}

/// The environment that points a worker process at `fake`.
pub fn fake_env(fake: &FakeProvider) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_API_KEY", FAKE_KEY.to_owned()),
        ("OPENAI_BASE_URL", fake.openai_base_url()),
        ("ANTHROPIC_API_KEY", FAKE_KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", fake.anthropic_base_url()),
    ]
}

/// Records, from now on, every update that leaves an execution in a terminal
/// state. The guarded writes promise one such update per execution; this
/// trigger sees every write whoever makes it, so a second one cannot hide.
pub async fn audit_terminal_writes(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE terminal_writes (execution_id uuid NOT NULL, status text NOT NULL, \
             attempts integer NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
         CREATE FUNCTION audit_terminal_write() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             INSERT INTO terminal_writes (execution_id, status, attempts) \
             VALUES (NEW.id, NEW.status, NEW.attempts); \
             RETURN NEW; \
         END $$; \
         CREATE TRIGGER audit_terminal_write AFTER UPDATE ON executions FOR EACH ROW \
             WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')) \
             EXECUTE FUNCTION audit_terminal_write();",
    )
    .execute(pool)
    .await
    .expect("install the terminal-write audit");
}

/// How many terminal writes each audited execution received, for those
/// that received any.
pub async fn terminal_writes(pool: &PgPool) -> BTreeMap<Uuid, i64> {
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT execution_id, count(*) FROM terminal_writes GROUP BY execution_id")
            .fetch_all(pool)
            .await
            .expect("read the audit");
    rows.into_iter().collect()
}

/// The queue's jobs counted by apalis status (`Pending`, `Queued`, `Done`...).
pub async fn jobs_by_status(pool: &PgPool) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM apalis.jobs GROUP BY status")
            .fetch_all(pool)
            .await
            .expect("count jobs");
    rows.into_iter().collect()
}

/// The apalis status of every job of `execution`, oldest first.
pub async fn job_statuses_of(pool: &PgPool, execution: &str) -> Vec<String> {
    // The payload is the JSON of `RunJob`, stored as bytes.
    sqlx::query_scalar(
        "SELECT status FROM apalis.jobs \
         WHERE convert_from(job, 'UTF8')::jsonb ->> 'execution_id' = $1 ORDER BY id",
    )
    .bind(execution)
    .fetch_all(pool)
    .await
    .expect("read the execution's jobs")
}
