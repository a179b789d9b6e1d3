//! The HTTP API: routes, authentication, rate limits, problem errors and OpenAPI docs.
