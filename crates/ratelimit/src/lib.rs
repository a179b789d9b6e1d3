//! Per-tenant sliding-window rate limits, counted in Redis or in process.
