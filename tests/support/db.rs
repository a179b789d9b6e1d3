//! A database per test, cloned from a migrated template.
//!
//! The template is built once per schema version (its name carries a digest
//! of the migrations), under an advisory lock so parallel test binaries
//! build it once. Cloning a template is far quicker than migrating.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, PgConnection};
use store::PgPool;
use tokio::sync::OnceCell;

/// Serializes template building across processes.
const TEMPLATE_LOCK: i64 = 0x0a9e_7e57;

/// A database that exists for one test, dropped at its end.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin_url: String,
    dropped: bool,
}

impl TestDb {
    /// A fresh, migrated database.
    pub async fn create() -> Self {
        let admin_url = testkit::services::postgres_url().await.to_owned();
        let template = template(&admin_url).await;
        let name = format!("ap_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = connect(&admin_url).await;
        execute(
            &mut admin,
            format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        let url = with_database(&admin_url, &name);
        Self {
            url,
            name,
            admin_url,
            dropped: false,
        }
    }

    /// A pool of at most `max` connections on this database.
    pub fn pool(&self, max: u32) -> PgPool {
        store::pool(&self.url, max).expect("pool")
    }

    /// Drops the database now (closing anything still connected).
    pub async fn drop_now(mut self) {
        drop_database(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test that panicked: drop its database from a thread of its own,
        // since this may run inside (or outside) an async runtime.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropping = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&admin_url, &name));
            }
        });
        let _ = dropping.join();
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = connect(admin_url).await;
    execute(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
}

/// The template's name, building it first if this schema has none yet.
async fn template(admin_url: &str) -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| build_template(admin_url.to_owned()))
        .await
}

async fn build_template(admin_url: String) -> String {
    let name = format!("ap_template_{}", &schema_digest()[..16]);
    let mut admin = connect(&admin_url).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .expect("lock");

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("look for the template");
    if !exists {
        let building = format!("{name}_building");
        execute(
            &mut admin,
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        )
        .await;
        execute(&mut admin, format!("CREATE DATABASE {building}")).await;
        let pool = store::pool(&with_database(&admin_url, &building), 2).expect("pool");
        store::migrate(&pool).await.expect("migrate the template");
        pool.close().await;
        // Renamed only once complete, so no test ever clones a half-built one.
        execute(
            &mut admin,
            format!("ALTER DATABASE {building} RENAME TO {name}"),
        )
        .await;
    }

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .expect("unlock");
    name
}

/// A digest of everything that shapes the schema: our migrations and the
/// queue library's version.
fn schema_digest() -> String {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .expect("migrations")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    let mut digest = Sha256::new();
    for file in files {
        digest.update(std::fs::read(&file).expect("read migration"));
    }
    digest.update(b"apalis-postgres 1.0");
    hex::encode(digest.finalize())
}

async fn connect(url: &str) -> PgConnection {
    let options: PgConnectOptions = url.parse().expect("database URL");
    let mut attempts = 0;
    loop {
        match options.clone().connect().await {
            Ok(connection) => return connection,
            Err(error) if attempts < 20 => {
                attempts += 1;
                tracing::debug!(%error, "retrying the admin connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("cannot connect to the test database server: {error}"),
        }
    }
}

/// Runs one statement built from names this module generated itself.
async fn execute(connection: &mut PgConnection, statement: String) {
    sqlx::raw_sql(AssertSqlSafe(statement.clone()))
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

/// `url` with its database replaced by `database`, query kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}
