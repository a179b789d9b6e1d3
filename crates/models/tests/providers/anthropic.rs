//! Anthropic Messages over the wire.

use std::time::Duration;

use domain::{Model, Provider, ToolCall, Usage};
use models::ProviderError;
use serde_json::json;
use testkit::fake_provider::{Behaviour, FakeProvider};

use crate::common::{ANTHROPIC_KEY, call, live_adapters, prompt, search_tool};

#[tokio::test]
async fn success_sends_the_documented_request_and_parses_the_tool_use() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    let prompt = prompt("anthropic success", vec![search_tool()]);

    let adapter = adapters.for_model(Model::Claude3Opus);
    let reply = adapter
        .complete(call(Model::Claude3Opus, &prompt))
        .await
        .unwrap();

    let requests = fake.requests_for("anthropic success");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(adapter.provider(), Provider::Anthropic);
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert!(!request.headers.contains_key("authorization"));
    assert_eq!(
        request.body,
        json!({
            "model": "claude-3-opus-20240229",
            "max_tokens": 1024,
            "system": prompt.system,
            "messages": [{"role": "user", "content": "anthropic success"}],
            "tools": [{
                "name": "search",
                "description": "Searches the web.",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}
            }]
        })
    );
    assert_eq!(reply.output, "Fake reply to: anthropic success");
    assert_eq!(
        reply.tool_calls,
        [ToolCall {
            name: "search".into(),
            arguments: json!({"task": "anthropic success"})
        }]
    );
    assert_eq!(
        reply.usage,
        Usage {
            input_tokens: 9,
            output_tokens: 5
        }
    );
}

#[tokio::test]
async fn rate_limited_reply_carries_retry_after() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script(
        "anthropic 429",
        vec![Behaviour::Status {
            code: 429,
            retry_after: Some(12),
        }],
    );
    let prompt = prompt("anthropic 429", vec![]);

    let outcome = adapters
        .for_model(Model::Claude3Opus)
        .complete(call(Model::Claude3Opus, &prompt))
        .await;

    let error = outcome.unwrap_err();
    assert!(
        matches!(error, ProviderError::RateLimited { .. }),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn overloaded_is_unavailable_and_bad_request_is_rejected() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    let script = vec![
        Behaviour::Status {
            code: 529,
            retry_after: None,
        },
        Behaviour::Status {
            code: 400,
            retry_after: None,
        },
    ];
    fake.script("anthropic errors", script);
    let prompt = prompt("anthropic errors", vec![]);
    let adapter = adapters.for_model(Model::Claude3Opus);

    let overloaded = adapter
        .complete(call(Model::Claude3Opus, &prompt))
        .await
        .unwrap_err();
    let refused = adapter
        .complete(call(Model::Claude3Opus, &prompt))
        .await
        .unwrap_err();

    assert!(
        matches!(overloaded, ProviderError::Unavailable { .. }),
        "{overloaded:?}"
    );
    assert!(
        matches!(refused, ProviderError::Rejected { .. }),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .starts_with("Anthropic rejected the request (HTTP 400)"),
        "{refused}"
    );
}

#[tokio::test]
async fn malformed_reply_is_unavailable() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script("anthropic malformed", vec![Behaviour::Malformed]);
    let prompt = prompt("anthropic malformed", vec![]);

    let outcome = adapters
        .for_model(Model::Claude3Opus)
        .complete(call(Model::Claude3Opus, &prompt))
        .await;

    let error = outcome.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn hung_request_stays_pending_until_the_caller_gives_up() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script("anthropic hang", vec![Behaviour::Hang]);
    let prompt = prompt("anthropic hang", vec![]);

    let adapter = adapters.for_model(Model::Claude3Opus);
    let pending = adapter.complete(call(Model::Claude3Opus, &prompt));
    let outcome = tokio::time::timeout(Duration::from_millis(300), pending).await;

    assert!(outcome.is_err(), "the call finished: {outcome:?}");
    assert_eq!(fake.calls_for("anthropic hang"), 1);
}
