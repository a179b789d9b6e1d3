//! What the adapters are built from: base URLs, keys, upstream model ids.
//!
//! The binary fills this from its environment; keys are `SecretString`, whose
//! `Debug` prints nothing of the secret, so a config can be logged whole.

use std::time::Duration;

use domain::Model;
use secrecy::SecretString;

/// Where one provider lives and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The API key; `None` (or an empty key) runs this provider's models on
    /// the simulated adapter.
    pub api_key: Option<SecretString>,
    /// The API's root, without the endpoint path: any server speaking the
    /// same wire format can stand in.
    pub base_url: String,
}

impl ProviderSettings {
    /// Settings for `base_url` with no key.
    pub fn keyless(base_url: &str) -> Self {
        Self {
            api_key: None,
            base_url: base_url.to_owned(),
        }
    }
}

/// The model id sent upstream for each supported model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamModelIds {
    /// Sent for `gpt-4o`.
    pub gpt_4o: String,
    /// Sent for `gpt-4-turbo`.
    pub gpt_4_turbo: String,
    /// Sent for `claude-3-opus`.
    pub claude_3_opus: String,
}

impl UpstreamModelIds {
    /// The upstream id of `model`.
    pub fn get(&self, model: Model) -> &str {
        match model {
            Model::Gpt4o => &self.gpt_4o,
            Model::Gpt4Turbo => &self.gpt_4_turbo,
            Model::Claude3Opus => &self.claude_3_opus,
        }
    }
}

impl Default for UpstreamModelIds {
    fn default() -> Self {
        Self {
            gpt_4o: "gpt-4o".to_owned(),
            gpt_4_turbo: "gpt-4-turbo".to_owned(),
            claude_3_opus: "claude-3-opus-20240229".to_owned(),
        }
    }
}

/// Everything [`crate::Adapters::new`] needs.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// OpenAI Chat Completions, or a compatible server.
    pub openai: ProviderSettings,
    /// Anthropic Messages.
    pub anthropic: ProviderSettings,
    /// The upstream id of each supported model.
    pub upstream_ids: UpstreamModelIds,
    /// `max_tokens` of every Anthropic request (the API requires one).
    pub anthropic_max_tokens: u32,
    /// How long the simulated provider waits before replying; zero for none.
    pub simulated_latency: Duration,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            openai: ProviderSettings::keyless("https://api.openai.com/v1"),
            anthropic: ProviderSettings::keyless("https://api.anthropic.com"),
            upstream_ids: UpstreamModelIds::default(),
            anthropic_max_tokens: 1024,
            simulated_latency: Duration::from_millis(50),
        }
    }
}
