//! Admin commands: migrations, tenants, API keys and the demo tenants.
//!
//! Scripts drive these, so their output is part of the contract: one line
//! a record, and `keys create` prints the new key as the last word.

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use domain::limits::DEMO_TENANTS;
use domain::{Limit, Tenant, TenantLimits};
use store::PgPool;
use store::tenants::LimitChanges;

use crate::config::DatabaseArgs;

/// `agent-platform tenants ...`
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant (60 runs and 6,000 requests per minute unless given).
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant's unique name: 1-64 of A-Z a-z 0-9 _ . -
        #[arg(long, value_parser = tenant_name)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List tenants and their limits, one a line.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Change some of a tenant's limits (in effect within 5 seconds); give
    /// at least one limit flag.
    #[command(group(
        ArgGroup::new("limit")
            .args(LimitArgs::FLAGS)
            .required(true)
            .multiple(true)
    ))]
    SetLimits {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// Limit flags; each is optional. Their values must fit the database's
/// `integer` columns: anything larger is a usage error, not a silent cap.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Runs accepted per run window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    run_limit: Option<u32>,
    /// The run window, in seconds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    run_window_secs: Option<u32>,
    /// Requests accepted per request window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    request_limit: Option<u32>,
    /// The request window, in seconds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    request_window_secs: Option<u32>,
}

impl LimitArgs {
    /// The ids of the limit flags, for a group that needs one of them.
    const FLAGS: [&'static str; 4] = [
        "run_limit",
        "run_window_secs",
        "request_limit",
        "request_window_secs",
    ];
}

/// The largest limit or window the tenants table can hold.
const MAX_LIMIT: i64 = i32::MAX as i64;

impl LimitArgs {
    fn changes(&self) -> LimitChanges {
        LimitChanges {
            run_limit: self.run_limit,
            run_window_secs: self.run_window_secs,
            request_limit: self.request_limit,
            request_window_secs: self.request_window_secs,
        }
    }

    fn over(&self, base: TenantLimits) -> TenantLimits {
        TenantLimits {
            runs: Limit {
                limit: self.run_limit.unwrap_or(base.runs.limit),
                window_secs: self.run_window_secs.unwrap_or(base.runs.window_secs),
            },
            requests: Limit {
                limit: self.request_limit.unwrap_or(base.requests.limit),
                window_secs: self
                    .request_window_secs
                    .unwrap_or(base.requests.window_secs),
            },
        }
    }
}

/// `agent-platform keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant; printed once, as the last word.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant's name.
        #[arg(long)]
        tenant: String,
    },
    /// List a tenant's keys: prefix, created, revoked (or -), one a line.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant's name.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke the key with this prefix (in effect within 5 seconds).
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The key's prefix, as `keys list` shows it.
        #[arg(long)]
        prefix: String,
    },
}

fn tenant_name(value: &str) -> Result<String, String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if value.is_empty() || value.len() > 64 || !value.chars().all(valid_char) {
        return Err("a tenant name is 1-64 of A-Z a-z 0-9 _ . -".to_owned());
    }
    Ok(value.to_owned())
}

/// Connects and checks the database answers, for one-shot commands.
pub async fn connect(database: &DatabaseArgs) -> anyhow::Result<PgPool> {
    let pool = store::pool(&database.database_url, database.database_max_connections)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    store::ping(&pool)
        .await
        .context("cannot reach the database at DATABASE_URL")?;
    Ok(pool)
}

/// `agent-platform migrate`
pub async fn migrate(database: &DatabaseArgs) -> anyhow::Result<()> {
    let pool = connect(database).await?;
    store::migrate(&pool).await.context("migrations failed")?;
    println!("migrations applied");
    Ok(())
}

/// `agent-platform tenants ...`
pub async fn tenants(command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Create {
            database,
            name,
            limits,
        } => {
            let pool = connect(&database).await?;
            let tenant = store::tenants::create(&pool, &name, limits.over(TenantLimits::default()))
                .await
                .map_err(|error| match error {
                    store::StoreError::Conflict(_) => {
                        anyhow::anyhow!("a tenant named {name:?} already exists")
                    }
                    other => anyhow::Error::new(other),
                })?;
            println!("{}", describe(&tenant));
        }
        TenantsCommand::List { database } => {
            let pool = connect(&database).await?;
            for tenant in store::tenants::list(&pool).await? {
                println!("{}", describe(&tenant));
            }
        }
        TenantsCommand::SetLimits {
            database,
            name,
            limits,
        } => {
            let pool = connect(&database).await?;
            let Some(tenant) = store::tenants::set_limits(&pool, &name, limits.changes()).await?
            else {
                bail!("no tenant is named {name:?}");
            };
            println!("{}", describe(&tenant));
        }
    }
    Ok(())
}

fn describe(tenant: &Tenant) -> String {
    let TenantLimits { runs, requests } = tenant.limits;
    format!(
        "{} id={} runs={}/{}s requests={}/{}s",
        tenant.name, tenant.id, runs.limit, runs.window_secs, requests.limit, requests.window_secs
    )
}

/// `agent-platform keys ...`
pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { database, tenant } => {
            let pool = connect(&database).await?;
            let Some(key) = store::keys::create(&pool, &tenant).await? else {
                bail!("no tenant is named {tenant:?}");
            };
            println!(
                "created a key for tenant {tenant} (shown only this once): {}",
                key.reveal()
            );
        }
        KeysCommand::List { database, tenant } => {
            let pool = connect(&database).await?;
            let Some(keys) = store::keys::list(&pool, &tenant).await? else {
                bail!("no tenant is named {tenant:?}");
            };
            for key in keys {
                let revoked = key
                    .revoked_at
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), domain::time::format);
                println!(
                    "{} {} {}",
                    key.prefix,
                    domain::time::format(&key.created_at),
                    revoked
                );
            }
        }
        KeysCommand::Revoke { database, prefix } => {
            let pool = connect(&database).await?;
            if !store::keys::revoke(&pool, &prefix).await? {
                bail!("no key has the prefix {prefix:?}");
            }
            println!("revoked key {prefix}");
        }
    }
    Ok(())
}

/// `agent-platform demo-tenants`
pub async fn demo_tenants(database: &DatabaseArgs) -> anyhow::Result<()> {
    let pool = connect(database).await?;
    for tenant in ensure_demo_tenants(&pool).await? {
        println!("{} key={}", describe(&tenant), tenant.name);
    }
    Ok(())
}

/// Creates (or resets) the demo tenants; their keys are their names.
pub async fn ensure_demo_tenants(pool: &PgPool) -> anyhow::Result<Vec<Tenant>> {
    let mut tenants = Vec::new();
    for (name, runs) in DEMO_TENANTS {
        let limits = TenantLimits {
            runs,
            ..TenantLimits::default()
        };
        tenants.push(store::tenants::ensure_demo(pool, name, limits).await?);
    }
    Ok(tenants)
}
