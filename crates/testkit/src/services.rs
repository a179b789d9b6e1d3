//! Where the tests' PostgreSQL and Redis are.
//!
//! In order: `TEST_DATABASE_URL` / `TEST_REDIS_URL` when set; else the local
//! services on their standard ports when they answer; else containers, when
//! a Docker daemon runs; else a panic saying what to set. The database URL
//! names a server on which tests may create and drop databases; its own
//! database is only used to connect.

use std::time::Duration;

use testcontainers_modules::testcontainers::ContainerAsync;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::{postgres::Postgres, redis::Redis};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";

/// The URL of a PostgreSQL server the tests may create databases on.
pub async fn postgres_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| {
        resolve(
            "TEST_DATABASE_URL",
            "127.0.0.1:5432",
            LOCAL_POSTGRES,
            start_postgres,
        )
    })
    .await
}

/// The URL of a Redis server the tests may use (keys are per test).
pub async fn redis_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| resolve("TEST_REDIS_URL", "127.0.0.1:6379", LOCAL_REDIS, start_redis))
        .await
}

async fn resolve<F, Fut>(variable: &str, local_addr: &str, local_url: &str, start: F) -> String
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = String>,
{
    if let Ok(url) = std::env::var(variable) {
        return url;
    }
    if answers(local_addr).await {
        return local_url.to_owned();
    }
    if docker_runs() {
        return start().await;
    }
    panic!(
        "no server for the tests: set {variable}, start the service on {local_addr}, \
         or run a Docker daemon so a container can be started"
    );
}

async fn answers(addr: &str) -> bool {
    let connect = TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(Duration::from_millis(500), connect).await,
        Ok(Ok(_))
    )
}

/// The `docker` client may be installed without a daemon: ask the daemon.
fn docker_runs() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

// Containers live as long as the test process; the testcontainers reaper
// removes them afterwards.
static POSTGRES: OnceCell<ContainerAsync<Postgres>> = OnceCell::const_new();
static REDIS: OnceCell<ContainerAsync<Redis>> = OnceCell::const_new();

async fn start_postgres() -> String {
    let container = POSTGRES
        .get_or_init(|| async {
            Postgres::default()
                .start()
                .await
                .expect("start a PostgreSQL container")
        })
        .await;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .expect("PostgreSQL container port");
    format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")
}

async fn start_redis() -> String {
    let container = REDIS
        .get_or_init(|| async {
            Redis::default()
                .start()
                .await
                .expect("start a Redis container")
        })
        .await;
    let port = container
        .get_host_port_ipv4(6379)
        .await
        .expect("Redis container port");
    format!("redis://127.0.0.1:{port}")
}
