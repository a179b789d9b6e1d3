//! API keys: created and revoked from the command line, checked on every
//! request. Only the SHA-256 hash and a short prefix are stored.

use chrono::{DateTime, Utc};
use domain::{ApiKey, Tenant};
use sqlx::PgPool;
use uuid::Uuid;

use crate::tenants::{TenantRow, tenant_columns};
use crate::{Constraint, StoreError};

/// A key as listed: never the key itself.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyInfo {
    /// The first characters of the key.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates a key for the tenant called `tenant_name` and returns it in
/// clear, the only time it is ever available. `None` if no such tenant.
pub async fn create(pool: &PgPool, tenant_name: &str) -> Result<Option<ApiKey>, StoreError> {
    // A prefix collision between random keys is astronomically unlikely, but
    // cheap to survive: draw again.
    for _ in 0..3 {
        let key = ApiKey::generate();
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix) \
             SELECT $1, id, $3, $4 FROM tenants WHERE name = $2",
        )
        .bind(Uuid::now_v7())
        .bind(tenant_name)
        .bind(key.hash())
        .bind(key.prefix())
        .execute(pool)
        .await;
        match inserted {
            Ok(result) if result.rows_affected() == 0 => return Ok(None),
            Ok(_) => return Ok(Some(key)),
            Err(error) => match StoreError::from(error) {
                StoreError::Conflict(Constraint::ApiKey) => {}
                other => return Err(other),
            },
        }
    }
    Err(StoreError::Conflict(Constraint::ApiKey))
}

/// The keys of the tenant called `tenant_name`, oldest first; `None` if no
/// such tenant.
pub async fn list(pool: &PgPool, tenant_name: &str) -> Result<Option<Vec<KeyInfo>>, StoreError> {
    let Some(tenant) = crate::tenants::find_by_name(pool, tenant_name).await? else {
        return Ok(None);
    };
    let keys = sqlx::query_as(
        "SELECT prefix, created_at, revoked_at FROM api_keys \
         WHERE tenant_id = $1 ORDER BY created_at, prefix",
    )
    .bind(tenant.id)
    .fetch_all(pool)
    .await?;
    Ok(Some(keys))
}

/// Revokes the key with this prefix; `false` if there is none. Revoking a
/// revoked key keeps its first revocation time.
pub async fn revoke(pool: &PgPool, prefix: &str) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = $1",
    )
    .bind(prefix)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The tenant a live key belongs to, by the key's hash.
pub async fn authenticate(pool: &PgPool, key_hash: &str) -> Result<Option<Tenant>, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE id = (SELECT tenant_id FROM api_keys ",
        "WHERE key_hash = $1 AND revoked_at IS NULL)"
    ))
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Tenant::from))
}
