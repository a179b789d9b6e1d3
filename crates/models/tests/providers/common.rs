//! Set-up shared by the provider tests: adapters pointed at a fake, prompts.

use std::time::Duration;

use domain::{Model, Prompt, ToolSpec};
use models::{AdapterConfig, Adapters, ModelCall, ProviderSettings};
use secrecy::SecretString;
use serde_json::json;
use testkit::fake_provider::FakeProvider;

pub const OPENAI_KEY: &str = "sk-test-openai-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-key";

/// Adapters with keys for both providers, both pointed at `fake`.
pub fn live_adapters(fake: &FakeProvider) -> Adapters {
    // The binary installs the crypto provider at start; tests do it here,
    // and whichever test is first wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = AdapterConfig {
        openai: settings(&fake.openai_base_url(), Some(OPENAI_KEY)),
        anthropic: settings(&fake.anthropic_base_url(), Some(ANTHROPIC_KEY)),
        simulated_latency: Duration::ZERO,
        ..AdapterConfig::default()
    };
    Adapters::new(config).expect("adapters for the fake provider")
}

pub fn settings(base_url: &str, key: Option<&str>) -> ProviderSettings {
    ProviderSettings {
        api_key: key.map(SecretString::from),
        base_url: base_url.to_owned(),
    }
}

pub fn search_tool() -> ToolSpec {
    ToolSpec {
        name: "search".into(),
        description: "Searches the web.".into(),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    }
}

pub fn prompt(task: &str, tools: Vec<ToolSpec>) -> Prompt {
    Prompt::new("Ada", "a researcher", "Finds papers.", "", tools, task)
}

pub fn call(model: Model, prompt: &Prompt) -> ModelCall<'_> {
    ModelCall {
        model,
        agent_name: "Ada",
        prompt,
    }
}
