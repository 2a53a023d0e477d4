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
    /// Create or update our Chargebee webhook endpoint and webCRM hooks at PUBLIC_URL.
    RegisterWebhooks {
        /// Print the plan and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// First-sync matching and repair: link existing records by cross ids and natural keys,
    /// then create what the rules call for, and run the resulting sync jobs.
    Resync {
        /// Only this pairing (repeatable); all enabled pairings when absent.
        #[arg(long = "pairing", value_name = "NAME")]
        pairings: Vec<String>,
        /// Print every planned link, create, update and ambiguity; write nothing anywhere.
        #[arg(long)]
        dry_run: bool,
        /// Only rebuild links from the cross ids the two systems keep (no matching by
        /// natural keys, no creates).
        #[arg(long)]
        rebuild_links: bool,
    },
    /// See the whole product work: both API sandboxes and the service in one process, seeded
    /// on both sides, a first sync, then a script of edits propagating, and a summary.
    Demo {
        /// Exit after the summary instead of serving until Ctrl-C (for CI).
        #[arg(long)]
        once: bool,
        /// The store to use (`sqlite://…` or `postgres://…`); a temporary SQLite file when
        /// absent.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Run the Chargebee and webCRM API emulators standalone and print how to reach them.
    Sandbox {
        /// Chargebee sandbox port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        chargebee_port: u16,
        /// webCRM sandbox port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        webcrm_port: u16,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    let raw = RawConfig::load(cli.config.as_deref());
    match cli.command {
        Command::Check => check(&raw),
        Command::Sandbox {
            chargebee_port,
            webcrm_port,
        } => match sandbox(chargebee_port, webcrm_port).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{e:#}")),
        },
        Command::Demo { once, database_url } => {
            crate::demo::init_logging();
            let options = crate::demo::Options { once, database_url };
            match crate::demo::run(options, &mut std::io::stdout()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("demo failed: {e:#}")),
            }
        }
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
        Command::RegisterWebhooks { dry_run } => {
            let config = match raw.validate(Purpose::Serve) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            telemetry::init_logging(&config.log_filter, config.log_format);
            // The error's own message already names its cause; print it once.
            match crate::register::run(&config, dry_run, &mut std::io::stdout()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Resync {
            pairings,
            dry_run,
            rebuild_links,
        } => {
            let config = match raw.validate(Purpose::Serve) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            telemetry::init_logging(&config.log_filter, config.log_format);
            let options = crate::resync_command::Options {
                pairings,
                dry_run,
                rebuild_links,
            };
            match crate::resync_command::run(config, options, &mut std::io::stdout()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
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

async fn sandbox(chargebee_port: u16, webcrm_port: u16) -> anyhow::Result<()> {
    use crate::sandbox::chargebee::{ChargebeeSandbox, SandboxOptions};
    use crate::sandbox::webcrm::{WebcrmSandbox, WebcrmSandboxOptions};
    telemetry::init_logging("warn", crate::config::LogFormat::Pretty);
    let chargebee = ChargebeeSandbox::start(SandboxOptions {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], chargebee_port)),
        ..SandboxOptions::default()
    })
    .await?;
    let webcrm = WebcrmSandbox::start(WebcrmSandboxOptions {
        port: webcrm_port,
        ..WebcrmSandboxOptions::default()
    })
    .await?;
    println!("Chargebee sandbox: {}", chargebee.base_url());
    println!(
        "  site {}, API key {} (HTTP Basic user, empty password)",
        chargebee.site(),
        chargebee.api_key()
    );
    println!("webCRM sandbox:    {}", webcrm.base_url());
    println!(
        "  API token {} (POST /Auth/ApiLogin with authCode)",
        webcrm.api_token()
    );
    println!("\nPoint the service at them with:");
    println!(
        "  CHARGEBEE_BASE_URL={} CHARGEBEE_SITE={} CHARGEBEE_API_KEY={} \\",
        chargebee.base_url(),
        chargebee.site(),
        chargebee.api_key()
    );
    println!(
        "  WEBCRM_BASE_URL={} WEBCRM_API_TOKEN={}",
        webcrm.base_url(),
        webcrm.api_token()
    );
    println!("\nIn-memory state; Ctrl-C stops both.");
    serve::wait_for_signal().await;
    chargebee.shutdown().await;
    webcrm.shutdown().await;
    Ok(())
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
