//! PostgreSQL access for the whole platform: one module per table group, and
//! the queue, which lives in the same database through apalis-postgres.
//!
//! Every query is static SQL next to the function that runs it. Functions
//! that touch tenant-owned rows take the tenant's id first and filter by it,
//! and the schema's composite foreign keys back that up.

pub mod agents;
pub mod attempts;
pub mod error;
pub mod executions;
pub mod keys;
pub mod queue;
pub mod tenants;
pub mod tools;

use std::time::Duration;

use domain::Ref;
use sqlx::PgExecutor;
pub use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

pub use error::{Constraint, StoreError};

/// How long a request waits for a pooled connection before the database
/// counts as unavailable (a 503), rather than sqlx's default of 30 seconds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a pool without connecting yet, so a process can start (and say it
/// is not ready) while PostgreSQL is down.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(StoreError::Database)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

/// Applies the platform's migrations, then apalis's own (its tables live in
/// the `apalis` schema with a migration history of their own). Both take
/// sqlx's advisory lock, so replicas starting together cannot race.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("../../migrations")
        .run(pool)
        .await
        .map_err(|error| StoreError::Database(error.into()))?;
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(|error| StoreError::Queue(error.to_string()))?;
    Ok(())
}

/// Begins a transaction whose commit does not wait for the disk. Only for
/// writes a crash may lose without harm: a lost claim or fetch means the
/// job is delivered again, and the guarded writes make that safe. A later
/// durable commit on the server also makes every earlier one durable, since
/// the log is flushed in order.
pub async fn begin_relaxed(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Whether PostgreSQL answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// The id a `{ref}` names: an id as given (whether it exists is for the
/// caller's next query to find), or the id found by `by_name`, a query of
/// `(tenant_id, name)` returning one `id`.
async fn resolve_ref(
    executor: impl PgExecutor<'_>,
    by_name: &'static str,
    tenant: Uuid,
    reference: &Ref,
) -> Result<Option<Uuid>, StoreError> {
    match reference {
        Ref::Id(id) => Ok(Some(*id)),
        Ref::Name(name) => Ok(sqlx::query_scalar(by_name)
            .bind(tenant)
            .bind(name)
            .fetch_optional(executor)
            .await?),
    }
}

/// Creates the database `url` names if it does not exist, by way of the
/// server's `postgres` database. For `dev` mode and tests only; production
/// databases are provisioned by their operators.
pub async fn ensure_database(url: &str) -> Result<(), StoreError> {
    use sqlx::{AssertSqlSafe, ConnectOptions};

    let options: PgConnectOptions = url.parse().map_err(StoreError::Database)?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters: quote it, doubling any
        // embedded quote, which is PostgreSQL's escaping for identifiers.
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
