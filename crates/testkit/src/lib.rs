//! Test support shared by the crates' own tests and the end-to-end suite.
//!
//! Nothing here ships in the binary: it is a dev-dependency only.

pub mod fake_provider;
pub mod proxy;
pub mod services;
