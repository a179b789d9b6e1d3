//! Tenants and their rate limits, managed from the admin command line.

use chrono::{DateTime, Utc};
use domain::{ApiKey, Limit, Tenant, TenantLimits};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: Uuid,
    name: String,
    run_limit: i32,
    run_window_secs: i32,
    request_limit: i32,
    request_window_secs: i32,
    created_at: DateTime<Utc>,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        // The table's CHECK constraints keep these positive.
        let limit = |limit: i32, window: i32| Limit {
            limit: limit.unsigned_abs(),
            window_secs: window.unsigned_abs(),
        };
        Tenant {
            id: row.id,
            name: row.name,
            limits: TenantLimits {
                runs: limit(row.run_limit, row.run_window_secs),
                requests: limit(row.request_limit, row.request_window_secs),
            },
            created_at: row.created_at,
        }
    }
}

/// The columns of `tenants`, for queries that read whole rows.
macro_rules! tenant_columns {
    () => {
        "id, name, run_limit, run_window_secs, request_limit, request_window_secs, created_at"
    };
}
pub(crate) use tenant_columns;

/// Limits to change; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitChanges {
    /// New run limit.
    pub run_limit: Option<u32>,
    /// New run window, in seconds.
    pub run_window_secs: Option<u32>,
    /// New request limit.
    pub request_limit: Option<u32>,
    /// New request window, in seconds.
    pub request_window_secs: Option<u32>,
}

/// Creates a tenant; its name must be free.
pub async fn create(pool: &PgPool, name: &str, limits: TenantLimits) -> Result<Tenant, StoreError> {
    let row: TenantRow = sqlx::query_as(concat!(
        "INSERT INTO tenants (id, name, run_limit, run_window_secs, request_limit, ",
        "request_window_secs) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        tenant_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(as_int(limits.runs.limit))
    .bind(as_int(limits.runs.window_secs))
    .bind(as_int(limits.requests.limit))
    .bind(as_int(limits.requests.window_secs))
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// Every tenant, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<Tenant>, StoreError> {
    let rows: Vec<TenantRow> = sqlx::query_as(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants ORDER BY name"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Tenant::from).collect())
}

/// The tenant called `name`, if any.
pub async fn find_by_name(pool: &PgPool, name: &str) -> Result<Option<Tenant>, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tenant::from))
}

/// Changes some of a tenant's limits; `None` if there is no such tenant.
pub async fn set_limits(
    pool: &PgPool,
    name: &str,
    changes: LimitChanges,
) -> Result<Option<Tenant>, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(concat!(
        "UPDATE tenants SET run_limit = coalesce($2, run_limit), ",
        "run_window_secs = coalesce($3, run_window_secs), ",
        "request_limit = coalesce($4, request_limit), ",
        "request_window_secs = coalesce($5, request_window_secs) ",
        "WHERE name = $1 RETURNING ",
        tenant_columns!()
    ))
    .bind(name)
    .bind(changes.run_limit.map(as_int))
    .bind(changes.run_window_secs.map(as_int))
    .bind(changes.request_limit.map(as_int))
    .bind(changes.request_window_secs.map(as_int))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tenant::from))
}

/// Creates (or resets) a demo tenant whose API key is its own name. Running
/// it again changes nothing but the limits, back to `limits`, and the key,
/// un-revoked: afterwards the demo works as documented, whatever was done.
pub async fn ensure_demo(
    pool: &PgPool,
    name: &str,
    limits: TenantLimits,
) -> Result<Tenant, StoreError> {
    let mut tx = pool.begin().await?;
    let row: TenantRow = sqlx::query_as(concat!(
        "INSERT INTO tenants (id, name, run_limit, run_window_secs, request_limit, ",
        "request_window_secs) VALUES ($1, $2, $3, $4, $5, $6) ",
        "ON CONFLICT (name) DO UPDATE SET run_limit = EXCLUDED.run_limit, ",
        "run_window_secs = EXCLUDED.run_window_secs, request_limit = EXCLUDED.request_limit, ",
        "request_window_secs = EXCLUDED.request_window_secs RETURNING ",
        tenant_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(as_int(limits.runs.limit))
    .bind(as_int(limits.runs.window_secs))
    .bind(as_int(limits.requests.limit))
    .bind(as_int(limits.requests.window_secs))
    .fetch_one(&mut *tx)
    .await?;

    let key = ApiKey::from_clear(name);
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL",
    )
    .bind(Uuid::now_v7())
    .bind(row.id)
    .bind(key.hash())
    .bind(key.prefix())
    .execute(&mut *tx)
    .await?;

    tx.commit().await?;
    Ok(row.into())
}

/// Limits are validated positive `u32`s; the columns are `integer`.
fn as_int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
