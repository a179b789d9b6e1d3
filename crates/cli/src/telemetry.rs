//! Logging setup: `RUST_LOG` filters, `LOG_FORMAT` picks text or JSON.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    /// Log filter, in `tracing`'s EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn", global = true,
          value_parser = filter)]
    rust_log: String,
}

fn filter(value: &str) -> Result<String, String> {
    EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|error| error.to_string())
}

/// Installs the global subscriber. Logs go to standard error, so commands'
/// own output on standard output stays clean for scripts.
pub fn init(args: &TelemetryArgs) {
    // Checked while parsing the command line, so this cannot fail.
    let filter = EnvFilter::new(&args.rust_log);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
