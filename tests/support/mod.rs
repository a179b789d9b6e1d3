//! What the end-to-end tests share: a database per test, the API (and
//! optionally a worker) started in process on port 0, the real binary
//! started as a child process, and a small HTTP client.
//!
//! Each test file includes this module with `mod support;` and uses what it
//! needs, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod http;
pub mod process;
pub mod runs;

use std::net::SocketAddr;
use std::time::Duration;

use store::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use db::TestDb;
pub use http::{Call, RawConnection, Reply};

/// A worker configuration fast enough for tests: short heartbeats, polls
/// and retry delays.
pub fn fast_worker() -> worker::Config {
    worker::Config {
        concurrency: 8,
        run_timeout: Duration::from_secs(2),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(100),
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 3,
        poll_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(5),
        run_deadline: Duration::from_mins(10),
    }
}

/// Model adapters that simulate every model with no latency.
pub fn simulated() -> models::AdapterConfig {
    models::AdapterConfig {
        simulated_latency: Duration::ZERO,
        ..models::AdapterConfig::default()
    }
}

/// How to start a [`TestApp`].
pub struct Options {
    /// Run a worker in process too.
    pub worker: Option<worker::Config>,
    /// The adapters the worker (and `GET /models`) use.
    pub adapters: models::AdapterConfig,
    /// The rate limiter (in process unless a test needs Redis).
    pub limiter: ratelimit::Limiter,
    /// What the API does when the limiter cannot answer.
    pub on_limiter_error: api::OnLimiterError,
    /// How long the API waits on clients and at shutdown.
    pub timeouts: api::Timeouts,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: None,
            adapters: simulated(),
            limiter: ratelimit::Limiter::local(),
            on_limiter_error: api::OnLimiterError::Allow,
            timeouts: api::Timeouts::default(),
        }
    }
}

/// The platform running in this process against its own database.
pub struct TestApp {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The test's database.
    pub db: TestDb,
    /// A pool on it, for arranging and asserting.
    pub pool: PgPool,
    client: reqwest::Client,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl TestApp {
    /// The API alone.
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    /// The API and a fast worker with simulated models.
    pub async fn with_worker() -> Self {
        Self::with(Options {
            worker: Some(fast_worker()),
            ..Options::default()
        })
        .await
    }

    /// The API, and a worker if `options` asks for one.
    pub async fn with(options: Options) -> Self {
        install_crypto();
        let db = TestDb::create().await;
        let pool = db.pool(8);
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();

        let adapters = models::Adapters::new(options.adapters.clone()).expect("adapters");
        let catalog = api::ModelCatalog::new(|model| adapters.mode(model));
        let limits = api::RateLimits::new(options.limiter, options.on_limiter_error);
        let state = api::AppState::new(pool.clone(), catalog, limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let api_stop = stop.clone();
        let timeouts = options.timeouts;
        tasks.push(tokio::spawn(async move {
            api::serve_with(listener, state, timeouts, async move {
                api_stop.cancelled().await;
            })
            .await
            .expect("api");
        }));

        if let Some(config) = options.worker {
            let adapters = models::Adapters::new(options.adapters).expect("adapters");
            let worker_pool = db.pool(8);
            let worker_stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                worker::run(worker_pool, adapters, config, None, worker_stop)
                    .await
                    .expect("worker");
            }));
        }

        Self {
            addr,
            db,
            pool,
            // Redirects are part of what the tests check, so none is followed.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            stop,
            tasks,
        }
    }

    /// Creates a tenant with default limits and returns a key for it.
    pub async fn tenant(&self, name: &str) -> String {
        self.tenant_with_limits(name, domain::TenantLimits::default())
            .await
    }

    /// Creates a tenant with `limits` and returns a key for it.
    pub async fn tenant_with_limits(&self, name: &str, limits: domain::TenantLimits) -> String {
        store::tenants::create(&self.pool, name, limits)
            .await
            .expect("create tenant");
        store::keys::create(&self.pool, name)
            .await
            .expect("create key")
            .expect("tenant exists")
            .reveal()
            .to_owned()
    }

    /// Creates a tool called `name` in `key`'s tenant and returns its id.
    pub async fn create_tool(&self, key: &str, name: &str) -> String {
        let body = serde_json::json!({"name": name, "description": format!("The {name} tool")});
        self.post(key, "/tools", &body).await.expect(201).str("id")
    }

    /// Creates an agent called `name` using `tool_ids` and returns its id.
    pub async fn create_agent(&self, key: &str, name: &str, tool_ids: &[&str]) -> String {
        let body = serde_json::json!({
            "name": name,
            "role": "Researcher",
            "description": format!("The {name} agent"),
            "tool_ids": tool_ids,
        });
        self.post(key, "/agents", &body).await.expect(201).str("id")
    }

    /// `GET path` with `key`.
    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path).key(key).send().await
    }

    /// `POST path` with `key` and a JSON body.
    pub async fn post(&self, key: &str, path: &str, body: &serde_json::Value) -> Reply {
        self.call(reqwest::Method::POST, path)
            .key(key)
            .json(body)
            .send()
            .await
    }

    /// `PUT path` with `key` and a JSON body.
    pub async fn put(&self, key: &str, path: &str, body: &serde_json::Value) -> Reply {
        self.call(reqwest::Method::PUT, path)
            .key(key)
            .json(body)
            .send()
            .await
    }

    /// `DELETE path` with `key`.
    pub async fn delete(&self, key: &str, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path)
            .key(key)
            .send()
            .await
    }

    /// A request to the API, to be completed and sent.
    pub fn call(&self, method: reqwest::Method, path: &str) -> Call {
        Call::new(&self.client, method, format!("http://{}{path}", self.addr))
    }

    /// Polls an execution until it is terminal (or `within` passes).
    pub async fn wait_terminal(&self, key: &str, id: &str, within: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let reply = self
                .call(reqwest::Method::GET, &format!("/executions/{id}"))
                .key(key)
                .send()
                .await;
            let status = reply.body["status"].as_str().unwrap_or_default().to_owned();
            if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
                return reply.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "execution {id} still {status} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the API and the worker, then drops the database. Answers
    /// whether both stopped within the 10 s each is given.
    pub async fn stop(self) -> bool {
        self.stop.cancel();
        let mut stopped = true;
        for task in self.tasks {
            stopped &= tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_ok();
        }
        self.pool.close().await;
        self.db.drop_now().await;
        stopped
    }
}

/// Model providers' HTTPS needs one crypto provider per process.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
