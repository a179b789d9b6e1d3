//! Models whose provider has no key never reach the network.

use std::time::Duration;

use domain::{Model, ModelMode, Provider};
use models::{AdapterConfig, Adapters};
use testkit::fake_provider::FakeProvider;

use crate::common::{call, prompt, search_tool, settings};

#[tokio::test]
async fn keys_not_configured_run_simulated_without_calling_the_provider() {
    let fake = FakeProvider::start().await;
    let config = AdapterConfig {
        openai: settings(&fake.openai_base_url(), None),
        anthropic: settings(&fake.anthropic_base_url(), None),
        simulated_latency: Duration::ZERO,
        ..AdapterConfig::default()
    };
    let adapters = Adapters::new(config).unwrap();
    let prompt = prompt("simulated task", vec![search_tool()]);

    let adapter = adapters.for_model(Model::Claude3Opus);
    let reply = adapter
        .complete(call(Model::Claude3Opus, &prompt))
        .await
        .unwrap();

    assert_eq!(adapters.mode(Model::Claude3Opus), ModelMode::Simulated);
    assert_eq!(adapter.provider(), Provider::Simulated);
    assert_eq!(
        reply.output,
        "Simulated claude-3-opus reply from Ada: simulated task"
    );
    assert_eq!(reply.tool_calls[0].name, "search");
    assert!(fake.requests().is_empty());
}
