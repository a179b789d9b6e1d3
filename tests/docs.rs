//! The public routes: health, readiness, the OpenAPI document and the two
//! documentation pages, all answering without a key.

mod support;

use reqwest::Method;
use serde_json::Value;
use support::TestApp;

#[tokio::test]
async fn healthz_and_readyz_answer_200_without_a_key() {
    let app = TestApp::start().await;

    let health = app.call(Method::GET, "/healthz").send().await;
    let ready = app.call(Method::GET, "/readyz").send().await;

    health.expect(200);
    ready.expect(200);
    assert_eq!(ready.body["postgres"], "ok", "{}", ready.text);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_3_1_with_an_api_key_scheme_and_every_path() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/openapi.json").send().await;

    let document = &reply.expect(200).body;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let api_key = schemes
        .values()
        .find(|scheme| scheme["type"] == "apiKey")
        .expect("an apiKey scheme");
    assert_eq!(api_key["in"], "header");
    assert_eq!(api_key["name"], "X-API-Key");
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/tools",
        "/tools/{ref}",
        "/agents",
        "/agents/{ref}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    for method in ["get", "post"] {
        assert!(paths["/tools"].get(method).is_some(), "{method} /tools");
    }
    for method in ["get", "put", "delete"] {
        assert!(
            paths["/agents/{ref}"].get(method).is_some(),
            "{method} /agents/{{ref}}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_asks_for_a_key_except_on_public_routes() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/openapi.json").send().await;

    let document = &reply.expect(200).body;
    let global = document["security"].as_array().expect("global security");
    assert!(!global.is_empty(), "{}", document["security"]);
    assert_eq!(
        document["paths"]["/healthz"]["get"]["security"],
        Value::Array(vec![])
    );
    assert!(document["paths"]["/tools"]["get"].get("security").is_none());
    app.stop().await;
}

#[tokio::test]
async fn docs_redirects_to_docs_with_a_slash_the_one_redirect() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/docs").send().await;

    assert!(
        (300..400).contains(&reply.status),
        "{}: {}",
        reply.status,
        reply.text
    );
    assert_eq!(reply.header("location"), Some("/docs/"));
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_is_served_without_a_key_with_its_assets() {
    let app = TestApp::start().await;

    let page = app.call(Method::GET, "/docs/").send().await;
    let script = app
        .call(Method::GET, "/docs/swagger-ui-bundle.js")
        .send()
        .await;
    let initializer = app
        .call(Method::GET, "/docs/swagger-initializer.js")
        .send()
        .await;

    page.expect(200);
    assert!(page.text.contains("swagger"), "{}", page.text);
    assert!(
        !page.text.contains("https://"),
        "an asset from elsewhere: {}",
        page.text
    );
    script.expect(200);
    assert!(script.text.len() > 10_000);
    initializer.expect(200);
    assert!(
        initializer.text.contains("/openapi.json"),
        "{}",
        initializer.text
    );
    // Otherwise the page shows a badge loaded from validator.swagger.io.
    assert!(
        initializer.text.contains(r#""validatorUrl": "none""#),
        "{}",
        initializer.text
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_path_under_docs_is_a_404_problem() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/docs/nothing.js").send().await;

    reply.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn redoc_is_served_without_a_key_with_its_script_and_nothing_from_elsewhere() {
    let app = TestApp::start().await;

    let page = app.call(Method::GET, "/redoc").send().await;
    let script = app
        .call(Method::GET, "/redoc/redoc.standalone.js")
        .send()
        .await;

    page.expect(200);
    assert!(
        page.text.contains("/redoc/redoc.standalone.js"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("X-API-Key"),
        "the page embeds the document"
    );
    script.expect(200);
    assert!(
        script
            .header("content-type")
            .is_some_and(|kind| kind.contains("javascript")),
        "{:?}",
        script.header("content-type")
    );
    assert!(script.text.len() > 10_000);
    for text in [&page.text, &script.text] {
        for remote in ["src=\"http", "src:\"http", "cdn."] {
            assert!(!text.contains(remote), "found {remote:?}");
        }
    }
    app.stop().await;
}

/// The served OpenAPI document.
async fn openapi(app: &TestApp) -> Value {
    let reply = app.call(Method::GET, "/openapi.json").send().await;
    reply.expect(200).body.clone()
}

/// Every operation of `document`, as (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.iter()
                .map(|(method, operation)| (method.clone(), path.clone(), operation.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_operation_has_an_id_of_its_own() {
    let app = TestApp::start().await;

    let document = openapi(&app).await;

    let mut ids: Vec<String> = operations(&document)
        .iter()
        .map(|(method, path, operation)| {
            let id = operation["operationId"].as_str();
            id.unwrap_or_else(|| panic!("{method} {path} has no id"))
                .to_owned()
        })
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "{ids:?}");
    for expected in ["list_tools", "create_agent", "run_agent", "get_execution"] {
        assert!(ids.iter().any(|id| id == expected), "{expected} in {ids:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn keyed_operations_declare_the_errors_every_keyed_request_can_get() {
    let app = TestApp::start().await;

    let document = openapi(&app).await;

    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().expect("responses");
        let keyed = operation.get("security").is_none();
        let with_body = operation.get("requestBody").is_some();
        // Public routes may have a 503 of their own (readiness).
        for status in ["401", "429", "503"] {
            let declared = responses.contains_key(status);
            assert!(declared || !keyed, "{status} missing on {method} {path}");
        }
        assert_eq!(
            responses.contains_key("401"),
            keyed,
            "401 on {method} {path}"
        );
        for status in ["400", "413", "415"] {
            assert_eq!(
                responses.contains_key(status),
                with_body,
                "{status} on {method} {path}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn optional_request_fields_are_not_declared_nullable() {
    let app = TestApp::start().await;

    let document = openapi(&app).await;

    let schemas = &document["components"]["schemas"];
    for request in [
        "CreateTool",
        "UpdateTool",
        "CreateAgent",
        "UpdateAgent",
        "RunRequest",
    ] {
        let fields = schemas[request]["properties"].as_object().expect(request);
        for (field, schema) in fields {
            let text = schema.to_string();
            assert!(!text.contains("\"null\""), "{request}.{field}: {text}");
        }
    }
    let run = operations(&document)
        .into_iter()
        .find(|(_, _, operation)| operation["operationId"] == "run_agent")
        .expect("run_agent")
        .2;
    let header = &run["parameters"][1];
    assert_eq!(header["name"], "Idempotency-Key");
    assert_eq!(header["schema"]["type"], "string", "{header}");
    app.stop().await;
}

#[tokio::test]
async fn page_parameters_declare_their_bounds() {
    let app = TestApp::start().await;

    let document = openapi(&app).await;

    for path in ["/tools", "/agents", "/executions"] {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let bounds = |name: &str| {
            let schema = &parameters
                .iter()
                .find(|parameter| parameter["name"] == name)
                .unwrap_or_else(|| panic!("{name} on {path}"))["schema"];
            (schema["minimum"].clone(), schema["maximum"].clone())
        };
        assert_eq!(bounds("page"), (1.into(), 1_000_000.into()), "{path}");
        assert_eq!(bounds("page_size"), (1.into(), 100.into()), "{path}");
    }
    app.stop().await;
}

/// The committed OpenAPI document. A change to the contract shows as a diff
/// of this file: regenerate it with `UPDATE_SNAPSHOTS=1` and review it.
const OPENAPI_SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

#[tokio::test]
async fn the_openapi_document_matches_its_committed_snapshot() {
    let app = TestApp::start().await;

    let reply = app.call(Method::GET, "/openapi.json").send().await;

    let served = serde_json::to_string_pretty(&reply.expect(200).body).expect("render") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(OPENAPI_SNAPSHOT, &served).expect("write the snapshot");
    }
    let committed = std::fs::read_to_string(OPENAPI_SNAPSHOT).expect("read the snapshot");
    assert!(
        served == committed,
        "the OpenAPI document changed; review the change, then run with UPDATE_SNAPSHOTS=1"
    );
    app.stop().await;
}
