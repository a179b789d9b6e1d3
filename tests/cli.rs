//! The admin command line, run as the real binary: tenants, keys and the demo
//! tenants. Scripts drive it, so its output and exit statuses are contract.

mod support;

use std::process::Stdio;

use support::TestApp;
use support::process::{self, Output, admin};

/// A database URL that parses but where nothing listens (port 1).
const UNREACHABLE_DATABASE: &str = "postgres://postgres@127.0.0.1:1/postgres";

/// Addresses no local socket can take: a server command that got past its
/// configuration fails to listen and exits 1 rather than running on.
const UNLISTENABLE: [(&str, &str); 2] = [
    ("LISTEN_ADDR", "192.0.2.1:8000"),
    ("WORKER_LISTEN_ADDR", "192.0.2.1:9000"),
];

/// The line `tenants list` prints for `name`.
#[track_caller]
fn tenant_line(listing: &str, name: &str) -> String {
    let lines: Vec<&str> = listing
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(name))
        .collect();
    assert_eq!(lines.len(), 1, "one line for {name} in:\n{listing}");
    lines[0].to_owned()
}

/// Asserts a command failed with `code`, naming `reason` on standard error.
#[track_caller]
fn assert_fails(output: &Output, code: i32, reason: &str) {
    assert_eq!(output.code, Some(code), "{output:?}");
    assert!(
        output.stderr.contains(reason),
        "no {reason:?} in {output:?}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
}

/// Runs a command against `url` with the usual database settings.
fn against(url: &str, args: &[&str]) -> Output {
    process::run(
        args,
        &[("DATABASE_URL", url), ("DATABASE_MAX_CONNECTIONS", "2")],
    )
}

/// Runs `command` (a server) with `setting` on top of an unreachable
/// database and addresses it cannot listen on.
fn configured(command: &str, setting: (&str, &str)) -> Output {
    let mut env = vec![("DATABASE_URL", UNREACHABLE_DATABASE)];
    env.extend(UNLISTENABLE);
    env.push(setting);
    process::run(&[command], &env)
}

/// Starts `agent-platform api` on `database_url` with `extra` settings,
/// waits until it answers, then kills it; returns what it logged.
async fn api_log(database_url: &str, extra: &[(&str, &str)]) -> String {
    let port = process::free_port();
    let mut command = tokio::process::Command::new(process::BINARY);
    command
        .arg("api")
        .env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut api = command.spawn().expect("start the api");
    process::wait_until_healthy(port).await;
    api.start_kill().expect("kill the api");
    let output = api.wait_with_output().await.expect("wait for the api");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Creates a key for `tenant` through the command line and returns it.
fn create_key(url: &str, tenant: &str) -> String {
    let printed = admin(url, &["keys", "create", "--tenant", tenant]);
    printed.split_whitespace().last().expect("a key").to_owned()
}

#[tokio::test]
async fn tenants_create_gives_60_runs_and_6000_requests_per_minute_by_default() {
    let app = TestApp::start().await;

    let printed = admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    assert!(printed.starts_with("acme id="), "{printed}");
    assert!(
        printed
            .trim_end()
            .ends_with("runs=60/60s requests=6000/60s"),
        "{printed}"
    );
    let listed = tenant_line(&admin(&app.db.url, &["tenants", "list"]), "acme");
    assert_eq!(listed, printed.trim_end());
    app.stop().await;
}

#[tokio::test]
async fn tenants_create_takes_each_limit_flag() {
    let app = TestApp::start().await;

    admin(
        &app.db.url,
        &[
            "tenants",
            "create",
            "--name",
            "acme",
            "--run-limit",
            "5",
            "--run-window-secs",
            "3600",
            "--request-limit",
            "100",
            "--request-window-secs",
            "10",
        ],
    );
    admin(
        &app.db.url,
        &["tenants", "create", "--name", "globex", "--run-limit", "7"],
    );

    let listing = admin(&app.db.url, &["tenants", "list"]);
    assert!(
        tenant_line(&listing, "acme").ends_with("runs=5/3600s requests=100/10s"),
        "{listing}"
    );
    assert!(
        tenant_line(&listing, "globex").ends_with("runs=7/60s requests=6000/60s"),
        "{listing}"
    );
    app.stop().await;
}

#[tokio::test]
async fn tenants_list_shows_each_tenant_on_one_line_by_name() {
    let app = TestApp::start().await;
    for name in ["globex", "acme", "initech"] {
        admin(&app.db.url, &["tenants", "create", "--name", name]);
    }

    let listing = admin(&app.db.url, &["tenants", "list"]);

    let names: Vec<&str> = listing
        .lines()
        .map(|line| line.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(names, ["acme", "globex", "initech"], "{listing}");
    app.stop().await;
}

#[tokio::test]
async fn tenants_set_limits_changes_only_the_limits_given() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    let printed = admin(
        &app.db.url,
        &[
            "tenants",
            "set-limits",
            "--name",
            "acme",
            "--run-limit",
            "3",
            "--request-window-secs",
            "30",
        ],
    );

    assert!(
        printed.trim_end().ends_with("runs=3/60s requests=6000/30s"),
        "{printed}"
    );
    let listed = tenant_line(&admin(&app.db.url, &["tenants", "list"]), "acme");
    assert!(listed.ends_with("runs=3/60s requests=6000/30s"), "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn tenants_set_limits_of_an_unknown_tenant_fails_with_status_1() {
    let app = TestApp::start().await;

    let output = against(
        &app.db.url,
        &[
            "tenants",
            "set-limits",
            "--name",
            "nobody",
            "--run-limit",
            "3",
        ],
    );

    assert_fails(&output, 1, "nobody");
    app.stop().await;
}

#[tokio::test]
async fn creating_a_tenant_twice_fails_with_status_1() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    let output = against(&app.db.url, &["tenants", "create", "--name", "acme"]);

    assert_fails(&output, 1, "already exists");
    app.stop().await;
}

#[tokio::test]
async fn keys_create_prints_the_key_as_its_last_word_and_the_key_works() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    let key = create_key(&app.db.url, "acme");

    assert!(key.starts_with("ap_"), "{key}");
    app.get(&key, "/tools").await.expect(200);
    app.create_tool(&key, "search").await;
    app.stop().await;
}

#[tokio::test]
async fn keys_create_for_an_unknown_tenant_fails_with_status_1() {
    let app = TestApp::start().await;

    let output = against(&app.db.url, &["keys", "create", "--tenant", "nobody"]);

    assert_fails(&output, 1, "nobody");
    app.stop().await;
}

#[tokio::test]
async fn keys_list_shows_prefix_created_and_revoked_one_key_a_line() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);
    let first = create_key(&app.db.url, "acme");
    let second = create_key(&app.db.url, "acme");
    let revoked: String = first.chars().take(12).collect();
    admin(&app.db.url, &["keys", "revoke", "--prefix", &revoked]);

    let listing = admin(&app.db.url, &["keys", "list", "--tenant", "acme"]);

    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{listing}");
    for line in &lines {
        assert_eq!(line.len(), 3, "{listing}");
        assert!(line[1].ends_with('Z') && line[1].contains('T'), "{listing}");
    }
    assert!(
        !listing.contains(&first) && !listing.contains(&second),
        "a key in clear"
    );
    let revoked_line = lines
        .iter()
        .find(|line| line[0] == revoked)
        .expect("the revoked key");
    assert!(revoked_line[2].ends_with('Z'), "{listing}");
    let live_line = lines
        .iter()
        .find(|line| second.starts_with(line[0]))
        .expect("the live key");
    assert_eq!(live_line[2], "-", "{listing}");
    app.stop().await;
}

#[tokio::test]
async fn keys_list_of_an_unknown_tenant_fails_with_status_1() {
    let app = TestApp::start().await;

    let output = against(&app.db.url, &["keys", "list", "--tenant", "nobody"]);

    assert_fails(&output, 1, "nobody");
    app.stop().await;
}

#[tokio::test]
async fn keys_revoke_takes_the_prefix_and_the_key_stops_working() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);
    let key = create_key(&app.db.url, "acme");
    let prefix: String = key.chars().take(12).collect();

    let printed = admin(&app.db.url, &["keys", "revoke", "--prefix", &prefix]);

    assert!(printed.contains(&prefix), "{printed}");
    app.get(&key, "/tools").await.problem(401);
    app.stop().await;
}

#[tokio::test]
async fn keys_revoke_of_an_unknown_prefix_fails_with_status_1() {
    let app = TestApp::start().await;

    let output = against(&app.db.url, &["keys", "revoke", "--prefix", "ap_nothing"]);

    assert_fails(&output, 1, "ap_nothing");
    app.stop().await;
}

#[tokio::test]
async fn demo_tenants_twice_is_idempotent_and_their_keys_work() {
    let app = TestApp::start().await;

    let first = admin(&app.db.url, &["demo-tenants"]);
    let second = admin(&app.db.url, &["demo-tenants"]);

    assert_eq!(first, second);
    let listing = admin(&app.db.url, &["tenants", "list"]);
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let runs = [
        ("tenant_a", "runs=10/3600s"),
        ("tenant_b", "runs=200/86400s"),
        ("tenant_c", "runs=2/60s"),
    ];
    for (name, limit) in runs {
        assert!(tenant_line(&listing, name).contains(limit), "{listing}");
        let keys = admin(&app.db.url, &["keys", "list", "--tenant", name]);
        assert_eq!(keys.lines().count(), 1, "{keys}");
        app.get(name, "/tools").await.expect(200);
    }
    app.stop().await;
}

#[tokio::test]
async fn demo_tenants_restores_both_limits_of_a_changed_demo_tenant() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["demo-tenants"]);
    let changed = [
        "tenants",
        "set-limits",
        "--name",
        "tenant_c",
        "--run-limit",
        "7",
        "--request-limit",
        "50",
    ];
    admin(&app.db.url, &changed);

    admin(&app.db.url, &["demo-tenants"]);

    let listing = admin(&app.db.url, &["tenants", "list"]);
    let line = tenant_line(&listing, "tenant_c");
    assert!(line.contains("runs=2/60s"), "{listing}");
    assert!(line.contains("requests=6000/60s"), "{listing}");
    app.stop().await;
}

#[tokio::test]
async fn demo_tenants_restores_a_revoked_demo_key() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["demo-tenants"]);
    admin(&app.db.url, &["keys", "revoke", "--prefix", "tenant_c"]);

    admin(&app.db.url, &["demo-tenants"]);

    let keys = admin(&app.db.url, &["keys", "list", "--tenant", "tenant_c"]);
    assert!(keys.trim_end().ends_with(" -"), "{keys}");
    app.get("tenant_c", "/tools").await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn demo_tenants_see_only_their_own_data() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["demo-tenants"]);

    app.create_tool("tenant_a", "search").await;

    assert_eq!(app.get("tenant_a", "/tools").await.names(), ["search"]);
    assert!(app.get("tenant_b", "/tools").await.names().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_flag_or_subcommand_is_a_usage_error_with_status_2() {
    let app = TestApp::start().await;

    let flag = against(&app.db.url, &["tenants", "list", "--colour", "blue"]);
    let subcommand = against(&app.db.url, &["tenants", "rename"]);
    let missing = against(&app.db.url, &["keys", "create"]);

    assert_fails(&flag, 2, "--colour");
    assert_fails(&subcommand, 2, "rename");
    assert_fails(&missing, 2, "--tenant");
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_flag_value_is_a_usage_error_with_status_2() {
    let app = TestApp::start().await;

    let name = against(&app.db.url, &["tenants", "create", "--name", "has space"]);
    let limit = against(
        &app.db.url,
        &["tenants", "create", "--name", "acme", "--run-limit", "0"],
    );

    assert_fails(&name, 2, "--name");
    assert_fails(&limit, 2, "--run-limit");
    assert!(admin(&app.db.url, &["tenants", "list"]).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn tenants_set_limits_without_a_limit_flag_is_a_usage_error_changing_nothing() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    let output = against(&app.db.url, &["tenants", "set-limits", "--name", "acme"]);

    assert_fails(&output, 2, "--run-limit");
    let listed = tenant_line(&admin(&app.db.url, &["tenants", "list"]), "acme");
    assert!(
        listed.ends_with("runs=60/60s requests=6000/60s"),
        "{listed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_limit_too_large_to_store_is_a_usage_error() {
    let app = TestApp::start().await;
    admin(&app.db.url, &["tenants", "create", "--name", "acme"]);

    let created = against(
        &app.db.url,
        &[
            "tenants",
            "create",
            "--name",
            "globex",
            "--request-limit",
            "3000000000",
        ],
    );
    let changed = against(
        &app.db.url,
        &[
            "tenants",
            "set-limits",
            "--name",
            "acme",
            "--run-window-secs",
            "2147483648",
        ],
    );

    assert_fails(&created, 2, "--request-limit");
    assert_fails(&changed, 2, "--run-window-secs");
    let listing = admin(&app.db.url, &["tenants", "list"]);
    assert!(
        tenant_line(&listing, "acme").ends_with("runs=60/60s requests=6000/60s"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 1, "{listing}");
    app.stop().await;
}

#[test]
fn a_missing_database_url_is_a_usage_error_naming_it() {
    let output = process::run(&["tenants", "list"], &[]);

    assert_fails(&output, 2, "DATABASE_URL");
}

#[test]
fn a_malformed_database_max_connections_is_a_usage_error_naming_it() {
    let output = process::run(
        &["tenants", "list"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            ("DATABASE_MAX_CONNECTIONS", "many"),
        ],
    );

    assert_fails(&output, 2, "DATABASE_MAX_CONNECTIONS");
}

#[test]
fn a_malformed_database_url_is_a_usage_error_naming_it() {
    let output = process::run(&["tenants", "list"], &[("DATABASE_URL", "not a url")]);

    assert_fails(&output, 2, "DATABASE_URL");
}

#[test]
fn an_unreachable_database_fails_with_status_1_naming_it() {
    // Nothing listens on port 1: the connection is refused at once.
    let output = process::run(
        &["tenants", "list"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")],
    );

    assert_fails(&output, 1, "DATABASE_URL");
}

#[test]
fn a_missing_database_is_named_once_in_the_failure() {
    let output = against(
        "postgres://postgres@127.0.0.1:5432/agent_platform_never_created",
        &["tenants", "list"],
    );

    assert_fails(&output, 1, "DATABASE_URL");
    let reason = "\"agent_platform_never_created\" does not exist";
    assert_eq!(output.stderr.matches(reason).count(), 1, "{output:?}");
}

#[test]
fn a_number_setting_out_of_its_range_is_a_usage_error_naming_it() {
    let cases = [
        ("worker", "WORKER_HEARTBEAT_SECS", "18446744073709551615"),
        ("worker", "WORKER_HEARTBEAT_SECS", "3601"),
        ("worker", "WORKER_MISSED_HEARTBEATS", "101"),
        ("worker", "RUN_TIMEOUT_SECS", "86401"),
        ("worker", "RUN_DEADLINE_SECS", "18446744073709551615"),
        ("worker", "RUN_DEADLINE_SECS", "604801"),
        ("worker", "WORKER_POLL_INTERVAL_MS", "60001"),
        ("worker", "WORKER_SHUTDOWN_GRACE_SECS", "3601"),
        ("worker", "RETRY_BASE_DELAY_MS", "60001"),
        ("worker", "SIMULATED_LATENCY_MS", "600001"),
        ("api", "ANTHROPIC_MAX_TOKENS", "1000001"),
        ("dev", "WORKER_HEARTBEAT_SECS", "0"),
    ];

    let outputs: Vec<(&str, Output)> = cases
        .iter()
        .map(|(command, name, value)| (*name, configured(command, (name, value))))
        .collect();

    for (name, output) in &outputs {
        assert_fails(output, 2, name);
    }
}

#[test]
fn a_malformed_url_is_a_usage_error_naming_its_setting_but_not_its_value() {
    let cases = [
        (
            "worker",
            "DATABASE_URL",
            "mysql://admin:hunter2@127.0.0.1/agents",
        ),
        (
            "dev",
            "DATABASE_URL",
            "postgres//admin:hunter2@127.0.0.1/agents",
        ),
        ("api", "REDIS_URL", "http://admin:hunter2@127.0.0.1:6379"),
        ("api", "REDIS_URL", "redis://"),
        ("worker", "OPENAI_BASE_URL", "api.openai.com/v1?hunter2"),
        ("api", "ANTHROPIC_BASE_URL", "ftp://hunter2.example.com"),
    ];

    let outputs: Vec<(&str, Output)> = cases
        .iter()
        .map(|(command, name, value)| (*name, configured(command, (name, value))))
        .collect();

    for (name, output) in &outputs {
        assert_fails(output, 2, name);
        assert!(!output.stderr.contains("hunter2"), "{output:?}");
    }
}

#[tokio::test]
async fn a_rediss_url_is_accepted_and_the_api_starts_with_redis_over_tls() {
    let app = TestApp::start().await;
    let tls = ("REDIS_URL", "rediss://127.0.0.1:6379".to_owned());

    let (port, api) = process::Process::api("api", &app.db.url, &[tls]).await;

    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON");
    // The Redis here speaks no TLS: the limiter is configured, not connected.
    assert_eq!(ready["redis"], "unavailable", "{ready}");
    assert_eq!(ready["status"], "ok", "{ready}");
    api.kill().await;
    app.stop().await;
}

#[tokio::test]
async fn an_api_whose_redis_does_not_answer_at_start_up_says_so_and_starts_anyway() {
    let app = TestApp::start().await;
    let nothing_there = format!("redis://127.0.0.1:{}", process::free_port());

    let log = api_log(&app.db.url, &[("REDIS_URL", &nothing_there)]).await;

    assert!(log.contains("REDIS_URL"), "{log}");
    assert!(log.contains("does not answer"), "{log}");
    app.stop().await;
}

#[tokio::test]
async fn an_api_whose_database_does_not_answer_at_start_up_says_so_and_starts_anyway() {
    let log = api_log(UNREACHABLE_DATABASE, &[]).await;

    assert!(log.contains("the database does not answer"), "{log}");
}

#[tokio::test]
async fn the_apis_limiter_error_counter_is_at_zero_from_the_start() {
    let app = TestApp::start().await;

    let (port, api) = process::Process::api("api", &app.db.url, &[]).await;

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let line = "agent_platform_rate_limiter_errors_total 0";
    assert!(
        metrics.lines().any(|sample| sample == line),
        "no {line:?} in:\n{metrics}"
    );
    api.kill().await;
    app.stop().await;
}
