//! `serve`: HTTP and workers in one process, sharing one shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clients::chargebee::ChargebeeClient;
use crate::clients::outbound::{Outbound, OutboundLimiter};
use crate::clients::webcrm::WebcrmClient;
use crate::config::Config;
use crate::http::{router, AppState, IntakeSettings};
use crate::queue::{Backoff, Dispatcher, JobHandler, Queue, QueueConfig, WorkerPool};
use crate::store::{self, DynStore};
use crate::sync::engine::SyncEngine;
use crate::sync::pairing::SyncContext;
use crate::sync::rekey::RekeyCustomer;
use crate::telemetry;

/// A started service: its address, and the token that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub queue: Queue,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until the service stopped (after `shutdown` fired and everything drained).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("service task crashed")?
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

pub fn queue_config(config: &Config) -> QueueConfig {
    QueueConfig {
        concurrency: config.queue.worker_concurrency,
        lease: config.queue.lease,
        max_attempts: config.queue.max_attempts,
        backoff: Backoff::default(),
        shutdown_grace: config.queue.shutdown_grace,
        ..QueueConfig::default()
    }
}

/// One outbound limiter per API for the whole process: every client of that API spends the
/// same budget, and a `Retry-After` pauses them all (the admin status reports it).
#[derive(Debug, Clone, Default)]
pub struct Limiters {
    pub chargebee: Option<Arc<OutboundLimiter>>,
    pub webcrm: Option<Arc<OutboundLimiter>>,
}

impl Limiters {
    pub fn from_config(config: &Config) -> Self {
        Limiters {
            chargebee: config.chargebee.as_ref().map(|c| {
                OutboundLimiter::new(crate::clients::chargebee::API_NAME, c.rate_limit_per_minute)
            }),
            webcrm: config.webcrm.as_ref().map(|w| {
                OutboundLimiter::new(crate::clients::webcrm::API_NAME, w.rate_limit_per_minute)
            }),
        }
    }
}

/// The job handlers of this version, by job kind.
pub fn handlers(
    config: &Config,
    store: &DynStore,
    limiters: &Limiters,
) -> anyhow::Result<Dispatcher> {
    let mut dispatcher = Dispatcher::new();
    let (Some(cb), Some(cb_limiter)) = (&config.chargebee, &limiters.chargebee) else {
        return Ok(dispatcher);
    };
    let chargebee = Arc::new(ChargebeeClient::with_limiter(
        cb.client_config(),
        cb_limiter.clone(),
    )?);
    dispatcher = dispatcher.register(
        crate::intake::REKEY_JOB,
        Arc::new(RekeyCustomer {
            store: store.clone(),
            chargebee,
        }),
    );
    if let Some(cx) = sync_context(config, store, limiters)? {
        dispatcher = dispatcher
            .register(
                crate::intake::POLL_JOB,
                Arc::new(crate::poller::Poller { cx: cx.clone() }),
            )
            .register(
                crate::reconciler::RECONCILE_JOB,
                Arc::new(crate::reconciler::Reconciler { cx: cx.clone() }),
            )
            .register(
                crate::sync::resync::RESYNC_JOB,
                Arc::new(crate::sync::resync::ResyncJob { cx: cx.clone() }),
            )
            .register(
                crate::intake::SYNC_JOB,
                Arc::new(SyncEngine::new(cx, crate::sync::pairings::all())),
            );
    }
    Ok(dispatcher)
}

/// What the sync engine, the poller and resync need: both clients on the process's shared
/// limiters. `None` without the credentials of both APIs.
pub fn sync_context(
    config: &Config,
    store: &DynStore,
    limiters: &Limiters,
) -> anyhow::Result<Option<Arc<SyncContext>>> {
    let (Some(cb), Some(cb_limiter), Some(wc), Some(wc_limiter)) = (
        &config.chargebee,
        &limiters.chargebee,
        &config.webcrm,
        &limiters.webcrm,
    ) else {
        return Ok(None);
    };
    let chargebee = Arc::new(ChargebeeClient::with_limiter(
        cb.client_config(),
        cb_limiter.clone(),
    )?);
    let wc_config = wc.client_config();
    let outbound = Outbound::new(wc_limiter.clone(), wc_config.retry.clone());
    let webcrm = Arc::new(WebcrmClient::with_outbound(wc_config, outbound)?);
    Ok(Some(Arc::new(SyncContext {
        store: store.clone(),
        chargebee,
        webcrm,
        config: Arc::new(config.clone()),
    })))
}

/// Starts HTTP and the worker pool on `listener`; both stop when `shutdown` fires: HTTP stops
/// accepting and finishes in-flight requests, workers finish running jobs within the grace
/// period.
pub fn start(
    config: Arc<Config>,
    store: DynStore,
    limiters: Limiters,
    handler: Arc<dyn JobHandler>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let queue = Queue::new(store.clone(), config.queue.max_attempts);
    let pool = WorkerPool::new(queue.clone(), handler, queue_config(&config));
    let state = AppState {
        store: store.clone(),
        queue: queue.clone(),
        intake: Arc::new(IntakeSettings::from_config(&config)),
        limiters,
        config: config.clone(),
        metrics: telemetry::metrics_handle(),
        shutdown: shutdown.clone(),
    };
    let app = router(state);
    let token = shutdown.clone();
    let grace = config.queue.shutdown_grace;
    let task = tokio::spawn(async move {
        let workers = tokio::spawn(pool.run(token.clone()));
        tokio::spawn(purge_old_events(store, token.clone()));
        let http =
            axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned());
        // In-flight requests get the same grace as jobs; a client holding a connection open
        // longer does not keep the process alive.
        tokio::select! {
            result = http => result.context("HTTP server failed")?,
            _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("HTTP requests still open after the grace period; closing");
            }
        }
        workers.await.context("worker pool crashed")?;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        addr,
        shutdown,
        queue,
        task,
    })
}

/// Chargebee retries a webhook for about 3 days 7 hours; event ids are kept a week so a late
/// redelivery is still recognised as a duplicate.
pub const EVENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

async fn purge_old_events(store: DynStore, cancel: CancellationToken) {
    // First purge one period after start: a restart loop must not turn into a purge loop.
    let period = std::time::Duration::from_secs(3600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let before = crate::store::now_ms() - crate::queue::duration_ms(EVENT_RETENTION);
        match store.purge_inbound_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged inbound events past retention"),
            Err(e) => tracing::warn!(error = %e, "purging old inbound events failed"),
        }
    }
}

/// The `serve` command: connect, migrate (unless told not to), run until SIGTERM/SIGINT.
pub async fn run(config: Config, migrate: bool) -> anyhow::Result<()> {
    let config = Arc::new(config);
    // Workers hold one connection each at most; the rest serve webhooks and the admin API.
    let pool_size = u32::try_from(config.queue.worker_concurrency).unwrap_or(4) + 16;
    let store = store::connect(&config.database_url, pool_size).await?;
    if migrate {
        store.migrate().await.context("applying migrations")?;
    }
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
    let shutdown = CancellationToken::new();
    let limiters = Limiters::from_config(&config);
    let handler = Arc::new(handlers(&config, &store, &limiters)?);
    if config.chargebee.is_some() && config.webcrm.is_some() {
        // Every replica schedules; the jobs' keys let one of them run at a time.
        tokio::spawn(crate::poller::schedule(
            store.clone(),
            config.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::reconciler::schedule(
            store.clone(),
            config.clone(),
            shutdown.clone(),
        ));
    }
    let running = start(
        config.clone(),
        store,
        limiters,
        handler,
        listener,
        shutdown.clone(),
    )?;
    tracing::info!(addr = %running.addr, database = %crate::config::mask_url(&config.database_url), "listening");
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        shutdown.cancel();
    });
    running.wait().await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
