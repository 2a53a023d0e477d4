//! The `resync` command: plans (and unless `--dry-run`, applies) the resync of each pairing
//! asked for, then runs the sync jobs it enqueued to completion, with progress bars.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::queue::{Queue, QueueConfig, WorkerPool};
use crate::serve::{self, Limiters};
use crate::store::{self, Millis};
use crate::sync::pairing::Pairing;
use crate::sync::resync::{apply, plan};

/// How long the command waits for the sync jobs it enqueued (dependencies included).
const JOB_DEADLINE: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub pairings: Vec<String>,
    pub dry_run: bool,
    pub rebuild_links: bool,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {per_sec} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

fn spinner(what: String) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_message(what);
    s.enable_steady_tick(Duration::from_millis(120));
    s
}

pub async fn run(config: Config, options: Options, out: &mut dyn Write) -> anyhow::Result<()> {
    let all = crate::sync::pairings::all();
    for name in &options.pairings {
        if !all.iter().any(|p| p.name() == name) {
            let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
            bail!("unknown pairing {name:?}; known: {}", known.join(", "));
        }
    }
    let chosen: Vec<Arc<dyn Pairing>> = all
        .into_iter()
        .filter(|p| options.pairings.is_empty() || options.pairings.iter().any(|n| n == p.name()))
        .filter(|p| config.pairing(p.name()).is_none_or(|c| c.enabled))
        .collect();
    let config = Arc::new(config);
    let store = store::connect(&config.database_url, 4).await?;
    if options.dry_run {
        // A dry run writes nothing, not even migrations.
        store.readiness().await.map_err(|why| {
            anyhow::anyhow!("the database is not ready ({why}); run `migrate` first")
        })?;
    } else {
        store.migrate().await.context("applying migrations")?;
    }
    let limiters = Limiters::from_config(&config);
    let cx = serve::sync_context(&config, &store, &limiters)?
        .context("resync needs the Chargebee and webCRM settings")?;
    let mut total_jobs = 0;
    for pairing in &chosen {
        let listing_spinner = spinner(format!("{}: listing both sides…", pairing.name()));
        let planned = plan(&cx, pairing.as_ref(), options.rebuild_links).await;
        listing_spinner.finish_and_clear();
        let (p, listing) = planned.with_context(|| format!("planning {}", pairing.name()))?;
        for line in p.lines() {
            writeln!(out, "{line}")?;
        }
        if options.dry_run || p.unsupported.is_some() {
            continue;
        }
        let steps = bar((p.links.len() + p.creates.len()) as u64, pairing.name());
        let tick = |n: u64| steps.set_position(n);
        let applied = apply(&cx, pairing.as_ref(), &p, &listing, &tick)
            .await
            .with_context(|| format!("applying the resync of {}", pairing.name()))?;
        steps.finish_and_clear();
        writeln!(
            out,
            "{}: linked {}, {} already linked, {} sync jobs queued",
            pairing.name(),
            applied.linked,
            applied.already_linked,
            applied.jobs
        )?;
        total_jobs += applied.jobs;
    }
    if options.dry_run {
        writeln!(out, "dry run: nothing was written")?;
        return Ok(());
    }
    if total_jobs > 0 {
        run_jobs(&config, &store, &limiters).await?;
    }
    writeln!(out, "resync finished")?;
    Ok(())
}

/// Runs every waiting job (those the resync queued and what they depend on) until none is
/// left, waiting out dependency delays, with a progress bar of what remains.
async fn run_jobs(
    config: &Arc<Config>,
    store: &store::DynStore,
    limiters: &Limiters,
) -> anyhow::Result<()> {
    let handlers = serve::handlers(config, store, limiters)?;
    let pool = WorkerPool::new(
        Queue::new(store.clone(), config.queue.max_attempts),
        Arc::new(handlers),
        QueueConfig {
            lease: config.queue.lease,
            ..QueueConfig::default()
        },
    );
    let waiting = || async {
        let counts = store.job_counts().await?;
        Ok::<i64, store::StoreError>(
            counts
                .iter()
                .filter(|c| matches!(c.state.as_str(), "pending" | "running" | "failed"))
                .map(|c| c.count)
                .sum(),
        )
    };
    let start = waiting().await?;
    let progress = bar(u64::try_from(start).unwrap_or(0), "sync jobs");
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        pool.run_until_idle().await?;
        let left = waiting().await?;
        progress.set_length(u64::try_from(start.max(left)).unwrap_or(0));
        progress.set_position(u64::try_from(start.max(left) - left).unwrap_or(0));
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            progress.abandon();
            bail!(
                "{left} sync jobs still waiting after {JOB_DEADLINE:?}; `serve` will finish them"
            );
        }
        // What is left waits for a dependency or a backoff: sleep until the next is due.
        let next: Option<Millis> = store.oldest_waiting_run_at().await?;
        let wait = next
            .map(|at| (at - store::now_ms()).clamp(50, 2000))
            .unwrap_or(200);
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(200))).await;
    }
    progress.finish_and_clear();
    Ok(())
}
