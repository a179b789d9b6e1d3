//! The long-running commands: `api`, `worker` and `dev` (both in one).
//!
//! Shutdown choreography: on SIGTERM or Ctrl-C the API stops accepting
//! connections and lets in-flight requests finish; the worker stops taking
//! jobs, lets in-flight runs finish within its grace period and hands the
//! rest back to the queue. In `dev` both stop together, and the process
//! exits once both are done.

use anyhow::Context;
use domain::Model;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{connect, ensure_demo_tenants};
use crate::config::{
    ApiArgs, DatabaseArgs, DevArgs, HttpArgs, ProviderArgs, WorkerArgs, WorkerSettings,
};

/// `agent-platform api`
pub async fn api(args: ApiArgs) -> anyhow::Result<()> {
    let pool = pool(&args.database)?;
    if args.migrate.migrate_on_start {
        store::migrate(&pool).await.context("migrations failed")?;
    }
    // The API starts anyway, not ready: an orchestrator starting it before
    // the database must not see it crash-loop.
    if let Err(error) = store::ping(&pool).await {
        tracing::warn!(%error, "the database does not answer; /readyz is 503 until it does");
    }
    let adapters = adapters(&args.providers)?;
    serve_api(pool, &args.http, &adapters, shutdown_on_signal()).await
}

/// `agent-platform worker`
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let pool = pool(&args.database)?;
    if args.migrate.migrate_on_start {
        store::migrate(&pool).await.context("migrations failed")?;
    }
    let adapters = adapters(&args.providers)?;
    let listener = TcpListener::bind(args.worker_listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on WORKER_LISTEN_ADDR {}",
                args.worker_listen_addr
            )
        })?;
    let health = Some((listener, api::observe::install_metrics()));
    run_worker(pool, &args.worker, adapters, health, shutdown_on_signal()).await
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
    let api_adapters = adapters(&args.providers)?;
    let worker_adapters = adapters(&args.providers)?;
    // The worker's metrics land in the same registry the API serves, which
    // must be installed before either registers a counter.
    api::observe::install_metrics();
    let (api, worker) = tokio::join!(
        serve_api(pool.clone(), &args.http, &api_adapters, shutdown.clone()),
        run_worker(pool, &args.worker, worker_adapters, None, shutdown.clone()),
    );
    shutdown.cancel();
    api.and(worker)
}

fn pool(database: &DatabaseArgs) -> anyhow::Result<store::PgPool> {
    store::pool(&database.database_url, database.database_max_connections)
        .context("DATABASE_URL is not a valid PostgreSQL URL")
}

fn adapters(providers: &ProviderArgs) -> anyhow::Result<models::Adapters> {
    models::Adapters::new(providers.adapters()).context("invalid model provider settings")
}

async fn serve_api(
    pool: store::PgPool,
    http: &HttpArgs,
    adapters: &models::Adapters,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalog = api::ModelCatalog::new(|model: Model| adapters.mode(model));
    let state = api::AppState::new(pool, catalog, rate_limits(http).await?);
    api::observe::install_metrics();
    // Registered at zero: Prometheus shows a counter only once it exists, and
    // an alert on limiter errors should work before the first one.
    metrics::counter!("agent_platform_rate_limiter_errors_total").increment(0);
    let listener = TcpListener::bind(http.listen_addr)
        .await
        .with_context(|| format!("cannot listen on LISTEN_ADDR {}", http.listen_addr))?;
    tracing::info!(addr = %http.listen_addr, "api listening");
    api::serve(listener, state, async move { shutdown.cancelled().await })
        .await
        .context("the API server failed")
}

async fn run_worker(
    pool: store::PgPool,
    settings: &WorkerSettings,
    adapters: models::Adapters,
    health: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    worker::run(pool, adapters, settings.config(), health, shutdown)
        .await
        .context("the worker failed")
}

/// The rate limiter: on Redis when `REDIS_URL` is set, else in process.
/// Redis down at start-up is no reason not to start (the limiter reconnects,
/// and `RATE_LIMIT_ON_REDIS_ERROR` says what to do meanwhile), but it is
/// worth a warning now rather than at the first request.
async fn rate_limits(http: &HttpArgs) -> anyhow::Result<api::RateLimits> {
    let limiter = if let Some(url) = &http.redis_url {
        let limiter =
            ratelimit::Limiter::redis(url).context("REDIS_URL is not a valid Redis URL")?;
        if let Err(error) = limiter.ping().await {
            tracing::warn!(
                %error,
                on_error = ?http.rate_limit_on_redis_error,
                "Redis at REDIS_URL does not answer; starting anyway"
            );
        }
        limiter
    } else {
        tracing::warn!(
            "REDIS_URL is not set: rate limits are counted in this process, per replica"
        );
        ratelimit::Limiter::local()
    };
    Ok(api::RateLimits::new(
        limiter,
        http.rate_limit_on_redis_error,
    ))
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
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        tracing::error!("cannot listen for SIGTERM; only Ctrl-C will stop this process");
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
