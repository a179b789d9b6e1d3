//! `/tools`: create, read, list, update and delete, and their errors.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::TestApp;

/// Moves a tool's `updated_at` a second back, so a change made right after
/// shows even when both land in the same millisecond.
async fn age_tool(app: &TestApp, id: &str) {
    sqlx::query("UPDATE tools SET updated_at = updated_at - interval '1 second' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(id).expect("id"))
        .execute(&app.pool)
        .await
        .expect("age the tool");
}

#[tokio::test]
async fn a_tool_is_created_read_listed_updated_and_deleted() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let created = app
        .call(Method::POST, "/tools")
        .key(&key)
        .json(&json!({"name": "web_search", "description": "Searches the web"}))
        .send()
        .await;
    created.expect(201);
    let id = created.str("id");
    assert_eq!(
        created.header("location"),
        Some(format!("/tools/{id}").as_str())
    );
    assert_eq!(
        created.body["parameters"],
        json!({"type": "object", "properties": {}})
    );

    let by_name = app
        .call(Method::GET, "/tools/web_search")
        .key(&key)
        .send()
        .await;
    by_name.expect(200);
    assert_eq!(by_name.str("id"), id);

    let listed = app.call(Method::GET, "/tools").key(&key).send().await;
    listed.expect(200);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));

    let updated = app
        .call(Method::PUT, &format!("/tools/{id}"))
        .key(&key)
        .json(&json!({"description": "Searches the whole web"}))
        .send()
        .await;
    updated.expect(200);
    assert_eq!(updated.body["description"], "Searches the whole web");
    assert_eq!(updated.body["name"], "web_search");

    app.call(Method::DELETE, "/tools/web_search")
        .key(&key)
        .send()
        .await
        .expect(204);
    app.call(Method::GET, &format!("/tools/{id}"))
        .key(&key)
        .send()
        .await
        .problem(404);
    app.stop().await;
}

#[tokio::test]
async fn a_taken_tool_name_is_a_409_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let tool = json!({"name": "web_search", "description": "Searches"});
    app.call(Method::POST, "/tools")
        .key(&key)
        .json(&tool)
        .send()
        .await
        .expect(201);

    let again = app
        .call(Method::POST, "/tools")
        .key(&key)
        .json(&tool)
        .send()
        .await;

    let problem = again.problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("web_search"),
        "{problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_tool_and_409s() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let tool = json!({"name": "search", "description": "Searches"});

    let replies = tokio::join!(
        app.post(&key, "/tools", &tool),
        app.post(&key, "/tools", &tool),
        app.post(&key, "/tools", &tool),
        app.post(&key, "/tools", &tool),
    );

    let mut statuses = [
        replies.0.status,
        replies.1.status,
        replies.2.status,
        replies.3.status,
    ];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409]);
    assert_eq!(app.get(&key, "/tools").await.names(), ["search"]);
    app.stop().await;
}

#[tokio::test]
async fn tool_names_are_case_sensitive_so_another_case_is_another_tool() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;

    let other_case = app
        .post(
            &key,
            "/tools",
            &json!({"name": "Search", "description": "d"}),
        )
        .await;

    other_case.expect(201);
    app.get(&key, "/tools/search").await.expect(200);
    assert_eq!(
        app.get(&key, "/tools/Search").await.expect(200).str("name"),
        "Search"
    );
    app.stop().await;
}

#[tokio::test]
async fn renaming_a_tool_to_a_taken_name_is_a_409_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    app.create_tool(&key, "fetch").await;

    let renamed = app
        .put(&key, "/tools/fetch", &json!({"name": "search"}))
        .await;

    assert!(
        renamed.detail(409).contains("\"search\""),
        "{}",
        renamed.text
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tool_is_read_by_its_id_and_by_its_name() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = app.create_tool(&key, "web_search").await;

    let by_id = app.get(&key, &format!("/tools/{id}")).await;
    let by_name = app.get(&key, "/tools/web_search").await;

    by_id.expect(200);
    assert_eq!(by_id.body, by_name.expect(200).body);
    assert_eq!(by_id.str("name"), "web_search");
    assert_eq!(by_id.str("description"), "The web_search tool");
    app.stop().await;
}

#[tokio::test]
async fn a_tool_id_in_any_uuid_form_finds_the_tool() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = uuid::Uuid::parse_str(&app.create_tool(&key, "web_search").await).unwrap();

    let forms = [
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
        id.hyphenated().to_string().to_uppercase(),
        format!("{{{}}}", id.simple()),
        format!("urn:uuid:{}", id.simple()),
    ];

    for form in forms {
        let reply = app.get(&key, &format!("/tools/{form}")).await;
        assert_eq!(reply.expect(200).str("id"), id.to_string(), "{form}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tool_name_that_parses_as_a_uuid_is_a_422_on_create() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = uuid::Uuid::now_v7();
    let forms = [
        id.hyphenated().to_string(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
    ];

    for form in forms {
        let reply = app
            .post(&key, "/tools", &json!({"name": form, "description": "d"}))
            .await;

        assert_eq!(reply.invalid_fields(), ["name"], "{form}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tool_name_that_parses_as_a_uuid_is_a_422_on_rename() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;

    let reply = app
        .put(
            &key,
            "/tools/search",
            &json!({"name": uuid::Uuid::now_v7().simple().to_string()}),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["name"]);
    app.stop().await;
}

#[tokio::test]
async fn a_tool_name_holds_only_function_name_characters_and_at_most_64() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let longest = "n".repeat(64);

    let refused: Vec<Value> = ["", "web search", "web.search", "résumé", &"n".repeat(65)]
        .into_iter()
        .map(Value::from)
        .collect();
    let accepted = app
        .post(
            &key,
            "/tools",
            &json!({"name": longest, "description": "d"}),
        )
        .await;

    accepted.expect(201);
    for name in refused {
        let reply = app
            .post(&key, "/tools", &json!({"name": name, "description": "d"}))
            .await;
        assert_eq!(reply.invalid_fields(), ["name"], "{name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tool_description_is_1_to_4096_characters_counted_as_characters() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let longest = app
        .post(
            &key,
            "/tools",
            &json!({"name": "a", "description": "é".repeat(4096)}),
        )
        .await;
    let too_long = app
        .post(
            &key,
            "/tools",
            &json!({"name": "b", "description": "é".repeat(4097)}),
        )
        .await;
    let empty = app
        .post(&key, "/tools", &json!({"name": "c", "description": ""}))
        .await;

    longest.expect(201);
    assert_eq!(too_long.invalid_fields(), ["description"]);
    assert!(too_long.detail(422).contains("4096"), "{}", too_long.text);
    assert_eq!(empty.invalid_fields(), ["description"]);
    app.stop().await;
}

#[tokio::test]
async fn text_is_stored_as_sent_never_trimmed() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let description = "  Searches\tthe web \n";

    let created = app
        .post(
            &key,
            "/tools",
            &json!({"name": "search", "description": description}),
        )
        .await;

    assert_eq!(created.expect(201).str("description"), description);
    assert_eq!(
        app.get(&key, "/tools/search").await.str("description"),
        description
    );
    app.stop().await;
}

#[tokio::test]
async fn tool_parameters_are_kept_as_sent_when_their_type_is_object() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let parameters = json!({
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    });

    let created = app
        .post(
            &key,
            "/tools",
            &json!({"name": "search", "description": "d", "parameters": parameters}),
        )
        .await;

    assert_eq!(created.expect(201).body["parameters"], parameters);
    app.stop().await;
}

#[tokio::test]
async fn tool_parameters_whose_type_is_not_object_are_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let refused = [
        json!({"type": "string"}),
        json!({"properties": {}}),
        json!([]),
        json!("object"),
    ];

    for parameters in refused {
        let reply = app
            .post(
                &key,
                "/tools",
                &json!({"name": "search", "description": "d", "parameters": parameters}),
            )
            .await;

        assert_eq!(reply.invalid_fields(), ["parameters"], "{parameters}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tool_parameters_are_at_most_16_kib_of_json() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    // `{"description":"","type":"object"}` is 34 bytes around the text.
    let sized = |text: usize| json!({"type": "object", "description": "x".repeat(text)});
    let tool = |name: &str, parameters: Value| {
        let mut body = json!({"name": name, "description": "d"});
        body["parameters"] = parameters;
        body
    };

    let largest = app
        .post(&key, "/tools", &tool("largest", sized(16_384 - 34)))
        .await;
    let over = app
        .post(&key, "/tools", &tool("over", sized(16_384 - 33)))
        .await;
    let updated = app
        .put(
            &key,
            "/tools/largest",
            &json!({"parameters": sized(20_000)}),
        )
        .await;

    largest.expect(201);
    assert_eq!(over.invalid_fields(), ["parameters"]);
    assert!(over.detail(422).contains("16 KiB"), "{}", over.text);
    assert_eq!(updated.invalid_fields(), ["parameters"]);
    app.stop().await;
}

#[tokio::test]
async fn tool_parameters_whose_properties_is_not_an_object_are_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let refused = [json!(["query"]), json!("query"), json!(null), json!(1)];

    for properties in refused {
        let parameters = json!({"type": "object", "properties": properties});

        let reply = app
            .post(
                &key,
                "/tools",
                &json!({"name": "search", "description": "d", "parameters": parameters}),
            )
            .await;

        assert_eq!(reply.invalid_fields(), ["parameters"], "{properties}");
        assert!(reply.detail(422).contains("properties"), "{}", reply.text);
    }
    app.stop().await;
}

#[tokio::test]
async fn put_changes_only_the_fields_given() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let parameters = json!({"type": "object", "properties": {"q": {"type": "string"}}});
    app.post(
        &key,
        "/tools",
        &json!({"name": "search", "description": "Old", "parameters": parameters}),
    )
    .await
    .expect(201);

    let renamed = app
        .put(&key, "/tools/search", &json!({"name": "find"}))
        .await;

    renamed.expect(200);
    assert_eq!(renamed.str("name"), "find");
    assert_eq!(renamed.str("description"), "Old");
    assert_eq!(renamed.body["parameters"], parameters);
    app.get(&key, "/tools/search").await.problem(404);
    app.get(&key, "/tools/find").await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn put_with_an_empty_object_is_a_200_that_changes_nothing() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = app.create_tool(&key, "search").await;
    age_tool(&app, &id).await;
    let before = app.get(&key, "/tools/search").await;

    let reply = app.put(&key, "/tools/search", &json!({})).await;

    assert_eq!(reply.expect(200).body, before.expect(200).body);
    assert_eq!(app.get(&key, "/tools/search").await.body, before.body);
    app.stop().await;
}

#[tokio::test]
async fn put_with_the_current_values_leaves_updated_at_alone() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = app.create_tool(&key, "search").await;
    age_tool(&app, &id).await;
    let before = app.get(&key, "/tools/search").await;

    let reply = app
        .put(
            &key,
            "/tools/search",
            &json!({"name": "search", "description": before.str("description")}),
        )
        .await;

    assert_eq!(
        reply.expect(200).str("updated_at"),
        before.str("updated_at")
    );
    app.stop().await;
}

#[tokio::test]
async fn put_that_changes_a_field_moves_updated_at() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = app.create_tool(&key, "search").await;
    age_tool(&app, &id).await;
    let before = app.get(&key, "/tools/search").await;

    let reply = app
        .put(
            &key,
            "/tools/search",
            &json!({"description": "Searches better"}),
        )
        .await;

    reply.expect(200);
    // RFC 3339 timestamps of one format and time zone sort as text.
    assert!(
        reply.str("updated_at") > before.str("updated_at"),
        "{} then {}",
        before.str("updated_at"),
        reply.str("updated_at")
    );
    assert_eq!(reply.str("created_at"), before.str("created_at"));
    app.stop().await;
}

#[tokio::test]
async fn put_delete_and_get_of_an_unknown_tool_are_404s() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let unknown_id = format!("/tools/{}", uuid::Uuid::now_v7());

    for path in ["/tools/nothing", unknown_id.as_str()] {
        let got = app.get(&key, path).await;
        let put = app.put(&key, path, &json!({"description": "d"})).await;
        let deleted = app.delete(&key, path).await;

        for reply in [got, put, deleted] {
            assert!(reply.detail(404).contains("No tool"), "{}", reply.text);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_tool_still_used_is_a_409_naming_the_agents() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let tool = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&tool]).await;
    app.create_agent(&key, "Writer", &[&tool]).await;

    let refused = app.delete(&key, "/tools/search").await;

    let detail = refused.detail(409);
    assert!(detail.contains("\"Researcher\""), "{detail}");
    assert!(detail.contains("\"Writer\""), "{detail}");
    app.get(&key, "/tools/search").await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn a_tool_no_longer_used_can_be_deleted() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let tool = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&tool]).await;
    app.put(&key, "/agents/Researcher", &json!({"tool_ids": []}))
        .await
        .expect(200);

    let deleted = app.delete(&key, &format!("/tools/{tool}")).await;

    deleted.expect(204);
    assert!(deleted.text.is_empty(), "{}", deleted.text);
    app.get(&key, "/tools/search").await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn agent_name_lists_only_that_agents_tools() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let fetch = app.create_tool(&key, "fetch").await;
    app.create_tool(&key, "unused").await;
    app.create_agent(&key, "Researcher", &[&search, &fetch])
        .await;
    app.create_agent(&key, "Idle", &[]).await;

    let of_researcher = app.get(&key, "/tools?agent_name=Researcher").await;
    let of_idle = app.get(&key, "/tools?agent_name=Idle").await;

    assert_eq!(of_researcher.names(), ["fetch", "search"]);
    assert!(of_idle.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn agent_name_naming_no_agent_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;

    let reply = app.get(&key, "/tools?agent_name=Nobody").await;

    assert!(reply.detail(404).contains("\"Nobody\""), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn name_lists_only_the_tool_of_that_exact_name() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    app.create_tool(&key, "search_more").await;

    let exact = app.get(&key, "/tools?name=search").await;
    let other_case = app.get(&key, "/tools?name=Search").await;

    assert_eq!(exact.names(), ["search"]);
    assert!(other_case.names().is_empty());
    app.stop().await;
}
