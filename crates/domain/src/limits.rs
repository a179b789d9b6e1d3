//! Per-tenant rate limits: a number of events per sliding window.

use serde::Serialize;

/// At most `limit` events in any `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// Events admitted per window, at least 1.
    pub limit: u32,
    /// The window's length in seconds, at least 1.
    pub window_secs: u32,
}

impl Limit {
    /// A limit of `limit` per `window_secs`; both must be positive.
    pub fn new(limit: u32, window_secs: u32) -> Result<Self, String> {
        if limit == 0 || window_secs == 0 {
            return Err("a limit and its window must both be at least 1".into());
        }
        Ok(Self { limit, window_secs })
    }
}

/// The two policies every tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TenantLimits {
    /// Accepted runs per window.
    pub runs: Limit,
    /// Authenticated requests per window.
    pub requests: Limit,
}

impl Default for TenantLimits {
    /// 60 runs and 6,000 requests per minute.
    fn default() -> Self {
        Self {
            runs: Limit {
                limit: 60,
                window_secs: 60,
            },
            requests: Limit {
                limit: 6_000,
                window_secs: 60,
            },
        }
    }
}

/// The demo tenants: name (which is also the key) and run limit.
pub const DEMO_TENANTS: [(&str, Limit); 3] = [
    (
        "tenant_a",
        Limit {
            limit: 10,
            window_secs: 3_600,
        },
    ),
    (
        "tenant_b",
        Limit {
            limit: 200,
            window_secs: 86_400,
        },
    ),
    (
        "tenant_c",
        Limit {
            limit: 2,
            window_secs: 60,
        },
    ),
];
