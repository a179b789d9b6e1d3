//! The long-running commands: `api`, `worker` and `dev` (both in one).
//!
//! Shutdown choreography: on SIGTERM or Ctrl-C the API stops accepting
//! connections and lets in-flight requests finish; the worker stops taking
//! jobs and finishes what it has within its grace period. In `dev` both
//! stop together.

use anyhow::Context;
use domain::Model;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{connect, ensure_demo_tenants};
use crate::config::{ApiArgs, DatabaseArgs, DevArgs, HttpArgs, ProviderArgs};

/// `agent-platform api`
pub async fn api(args: ApiArgs) -> anyhow::Result<()> {
    let pool = pool(&args.database)?;
    if args.migrate.migrate_on_start {
        store::migrate(&pool).await.context("migrations failed")?;
    }
    let shutdown = shutdown_on_signal();
    serve_api(pool, &args.http, &args.providers, shutdown).await
}

/// `agent-platform dev`
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let database = DatabaseArgs::from(args.database.clone());
    store::ensure_database(&database.database_url)
        .await
        .context("cannot create the database named by DATABASE_URL")?;
    let pool = connect(&database).await?;
    store::migrate(&pool).await.context("migrations failed")?;
    let tenants = ensure_demo_tenants(&pool).await?;

    println!(
        "Mini Agent Platform (dev) on http://{}",
        args.http.listen_addr
    );
    println!(
        "  docs: http://{0}/docs and http://{0}/redoc",
        args.http.listen_addr
    );
    for tenant in &tenants {
        println!("  demo key: {} (X-API-Key: {})", tenant.name, tenant.name);
    }

    let shutdown = shutdown_on_signal();
    serve_api(pool, &args.http, &args.providers, shutdown).await
}

fn pool(database: &DatabaseArgs) -> anyhow::Result<store::PgPool> {
    store::pool(&database.database_url, database.database_max_connections)
        .context("DATABASE_URL is not a valid PostgreSQL URL")
}

async fn serve_api(
    pool: store::PgPool,
    http: &HttpArgs,
    providers: &ProviderArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let adapters =
        models::Adapters::new(providers.adapters()).context("invalid provider settings")?;
    let catalog = api::ModelCatalog::new(|model: Model| adapters.mode(model));
    let state = api::AppState::new(pool, catalog);

    let listener = TcpListener::bind(http.listen_addr)
        .await
        .with_context(|| format!("cannot listen on LISTEN_ADDR {}", http.listen_addr))?;
    tracing::info!(addr = %http.listen_addr, "api listening");
    api::serve(listener, state, async move { shutdown.cancelled().await })
        .await
        .context("the API server failed")
}

/// A token cancelled on the first SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C will stop this process");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
