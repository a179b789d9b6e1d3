//! Rate limits at the HTTP layer: the request policy on every authenticated
//! request, the run policy on `POST /agents/{ref}/run`, and the headers that
//! report both.
//!
//! A request refused with 429 consumes nothing: a run refused by its limit
//! hands the request's slot back, and a run refused later (a replay, a
//! reused key, a failure) hands its run slot back. When the limiter cannot
//! be reached, `RATE_LIMIT_ON_REDIS_ERROR` decides: admit (logged and
//! counted) or refuse with 503.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{Limit, Tenant};
use ratelimit::{Decision, Limiter, LimiterError, Permit, Policy, PolicyName};

use crate::AppState;
use crate::error::ApiError;

/// The route whose requests also count against the run policy.
const RUN_ROUTE: &str = "/agents/{ref}/run";

/// What to do when the limiter cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimiterError {
    /// Admit the request: limits lapse while Redis is away.
    Allow,
    /// Refuse it with 503.
    Deny,
}

/// The limiter and the policy for its failures.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Limiter,
    on_error: OnLimiterError,
}

/// The run policy's decision for this request, filled in by the run handler
/// and reported in the headers by [`limit_requests`].
#[derive(Clone, Default)]
pub struct RunQuota(Arc<Mutex<Option<Decision>>>);

impl RunQuota {
    fn set(&self, decision: Decision) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(decision);
    }

    fn take(&self) -> Option<Decision> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl RateLimits {
    /// Limits counted by `limiter`.
    pub fn new(limiter: Limiter, on_error: OnLimiterError) -> Self {
        Self { limiter, on_error }
    }

    /// Whether the limiter answers (only it decides readiness in deny mode).
    pub async fn ready(&self) -> Result<(), LimiterError> {
        self.limiter.ping().await
    }

    /// Whether counts are shared through Redis.
    pub fn shared(&self) -> bool {
        self.limiter.is_shared()
    }

    /// Whether an unreachable limiter makes the API unready.
    pub fn required(&self) -> bool {
        self.on_error == OnLimiterError::Deny && self.limiter.is_shared()
    }

    /// Takes a run slot for `tenant`, or refuses with 429. The decision is
    /// recorded in `quota` for the headers. `None` when the limiter was
    /// unreachable and the run was let through.
    pub async fn admit_run(
        &self,
        tenant: &Tenant,
        quota: &RunQuota,
    ) -> Result<Option<Permit>, ApiError> {
        let Some(decision) = self
            .check(tenant, PolicyName::Runs, tenant.limits.runs)
            .await?
        else {
            return Ok(None);
        };
        quota.set(decision.clone());
        if decision.admitted {
            Ok(decision.permit)
        } else {
            Err(refusal(&decision, None))
        }
    }

    /// Hands an admitted event's slot back; a failure only costs the tenant
    /// that slot until its window passes.
    pub async fn release(&self, permit: Option<Permit>) {
        let Some(permit) = permit else { return };
        if let Err(error) = self.limiter.release(&permit).await {
            tracing::warn!(%error, "could not hand a rate-limit slot back");
        }
    }

    /// Counts an event against `name`, or says the limiter is unreachable
    /// and the event allowed (`None`), or refuses (deny mode).
    async fn check(
        &self,
        tenant: &Tenant,
        name: PolicyName,
        limit: Limit,
    ) -> Result<Option<Decision>, ApiError> {
        match self
            .limiter
            .acquire(&tenant.id.to_string(), policy(name, limit))
            .await
        {
            Ok(decision) => {
                if !decision.admitted {
                    metrics::counter!("agent_platform_rate_limited_total", "policy" => name.as_str()).increment(1);
                }
                Ok(Some(decision))
            }
            Err(error) => self.unavailable(&error).map(|()| None),
        }
    }

    async fn peek(&self, tenant: &Tenant, name: PolicyName, limit: Limit) -> Option<Decision> {
        self.limiter
            .peek(&tenant.id.to_string(), policy(name, limit))
            .await
            .ok()
    }

    fn unavailable(&self, error: &LimiterError) -> Result<(), ApiError> {
        metrics::counter!("agent_platform_rate_limiter_errors_total").increment(1);
        match self.on_error {
            OnLimiterError::Allow => {
                tracing::warn!(%error, "rate limiter unavailable; admitting the request");
                Ok(())
            }
            OnLimiterError::Deny => {
                tracing::warn!(%error, "rate limiter unavailable; refusing the request");
                Err(ApiError::Unavailable(
                    "Rate limiting is unavailable; retry shortly.".to_owned(),
                ))
            }
        }
    }
}

fn policy(name: PolicyName, limit: Limit) -> Policy {
    Policy {
        name,
        limit: limit.limit,
        window: Duration::from_secs(u64::from(limit.window_secs)),
    }
}

/// The 429 for a refused `decision`. A run refused by the request limit
/// waits for its run limit too (`runs`, when that is also spent), so the
/// longer of the two waits is the one that gets it admitted.
fn refusal(decision: &Decision, runs: Option<&Decision>) -> ApiError {
    let policy = &decision.policy;
    let retry_after_secs = runs
        .filter(|runs| !runs.admitted)
        .map_or(0, Decision::reset_secs)
        .max(decision.reset_secs());
    ApiError::RateLimited {
        detail: format!(
            "The {} limit of {} per {} s is reached; retry in {retry_after_secs} s.",
            policy.name.as_str().trim_end_matches('s'),
            policy.limit,
            policy.window.as_secs()
        ),
        retry_after_secs,
    }
}

/// Middleware, after authentication: counts the request against the
/// tenant's request policy, refuses it with 429 when over, and reports the
/// policies that apply in the response's headers.
pub async fn limit_requests(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tenant) = request.extensions().get::<Tenant>().cloned() else {
        return next.run(request).await;
    };
    let limits = &state.limits;
    let mut requests = match limits
        .check(&tenant, PolicyName::Requests, tenant.limits.requests)
        .await
    {
        Ok(decision) => decision,
        Err(error) => return error.into_response(),
    };
    let is_run = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| path.as_str() == RUN_ROUTE);
    if let Some(decision) = requests.as_ref().filter(|decision| !decision.admitted) {
        let runs = if is_run {
            limits
                .peek(&tenant, PolicyName::Runs, tenant.limits.runs)
                .await
        } else {
            None
        };
        let mut response = refusal(decision, runs.as_ref()).into_response();
        report(response.headers_mut(), Some(decision), runs.as_ref());
        return response;
    }

    let quota = RunQuota::default();
    request.extensions_mut().insert(quota.clone());
    let mut response = next.run(request).await;

    let runs = match quota.take() {
        Some(decision) => Some(decision),
        None if is_run => {
            limits
                .peek(&tenant, PolicyName::Runs, tenant.limits.runs)
                .await
        }
        None => None,
    };
    if response.status() == StatusCode::TOO_MANY_REQUESTS
        && let Some(decision) = requests.as_mut()
    {
        limits.release(decision.permit.take()).await;
        decision.remaining += 1;
    }
    report(response.headers_mut(), requests.as_ref(), runs.as_ref());
    response
}

/// Writes `RateLimit-Policy` and `RateLimit` (IETF httpapi draft syntax) for
/// each policy that applies, and the `X-RateLimit-*` trio for the one with
/// the fewest remaining (a tie goes to runs).
fn report(headers: &mut HeaderMap, requests: Option<&Decision>, runs: Option<&Decision>) {
    let decisions: Vec<&Decision> = [requests, runs].into_iter().flatten().collect();
    let Some(tightest) = decisions.iter().copied().reduce(|tightest, next| {
        if next.remaining <= tightest.remaining {
            next
        } else {
            tightest
        }
    }) else {
        return;
    };

    let policies: Vec<String> = decisions
        .iter()
        .map(|d| {
            format!(
                "\"{}\";q={};w={}",
                d.policy.name,
                d.policy.limit,
                d.policy.window.as_secs()
            )
        })
        .collect();
    let states: Vec<String> = decisions
        .iter()
        .map(|d| {
            format!(
                "\"{}\";r={};t={}",
                d.policy.name,
                d.remaining,
                d.reset_secs()
            )
        })
        .collect();
    insert(headers, "ratelimit-policy", &policies.join(", "));
    insert(headers, "ratelimit", &states.join(", "));
    insert(
        headers,
        "x-ratelimit-limit",
        &tightest.policy.limit.to_string(),
    );
    insert(
        headers,
        "x-ratelimit-remaining",
        &tightest.remaining.to_string(),
    );
    insert(
        headers,
        "x-ratelimit-reset",
        &tightest.reset_secs().to_string(),
    );
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
