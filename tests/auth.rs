//! Authentication by `X-API-Key`, and the wall between tenants: nothing of
//! another tenant is visible, changeable or linkable.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{Reply, TestApp, process};

/// Asserts a 401 that tells the client how to authenticate.
#[track_caller]
fn assert_unauthorized(reply: &Reply) {
    reply.problem(401);
    assert_eq!(reply.header("www-authenticate"), Some("ApiKey"));
}

#[tokio::test]
async fn a_request_without_a_key_is_a_401_asking_for_an_api_key() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/tools").send().await;

    assert_unauthorized(&reply);
    assert!(reply.detail(401).contains("X-API-Key"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn an_empty_key_is_a_401() {
    let app = TestApp::start().await;

    let reply = app.get("", "/agents").await;

    assert_unauthorized(&reply);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_key_is_a_401() {
    let app = TestApp::start().await;
    app.tenant("acme").await;

    let reply = app.get("ap_not_a_key_anyone_has", "/tools").await;

    assert_unauthorized(&reply);
    app.stop().await;
}

#[tokio::test]
async fn two_keys_are_a_401_asking_for_exactly_one() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;

    let reply = app
        .call(Method::GET, "/tools")
        .key(&acme)
        .key(&globex)
        .send()
        .await;

    assert_unauthorized(&reply);
    assert!(reply.detail(401).contains("exactly one"), "{}", reply.text);
    app.stop().await;
}

#[tokio::test]
async fn every_keyed_route_needs_a_key() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_tool(&key, "search").await;
    app.create_agent(&key, "Researcher", &[]).await;
    let routes = [
        (Method::GET, "/tools"),
        (Method::POST, "/tools"),
        (Method::GET, "/tools/search"),
        (Method::PUT, "/tools/search"),
        (Method::DELETE, "/tools/search"),
        (Method::GET, "/agents"),
        (Method::POST, "/agents"),
        (Method::GET, "/agents/Researcher"),
        (Method::PUT, "/agents/Researcher"),
        (Method::DELETE, "/agents/Researcher"),
    ];

    for (method, path) in routes {
        let reply = app
            .call(method.clone(), path)
            .json(&json!({"description": "d"}))
            .send()
            .await;

        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text);
        assert_unauthorized(&reply);
    }
    app.get(&key, "/tools/search").await.expect(200);
    app.get(&key, "/agents/Researcher").await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn a_key_revoked_through_the_command_line_is_refused_within_5_seconds() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    // Answers are cached: use the key first, so revocation must outlive a
    // cached "yes".
    app.get(&key, "/tools").await.expect(200);
    let prefix: String = key.chars().take(12).collect();

    process::admin(&app.db.url, &["keys", "revoke", "--prefix", &prefix]);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = app.get(&key, "/tools").await;
        if reply.status == 401 {
            assert_unauthorized(&reply);
            break;
        }
        reply.expect(200);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked key still works after 5 seconds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_leaves_the_tenants_other_keys_working() {
    let app = TestApp::start().await;
    let old = app.tenant("acme").await;
    let new = store::keys::create(&app.pool, "acme")
        .await
        .expect("create key")
        .expect("tenant exists");
    let prefix: String = old.chars().take(12).collect();

    process::admin(&app.db.url, &["keys", "revoke", "--prefix", &prefix]);

    assert_unauthorized(&app.get(&old, "/tools").await);
    app.get(new.reveal(), "/tools").await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_tool_is_a_404_by_id_and_by_name() {
    let app = TestApp::start().await;
    let owner = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let id = app.create_tool(&owner, "search").await;

    for path in [format!("/tools/{id}"), "/tools/search".to_owned()] {
        let got = app.get(&other, &path).await;
        let put = app
            .put(&other, &path, &json!({"description": "Mine now"}))
            .await;
        let deleted = app.delete(&other, &path).await;

        for reply in [got, put, deleted] {
            reply.problem(404);
        }
    }
    let untouched = app.get(&owner, "/tools/search").await;
    assert_eq!(untouched.expect(200).str("description"), "The search tool");
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_agent_is_a_404_by_id_and_by_name() {
    let app = TestApp::start().await;
    let owner = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let id = app.create_agent(&owner, "Researcher", &[]).await;

    for path in [format!("/agents/{id}"), "/agents/Researcher".to_owned()] {
        let got = app.get(&other, &path).await;
        let put = app.put(&other, &path, &json!({"role": "Spy"})).await;
        let deleted = app.delete(&other, &path).await;

        for reply in [got, put, deleted] {
            reply.problem(404);
        }
    }
    let untouched = app.get(&owner, "/agents/Researcher").await;
    assert_eq!(untouched.expect(200).str("role"), "Researcher");
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_tools_and_agents_are_absent_from_lists() {
    let app = TestApp::start().await;
    let owner = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let tool = app.create_tool(&owner, "search").await;
    app.create_agent(&owner, "Researcher", &[&tool]).await;
    app.create_tool(&other, "fetch").await;

    let tools = app.get(&other, "/tools").await;
    let agents = app.get(&other, "/agents").await;
    let by_name = app.get(&other, "/tools?name=search").await;

    assert_eq!(tools.names(), ["fetch"]);
    assert!(agents.names().is_empty());
    assert!(by_name.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_agent_and_tool_are_404s_as_list_filters() {
    let app = TestApp::start().await;
    let owner = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let tool = app.create_tool(&owner, "search").await;
    app.create_agent(&owner, "Researcher", &[&tool]).await;

    let tools = app.get(&other, "/tools?agent_name=Researcher").await;
    let agents = app.get(&other, "/agents?tool_name=search").await;

    tools.problem(404);
    agents.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_tool_cannot_be_linked_to_an_agent() {
    let app = TestApp::start().await;
    let owner = app.tenant("acme").await;
    let other = app.tenant("globex").await;
    let foreign = app.create_tool(&owner, "search").await;
    app.create_agent(&other, "Researcher", &[]).await;

    let created = app
        .post(
            &other,
            "/agents",
            &json!({"name": "Spy", "role": "r", "description": "d", "tool_ids": [foreign]}),
        )
        .await;
    let updated = app
        .put(
            &other,
            "/agents/Researcher",
            &json!({"tool_ids": [foreign]}),
        )
        .await;

    assert_eq!(created.invalid_fields(), ["tool_ids[0]"]);
    assert_eq!(updated.invalid_fields(), ["tool_ids[0]"]);
    app.delete(&owner, "/tools/search").await.expect(204);
    app.stop().await;
}

#[tokio::test]
async fn two_tenants_may_use_the_same_names() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let acme_tool = app.create_tool(&acme, "search").await;

    let globex_tool = app.create_tool(&globex, "search").await;

    assert_ne!(acme_tool, globex_tool);
    assert_eq!(app.get(&acme, "/tools/search").await.str("id"), acme_tool);
    assert_eq!(
        app.get(&globex, "/tools/search").await.str("id"),
        globex_tool
    );
    app.stop().await;
}
