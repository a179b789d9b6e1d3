//! `/agents`: create, read, list, update and delete, their tool sets, and
//! their errors.

mod support;

use serde_json::{Value, json};
use support::TestApp;

/// Moves an agent's `updated_at` a second back, so a change made right
/// after shows even when both land in the same millisecond.
async fn age_agent(app: &TestApp, id: &str) {
    sqlx::query("UPDATE agents SET updated_at = updated_at - interval '1 second' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(id).expect("id"))
        .execute(&app.pool)
        .await
        .expect("age the agent");
}

/// An agent's body with every required field, plus `extra`.
fn agent(name: &str, extra: &Value) -> Value {
    let mut body = json!({"name": name, "role": "Researcher", "description": "Finds things"});
    for (field, value) in extra.as_object().expect("an object") {
        body[field] = value.clone();
    }
    body
}

/// The names of an agent's tools, in the order given.
fn tool_names(agent: &Value) -> Vec<String> {
    agent["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {agent}"))
        .iter()
        .map(|tool| tool["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn an_agent_is_created_read_listed_updated_and_deleted() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;

    let created = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": [search]})),
        )
        .await;
    let id = created.expect(201).str("id");
    let read = app.get(&key, &format!("/agents/{id}")).await;
    let listed = app.get(&key, "/agents").await;
    let updated = app
        .put(
            &key,
            "/agents/Researcher",
            &json!({"role": "Senior researcher"}),
        )
        .await;
    let deleted = app.delete(&key, "/agents/Researcher").await;

    assert_eq!(
        created.header("location"),
        Some(format!("/agents/{id}").as_str())
    );
    assert_eq!(created.str("name"), "Researcher");
    assert_eq!(created.str("role"), "Researcher");
    assert_eq!(created.str("description"), "Finds things");
    assert_eq!(created.str("instructions"), "");
    assert_eq!(created.body["tools"][0]["id"], search);
    assert_eq!(read.expect(200).body, created.body);
    assert_eq!(listed.names(), ["Researcher"]);
    assert_eq!(listed.body["items"][0], created.body);
    assert_eq!(updated.expect(200).str("role"), "Senior researcher");
    assert_eq!(updated.str("description"), "Finds things");
    assert_eq!(tool_names(&updated.body), ["search"]);
    deleted.expect(204);
    app.get(&key, &format!("/agents/{id}")).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn an_agent_is_read_by_its_name() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = app.create_agent(&key, "Research helper", &[]).await;

    let by_name = app.get(&key, "/agents/Research%20helper").await;

    assert_eq!(by_name.expect(200).str("id"), id);
    assert_eq!(by_name.str("name"), "Research helper");
    app.stop().await;
}

#[tokio::test]
async fn a_taken_agent_name_is_a_409_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;

    let again = app
        .post(&key, "/agents", &agent("Researcher", &json!({})))
        .await;

    assert!(
        again.detail(409).contains("\"Researcher\""),
        "{}",
        again.text
    );
    app.stop().await;
}

#[tokio::test]
async fn agent_names_are_case_sensitive_so_another_case_is_another_agent() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let lower = app.create_agent(&key, "researcher", &[]).await;

    let upper = app
        .post(&key, "/agents", &agent("Researcher", &json!({})))
        .await;

    assert_ne!(upper.expect(201).str("id"), lower);
    assert_eq!(app.get(&key, "/agents/researcher").await.str("id"), lower);
    app.stop().await;
}

#[tokio::test]
async fn renaming_an_agent_to_a_taken_name_is_a_409_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;
    app.create_agent(&key, "Writer", &[]).await;

    let renamed = app
        .put(&key, "/agents/Writer", &json!({"name": "Researcher"}))
        .await;

    assert!(
        renamed.detail(409).contains("\"Researcher\""),
        "{}",
        renamed.text
    );
    app.stop().await;
}

#[tokio::test]
async fn an_agent_name_that_parses_as_a_uuid_is_a_422_on_create() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let id = uuid::Uuid::now_v7();
    let forms = [
        id.hyphenated().to_string(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
        format!("{{{}}}", id.simple()),
        format!("urn:uuid:{}", id.simple()),
        format!("URN:UUID:{}", id.hyphenated()).to_uppercase(),
    ];

    for form in forms {
        let reply = app.post(&key, "/agents", &agent(&form, &json!({}))).await;

        assert_eq!(reply.invalid_fields(), ["name"], "{form}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_agent_name_may_not_start_or_end_with_white_space_or_hold_control_characters() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let inner_space = app
        .post(&key, "/agents", &agent("Research helper", &json!({})))
        .await;
    let refused = [
        " Researcher",
        "Researcher ",
        "Research\thelper",
        "Research\u{7f}er",
    ];

    inner_space.expect(201);
    for name in refused {
        let reply = app.post(&key, "/agents", &agent(name, &json!({}))).await;
        assert_eq!(reply.invalid_fields(), ["name"], "{name:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn agent_texts_are_limited_in_characters_not_bytes() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let longest = json!({
        "name": "é".repeat(100),
        "role": "é".repeat(200),
        "description": "é".repeat(4096),
        "instructions": "é".repeat(32_768),
    });
    let too_long = [
        ("name", json!({"name": "é".repeat(101)})),
        ("role", json!({"role": "é".repeat(201)})),
        ("description", json!({"description": "é".repeat(4097)})),
        ("instructions", json!({"instructions": "é".repeat(32_769)})),
        ("name", json!({"name": ""})),
        ("role", json!({"role": ""})),
        ("description", json!({"description": ""})),
    ];

    let accepted = app.post(&key, "/agents", &longest).await;

    accepted.expect(201);
    for (field, extra) in too_long {
        let reply = app.post(&key, "/agents", &agent("Other", &extra)).await;
        assert_eq!(reply.invalid_fields(), [field], "{extra}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_agent_lists_its_tools_by_name() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let zeta = app.create_tool(&key, "zeta").await;
    let alpha = app.create_tool(&key, "alpha").await;
    let upper = app.create_tool(&key, "Mid").await;

    let created = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": [zeta, alpha, upper]})),
        )
        .await;

    // Names compare byte-wise: upper case sorts before lower case.
    assert_eq!(
        tool_names(&created.expect(201).body),
        ["Mid", "alpha", "zeta"]
    );
    assert_eq!(
        tool_names(&app.get(&key, "/agents/Researcher").await.body),
        ["Mid", "alpha", "zeta"]
    );
    assert_eq!(
        app.get(&key, "/agents").await.body["items"][0]["tools"],
        created.body["tools"]
    );
    assert_eq!(created.body["tools"][1]["description"], "The alpha tool");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_tool_id_is_a_422_naming_the_repeat() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let fetch = app.create_tool(&key, "fetch").await;

    let reply = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": [search, fetch, search]})),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["tool_ids[2]"]);
    assert!(reply.detail(422).contains("tool_ids[0]"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_foreign_tool_ids_are_a_422_naming_each_index() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let other_key = app.tenant("globex").await;
    let search = app.create_tool(&key, "search").await;
    let foreign = app.create_tool(&other_key, "search").await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let created = app
        .post(
            &key,
            "/agents",
            &agent(
                "Researcher",
                &json!({"tool_ids": [search, foreign, unknown]}),
            ),
        )
        .await;

    assert_eq!(created.invalid_fields(), ["tool_ids[1]", "tool_ids[2]"]);
    assert!(created.text.contains(&unknown), "{}", created.text);
    app.get(&key, "/agents/Researcher").await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn unknown_tool_ids_on_update_are_a_422_naming_each_index() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&search]).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let reply = app
        .put(
            &key,
            "/agents/Researcher",
            &json!({"tool_ids": [unknown, search]}),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["tool_ids[0]"]);
    assert_eq!(
        tool_names(&app.get(&key, "/agents/Researcher").await.body),
        ["search"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tool_id_that_is_not_a_uuid_is_a_422_naming_its_index() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;

    let reply = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": [search, "search"]})),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["tool_ids[1]"]);
    app.stop().await;
}

#[tokio::test]
async fn more_than_64_tool_ids_are_a_422() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let ids: Vec<String> = (0..65).map(|_| uuid::Uuid::now_v7().to_string()).collect();

    let reply = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": ids})),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["tool_ids"]);
    assert!(reply.detail(422).contains("64"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn an_agent_may_have_64_tools() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let mut ids = Vec::new();
    for index in 0..64 {
        ids.push(app.create_tool(&key, &format!("tool_{index:02}")).await);
    }

    let created = app
        .post(
            &key,
            "/agents",
            &agent("Researcher", &json!({"tool_ids": ids})),
        )
        .await;

    assert_eq!(tool_names(&created.expect(201).body).len(), 64);
    app.stop().await;
}

#[tokio::test]
async fn put_with_tool_ids_replaces_the_set() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let fetch = app.create_tool(&key, "fetch").await;
    let write = app.create_tool(&key, "write").await;
    app.create_agent(&key, "Researcher", &[&search, &fetch])
        .await;

    let updated = app
        .put(
            &key,
            "/agents/Researcher",
            &json!({"tool_ids": [write, fetch]}),
        )
        .await;

    assert_eq!(tool_names(&updated.expect(200).body), ["fetch", "write"]);
    assert_eq!(
        tool_names(&app.get(&key, "/agents/Researcher").await.body),
        ["fetch", "write"]
    );
    app.stop().await;
}

#[tokio::test]
async fn put_with_empty_tool_ids_clears_the_set() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&search]).await;

    let updated = app
        .put(&key, "/agents/Researcher", &json!({"tool_ids": []}))
        .await;

    assert!(tool_names(&updated.expect(200).body).is_empty());
    assert!(tool_names(&app.get(&key, "/agents/Researcher").await.body).is_empty());
    app.delete(&key, "/tools/search").await.expect(204);
    app.stop().await;
}

#[tokio::test]
async fn put_without_tool_ids_keeps_the_set() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&search]).await;

    let updated = app
        .put(
            &key,
            "/agents/Researcher",
            &json!({"instructions": "Be brief."}),
        )
        .await;

    assert_eq!(updated.expect(200).str("instructions"), "Be brief.");
    assert_eq!(tool_names(&updated.body), ["search"]);
    app.stop().await;
}

#[tokio::test]
async fn put_with_an_empty_object_is_a_200_that_changes_nothing() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let id = app.create_agent(&key, "Researcher", &[&search]).await;
    age_agent(&app, &id).await;
    let before = app.get(&key, "/agents/Researcher").await;

    let reply = app.put(&key, "/agents/Researcher", &json!({})).await;

    assert_eq!(reply.expect(200).body, before.expect(200).body);
    assert_eq!(app.get(&key, "/agents/Researcher").await.body, before.body);
    app.stop().await;
}

#[tokio::test]
async fn put_with_the_same_tool_set_in_another_order_leaves_updated_at_alone() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let fetch = app.create_tool(&key, "fetch").await;
    let id = app
        .create_agent(&key, "Researcher", &[&search, &fetch])
        .await;
    age_agent(&app, &id).await;
    let before = app.get(&key, "/agents/Researcher").await;

    let reply = app
        .put(
            &key,
            "/agents/Researcher",
            &json!({"tool_ids": [fetch, search], "role": "Researcher"}),
        )
        .await;

    assert_eq!(reply.expect(200).body, before.expect(200).body);
    app.stop().await;
}

#[tokio::test]
async fn put_that_changes_a_field_or_the_tool_set_moves_updated_at() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let id = app.create_agent(&key, "Researcher", &[]).await;
    let changes = [
        json!({"description": "Finds more"}),
        json!({"tool_ids": [search]}),
    ];

    for change in changes {
        age_agent(&app, &id).await;
        let before = app.get(&key, "/agents/Researcher").await;

        let reply = app.put(&key, "/agents/Researcher", &change).await;

        // RFC 3339 timestamps of one format and time zone sort as text.
        assert!(
            reply.expect(200).str("updated_at") > before.str("updated_at"),
            "{change}: {} then {}",
            before.str("updated_at"),
            reply.str("updated_at")
        );
        assert_eq!(reply.str("created_at"), before.str("created_at"));
    }
    app.stop().await;
}

#[tokio::test]
async fn put_delete_and_get_of_an_unknown_agent_are_404s() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let unknown_id = format!("/agents/{}", uuid::Uuid::now_v7());

    for path in ["/agents/Nobody", unknown_id.as_str()] {
        let got = app.get(&key, path).await;
        let put = app.put(&key, path, &json!({"role": "Writer"})).await;
        let deleted = app.delete(&key, path).await;

        for reply in [got, put, deleted] {
            assert!(reply.detail(404).contains("No agent"), "{}", reply.text);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_agent_frees_its_name_and_its_tools() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[&search]).await;

    let deleted = app.delete(&key, "/agents/Researcher").await;

    deleted.expect(204);
    assert!(deleted.text.is_empty(), "{}", deleted.text);
    app.create_agent(&key, "Researcher", &[]).await;
    app.delete(&key, "/tools/search").await.expect(204);
    app.stop().await;
}

#[tokio::test]
async fn tool_name_lists_only_the_agents_using_that_tool() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    let search = app.create_tool(&key, "search").await;
    let fetch = app.create_tool(&key, "fetch").await;
    app.create_tool(&key, "unused").await;
    app.create_agent(&key, "Writer", &[&search]).await;
    app.create_agent(&key, "Researcher", &[&search, &fetch])
        .await;
    app.create_agent(&key, "Idle", &[]).await;

    let using_search = app.get(&key, "/agents?tool_name=search").await;
    let using_unused = app.get(&key, "/agents?tool_name=unused").await;

    assert_eq!(using_search.names(), ["Researcher", "Writer"]);
    assert_eq!(
        tool_names(&using_search.body["items"][0]),
        ["fetch", "search"]
    );
    assert!(using_unused.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn tool_name_naming_no_tool_is_a_404() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;

    let reply = app.get(&key, "/agents?tool_name=nothing").await;

    assert!(reply.detail(404).contains("\"nothing\""), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn name_lists_only_the_agent_of_that_exact_name() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Researcher", &[]).await;
    app.create_agent(&key, "Researcher 2", &[]).await;

    let exact = app.get(&key, "/agents?name=Researcher").await;
    let other_case = app.get(&key, "/agents?name=researcher").await;

    assert_eq!(exact.names(), ["Researcher"]);
    assert!(other_case.names().is_empty());
    app.stop().await;
}
