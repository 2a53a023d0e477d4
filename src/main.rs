use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    wcs::cli::run(wcs::cli::Cli::parse()).await
}
