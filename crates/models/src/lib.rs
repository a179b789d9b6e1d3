//! Model adapters: OpenAI Chat Completions, Anthropic Messages and a
//! deterministic simulated provider, behind one trait.
//!
//! The worker builds [`Adapters`] once from [`AdapterConfig`] and asks it for
//! the adapter of each run's model. A provider without an API key is served
//! by the simulated adapter, so the platform runs end to end with no
//! credentials at all.
//!
//! Adapters make exactly one attempt and never time the whole call out
//! themselves: the worker wraps each call in its own timeout, cancels by
//! dropping the future (which aborts the HTTP request), and decides on
//! retries from [`ProviderError::is_transient`] and
//! [`ProviderError::retry_after`].

mod adapters;
mod anthropic;
mod config;
mod error;
mod http;
mod openai;
mod simulated;

use async_trait::async_trait;
use domain::{Model, Prompt, Provider, ToolCall, Usage};

pub use adapters::{Adapters, BuildError};
pub use config::{AdapterConfig, ProviderSettings, UpstreamModelIds};
pub use error::ProviderError;
pub use simulated::Simulated;

/// One request to a model: which model, for which agent, with what prompt.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    /// The model the run asked for.
    pub model: Model,
    /// The agent's name, as it was when the run was submitted.
    pub agent_name: &'a str,
    /// The system prompt, tools and task sent to the model.
    pub prompt: &'a Prompt,
}

/// The model's first reply. A run ends here: tool calls are recorded, never
/// executed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text the model wrote (empty when it only asked for tools).
    pub output: String,
    /// The function calls the model asked for, in its order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens read and written, as the provider counted them.
    pub usage: Usage,
}

/// A provider that answers one prompt with one reply.
#[async_trait]
pub trait ModelAdapter: Send + Sync {
    /// The provider recorded on the execution when this adapter ran it.
    fn provider(&self) -> Provider;

    /// Sends the prompt and waits for the reply. Dropping the future aborts
    /// the request.
    async fn complete(&self, call: ModelCall<'_>) -> Result<Reply, ProviderError>;
}
