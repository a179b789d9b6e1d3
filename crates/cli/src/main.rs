//! `agent-platform`: one binary, a process kind per subcommand.
//!
//! `main` only parses the command line and environment, sets up logging and
//! hands over to a command. Exit status: 0 on success, 2 on a usage error
//! (clap's own), 1 on any other failure, with the reason on standard error.

mod admin;
mod config;
mod serve;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ApiArgs, DatabaseArgs, DevArgs, WorkerArgs};

/// Mini Agent Platform: multi-tenant AI agents, run from a durable queue.
///
/// Every setting can be given as an environment variable (shown in
/// brackets) or as the flag of the same name.
#[derive(Debug, Parser)]
#[command(name = "agent-platform", version, about)]
struct Cli {
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API and worker in one process, with local defaults and demo tenants.
    Dev(DevArgs),
    /// The HTTP API server.
    Api(ApiArgs),
    /// One worker process: takes runs from the queue and executes them.
    Worker(WorkerArgs),
    /// Apply database migrations, then exit.
    Migrate(DatabaseArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(admin::TenantsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Create the demo tenants tenant_a, tenant_b and tenant_c, whose keys
    /// equal their names (idempotent; never for production).
    DemoTenants(DatabaseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.telemetry);
    // One TLS crypto provider for the whole process (model providers' HTTPS).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error)),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // Boxed: the API and a worker together make a large future, which
        // would otherwise be copied about on the stack.
        Command::Dev(args) => Box::pin(serve::dev(args)).await,
        Command::Api(args) => serve::api(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Migrate(args) => admin::migrate(&args).await,
        Command::Tenants(command) => admin::tenants(command).await,
        Command::Keys(command) => admin::keys(command).await,
        Command::DemoTenants(args) => admin::demo_tenants(&args).await,
    }
}

/// Prints the error and its causes on one line. A cause whose text the
/// line already holds is left out: some errors (sqlx's) repeat their
/// source's message in their own.
fn fail(error: &anyhow::Error) -> ExitCode {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    eprintln!("agent-platform: {line}");
    ExitCode::FAILURE
}
