//! What a request carries: strict JSON bodies, U+0000 anywhere, and the
//! order in which the checks answer when several would fail.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Options, RawConnection, TestApp};

/// A tool body that is valid in every way.
fn tool() -> Value {
    json!({"name": "search", "description": "Searches"})
}

/// A body just over the 1 MiB limit, valid JSON apart from its size.
fn over_a_mebibyte() -> String {
    let description = "x".repeat(1024 * 1024);
    json!({"name": "search", "description": description}).to_string()
}

#[tokio::test]
async fn an_unknown_body_field_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let mut body = tool();
    body["colour"] = json!("blue");

    let created = app.post(&key, "/tools", &body).await;
    let updated = app
        .put(&key, "/tools/search", &json!({"colour": "blue"}))
        .await;

    assert_eq!(created.invalid_fields(), ["colour"]);
    assert!(created.detail(422).contains("colour"), "{}", created.text);
    assert_eq!(updated.invalid_fields(), ["colour"]);
    app.stop().await;
}

#[tokio::test]
async fn a_field_given_twice_in_a_body_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "existing").await;
    // A JSON value would keep only the last of the two: send the text itself.
    let twice = r#"{"name": "search", "description": "d", "name": "find"}"#;

    let created = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("application/json", twice)
        .send()
        .await;
    let updated = app
        .call(Method::PUT, "/tools/existing")
        .key(&key)
        .raw(
            "application/json",
            r#"{"description": "a", "description": "b"}"#,
        )
        .send()
        .await;

    assert_eq!(created.invalid_fields(), ["name"]);
    assert_eq!(updated.invalid_fields(), ["description"]);
    assert_eq!(app.get(&key, "/tools").await.names(), ["existing"]);
    app.stop().await;
}

#[tokio::test]
async fn a_query_parameter_on_a_route_that_takes_none_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[]).await;
    let agent = json!({"name": "Writer", "role": "r", "description": "d"});
    let routes = [
        (
            Method::POST,
            "/tools",
            json!({"name": "fetch", "description": "d"}),
        ),
        (Method::GET, "/tools/search", json!({})),
        (Method::PUT, "/tools/search", json!({"description": "e"})),
        (Method::DELETE, "/tools/search", json!({})),
        (Method::POST, "/agents", agent),
        (Method::GET, "/agents/Researcher", json!({})),
        (Method::PUT, "/agents/Researcher", json!({"role": "Writer"})),
        (Method::DELETE, "/agents/Researcher", json!({})),
    ];

    for (method, path, body) in routes {
        let reply = app
            .call(method.clone(), &format!("{path}?verbose=1"))
            .key(&key)
            .json(&body)
            .send()
            .await;

        assert_eq!(reply.invalid_fields(), ["verbose"], "{method} {path}");
    }
    let tool = app.get(&key, "/tools/search").await;
    assert_eq!(tool.expect(200).str("description"), "The search tool");
    assert_eq!(app.get(&key, "/agents").await.names(), ["Researcher"]);
    assert_eq!(app.get(&key, "/tools").await.names(), ["search"]);
    app.stop().await;
}

#[tokio::test]
async fn a_query_parameter_of_a_body_route_is_checked_after_the_body_is_read() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let untyped = app
        .call(Method::POST, "/tools?verbose=1")
        .key(&key)
        .raw("text/plain", tool().to_string())
        .send()
        .await;
    let malformed = app
        .call(Method::POST, "/agents?verbose=1")
        .key(&key)
        .raw("application/json", "{")
        .send()
        .await;

    untyped.problem(415);
    malformed.problem(400);
    app.stop().await;
}

#[tokio::test]
async fn tenant_id_in_a_body_is_a_422_saying_the_key_decides_the_tenant() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let body = json!({
        "name": "Researcher",
        "role": "r",
        "description": "d",
        "tenant_id": uuid::Uuid::now_v7(),
    });

    let reply = app.post(&key, "/agents", &body).await;

    assert_eq!(reply.invalid_fields(), ["tenant_id"]);
    assert!(reply.detail(422).contains("X-API-Key"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_field_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let cases = [
        ("/tools", json!({"description": "d"}), "name"),
        ("/tools", json!({"name": "search"}), "description"),
        (
            "/agents",
            json!({"name": "Researcher", "description": "d"}),
            "role",
        ),
        ("/agents", json!({"role": "r", "description": "d"}), "name"),
    ];

    for (path, body, field) in cases {
        let reply = app.post(&key, path, &body).await;

        assert_eq!(reply.invalid_fields(), [field], "{path} {body}");
        assert!(reply.detail(422).contains("required"), "{}", reply.text);
    }
    app.stop().await;
}

#[tokio::test]
async fn null_for_any_field_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "existing").await;
    app.create_agent(&key, "Existing", &[]).await;
    let agent = json!({"name": "Researcher", "role": "r", "description": "d"});
    // The advice differs: a required field needs a value, an optional one
    // is better left out.
    let (required, optional) = ("it is required", "leave the field out");
    let cases = [
        (Method::POST, "/tools", tool(), "name", required),
        (Method::POST, "/tools", tool(), "parameters", optional),
        (
            Method::PUT,
            "/tools/existing",
            json!({}),
            "description",
            optional,
        ),
        (
            Method::PUT,
            "/tools/existing",
            json!({}),
            "parameters",
            optional,
        ),
        (Method::POST, "/agents", agent.clone(), "role", required),
        (
            Method::POST,
            "/agents",
            agent.clone(),
            "instructions",
            optional,
        ),
        (Method::POST, "/agents", agent, "tool_ids", optional),
        (Method::PUT, "/agents/Existing", json!({}), "name", optional),
        (
            Method::PUT,
            "/agents/Existing",
            json!({}),
            "tool_ids",
            optional,
        ),
    ];

    for (method, path, mut body, field, advice) in cases {
        body[field] = Value::Null;

        let reply = app
            .call(method.clone(), path)
            .key(&key)
            .json(&body)
            .send()
            .await;

        assert_eq!(reply.invalid_fields(), [field], "{method} {path} {body}");
        let detail = reply.detail(422);
        assert!(detail.contains("null"), "{}", reply.text);
        assert!(detail.contains(advice), "{method} {path}: {detail}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "existing").await;

    for body in ["[]", "\"search\"", "42", "null", "true"] {
        let created = app
            .call(Method::POST, "/tools")
            .key(&key)
            .raw("application/json", body)
            .send()
            .await;
        let updated = app
            .call(Method::PUT, "/tools/existing")
            .key(&key)
            .raw("application/json", body)
            .send()
            .await;

        assert_eq!(created.invalid_fields(), ["body"], "{body}");
        assert_eq!(updated.invalid_fields(), ["body"], "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let reply = app
        .post(
            &key,
            "/tools",
            &json!({"name": "search", "description": 42}),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["description"]);
    assert!(reply.detail(422).contains("string"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn nul_in_a_body_is_a_422_naming_the_field() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let parameters = json!({"type": "object", "description": "a\u{0}b"});
    let cases = [
        (
            "/tools",
            json!({"name": "sea\u{0}rch", "description": "d"}),
            "name",
        ),
        (
            "/tools",
            json!({"name": "search", "description": "d\u{0}"}),
            "description",
        ),
        (
            "/tools",
            json!({"name": "search", "description": "d", "parameters": parameters}),
            "parameters",
        ),
        (
            "/agents",
            json!({"name": "R\u{0}", "role": "r", "description": "d"}),
            "name",
        ),
        (
            "/agents",
            json!({"name": "R", "role": "\u{0}", "description": "d"}),
            "role",
        ),
        (
            "/agents",
            json!({"name": "R", "role": "r", "description": "d", "instructions": "\u{0}"}),
            "instructions",
        ),
    ];

    for (path, body, field) in cases {
        let reply = app.post(&key, path, &body).await;

        assert_eq!(reply.invalid_fields(), [field], "{path} {body}");
    }
    assert!(app.get(&key, "/tools").await.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn nul_in_a_query_is_a_422_naming_the_parameter() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let tools = app.get(&key, "/tools?name=a%00b").await;
    let agents = app.get(&key, "/agents?tool_name=%00").await;

    assert_eq!(tools.invalid_fields(), ["name"]);
    assert_eq!(agents.invalid_fields(), ["tool_name"]);
    app.stop().await;
}

#[tokio::test]
async fn nul_in_a_path_is_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let replies = [
        app.get(&key, "/tools/a%00b").await,
        app.put(&key, "/tools/a%00b", &json!({})).await,
        app.delete(&key, "/agents/%00").await,
        app.get(&key, "/agents/R%00").await,
    ];

    for reply in replies {
        assert_eq!(reply.invalid_fields(), ["ref"], "{}", reply.path);
    }
    let execution = app.get(&key, "/executions/a%00b").await;
    assert_eq!(execution.invalid_fields(), ["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_path_that_names_nothing_is_reported_after_the_body_and_query() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let raw = |method, path, content_type, body| {
        app.call(method, path)
            .key(&key)
            .raw(content_type, body)
            .send()
    };

    let not_json = raw(Method::PUT, "/tools/a%00b", "text/plain", "x").await;
    let nul_then_broken = raw(Method::PUT, "/tools/a%00b", "application/json", "{").await;
    let latin1_then_broken = raw(Method::PUT, "/tools/%FF", "application/json", "{").await;
    let latin1_then_unknown = raw(
        Method::POST,
        "/agents/%FF/run",
        "application/json",
        r#"{"task": "t", "bogus": 1}"#,
    )
    .await;
    let latin1_with_query = app.get(&key, "/executions/%FF?bogus=1").await;
    let latin1_alone = app.get(&key, "/tools/%FF").await;

    not_json.problem(415);
    nul_then_broken.problem(400);
    latin1_then_broken.problem(400);
    assert_eq!(latin1_then_unknown.invalid_fields(), ["bogus"]);
    assert_eq!(latin1_with_query.invalid_fields(), ["bogus"]);
    latin1_alone.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for body in ["{", "{\"name\": \"search\",}", "", "name=search"] {
        let reply = app
            .call(Method::POST, "/tools")
            .key(&key)
            .raw("application/json", body)
            .send()
            .await;

        assert!(
            reply.detail(400).contains("JSON"),
            "{body:?}: {}",
            reply.text
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn valid_json_nested_too_deep_is_a_422_not_a_400() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let body = format!(
        r#"{{"name": "deep", "description": "d", "parameters": {{"type": "object", "p": {deep}}}}}"#
    );

    let reply = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("application/json", body)
        .send()
        .await;

    assert_eq!(reply.invalid_fields(), ["body"]);
    assert!(reply.detail(422).contains("128 levels"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_1_mib_is_a_413() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "existing").await;

    let created = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("application/json", over_a_mebibyte())
        .send()
        .await;
    let updated = app
        .call(Method::PUT, "/tools/existing")
        .key(&key)
        .raw("application/json", over_a_mebibyte())
        .send()
        .await;

    created.problem(413);
    updated.problem(413);
    app.stop().await;
}

#[tokio::test]
async fn a_body_declared_over_1_mib_is_a_413_before_it_is_sent() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let request = format!(
        "POST /tools HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{{\"name\""
    );

    let mut connection = RawConnection::open(app.addr, &request).await;
    let reply = connection.reply(Duration::from_secs(5)).await;

    let reply = reply.expect("a reply while the body is still owed");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_declared_over_1_mib_is_still_a_401_without_a_key() {
    let app = TestApp::start().await;
    let request = "POST /tools HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 5000000\r\n\r\n{";

    let mut connection = RawConnection::open(app.addr, request).await;
    let reply = connection.reply(Duration::from_secs(5)).await;

    let reply = reply.expect("a reply while the body is still owed");
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem_at_the_request_deadline() {
    let app = TestApp::with(Options {
        timeouts: api::Timeouts {
            request: Duration::from_secs(1),
            ..api::Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let key = app.tenant("acme").await;
    let request = format!(
        "POST /tools HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );

    let mut connection = RawConnection::open(app.addr, &request).await;
    let reply = connection.reply(Duration::from_secs(5)).await;

    let reply = reply.expect("a reply at the deadline");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    let body: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap_or_default())
        .expect("a JSON body");
    assert_eq!(body["status"], 408, "{reply}");
    assert_eq!(body["title"], "Request Timeout", "{reply}");
    assert_eq!(body["instance"], "/tools", "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_just_under_1_mib_is_read() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    // Within the byte limit, but past the description's 4096 characters: the
    // body is read and parsed, so validation gets to answer.
    let description = "x".repeat(1024 * 1024 - 100);

    let reply = app
        .post(
            &key,
            "/tools",
            &json!({"name": "search", "description": description}),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["description"]);
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_a_415() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let body = tool().to_string();

    let untyped = app
        .call(Method::POST, "/tools")
        .key(&key)
        .body(body.clone())
        .send()
        .await;
    let text = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("text/plain", body.clone())
        .send()
        .await;
    let form = app
        .call(Method::PUT, "/tools/search")
        .key(&key)
        .raw("application/x-www-form-urlencoded", "name=search")
        .send()
        .await;
    let merge_patch = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("application/merge-patch+json", body.clone())
        .send()
        .await;

    for reply in [untyped, text, form, merge_patch] {
        assert!(
            reply.detail(415).contains("application/json"),
            "{}",
            reply.text
        );
    }
    assert!(app.get(&key, "/tools").await.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_json_body_with_a_content_coding_or_two_content_types_is_a_415() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let post_with = |name, value| {
        app.call(Method::POST, "/tools")
            .key(&key)
            .raw("application/json", tool().to_string())
            .header(name, value)
            .send()
    };

    let gzipped = post_with("content-encoding", "gzip").await;
    let typed_twice = post_with("content-type", "text/plain").await;
    let identity = post_with("content-encoding", "identity").await;

    for reply in [gzipped, typed_twice] {
        assert!(reply.detail(415).contains("uncompressed"), "{}", reply.text);
    }
    identity.expect(201);
    app.stop().await;
}

#[tokio::test]
async fn json_declared_utf8_is_accepted_and_in_another_charset_is_a_415() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let post = |content_type| {
        app.call(Method::POST, "/tools")
            .key(&key)
            .raw(content_type, tool().to_string())
            .send()
    };

    let utf8 = post("application/json; charset=utf-8").await;
    let latin1 = post("application/json; charset=latin1").await;

    utf8.expect(201);
    latin1.problem(415);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_key_is_a_401_before_a_body_that_is_not_json() {
    let app = TestApp::start().await;

    let untyped = app
        .call(Method::POST, "/tools")
        .raw("text/plain", "{")
        .send()
        .await;
    let invalid = app
        .call(Method::POST, "/agents")
        .json(&json!({"colour": 1}))
        .send()
        .await;

    untyped.problem(401);
    invalid.problem(401);
    app.stop().await;
}

#[tokio::test]
async fn a_415_comes_before_a_413() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let reply = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("text/plain", over_a_mebibyte())
        .send()
        .await;

    reply.problem(415);
    app.stop().await;
}

#[tokio::test]
async fn a_415_comes_before_a_400() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let reply = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("text/plain", "{not json")
        .send()
        .await;

    reply.problem(415);
    app.stop().await;
}

#[tokio::test]
async fn a_413_comes_before_a_400() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let broken = format!("{{{}", "x".repeat(1024 * 1024 + 1));

    let reply = app
        .call(Method::POST, "/tools")
        .key(&key)
        .raw("application/json", broken)
        .send()
        .await;

    reply.problem(413);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;

    let reply = app
        .call(Method::POST, "/agents/Researcher/run")
        .key(&key)
        .header("idempotency-key", "first")
        .header("idempotency-key", "second")
        .json(&json!({"task": "Summarise"}))
        .send()
        .await;

    assert_eq!(reply.invalid_fields(), ["Idempotency-Key"]);
    assert!(
        reply.detail(422).contains("more than once"),
        "{}",
        reply.text
    );
    let runs = app.get(&key, "/executions").await;
    assert_eq!(runs.expect(200).body["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_bad_body_is_a_422_before_an_unknown_ref_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let tool = app.put(&key, "/tools/nothing", &json!({"name": ""})).await;
    let agent = app
        .put(&key, "/agents/Nobody", &json!({"colour": "blue"}))
        .await;

    assert_eq!(tool.invalid_fields(), ["name"]);
    assert_eq!(agent.invalid_fields(), ["colour"]);
    app.stop().await;
}

#[tokio::test]
async fn unknown_tool_ids_are_a_422_before_an_unknown_agent_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let unknown = uuid::Uuid::now_v7();

    let by_name = app
        .put(&key, "/agents/Nobody", &json!({"tool_ids": [unknown]}))
        .await;
    let by_id = app
        .put(
            &key,
            &format!("/agents/{unknown}"),
            &json!({"tool_ids": [unknown]}),
        )
        .await;

    assert_eq!(by_name.invalid_fields(), ["tool_ids[0]"]);
    assert_eq!(by_id.invalid_fields(), ["tool_ids[0]"]);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_422_before_an_unknown_ref_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let tool = app.get(&key, "/tools/nothing?verbose=1").await;
    let agent = app.delete(&key, "/agents/Nobody?verbose=1").await;

    assert_eq!(tool.invalid_fields(), ["verbose"]);
    assert_eq!(agent.invalid_fields(), ["verbose"]);
    app.stop().await;
}

#[tokio::test]
async fn unknown_tool_ids_are_a_422_before_a_taken_agent_name_is_a_409() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;
    app.create_agent(&key, "Writer", &[]).await;
    let unknown = uuid::Uuid::now_v7();

    let created = app
        .post(
            &key,
            "/agents",
            &json!({"name": "Researcher", "role": "r", "description": "d", "tool_ids": [unknown]}),
        )
        .await;
    let renamed = app
        .put(
            &key,
            "/agents/Writer",
            &json!({"name": "Researcher", "tool_ids": [unknown]}),
        )
        .await;

    assert_eq!(created.invalid_fields(), ["tool_ids[0]"]);
    assert_eq!(renamed.invalid_fields(), ["tool_ids[0]"]);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_ref_is_a_404_before_a_taken_name_is_a_409() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[]).await;

    let tool = app
        .put(&key, "/tools/nothing", &json!({"name": "search"}))
        .await;
    let agent = app
        .put(&key, "/agents/Nobody", &json!({"name": "Researcher"}))
        .await;

    tool.problem(404);
    agent.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_body_is_a_422_before_a_taken_name_is_a_409() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;

    let reply = app
        .post(
            &key,
            "/tools",
            &json!({"name": "search", "description": ""}),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["description"]);
    app.stop().await;
}
