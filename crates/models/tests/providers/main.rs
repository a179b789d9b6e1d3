//! The live adapters against the fake provider, over real HTTP: what goes
//! over the wire, and how each kind of reply becomes a result or an error.

mod anthropic;
mod common;
mod openai;
mod simulated;
