//! Authentication: `X-API-Key` → tenant, cached briefly.
//!
//! Keys are looked up by their SHA-256 hash. Answers (including "no such
//! key") are cached for [`CACHE_TTL`], so a revoked key or a changed limit
//! takes effect on every replica within that time, well inside the 5 seconds
//! the contract allows, while a busy tenant costs one query per TTL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use domain::{ApiKey, Tenant};
use moka::future::Cache;
use store::PgPool;

use crate::AppState;
use crate::error::ApiError;

/// How long a key's answer is trusted.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// Keys remembered at most; beyond this the least used are forgotten.
const CACHE_CAPACITY: u64 = 100_000;

/// Finds the tenant behind a key, through a short-lived cache.
#[derive(Clone)]
pub struct Authenticator {
    pool: PgPool,
    cache: Cache<String, Option<Tenant>>,
}

impl Authenticator {
    /// An authenticator reading keys from `pool`.
    pub fn new(pool: PgPool) -> Self {
        let cache = Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .time_to_live(CACHE_TTL)
            .build();
        Self { pool, cache }
    }

    /// The tenant owning `key`, or `None` for an unknown or revoked key.
    /// Concurrent lookups of one key share a single query.
    pub async fn tenant_for(&self, key: &str) -> Result<Option<Tenant>, ApiError> {
        let hash = ApiKey::from_clear(key).hash();
        let pool = self.pool.clone();
        let lookup = self.cache.try_get_with(hash.clone(), async move {
            store::keys::authenticate(&pool, &hash).await
        });
        lookup
            .await
            .map_err(|error: Arc<store::StoreError>| match &*error {
                store::StoreError::Unavailable(_) => {
                    ApiError::Unavailable("The database is unavailable; retry shortly.".to_owned())
                }
                other => ApiError::Internal(other.to_string().into()),
            })
    }
}

/// Middleware: admits requests with a live key and attaches their [`Tenant`].
pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok());
    let tenant = match key {
        None | Some("") => Err(ApiError::Unauthorized),
        Some(key) => state
            .auth
            .tenant_for(key)
            .await
            .and_then(|tenant| tenant.ok_or(ApiError::Unauthorized)),
    };
    match tenant {
        Ok(tenant) => {
            tracing::Span::current().record("tenant_id", tracing::field::display(tenant.id));
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Err(error) => axum::response::IntoResponse::into_response(error),
    }
}
