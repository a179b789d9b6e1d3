//! OpenAI Chat Completions over the wire.

use std::time::Duration;

use domain::{ErrorCode, Model, Provider, ToolCall, Usage};
use models::ProviderError;
use serde_json::json;
use testkit::fake_provider::{Behaviour, FakeProvider};

use crate::common::{OPENAI_KEY, call, live_adapters, prompt, search_tool, settings};

#[tokio::test]
async fn success_sends_the_documented_request_and_parses_the_tool_call() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    let prompt = prompt("openai success", vec![search_tool()]);

    let reply = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await
        .unwrap();

    let requests = fake.requests_for("openai success");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": "openai success"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "search",
                "description": "Searches the web.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}
            }}]
        })
    );
    assert_eq!(reply.output, "Fake reply to: openai success");
    assert_eq!(
        reply.tool_calls,
        [ToolCall {
            name: "search".into(),
            arguments: json!({"task": "openai success"})
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
async fn each_model_is_sent_under_its_upstream_id() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    let prompt = prompt("openai turbo", vec![]);

    let adapter = adapters.for_model(Model::Gpt4Turbo);
    adapter
        .complete(call(Model::Gpt4Turbo, &prompt))
        .await
        .unwrap();

    let body = &fake.requests_for("openai turbo")[0].body;
    assert_eq!(adapter.provider(), Provider::Openai);
    assert_eq!(body["model"], "gpt-4-turbo");
    assert!(body.get("tools").is_none(), "{body}");
}

#[tokio::test]
async fn rate_limited_reply_carries_retry_after() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script(
        "openai 429",
        vec![Behaviour::Status {
            code: 429,
            retry_after: Some(7),
        }],
    );
    let prompt = prompt("openai 429", vec![]);

    let error = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await;

    let error = error.unwrap_err();
    assert!(
        matches!(error, ProviderError::RateLimited { .. }),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.code(), ErrorCode::ProviderRateLimited);
    assert!(error.is_transient());
}

#[tokio::test]
async fn server_error_is_unavailable_and_transient() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script(
        "openai 500",
        vec![Behaviour::Status {
            code: 500,
            retry_after: None,
        }],
    );
    let prompt = prompt("openai 500", vec![]);

    let error = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await;

    let error = error.unwrap_err();
    assert!(
        matches!(
            error,
            ProviderError::Unavailable {
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn unauthorized_is_rejected_with_the_providers_message_and_no_key() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script(
        "openai 401",
        vec![Behaviour::Status {
            code: 401,
            retry_after: None,
        }],
    );
    let prompt = prompt("openai 401", vec![]);

    let error = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await;

    let error = error.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected { .. }), "{error:?}");
    assert!(!error.is_transient());
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("HTTP 401") && shown.contains("Scripted failure"),
        "{shown}"
    );
    assert!(!shown.contains(OPENAI_KEY), "{shown}");
}

#[tokio::test]
async fn malformed_reply_is_unavailable() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script("openai malformed", vec![Behaviour::Malformed]);
    let prompt = prompt("openai malformed", vec![]);

    let error = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await;

    let error = error.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("malformed"), "{error}");
}

#[tokio::test]
async fn hung_request_stays_pending_until_the_caller_gives_up() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    fake.script("openai hang", vec![Behaviour::Hang]);
    let prompt = prompt("openai hang", vec![]);

    let adapter = adapters.for_model(Model::Gpt4o);
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        adapter.complete(call(Model::Gpt4o, &prompt)),
    )
    .await;

    assert!(outcome.is_err(), "the call finished: {outcome:?}");
    assert_eq!(fake.calls_for("openai hang"), 1);
}

#[tokio::test]
async fn scripted_behaviours_are_used_in_order_then_calls_succeed() {
    let fake = FakeProvider::start().await;
    let adapters = live_adapters(&fake);
    let script = vec![
        Behaviour::Status {
            code: 503,
            retry_after: Some(1),
        },
        Behaviour::Delay(Duration::from_millis(50)),
    ];
    fake.script("openai sequence", script);
    let prompt = prompt("openai sequence", vec![]);
    let adapter = adapters.for_model(Model::Gpt4o);

    let first = adapter.complete(call(Model::Gpt4o, &prompt)).await;
    let second = adapter.complete(call(Model::Gpt4o, &prompt)).await;
    let third = adapter.complete(call(Model::Gpt4o, &prompt)).await;

    assert_eq!(
        first.unwrap_err().retry_after(),
        Some(Duration::from_secs(1))
    );
    assert!(second.is_ok() && third.is_ok());
    assert_eq!(fake.calls_for("openai sequence"), 3);
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = models::AdapterConfig {
        openai: settings(&format!("http://{closed}/v1"), Some(OPENAI_KEY)),
        ..models::AdapterConfig::default()
    };
    let adapters = models::Adapters::new(config).unwrap();
    let prompt = prompt("openai unreachable", vec![]);

    let error = adapters
        .for_model(Model::Gpt4o)
        .complete(call(Model::Gpt4o, &prompt))
        .await;

    let error = error.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("could not be reached"),
        "{error}"
    );
}
