//! `/tools`: create, read, list, update and delete, and their errors.

mod support;

use reqwest::Method;
use serde_json::json;
use support::TestApp;

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
