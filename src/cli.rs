//! The command line: one binary, several roles.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Purpose, RawConfig};
use crate::{serve, store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "webcrm-chargebee-sync",
    version,
    about = "Two-way sync between webCRM and Chargebee"
)]
pub struct Cli {
    /// Optional TOML configuration file; environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server, workers and poller (applies migrations first).
    Serve {
        /// Do not apply migrations on start (run `migrate` separately, e.g. as a Kubernetes Job).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and list every setting (secrets masked).
    Check,
}

pub async fn run(cli: Cli) -> ExitCode {
    let raw = RawConfig::load(cli.config.as_deref());
    match cli.command {
        Command::Check => check(&raw),
        Command::Migrate => {
            let config = match raw.validate(Purpose::Migrate) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            telemetry::init_logging(&config.log_filter, config.log_format);
            let result = async {
                let store = store::connect(&config.database_url, 2).await?;
                store.migrate().await?;
                Ok::<_, store::StoreError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    println!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Serve { no_migrate } => {
            let config = match raw.validate(Purpose::Serve) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            telemetry::init_logging(&config.log_filter, config.log_format);
            match serve::run(config, !no_migrate).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            }
        }
    }
}

fn check(raw: &RawConfig) -> ExitCode {
    for line in raw.describe() {
        println!("{line}");
    }
    match raw.validate(Purpose::Serve) {
        Ok(_) => {
            println!("\nconfiguration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!();
            for problem in &e.0 {
                println!("error: {problem}");
            }
            fail(&e)
        }
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("webcrm-chargebee-sync: {e}");
    ExitCode::FAILURE
}
