//! Runs and executions end to end, with the API and (where a test needs
//! one) a worker in this process: submitting, validation, the request
//! snapshot, history and its filters, cancelling, idempotency and models.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::runs::{TERMINAL, eventually, fake_adapters, job_statuses_of, jobs_by_status};
use support::{Options, Reply, TestApp, fast_worker, simulated};
use testkit::fake_provider::{Behaviour, FakeProvider};

/// Long enough for any run of these tests to end.
const DONE_WITHIN: Duration = Duration::from_secs(10);

/// A worker whose simulated provider takes `latency` per reply, so a run is
/// seen running.
async fn app_with_latency(latency: Duration) -> TestApp {
    TestApp::with(Options {
        worker: Some(fast_worker()),
        adapters: models::AdapterConfig {
            simulated_latency: latency,
            ..simulated()
        },
        ..Options::default()
    })
    .await
}

/// `POST /executions/{id}/cancel`.
async fn cancel(app: &TestApp, key: &str, id: &str) -> Reply {
    app.call(Method::POST, &format!("/executions/{id}/cancel"))
        .key(key)
        .send()
        .await
}

/// How many executions the database holds, of every tenant.
async fn executions_recorded(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM executions")
        .fetch_one(&app.pool)
        .await
        .expect("count executions")
}

/// The items of a list reply, checked to be one.
#[track_caller]
fn items(reply: &Reply) -> Vec<Value> {
    reply.expect(200);
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", reply.text))
        .clone()
}

/// The ids of a list reply's items, in order.
#[track_caller]
fn ids(reply: &Reply) -> Vec<String> {
    items(reply)
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Polls an execution until it ends; returns the states seen on the way
/// (each once, in order, `queued` left out) and the execution as it ended.
async fn follow(app: &TestApp, key: &str, id: &str) -> (Vec<String>, Value) {
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + DONE_WITHIN;
    loop {
        let execution = app.execution(key, id).await;
        let status = execution["status"].as_str().unwrap_or_default().to_owned();
        if status != "queued" && seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if TERMINAL.contains(&status.as_str()) {
            return (seen, execution);
        }
        assert!(Instant::now() < deadline, "still {status}: {execution}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[tokio::test]
async fn a_run_goes_from_queued_through_running_to_succeeded() {
    let app = app_with_latency(Duration::from_millis(400)).await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "web_search").await;
    let calculator = app.create_tool(&key, "calculator").await;
    let weather = app.create_tool(&key, "Weather").await;
    let agent = app
        .create_agent(&key, "Ada", &[&search, &calculator, &weather])
        .await;
    let task = "Summarise the  latest\tRust news";

    let submitted = app.submit(&key, "Ada", &json!({"task": task})).await;
    let id = submitted.expect(202).str("id");
    let (seen, finished) = follow(&app, &key, &id).await;

    assert_eq!(
        submitted.header("location"),
        Some(format!("/executions/{id}").as_str())
    );
    let queued = &submitted.body;
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["agent_id"], agent.as_str());
    assert_eq!(queued["agent_name"], "Ada");
    assert_eq!(queued["model"], "gpt-4o");
    assert_eq!(queued["task"], task);
    assert_eq!(queued["attempts"], 0);
    for unset in [
        "provider",
        "output",
        "error",
        "usage",
        "started_at",
        "finished_at",
    ] {
        assert!(
            queued[unset].is_null(),
            "{unset} set while queued: {queued}"
        );
    }
    // The answer said queued; polling saw the rest.
    assert_eq!(seen, ["running", "succeeded"]);
    assert_eq!(
        finished["output"],
        format!("Simulated gpt-4o reply from Ada: {task}")
    );
    // Byte-wise, `W` sorts before every lower-case letter.
    assert_eq!(
        finished["tool_calls"],
        json!([{"name": "Weather", "arguments": {}}])
    );
    let request = app.sent_request(&key, &id).await;
    let system = request["system"].as_str().expect("system");
    let sent_tools: Vec<&Value> = request["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| &tool["name"])
        .collect();
    assert_eq!(sent_tools, ["Weather", "calculator", "web_search"]);
    assert_eq!(
        finished["usage"],
        json!({
            "input_tokens": words(system) + words(task),
            "output_tokens": words(finished["output"].as_str().unwrap_or_default()),
        })
    );
    assert_eq!(finished["attempts"], 1);
    assert_eq!(finished["provider"], "simulated");
    assert!(finished["error"].is_null(), "{finished}");
    let created = finished["created_at"].as_str().expect("created_at");
    let started = finished["started_at"].as_str().expect("started_at");
    let ended = finished["finished_at"].as_str().expect("finished_at");
    // Fixed-width RFC 3339 in UTC sorts as text.
    assert!(created <= started && started <= ended, "{finished}");
    assert!(finished["duration_ms"].as_i64().expect("duration_ms") >= 400);
    app.stop().await;
}

#[tokio::test]
async fn the_request_sent_is_kept_and_an_edit_of_the_agent_changes_no_queued_run() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "web_search").await;
    let calculator = app.create_tool(&key, "calculator").await;
    app.create_agent(&key, "Ada", &[&search, &calculator]).await;
    let first = app.run(&key, "Ada", "Plan a trip").await;
    let second = app.run(&key, "Ada", "Plan a trip").await;
    let before_edit = app.sent_request(&key, &first).await;

    app.put(
        &key,
        "/agents/Ada",
        &json!({"description": "Edited after the run", "tool_ids": []}),
    )
    .await
    .expect(200);
    let third = app.run(&key, "Ada", "Plan a trip").await;

    assert_eq!(before_edit["task"], "Plan a trip");
    assert!(
        before_edit["system"]
            .as_str()
            .is_some_and(|system| system.starts_with("You are Ada")),
        "{before_edit}"
    );
    assert_eq!(
        before_edit["tools"],
        json!([
            {"name": "calculator", "description": "The calculator tool",
             "parameters": {"type": "object", "properties": {}}},
            {"name": "web_search", "description": "The web_search tool",
             "parameters": {"type": "object", "properties": {}}},
        ])
    );
    let mut fields: Vec<&String> = before_edit.as_object().expect("object").keys().collect();
    fields.sort();
    assert_eq!(fields, ["system", "task", "tools"]);
    assert_eq!(app.sent_request(&key, &second).await, before_edit);
    assert_eq!(app.sent_request(&key, &first).await, before_edit);
    let edited = app.sent_request(&key, &third).await;
    assert_eq!(edited["tools"], json!([]));
    assert!(
        edited["system"]
            .as_str()
            .is_some_and(|system| system.contains("Edited after the run")),
        "{edited}"
    );
    let plain = app.execution(&key, &first).await;
    assert!(plain.get("request").is_none(), "{plain}");
    app.stop().await;
}

#[tokio::test]
async fn a_run_without_a_model_uses_gpt_4o_and_any_supported_model_is_accepted() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;

    let default = app.submit(&key, "Ada", &json!({"task": "Hi"})).await;
    let chosen = app
        .submit(
            &key,
            "Ada",
            &json!({"task": "Hi", "model": "claude-3-opus"}),
        )
        .await;

    assert_eq!(default.expect(202).body["model"], "gpt-4o");
    assert_eq!(chosen.expect(202).body["model"], "claude-3-opus");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_model_is_a_422_listing_the_supported_ones() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;

    let unknown = app
        .submit(&key, "Ada", &json!({"task": "Hi", "model": "gpt-5"}))
        .await;
    let not_a_name = app
        .submit(&key, "Ada", &json!({"task": "Hi", "model": ["gpt-4o"]}))
        .await;
    let null = app
        .submit(&key, "Ada", &json!({"task": "Hi", "model": null}))
        .await;

    for reply in [unknown, not_a_name] {
        assert_eq!(reply.invalid_fields(), ["model"]);
        let detail = reply.detail(422);
        for model in ["gpt-4o", "gpt-4-turbo", "claude-3-opus"] {
            assert!(detail.contains(model), "{detail}");
        }
    }
    assert_eq!(null.invalid_fields(), ["model"]);
    app.stop().await;
}

#[tokio::test]
async fn a_task_that_is_missing_empty_or_over_32768_characters_is_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    // Characters are counted, not bytes: each of these is two bytes.
    let longest = "é".repeat(32_768);
    let too_long = "é".repeat(32_769);

    let missing = app.submit(&key, "Ada", &json!({})).await;
    let empty = app.submit(&key, "Ada", &json!({"task": ""})).await;
    let over = app.submit(&key, "Ada", &json!({"task": too_long})).await;
    let at_limit = app.submit(&key, "Ada", &json!({"task": longest})).await;

    for rejected in [missing, empty, over] {
        assert_eq!(rejected.invalid_fields(), ["task"]);
    }
    at_limit.expect(202);
    let listed = app.get(&key, "/executions").await;
    assert_eq!(items(&listed).len(), 1, "a refused run left a trace");
    app.stop().await;
}

#[tokio::test]
async fn a_run_of_an_unknown_agent_or_of_another_tenants_agent_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let theirs = app.create_agent(&other, "Hal", &[]).await;
    let body = json!({"task": "Open the pod bay doors"});

    let unknown_name = app.submit(&key, "Nobody", &body).await;
    let unknown_id = app
        .submit(&key, &uuid::Uuid::now_v7().to_string(), &body)
        .await;
    let their_id = app.submit(&key, &theirs, &body).await;
    let their_name = app.submit(&key, "Hal", &body).await;

    for reply in [unknown_name, unknown_id, their_id, their_name] {
        reply.problem(404);
    }
    assert!(items(&app.get(&other, "/executions").await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_execution_id_that_is_not_a_uuid_or_of_another_tenant_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    app.create_agent(&other, "Hal", &[]).await;
    let theirs = app.run(&other, "Hal", "Sing Daisy").await;

    let not_uuid = app.get(&key, "/executions/not-a-uuid").await;
    let cancel_not_uuid = cancel(&app, &key, "not-a-uuid").await;
    let their_execution = app.get(&key, &format!("/executions/{theirs}")).await;
    let cancel_theirs = cancel(&app, &key, &theirs).await;
    let listed = app.get(&key, "/executions").await;

    for reply in [not_uuid, cancel_not_uuid, their_execution, cancel_theirs] {
        reply.problem(404);
    }
    assert!(items(&listed).is_empty());
    assert_eq!(app.execution(&other, &theirs).await["status"], "queued");
    app.stop().await;
}

#[tokio::test]
async fn deleting_an_agent_cancels_its_queued_runs_and_keeps_its_history() {
    // No worker: the runs stay queued until the agent goes.
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let ada = app.create_agent(&key, "Ada", &[]).await;
    app.create_agent(&key, "Bob", &[]).await;
    let first = app.run(&key, "Ada", "One").await;
    let second = app.run(&key, "Ada", "Two").await;
    let bobs = app.run(&key, "Bob", "Three").await;

    app.delete(&key, "/agents/Ada").await.expect(204);

    for id in [&first, &second] {
        let execution = app.execution(&key, id).await;
        assert_eq!(execution["status"], "cancelled", "{execution}");
        assert_eq!(execution["error"]["code"], "cancelled", "{execution}");
        assert!(execution["finished_at"].is_string(), "{execution}");
        assert_eq!(execution["agent_name"], "Ada");
    }
    assert_eq!(app.execution(&key, &bobs).await["status"], "queued");
    let by_id = app.get(&key, &format!("/executions?agent_id={ada}")).await;
    let by_name = app.get(&key, "/executions?agent_name=Ada").await;
    assert_eq!(ids(&by_id), [second.clone(), first.clone()]);
    assert_eq!(ids(&by_name), [second, first]);
    app.stop().await;
}

#[tokio::test]
async fn a_running_run_of_a_deleted_agent_finishes_from_its_snapshot() {
    let app = app_with_latency(Duration::from_millis(800)).await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let id = app.run(&key, "Ada", "Keep going").await;
    app.wait_status(&key, &id, "running", DONE_WITHIN).await;

    app.delete(&key, "/agents/Ada").await.expect(204);

    let finished = app.wait_status(&key, &id, "succeeded", DONE_WITHIN).await;
    assert_eq!(
        finished["output"],
        "Simulated gpt-4o reply from Ada: Keep going"
    );
    app.stop().await;
}

#[tokio::test]
async fn executions_are_listed_newest_first_filtered_and_paged() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let ada = app.create_agent(&key, "Ada", &[]).await;
    app.create_agent(&key, "Bob", &[]).await;
    let mut submitted = Vec::new();
    for (agent, task) in [
        ("Ada", "1"),
        ("Bob", "2"),
        ("Ada", "3"),
        ("Bob", "4"),
        ("Ada", "5"),
    ] {
        submitted.push(app.run(&key, agent, task).await);
    }
    cancel(&app, &key, &submitted[4]).await.expect(202);
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();

    let all = app.get(&key, "/executions").await;
    let of_ada = app.get(&key, &format!("/executions?agent_id={ada}")).await;
    let of_bob = app.get(&key, "/executions?agent_name=Bob").await;
    let cancelled = app.get(&key, "/executions?status=cancelled").await;
    let succeeded = app.get(&key, "/executions?status=succeeded").await;
    let no_agent = app
        .get(
            &key,
            &format!("/executions?agent_id={}", uuid::Uuid::now_v7()),
        )
        .await;
    let bad_status = app.get(&key, "/executions?status=done").await;
    let mut pages = Vec::new();
    for page in 1..=3 {
        pages.push(
            app.get(&key, &format!("/executions?page={page}&page_size=2"))
                .await,
        );
    }

    assert_eq!(ids(&all), newest_first);
    assert_eq!(all.body["has_more"], false);
    assert_eq!(
        ids(&of_ada),
        [
            submitted[4].clone(),
            submitted[2].clone(),
            submitted[0].clone()
        ]
    );
    assert_eq!(ids(&of_bob), [submitted[3].clone(), submitted[1].clone()]);
    assert_eq!(ids(&cancelled), [submitted[4].clone()]);
    assert!(items(&succeeded).is_empty());
    assert!(items(&no_agent).is_empty());
    assert_eq!(bad_status.invalid_fields(), ["status"]);
    let concatenated: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(concatenated, newest_first);
    let more: Vec<&Value> = pages.iter().map(|page| &page.body["has_more"]).collect();
    assert_eq!(more, [&json!(true), &json!(true), &json!(false)]);
    assert_eq!(pages[1].body["page"], 2);
    assert_eq!(pages[1].body["page_size"], 2);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_run_answers_202_with_it_cancelled() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let id = app.run(&key, "Ada", "Wait for me").await;

    let cancelled = cancel(&app, &key, &id).await;
    let again = cancel(&app, &key, &id).await;

    let body = &cancelled.expect(202).body;
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["error"]["code"], "cancelled");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["finished_at"].is_string(), "{body}");
    assert_eq!(&app.execution(&key, &id).await, body);
    again.problem(409);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_running_run_stops_it_within_a_second_and_its_late_result_changes_nothing() {
    let fake = FakeProvider::start().await;
    let task = "Write a very long essay";
    let reply_delay = Duration::from_secs(3);
    fake.script(task, vec![Behaviour::Delay(reply_delay)]);
    let worker = worker::Config {
        run_timeout: Duration::from_secs(30),
        ..fast_worker()
    };
    let app = TestApp::with(Options {
        worker: Some(worker),
        adapters: fake_adapters(&fake),
        ..Options::default()
    })
    .await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let id = app.run(&key, "Ada", task).await;
    app.wait_status(&key, &id, "running", DONE_WITHIN).await;
    eventually(DONE_WITHIN, "the provider call began", || async {
        (fake.calls_for(task) == 1).then_some(())
    })
    .await;
    let called_at = fake.requests_for(task)[0].received_at;

    let cancelled = cancel(&app, &key, &id).await;
    let cancelled_at = Instant::now();

    let body = cancelled.expect(202).body.clone();
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["error"]["code"], "cancelled");
    // The worker marks the job done only once it has let go of the run.
    eventually(
        Duration::from_secs(1),
        "the worker let go of the run",
        || async { (job_statuses_of(&app.pool, &id).await == ["Done"]).then_some(()) },
    )
    .await;
    assert!(cancelled_at.elapsed() <= Duration::from_secs(1));
    // A negative check needs a deadline: the time by which the provider's
    // reply would have arrived, had the call not been aborted.
    let late = (called_at + reply_delay + Duration::from_millis(500))
        .saturating_duration_since(Instant::now());
    tokio::time::sleep(late).await;
    assert_eq!(app.execution(&key, &id).await, body);
    assert_eq!(fake.calls_for(task), 1);
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_finished_run_is_a_409() {
    let app = TestApp::with_worker().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let id = app.run(&key, "Ada", "Quick one").await;
    let finished = app.wait_status(&key, &id, "succeeded", DONE_WITHIN).await;

    let refused = cancel(&app, &key, &id).await;

    assert!(
        refused.detail(409).contains("succeeded"),
        "{}",
        refused.text
    );
    assert_eq!(app.execution(&key, &id).await, finished);
    app.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_twice_creates_one_execution_and_replays_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let submit = |body: Value| {
        app.call(Method::POST, "/agents/Ada/run")
            .key(&key)
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };

    let first = submit(json!({"task": "Ship it"})).await;
    // The same body once defaults are applied.
    let second = submit(json!({"task": "Ship it", "model": "gpt-4o"})).await;

    let id = first.expect(202).str("id");
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(second.expect(202).str("id"), id);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        second.header("location"),
        Some(format!("/executions/{id}").as_str())
    );
    assert_eq!(items(&app.get(&key, "/executions").await).len(), 1);
    assert_eq!(jobs_by_status(&app.pool).await.values().sum::<i64>(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_or_agent_is_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    app.create_agent(&key, "Bob", &[]).await;
    let submit = |agent: &str, body: Value| {
        app.call(Method::POST, &format!("/agents/{agent}/run"))
            .key(&key)
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };
    submit("Ada", json!({"task": "Ship it"})).await.expect(202);

    let other_task = submit("Ada", json!({"task": "Ship it now"})).await;
    let other_model = submit("Ada", json!({"task": "Ship it", "model": "gpt-4-turbo"})).await;
    let other_agent = submit("Bob", json!({"task": "Ship it"})).await;

    for reply in [other_task, other_model, other_agent] {
        assert_eq!(reply.invalid_fields(), ["Idempotency-Key"]);
    }
    assert_eq!(items(&app.get(&key, "/executions").await).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_submissions_with_one_idempotency_key_create_exactly_one_execution() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let mut twins = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let call = app
            .call(Method::POST, "/agents/Ada/run")
            .key(&key)
            .header("idempotency-key", "same-click")
            .json(&json!({"task": "Pay the invoice"}));
        twins.spawn(call.send());
    }

    let replies = twins.join_all().await;

    let ids: Vec<String> = replies
        .iter()
        .map(|reply| reply.expect(202).str("id"))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let created = replies
        .iter()
        .filter(|reply| reply.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(created, 1);
    assert_eq!(executions_recorded(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_over_255_characters_is_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let submit = |idempotency_key: String| {
        app.call(Method::POST, "/agents/Ada/run")
            .key(&key)
            .header("idempotency-key", &idempotency_key)
            .json(&json!({"task": "Hi"}))
            .send()
    };

    let too_long = submit("k".repeat(256)).await;
    let longest = submit("k".repeat(255)).await;

    assert_eq!(too_long.invalid_fields(), ["Idempotency-Key"]);
    longest.expect(202);
    app.stop().await;
}

#[tokio::test]
async fn models_are_listed_as_simulated_without_keys() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let listed = app.get(&key, "/models").await;

    listed.expect(200);
    assert_eq!(
        listed.body,
        json!({"items": [
            {"id": "gpt-4o", "provider": "openai", "mode": "simulated"},
            {"id": "gpt-4-turbo", "provider": "openai", "mode": "simulated"},
            {"id": "claude-3-opus", "provider": "anthropic", "mode": "simulated"},
        ]})
    );
    app.stop().await;
}

#[tokio::test]
async fn models_of_a_provider_with_a_key_are_listed_as_live() {
    let mut adapters = simulated();
    adapters.openai.api_key = Some("sk-test".into());
    let app = TestApp::with(Options {
        adapters,
        ..Options::default()
    })
    .await;
    let key = app.tenant("acme").await;

    let listed = app.get(&key, "/models").await;

    listed.expect(200);
    assert_eq!(
        listed.body,
        json!({"items": [
            {"id": "gpt-4o", "provider": "openai", "mode": "live"},
            {"id": "gpt-4-turbo", "provider": "openai", "mode": "live"},
            {"id": "claude-3-opus", "provider": "anthropic", "mode": "simulated"},
        ]})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replay_shows_the_execution_as_it_is_now_and_keys_are_per_tenant() {
    let app = TestApp::with_worker().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    for key in [&acme, &globex] {
        app.create_agent(key, "Ada", &[]).await;
    }
    let submit = |key: &str| {
        app.call(Method::POST, "/agents/Ada/run")
            .key(key)
            .header("idempotency-key", "nightly-report")
            .json(&json!({"task": "Write the report"}))
            .send()
    };
    let first = submit(&acme).await.expect(202).str("id");
    app.wait_status(&acme, &first, "succeeded", DONE_WITHIN)
        .await;

    let replayed = submit(&acme).await;
    let elsewhere = submit(&globex).await;

    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, app.execution(&acme, &first).await);
    assert_eq!(replayed.body["status"], "succeeded");
    assert_eq!(elsewhere.header("idempotent-replayed"), None);
    assert_ne!(elsewhere.expect(202).str("id"), first);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_24_hours() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let submit = |task: &str| {
        app.call(Method::POST, "/agents/Ada/run")
            .key(&key)
            .header("idempotency-key", "daily")
            .json(&json!({"task": task}))
            .send()
    };
    let yesterday = submit("Monday's digest").await.expect(202).str("id");
    let kept: bool = sqlx::query_scalar(
        "SELECT expires_at BETWEEN now() + interval '23 hours 59 minutes' \
         AND now() + interval '24 hours 1 minute' FROM idempotency_keys",
    )
    .fetch_one(&app.pool)
    .await
    .expect("read the key");
    // A day passes.
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("age the key");

    let today = submit("Tuesday's digest").await;
    let today_again = submit("Tuesday's digest").await;
    let yesterday_again = submit("Monday's digest").await;

    assert!(kept, "the key is not kept for 24 hours");
    let id = today.expect(202).str("id");
    assert_ne!(id, yesterday);
    assert_eq!(today.header("idempotent-replayed"), None);
    assert_eq!(today_again.str("id"), id);
    assert_eq!(today_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(yesterday_again.invalid_fields(), ["Idempotency-Key"]);
    app.stop().await;
}

#[tokio::test]
async fn query_parameters_on_run_cancel_and_models_which_take_none_are_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    let id = app.run(&key, "Ada", "count").await;

    let run = app
        .post(&key, "/agents/Ada/run?priority=high", &json!({"task": "t"}))
        .await;
    let cancel = app
        .post(
            &key,
            &format!("/executions/{id}/cancel?force=1"),
            &json!({}),
        )
        .await;
    let models = app.get(&key, "/models?verbose=1").await;

    assert_eq!(run.invalid_fields(), ["priority"]);
    assert_eq!(cancel.invalid_fields(), ["force"]);
    assert_eq!(models.invalid_fields(), ["verbose"]);
    app.stop().await;
}

#[tokio::test]
async fn a_reply_the_database_refuses_fails_its_run_as_internal_and_spares_its_neighbours() {
    let app = TestApp::with_worker().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Ada", &[]).await;
    // Stands in for any result PostgreSQL refuses for what it holds.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_reply() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'this reply cannot be stored'; END $$; \
         CREATE TRIGGER refuse_reply BEFORE UPDATE ON executions FOR EACH ROW \
             WHEN (NEW.status = 'succeeded' AND NEW.task = 'Refuse my reply') \
             EXECUTE FUNCTION refuse_reply();",
    )
    .execute(&app.pool)
    .await
    .expect("install the refusal");

    let refused = app.run(&key, "Ada", "Refuse my reply").await;
    let spared = app.run(&key, "Ada", "Keep my reply").await;

    let failed = app.wait_status(&key, &refused, "failed", DONE_WITHIN).await;
    assert_eq!(
        failed["error"],
        json!({"code": "internal", "message": "The model's reply could not be stored."})
    );
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(failed["output"].is_null(), "{failed}");
    app.wait_status(&key, &spared, "succeeded", DONE_WITHIN)
        .await;
    for id in [&refused, &spared] {
        assert_eq!(job_statuses_of(&app.pool, id).await, ["Done"]);
    }
    app.stop().await;
}

/// A run for `tenant` of no particular agent, to hand to the API's
/// recorder directly.
fn new_run(tenant: uuid::Uuid, task: &str) -> store::executions::NewExecution {
    store::executions::NewExecution {
        tenant,
        agent_id: uuid::Uuid::now_v7(),
        agent_name: "Ada".to_owned(),
        model: domain::Model::default(),
        prompt: domain::Prompt::new("Ada", "a tester", "Tests.", "", Vec::new(), task),
        request_id: None,
        idempotency: None,
    }
}

/// The id of the tenant `acme`.
async fn acme_id(app: &TestApp) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM tenants WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .expect("the tenant")
}

/// Submits `tasks` side by side through a fresh recorder. On the test's
/// one-threaded runtime all are sent before the recorder wakes, so they
/// reach it as one batch.
async fn submit_together(
    app: &TestApp,
    tasks: &[&str],
) -> Vec<Result<store::executions::Submission, store::StoreError>> {
    let tenant = acme_id(app).await;
    let recorder = api::submissions::Submissions::start(app.pool.clone());
    let submitted = tasks
        .iter()
        .map(|task| recorder.submit(new_run(tenant, task)));
    futures::future::join_all(submitted).await
}

/// The execution of an outcome that must have created one.
fn created(
    outcome: &Result<store::executions::Submission, store::StoreError>,
) -> &domain::Execution {
    match outcome {
        Ok(store::executions::Submission::Created(execution)) => execution,
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn runs_submitted_together_share_one_commit_and_each_gets_its_own_job() {
    let app = TestApp::start().await;
    app.tenant("acme").await;

    let outcomes = submit_together(&app, &["one", "two", "three"]).await;

    let executions: Vec<&domain::Execution> = outcomes.iter().map(created).collect();
    let tasks: Vec<&str> = executions.iter().map(|e| e.task.as_str()).collect();
    assert_eq!(tasks, ["one", "two", "three"]);
    // now() is the transaction's start: one value means one transaction.
    assert!(
        executions
            .iter()
            .all(|e| e.created_at == executions[0].created_at)
    );
    for execution in executions {
        let jobs = job_statuses_of(&app.pool, &execution.id.to_string()).await;
        assert_eq!(jobs, ["Pending"], "{}", execution.task);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_run_the_database_refuses_does_not_sink_the_runs_submitted_with_it() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.task = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON executions \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&app.pool)
    .await
    .expect("install the refusal");

    let outcomes = submit_together(&app, &["one", "poison", "two"]).await;

    assert_eq!(created(&outcomes[0]).task, "one");
    assert!(outcomes[1].is_err(), "{:?}", outcomes[1]);
    assert_eq!(created(&outcomes[2]).task, "two");
    assert_eq!(executions_recorded(&app).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_run_whose_request_was_given_up_before_it_was_recorded_is_not_recorded() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let tenant = acme_id(&app).await;
    let recorder = api::submissions::Submissions::start(app.pool.clone());

    // Polled once, it is handed to the recorder; dropped, its client is gone.
    let given_up = recorder.submit(new_run(tenant, "given up"));
    assert!(futures::FutureExt::now_or_never(given_up).is_none());
    let kept = recorder.submit(new_run(tenant, "kept")).await;

    assert_eq!(created(&kept).task, "kept");
    let tasks: Vec<String> = sqlx::query_scalar("SELECT task FROM executions")
        .fetch_all(&app.pool)
        .await
        .expect("read the tasks");
    assert_eq!(tasks, ["kept"]);
    app.stop().await;
}
