//! Configuration: every setting is an environment variable (or the flag of
//! the same name), parsed and checked before anything starts. A missing,
//! malformed or out-of-range value stops the command with a usage error
//! (status 2) naming the variable; every number has a range that keeps the
//! durations and counts built from it sane, and every URL is parsed here.
//! Secrets are held as `SecretString`, which never prints, and an invalid
//! URL is never echoed, since it may carry a password.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, Args, Command};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use url::Url;

/// The database every command needs.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (`postgres://` or `postgresql://`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = UrlParser::POSTGRES)]
    pub database_url: String,

    /// Most connections this process opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
}

/// The database in `dev` mode: the local server by default.
#[derive(Debug, Clone, Args)]
pub struct DevDatabaseArgs {
    /// PostgreSQL URL; the database is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/agent_platform",
        value_parser = UrlParser::POSTGRES
    )]
    pub database_url: String,

    /// Most connections this process opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
}

impl From<DevDatabaseArgs> for DatabaseArgs {
    fn from(args: DevDatabaseArgs) -> Self {
        Self {
            database_url: args.database_url,
            database_max_connections: args.database_max_connections,
        }
    }
}

/// The HTTP server of the API.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address the API listens on (containers use 0.0.0.0:8000).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen_addr: SocketAddr,

    /// Redis URL (`redis://`, or `rediss://` for TLS) for rate-limit
    /// counters shared by all replicas; without it limits are counted in
    /// process, per replica.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = UrlParser::REDIS)]
    pub redis_url: Option<String>,

    /// Whether to admit (logged and counted) or refuse (503) requests while
    /// Redis is unreachable.
    #[arg(long, env = "RATE_LIMIT_ON_REDIS_ERROR", default_value = "allow",
          value_parser = PossibleValuesParser::new(["allow", "deny"]).map(|value| {
              if value == "deny" { api::OnLimiterError::Deny } else { api::OnLimiterError::Allow }
          }))]
    pub rate_limit_on_redis_error: api::OnLimiterError,
}

/// Model providers. A provider without a key runs simulated.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// OpenAI (or compatible server) API key.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_parser = secret)]
    pub openai_api_key: Option<SecretString>,

    /// OpenAI-compatible base URL (http or https).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1",
        value_parser = UrlParser::HTTP
    )]
    pub openai_base_url: String,

    /// Anthropic API key.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true, value_parser = secret)]
    pub anthropic_api_key: Option<SecretString>,

    /// Anthropic base URL (http or https).
    #[arg(
        long,
        env = "ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com",
        value_parser = UrlParser::HTTP
    )]
    pub anthropic_base_url: String,

    /// Upstream model id for `gpt-4o`.
    #[arg(long, env = "OPENAI_MODEL_GPT_4O", default_value = "gpt-4o")]
    pub openai_model_gpt_4o: String,

    /// Upstream model id for `gpt-4-turbo`.
    #[arg(long, env = "OPENAI_MODEL_GPT_4_TURBO", default_value = "gpt-4-turbo")]
    pub openai_model_gpt_4_turbo: String,

    /// Upstream model id for `claude-3-opus`.
    #[arg(
        long,
        env = "ANTHROPIC_MODEL_CLAUDE_3_OPUS",
        default_value = "claude-3-opus-20240229"
    )]
    pub anthropic_model_claude_3_opus: String,

    /// `max_tokens` sent with every Anthropic request (1-1,000,000).
    #[arg(long, env = "ANTHROPIC_MAX_TOKENS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub anthropic_max_tokens: u32,

    /// Latency of the simulated provider, in milliseconds (0-600,000).
    #[arg(long, env = "SIMULATED_LATENCY_MS", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub simulated_latency_ms: u64,
}

impl ProviderArgs {
    /// Settings for the model adapters.
    pub fn adapters(&self) -> models::AdapterConfig {
        models::AdapterConfig {
            openai: models::ProviderSettings {
                api_key: self.openai_api_key.clone(),
                base_url: self.openai_base_url.clone(),
            },
            anthropic: models::ProviderSettings {
                api_key: self.anthropic_api_key.clone(),
                base_url: self.anthropic_base_url.clone(),
            },
            upstream_ids: models::UpstreamModelIds {
                gpt_4o: self.openai_model_gpt_4o.clone(),
                gpt_4_turbo: self.openai_model_gpt_4_turbo.clone(),
                claude_3_opus: self.anthropic_model_claude_3_opus.clone(),
            },
            anthropic_max_tokens: self.anthropic_max_tokens,
            simulated_latency: Duration::from_millis(self.simulated_latency_ms),
        }
    }
}

/// A URL setting, checked while parsing: one of `schemes`, and whatever
/// else `check` asks. Its error names the variable but never the value, which
/// may carry a password (clap's own errors quote the value).
#[derive(Clone, Copy)]
struct UrlParser {
    schemes: &'static [&'static str],
    expected: &'static str,
    check: fn(&Url) -> bool,
}

impl UrlParser {
    /// `DATABASE_URL`: a URL sqlx can connect with.
    const POSTGRES: Self = Self {
        schemes: &["postgres", "postgresql"],
        expected: "a PostgreSQL URL (postgres://user:password@host:port/database)",
        check: |url| url.as_str().parse::<PgConnectOptions>().is_ok(),
    };

    /// `REDIS_URL`: plain or TLS (`rediss`).
    const REDIS: Self = Self {
        schemes: &["redis", "rediss"],
        expected: "a Redis URL (redis://host:port or rediss://host:port for TLS)",
        check: has_host,
    };

    /// A model provider's base URL.
    const HTTP: Self = Self {
        schemes: &["http", "https"],
        expected: "an absolute http or https URL",
        check: has_host,
    };

    fn accepts(&self, value: &str) -> bool {
        Url::parse(value)
            .is_ok_and(|url| self.schemes.contains(&url.scheme()) && (self.check)(&url))
    }
}

impl TypedValueParser for UrlParser {
    type Value = String;

    fn parse_ref(
        &self,
        command: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        match value.to_str() {
            Some(value) if self.accepts(value) => Ok(value.to_owned()),
            _ => {
                let name = arg.map_or_else(|| "the URL".to_owned(), |arg| format!("'{arg}'"));
                let message = format!("invalid value for {name}: expected {}\n", self.expected);
                Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(command))
            }
        }
    }
}

fn has_host(url: &Url) -> bool {
    url.host_str().is_some_and(|host| !host.is_empty())
}

#[allow(clippy::unnecessary_wraps)] // clap's value parsers return a `Result`.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

/// Run migrations before serving (off by default: production runs
/// `agent-platform migrate` once, as a job).
#[derive(Debug, Clone, Args)]
pub struct MigrateOnStart {
    /// Apply migrations at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value = "false", value_parser = BoolishValueParser::new())]
    pub migrate_on_start: bool,
}

/// `agent-platform api`.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub providers: ProviderArgs,
    #[command(flatten)]
    pub migrate: MigrateOnStart,
}

/// `agent-platform dev`: the API and a worker in one process.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub database: DevDatabaseArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// How a worker runs.
#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Runs executed at once by one worker (1-10,000).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub worker_concurrency: u32,

    /// Seconds allowed for one attempt's model call (1-86,400).
    #[arg(long, env = "RUN_TIMEOUT_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub run_timeout_secs: u64,

    /// Attempts per run, the first included (1-100).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Delay before the first retry, in milliseconds (1-60,000); later ones
    /// double (with jitter).
    #[arg(long, env = "RETRY_BASE_DELAY_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub retry_base_delay_ms: u64,

    /// Seconds between heartbeats (1-3,600).
    #[arg(long, env = "WORKER_HEARTBEAT_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub worker_heartbeat_secs: u64,

    /// Heartbeats missed before a worker's jobs are given to others (2-100).
    #[arg(long, env = "WORKER_MISSED_HEARTBEATS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(2..=100))]
    pub worker_missed_heartbeats: u32,

    /// Milliseconds between polls for due jobs when no NOTIFY arrives
    /// (10-60,000).
    #[arg(long, env = "WORKER_POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub worker_poll_interval_ms: u64,

    /// Seconds in-flight runs get to finish after SIGTERM (0-3,600).
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub worker_shutdown_grace_secs: u64,

    /// Seconds after which a run still running is failed by the sweeper
    /// (1-604,800, a week).
    #[arg(long, env = "RUN_DEADLINE_SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub run_deadline_secs: u64,
}

impl WorkerSettings {
    /// The worker's configuration.
    pub fn config(&self) -> worker::Config {
        worker::Config {
            concurrency: self.worker_concurrency as usize,
            run_timeout: Duration::from_secs(self.run_timeout_secs),
            max_attempts: self.max_attempts,
            retry_base_delay: Duration::from_millis(self.retry_base_delay_ms),
            heartbeat: Duration::from_secs(self.worker_heartbeat_secs),
            missed_heartbeats: self.worker_missed_heartbeats,
            poll_interval: Duration::from_millis(self.worker_poll_interval_ms),
            shutdown_grace: Duration::from_secs(self.worker_shutdown_grace_secs),
            run_deadline: Duration::from_secs(self.run_deadline_secs),
        }
    }
}

/// `agent-platform worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Address of the worker's /healthz, /readyz and /metrics (containers use 0.0.0.0:9000).
    #[arg(long, env = "WORKER_LISTEN_ADDR", default_value = "127.0.0.1:9000")]
    pub worker_listen_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub providers: ProviderArgs,
    #[command(flatten)]
    pub migrate: MigrateOnStart,
}
