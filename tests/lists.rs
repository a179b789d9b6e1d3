//! Lists of tools and agents: paging, ordering, and the strict query string.

mod support;

use serde_json::json;
use support::TestApp;

/// The two lists of this part of the API.
const LISTS: [&str; 2] = ["/tools", "/agents"];

/// Creates one tool and one agent per name, in the order given.
async fn tools_and_agents(app: &TestApp, key: &str, names: &[&str]) {
    for name in names {
        app.create_tool(key, name).await;
        app.create_agent(key, name, &[]).await;
    }
}

#[tokio::test]
async fn empty_lists_are_a_200_with_no_items() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for list in LISTS {
        let reply = app.get(&key, list).await;

        assert_eq!(
            reply.expect(200).body,
            json!({"items": [], "page": 1, "page_size": 20, "has_more": false}),
            "{list}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_page_past_the_end_is_a_200_with_no_items() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    tools_and_agents(&app, &key, &["alpha"]).await;

    for list in LISTS {
        let reply = app
            .get(&key, &format!("{list}?page=1000000&page_size=100"))
            .await;

        assert_eq!(
            reply.expect(200).body,
            json!({"items": [], "page": 1_000_000, "page_size": 100, "has_more": false}),
            "{list}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn lists_are_ordered_by_name_byte_wise_and_paged_with_has_more() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    tools_and_agents(&app, &key, &["delta", "Bravo", "alpha", "echo", "charlie"]).await;

    for list in LISTS {
        let first = app.get(&key, &format!("{list}?page_size=2")).await;
        let second = app.get(&key, &format!("{list}?page_size=2&page=2")).await;
        let last = app.get(&key, &format!("{list}?page=3&page_size=2")).await;
        let all = app.get(&key, list).await;

        assert_eq!(first.names(), ["Bravo", "alpha"], "{list}");
        assert_eq!(first.body["has_more"], true);
        assert_eq!(
            (first.body["page"].clone(), first.body["page_size"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(second.names(), ["charlie", "delta"], "{list}");
        assert_eq!(second.body["has_more"], true);
        assert_eq!(last.names(), ["echo"], "{list}");
        assert_eq!(last.body["has_more"], false);
        assert_eq!(all.names(), ["Bravo", "alpha", "charlie", "delta", "echo"]);
        assert_eq!(all.body["has_more"], false);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_full_last_page_says_there_is_no_more() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    tools_and_agents(&app, &key, &["alpha", "bravo"]).await;

    for list in LISTS {
        let reply = app.get(&key, &format!("{list}?page_size=2")).await;

        assert_eq!(reply.names(), ["alpha", "bravo"], "{list}");
        assert_eq!(reply.body["has_more"], false, "{list}");
    }
    app.stop().await;
}

#[tokio::test]
async fn page_size_0_is_a_422_naming_page_size() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for list in LISTS {
        let reply = app.get(&key, &format!("{list}?page_size=0")).await;

        assert_eq!(reply.invalid_fields(), ["page_size"], "{list}");
        assert!(reply.detail(422).contains("100"), "{}", reply.text);
    }
    app.stop().await;
}

#[tokio::test]
async fn page_size_101_is_a_422_naming_page_size() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for list in LISTS {
        let reply = app.get(&key, &format!("{list}?page_size=101")).await;

        assert_eq!(reply.invalid_fields(), ["page_size"], "{list}");
    }
    app.stop().await;
}

#[tokio::test]
async fn page_0_and_page_past_a_million_are_422s_naming_page() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for list in LISTS {
        for page in ["0", "1000001", "-1", "99999999999999999999", "two", ""] {
            let reply = app.get(&key, &format!("{list}?page={page}")).await;

            assert_eq!(reply.invalid_fields(), ["page"], "{list}?page={page}");
            // A number, however large, is told the range; anything else
            // that it must be a number.
            let advice = if page.parse::<f64>().is_ok() {
                "between 1 and 1000000"
            } else {
                "whole number"
            };
            assert!(reply.detail(422).contains(advice), "{}", reply.text);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    for list in LISTS {
        let reply = app.get(&key, &format!("{list}?page=1&sort=name")).await;

        assert_eq!(reply.invalid_fields(), ["sort"], "{list}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_query_parameter_is_a_422_naming_it() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    tools_and_agents(&app, &key, &["alpha", "bravo"]).await;

    for list in LISTS {
        let page = app.get(&key, &format!("{list}?page=1&page=1")).await;
        let name = app
            .get(&key, &format!("{list}?name=alpha&name=bravo"))
            .await;

        assert_eq!(page.invalid_fields(), ["page"], "{list}");
        assert_eq!(name.invalid_fields(), ["name"], "{list}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_query_is_a_422_even_when_the_filter_names_nothing() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;

    let tools = app.get(&key, "/tools?agent_name=Nobody&page_size=0").await;
    let agents = app.get(&key, "/agents?tool_name=nothing&page=0").await;

    assert_eq!(tools.invalid_fields(), ["page_size"]);
    assert_eq!(agents.invalid_fields(), ["page"]);
    app.stop().await;
}

#[tokio::test]
async fn query_values_are_percent_decoded() {
    let app = TestApp::start().await;
    let key = app.tenant("acme").await;
    app.create_agent(&key, "Research helper", &[]).await;

    let plus = app.get(&key, "/agents?name=Research+helper").await;
    let encoded = app.get(&key, "/agents?name=Research%20helper").await;

    assert_eq!(plus.names(), ["Research helper"]);
    assert_eq!(encoded.names(), ["Research helper"]);
    app.stop().await;
}
