//! Authentication: `X-API-Key` → tenant, cached briefly.
//!
//! Keys are looked up by their SHA-256 hash. Answers (including "no such
//! key") are cached for [`CACHE_TTL`], so a revoked key or a changed limit
//! takes effect on every replica within that time, well inside the 5 seconds
//! the contract allows, while a busy tenant costs one query per TTL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use domain::{ApiKey, Tenant};
use moka::future::Cache;
use store::PgPool;

use crate::AppState;
use crate::error::ApiError;

/// How long a key's answer is trusted.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// The 401's advice for a missing, unknown or revoked key.
const INVALID_KEY: &str = "Send a valid, unrevoked API key in the X-API-Key header.";

/// The 401's advice when several keys are sent.
const REPEATED_KEY: &str = "Send exactly one X-API-Key header; this request has more than one.";

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

/// The one `X-API-Key` of a request. Two keys, even equal ones, are a 401:
/// picking either would guess which tenant the client meant.
fn the_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut keys = headers.get_all("x-api-key").iter();
    let key = keys.next();
    if keys.next().is_some() {
        return Err(ApiError::Unauthorized(REPEATED_KEY));
    }
    match key.and_then(|value| value.to_str().ok()) {
        None | Some("") => Err(ApiError::Unauthorized(INVALID_KEY)),
        Some(key) => Ok(key),
    }
}

/// Middleware: admits requests with a live key and attaches their [`Tenant`].
pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let tenant = match the_key(request.headers()) {
        Err(error) => Err(error),
        Ok(key) => state
            .auth
            .tenant_for(key)
            .await
            .and_then(|tenant| tenant.ok_or(ApiError::Unauthorized(INVALID_KEY))),
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
