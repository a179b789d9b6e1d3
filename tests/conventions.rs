//! Conventions every route follows: request ids, problem documents, routing
//! (unknown paths and methods, trailing slashes), timestamps and ids, and
//! how long a connection may hold the server.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Options, RawConnection, Reply, TestApp};

/// A request cut short after its first header: a slow or vanished client.
const HALF_SENT: &str = "GET /tools HTTP/1.1\r\nHost: x\r\n";

/// The API with `timeouts` changed from the defaults.
async fn app_with(timeouts: api::Timeouts) -> TestApp {
    TestApp::with(Options {
        timeouts,
        ..Options::default()
    })
    .await
}

/// Asserts `at` is RFC 3339 in UTC with milliseconds: `2026-12-03T15:56:44.921Z`.
#[track_caller]
fn assert_timestamp(at: &Value) {
    let text = at
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {at}"));
    let bytes = text.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    let shape_holds = bytes.len() == 24
        && digits.iter().all(|&at| bytes[at].is_ascii_digit())
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ]
        .iter()
        .all(|&(at, separator)| bytes[at] == separator);
    assert!(shape_holds, "not RFC 3339 UTC with milliseconds: {text}");
}

/// Asserts `id` is a UUID of version 7, in its hyphenated form.
#[track_caller]
fn assert_uuid_v7(id: &Value) {
    let text = id.as_str().unwrap_or_else(|| panic!("not an id: {id}"));
    let parsed = uuid::Uuid::parse_str(text).unwrap_or_else(|_| panic!("not a UUID: {text}"));
    assert_eq!(parsed.get_version_num(), 7, "{text}");
    assert_eq!(parsed.hyphenated().to_string(), text);
}

/// A reply's `x-request-id`, which every response must carry.
#[track_caller]
fn request_id(reply: &Reply) -> String {
    let id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on {} {}", reply.status, reply.path));
    assert!(!id.is_empty());
    id.to_owned()
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let replies = [
        app.get(&key, "/tools").await,
        app.post(
            &key,
            "/tools",
            &json!({"name": "search", "description": "d"}),
        )
        .await,
        app.delete(&key, "/tools/search").await,
        app.get(&key, "/tools/nothing").await,
        app.post(&key, "/tools", &json!({})).await,
        app.call(Method::GET, "/tools").send().await,
        app.call(Method::PATCH, "/tools").key(&key).send().await,
        app.call(Method::GET, "/nothing").send().await,
        app.call(Method::GET, "/healthz").send().await,
        app.call(Method::GET, "/openapi.json").send().await,
        app.call(Method::GET, "/docs").send().await,
    ];

    let ids: Vec<String> = replies.iter().map(request_id).collect();
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_echoed() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let found = app
        .call(Method::GET, "/tools")
        .key(&key)
        .header("x-request-id", "trace-1234")
        .send()
        .await;
    let refused = app
        .call(Method::GET, "/agents")
        .header("x-request-id", "trace-5678")
        .send()
        .await;

    assert_eq!(found.expect(200).header("x-request-id"), Some("trace-1234"));
    assert_eq!(
        refused.expect(401).header("x-request-id"),
        Some("trace-5678")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_of_up_to_1024_printable_characters_is_echoed() {
    let app = TestApp::start().await;
    let longest = "a-Z_0.9~".repeat(128);

    for sent in [longest.as_str(), "trace 1234", "x"] {
        let reply = app
            .call(Method::GET, "/healthz")
            .header("x-request-id", sent)
            .send()
            .await;

        assert_eq!(reply.expect(200).header("x-request-id"), Some(sent));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_too_long_or_not_printable_ascii_is_replaced_by_a_fresh_one() {
    let app = TestApp::start().await;
    let refused = ["x".repeat(1025), "trace\t1234".to_owned(), "\t".to_owned()];

    for sent in refused {
        let reply = app
            .call(Method::GET, "/healthz")
            .header("x-request-id", &sent)
            .send()
            .await;

        let echoed = request_id(&reply);
        assert_ne!(echoed, sent);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_sent_twice_is_replaced_by_a_fresh_one() {
    let app = TestApp::start().await;

    let reply = app
        .call(Method::GET, "/healthz")
        .header("x-request-id", "first")
        .header("x-request-id", "second")
        .send()
        .await;

    let ids: Vec<_> = reply.headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        uuid::Uuid::parse_str(ids[0].to_str().unwrap()).is_ok(),
        "{ids:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_error_is_a_problem_document_whose_instance_is_the_path() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let reply = app.get(&key, "/tools?agent_name=nothing").await;

    let problem = reply.problem(404);
    assert_eq!(problem["instance"], "/tools");
    assert_eq!(problem["title"], "Not Found");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|kind| !kind.is_empty())
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("\"nothing\""),
        "{problem}"
    );
    assert!(problem.get("errors").is_none(), "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn a_422_lists_each_offending_field_with_a_message() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let reply = app
        .post(&key, "/tools", &json!({"name": "", "description": "d"}))
        .await;

    let problem = reply.problem(422);
    assert_eq!(problem["title"], "Unprocessable Entity");
    let errors = problem["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["field"], "name");
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty())
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("name"),
        "{problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_with_or_without_a_key() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let keyless = app.call(Method::GET, "/nothing/here").send().await;
    let keyed = app.get(&key, "/tools/search/more").await;
    let versioned = app.get(&key, "/v1/tools").await;

    for reply in [keyless, keyed, versioned] {
        reply.problem(404);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    let wrong = [
        (Method::PATCH, "/tools"),
        (Method::DELETE, "/tools"),
        (Method::POST, "/tools/search"),
        (Method::PATCH, "/agents/Researcher"),
        (Method::PUT, "/agents"),
        (Method::POST, "/healthz"),
    ];

    for (method, path) in wrong {
        let reply = app.call(method.clone(), path).key(&key).send().await;

        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text);
        reply.problem(405);
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "{method} {path}: Allow {allow:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_even_without_a_key() {
    let app = TestApp::start().await;

    let tools = app.call(Method::PATCH, "/tools").send().await;
    let agent = app.call(Method::POST, "/agents/Researcher").send().await;

    tools.problem(405);
    agent.problem(405);
    app.stop().await;
}

#[tokio::test]
async fn a_trailing_slash_gets_the_same_answer_without_a_redirect() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    let paths = [
        "/tools",
        "/tools/search",
        "/tools/nothing",
        "/agents",
        "/healthz",
        "/openapi.json",
        "/redoc",
        "/nothing",
    ];

    for path in paths {
        let bare = app.get(&key, path).await;
        let slashed = app.get(&key, &format!("{path}/")).await;

        assert_eq!(slashed.status, bare.status, "{path}/: {}", slashed.text);
        assert_eq!(slashed.text, bare.text, "{path}/");
        assert_eq!(slashed.header("location"), None, "{path}/");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_trailing_slash_works_for_writes_too() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let created = app
        .post(
            &key,
            "/tools/",
            &json!({"name": "search", "description": "d"}),
        )
        .await;
    let updated = app
        .put(&key, "/tools/search/", &json!({"description": "e"}))
        .await;
    let deleted = app.delete(&key, "/tools/search/").await;

    created.expect(201);
    assert_eq!(updated.expect(200).str("description"), "e");
    deleted.expect(204);
    app.stop().await;
}

#[tokio::test]
async fn timestamps_are_rfc_3339_utc_with_milliseconds() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let tool = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&tool]).await;

    let tool = app.get(&key, "/tools/search").await;
    let agent = app.get(&key, "/agents/Researcher").await;

    for at in ["created_at", "updated_at"] {
        assert_timestamp(&tool.body[at]);
        assert_timestamp(&agent.body[at]);
        assert_timestamp(&agent.body["tools"][0][at]);
    }
    assert_eq!(tool.body["created_at"], tool.body["updated_at"]);
    app.stop().await;
}

#[tokio::test]
async fn ids_are_uuid_v7_and_sort_by_creation() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let first = app.create_tool(&key, "search").await;
    let second = app.create_tool(&key, "fetch").await;
    let agent = app.create_agent(&key, "Researcher", &[&first]).await;

    for id in [&first, &second, &agent] {
        assert_uuid_v7(&json!(id));
    }
    assert!(first < second, "{first} then {second}");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_more_is_closed_after_the_idle_timeout() {
    let app = app_with(api::Timeouts {
        idle: Duration::from_secs(1),
        ..api::Timeouts::default()
    })
    .await;

    let mut connection = RawConnection::open(app.addr, HALF_SENT).await;
    let closed = connection.closed_within(Duration::from_secs(5)).await;

    assert!(closed, "the half-sent request still holds its connection");
    app.stop().await;
}

#[tokio::test]
async fn stopping_waits_for_a_half_sent_request_only_for_the_shutdown_grace() {
    let app = app_with(api::Timeouts {
        shutdown_grace: Duration::from_secs(1),
        ..api::Timeouts::default()
    })
    .await;
    let _connection = RawConnection::open(app.addr, HALF_SENT).await;
    // Let the server accept it and start reading the request.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopped = app.stop().await;

    assert!(stopped, "the API did not stop");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stopping_lets_an_in_flight_request_finish() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let request = format!(
        "POST /tools HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    );
    let mut connection = RawConnection::open(app.addr, &request).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    connection
        .send(r#"{"name": "search", "description": "d"}  "#)
        .await;
    let reply = connection.reply(Duration::from_secs(5)).await;

    let reply = reply.expect("an answer to the request begun before the stop");
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(stopping.await.expect("stop"), "the API did not stop");
}
