//! The worker against real HTTP: a fake OpenAI and Anthropic server,
//! scripted per task, shows what goes over the wire and how each kind of
//! provider failure ends an execution.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::runs::{FAKE_KEY, eventually, fake_adapters, job_statuses_of};
use support::{Options, TestApp, fast_worker};
use testkit::fake_provider::{Behaviour, FakeProvider};

/// Generous for runs that retry with short delays.
const DONE_WITHIN: Duration = Duration::from_secs(20);

/// The upstream id sent for `gpt-4o`, distinct from the name clients use.
const UPSTREAM_GPT_4O: &str = "gpt-4o-2024-08-06";

/// A platform whose worker calls `fake`, with the attempt timeout given.
async fn app_calling(fake: &FakeProvider, run_timeout: Duration) -> TestApp {
    let mut adapters = fake_adapters(fake);
    UPSTREAM_GPT_4O.clone_into(&mut adapters.upstream_ids.gpt_4o);
    TestApp::with(Options {
        worker: Some(worker::Config {
            run_timeout,
            ..fast_worker()
        }),
        adapters,
        ..Options::default()
    })
    .await
}

/// A tenant with the agent `Ada` (tools `web_search` and `calculator`);
/// returns its key.
async fn tenant_with_agent(app: &TestApp) -> String {
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "web_search").await;
    let calculator = app.create_tool(&key, "calculator").await;
    app.create_agent(&key, "Ada", &[&search, &calculator]).await;
    key
}

/// Runs `task` on `model` and waits until the execution is `status`.
async fn run_until(app: &TestApp, key: &str, task: &str, model: &str, status: &str) -> Value {
    let id = app
        .submit(key, "Ada", &json!({"task": task, "model": model}))
        .await
        .expect(202)
        .str("id");
    app.wait_status(key, &id, status, DONE_WITHIN).await
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The fake's reply to `task` and its word-count usage, given the system
/// prompt sent.
fn fake_reply(system: &str, task: &str) -> (String, Value) {
    let output = format!("Fake reply to: {task}");
    let usage = json!({
        "input_tokens": words(system) + words(task),
        "output_tokens": words(&output),
    });
    (output, usage)
}

#[tokio::test]
async fn an_openai_run_records_the_reply_and_its_tool_call_and_speaks_the_chat_format() {
    let fake = FakeProvider::start().await;
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;
    let task = "Find the cheapest flight to Oslo";

    let finished = run_until(&app, &key, task, "gpt-4o", "succeeded").await;

    let sent = app
        .sent_request(&key, finished["id"].as_str().expect("id"))
        .await;
    let system = sent["system"].as_str().expect("system");
    let (output, usage) = fake_reply(system, task);
    assert_eq!(finished["output"], output);
    assert_eq!(
        finished["tool_calls"],
        json!([{"name": "calculator", "arguments": {"task": task}}])
    );
    assert_eq!(finished["usage"], usage);
    assert_eq!(finished["provider"], "openai");
    assert_eq!(finished["attempts"], 1);
    let requests = fake.requests_for(task);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {FAKE_KEY}").as_str())
    );
    assert_eq!(
        request.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let function = |name: &str| {
        json!({"type": "function", "function": {
            "name": name,
            "description": format!("The {name} tool"),
            "parameters": {"type": "object", "properties": {}},
        }})
    };
    assert_eq!(
        request.body,
        json!({
            "model": UPSTREAM_GPT_4O,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": task},
            ],
            "tools": [function("calculator"), function("web_search")],
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn an_anthropic_run_records_the_reply_and_its_tool_use_and_speaks_the_messages_format() {
    let fake = FakeProvider::start().await;
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;
    let task = "Compare two hotels in Bergen";

    let finished = run_until(&app, &key, task, "claude-3-opus", "succeeded").await;

    let sent = app
        .sent_request(&key, finished["id"].as_str().expect("id"))
        .await;
    let system = sent["system"].as_str().expect("system");
    let (output, usage) = fake_reply(system, task);
    assert_eq!(finished["output"], output);
    assert_eq!(
        finished["tool_calls"],
        json!([{"name": "calculator", "arguments": {"task": task}}])
    );
    assert_eq!(finished["usage"], usage);
    assert_eq!(finished["provider"], "anthropic");
    assert_eq!(finished["attempts"], 1);
    let requests = fake.requests_for(task);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/messages");
    let header = |name: &str| request.headers.get(name).map(String::as_str);
    assert_eq!(header("x-api-key"), Some(FAKE_KEY));
    assert_eq!(header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(header("authorization"), None);
    let tool = |name: &str| {
        json!({
            "name": name,
            "description": format!("The {name} tool"),
            "input_schema": {"type": "object", "properties": {}},
        })
    };
    assert_eq!(
        request.body,
        json!({
            "model": "claude-3-opus-20240229",
            "max_tokens": 1024,
            "system": system,
            "messages": [{"role": "user", "content": task}],
            "tools": [tool("calculator"), tool("web_search")],
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_no_sooner_than_asked_and_then_succeeds() {
    let fake = FakeProvider::start().await;
    let task = "Book a table for two";
    let limited = Behaviour::Status {
        code: 429,
        retry_after: Some(1),
    };
    fake.script(task, vec![limited]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "gpt-4o", "succeeded").await;

    assert_eq!(finished["attempts"], 2);
    assert!(finished["error"].is_null(), "{finished}");
    let requests = fake.requests_for(task);
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    // `started_at` is the first attempt's, so the wait counts.
    assert!(finished["duration_ms"].as_i64().unwrap_or_default() >= 1_000);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_failing_with_500_three_times_fails_the_run_as_unavailable() {
    let fake = FakeProvider::start().await;
    let task = "Translate the manual";
    let failing = Behaviour::Status {
        code: 500,
        retry_after: None,
    };
    fake.script(task, vec![failing; 3]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "claude-3-opus", "failed").await;

    assert_eq!(finished["error"]["code"], "provider_unavailable");
    assert_eq!(finished["attempts"], 3);
    assert!(finished["output"].is_null(), "{finished}");
    assert_eq!(fake.calls_for(task), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_rate_limiting_every_attempt_fails_the_run_as_rate_limited() {
    let fake = FakeProvider::start().await;
    let task = "Call me maybe";
    let limited = Behaviour::Status {
        code: 429,
        retry_after: None,
    };
    fake.script(task, vec![limited; 3]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "gpt-4o", "failed").await;

    assert_eq!(finished["error"]["code"], "provider_rate_limited");
    assert_eq!(finished["attempts"], 3);
    app.stop().await;
}

#[tokio::test]
async fn a_401_fails_the_run_at_once_as_rejected() {
    let fake = FakeProvider::start().await;
    let task = "Use my expired key";
    let refused = Behaviour::Status {
        code: 401,
        retry_after: None,
    };
    fake.script(task, vec![refused]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "gpt-4o", "failed").await;

    assert_eq!(finished["error"]["code"], "provider_rejected");
    let message = finished["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains(FAKE_KEY), "{message}");
    assert_eq!(finished["attempts"], 1);
    assert_eq!(fake.calls_for(task), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_that_never_answers_fails_the_run_with_timeout() {
    let fake = FakeProvider::start().await;
    let task = "Wait forever";
    fake.script(task, vec![Behaviour::Hang; 3]);
    let app = app_calling(&fake, Duration::from_secs(1)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "claude-3-opus", "failed").await;

    assert_eq!(finished["error"]["code"], "timeout");
    assert_eq!(finished["attempts"], 3);
    assert_eq!(fake.calls_for(task), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_reply_is_retried_then_fails_the_run_as_unavailable() {
    let fake = FakeProvider::start().await;
    let task = "Reply in gibberish";
    fake.script(task, vec![Behaviour::Malformed; 3]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "gpt-4o", "failed").await;

    assert_eq!(finished["error"]["code"], "provider_unavailable");
    assert_eq!(finished["attempts"], 3);
    assert_eq!(fake.calls_for(task), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_reply_then_a_good_one_succeeds_on_the_second_attempt() {
    let fake = FakeProvider::start().await;
    let task = "Try again please";
    fake.script(task, vec![Behaviour::Malformed]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, task, "claude-3-opus", "succeeded").await;

    assert_eq!(finished["attempts"], 2);
    assert_eq!(finished["provider"], "anthropic");
    assert_eq!(finished["output"], format!("Fake reply to: {task}"));
    app.stop().await;
}

#[tokio::test]
async fn a_run_cancelled_while_it_waits_to_retry_is_not_tried_again() {
    let fake = FakeProvider::start().await;
    let task = "Back off";
    let limited = Behaviour::Status {
        code: 429,
        retry_after: Some(2),
    };
    fake.script(task, vec![limited]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;
    let id = app.run(&key, "Ada", task).await;
    // The first attempt's job is done and the retry's is waiting.
    eventually(DONE_WITHIN, "the retry was scheduled", || async {
        (job_statuses_of(&app.pool, &id).await == ["Done", "Pending"]).then_some(())
    })
    .await;

    let cancelled = app
        .call(reqwest::Method::POST, &format!("/executions/{id}/cancel"))
        .key(&key)
        .send()
        .await;

    let body = cancelled.expect(202).body.clone();
    assert_eq!(body["status"], "cancelled");
    eventually(DONE_WITHIN, "the retry's job was skipped", || async {
        (job_statuses_of(&app.pool, &id).await == ["Done", "Done"]).then_some(())
    })
    .await;
    assert_eq!(app.execution(&key, &id).await, body);
    assert_eq!(body["attempts"], 1);
    assert_eq!(fake.calls_for(task), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_then_fails_the_run_as_unavailable() {
    let fake = FakeProvider::start().await;
    // A port nothing listens on once this listener is gone.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("address");
    drop(closed);
    let mut adapters = fake_adapters(&fake);
    adapters.openai.base_url = format!("http://{address}/v1");
    let app = TestApp::with(Options {
        worker: Some(fast_worker()),
        adapters,
        ..Options::default()
    })
    .await;
    let key = tenant_with_agent(&app).await;

    let finished = run_until(&app, &key, "Anyone there?", "gpt-4o", "failed").await;

    assert_eq!(finished["error"]["code"], "provider_unavailable");
    assert_eq!(finished["attempts"], 3);
    assert_eq!(finished["provider"], "openai");
    app.stop().await;
}

#[tokio::test]
async fn a_reply_holding_nul_is_stored_with_the_replacement_character_in_its_place() {
    let fake = FakeProvider::start().await;
    let task = "Say something unprintable";
    let reply = Behaviour::Reply("live reply \u{0} with nul".to_owned());
    fake.script(task, vec![reply; 2]);
    let app = app_calling(&fake, Duration::from_secs(5)).await;
    let key = tenant_with_agent(&app).await;

    let openai = run_until(&app, &key, task, "gpt-4o", "succeeded").await;
    let anthropic = run_until(&app, &key, task, "claude-3-opus", "succeeded").await;

    let stored = "live reply \u{FFFD} with nul";
    for finished in [&openai, &anthropic] {
        assert_eq!(finished["output"], stored, "{finished}");
        assert_eq!(
            finished["tool_calls"],
            json!([{"name": "calculator", "arguments": {"text": stored}}])
        );
        assert_eq!(finished["attempts"], 1, "{finished}");
    }
    assert_eq!(fake.calls_for(task), 2);
    app.stop().await;
}
