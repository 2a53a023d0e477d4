//! The durable job queue on top of the [`Store`]: enqueue with per-record dedupe, a worker
//! pool that claims with a lease (committed before any outbound call), keeps the lease alive
//! while a job runs, and retries with exponential backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store::{now_ms, DynStore, Job, JobState, Millis, NewJob, Release, StoreResult};

/// What a job handler decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// A failure that may pass: retry with backoff, or after `retry_after` when the remote
    /// API said so.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// A failure retrying cannot fix (e.g. the API rejected the data): dead at once.
    Fatal {
        error: String,
    },
    /// Not a failure: run again later (e.g. a dependency is being synced first).
    Wait {
        delay: Duration,
        reason: String,
    },
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &Job) -> Outcome;
}

/// Routes each job to the handler registered for its kind; a kind nobody handles is a
/// permanent failure (visible as a dead job) rather than a silent drop.
#[derive(Default, Clone)]
pub struct Dispatcher {
    handlers: std::collections::HashMap<String, Arc<dyn JobHandler>>,
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(mut self, kind: &str, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(kind.to_string(), handler);
        self
    }
}

#[async_trait]
impl JobHandler for Dispatcher {
    async fn handle(&self, job: &Job) -> Outcome {
        match self.handlers.get(&job.kind) {
            Some(h) => h.handle(job).await,
            None => Outcome::Fatal {
                error: format!("no handler for job kind `{}` in this version", job.kind),
            },
        }
    }
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries
/// of many jobs spread out but none retries much sooner than the schedule says.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The upper bound of the delay after `attempt` failed attempts (1-based).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// A delay in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: i32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub max_attempts: i32,
    pub backoff: Backoff,
    /// How often an idle worker looks for due jobs (other replicas' enqueues, retries).
    pub idle_poll: Duration,
    /// How long running jobs may finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrency: 4,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            backoff: Backoff::default(),
            idle_poll: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Enqueues jobs and wakes this process's idle workers.
#[derive(Clone)]
pub struct Queue {
    store: DynStore,
    wake: Arc<Notify>,
    max_attempts: i32,
}

impl Queue {
    pub fn new(store: DynStore, max_attempts: i32) -> Self {
        Queue {
            store,
            wake: Arc::new(Notify::new()),
            max_attempts,
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// A job for `dedupe_key` due now, with the configured attempt budget.
    pub fn job(
        &self,
        kind: &str,
        pairing: Option<&str>,
        dedupe_key: String,
        payload: serde_json::Value,
    ) -> NewJob {
        NewJob {
            kind: kind.to_string(),
            pairing: pairing.map(str::to_string),
            dedupe_key,
            payload,
            run_at: now_ms(),
            max_attempts: self.max_attempts,
        }
    }

    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<i64> {
        let id = self.store.enqueue(job, now_ms()).await?;
        self.notify();
        Ok(id)
    }

    /// Wakes idle workers of this process, e.g. after jobs were enqueued in a transaction.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }
}

/// A pool of workers claiming jobs from the store.
pub struct WorkerPool {
    queue: Queue,
    handler: Arc<dyn JobHandler>,
    config: QueueConfig,
    name: String,
}

impl WorkerPool {
    pub fn new(queue: Queue, handler: Arc<dyn JobHandler>, config: QueueConfig) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let name = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        WorkerPool {
            queue,
            handler,
            config,
            name,
        }
    }

    /// Runs `concurrency` workers until `cancel` fires, then gives running jobs the grace
    /// period. Jobs still running after it are abandoned; their leases expire and another
    /// worker reclaims them.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut workers = JoinSet::new();
        for n in 0..this.config.concurrency {
            let worker = Arc::clone(&this);
            let cancel = cancel.clone();
            workers.spawn(async move { worker.worker_loop(n, cancel).await });
        }
        let reaper = tokio::spawn(Arc::clone(&this).reap_expired_leases(cancel.clone()));
        cancel.cancelled().await;
        let _ = reaper.await;
        let grace = this.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "jobs still running after the grace period; their leases will expire and be reclaimed"
            );
            workers.abort_all();
        }
    }

    /// Claims and runs due jobs until none is due; for tests and one-shot commands.
    /// Returns how many jobs were processed.
    pub async fn run_until_idle(&self) -> StoreResult<usize> {
        self.queue.store.reclaim_expired(now_ms()).await?;
        let mut processed = 0;
        loop {
            let jobs = self.claim(&format!("{}-once", self.name), 1).await?;
            let Some(job) = jobs.into_iter().next() else {
                return Ok(processed);
            };
            self.run_job(&format!("{}-once", self.name), job).await?;
            processed += 1;
        }
    }

    async fn claim(&self, worker: &str, limit: i64) -> StoreResult<Vec<Job>> {
        let lease = duration_ms(self.config.lease);
        self.queue.store.claim(worker, now_ms(), lease, limit).await
    }

    /// Puts the jobs of crashed workers (expired leases) back in the queue. Every replica
    /// runs this; the statements are idempotent, so overlapping runs are harmless.
    async fn reap_expired_leases(self: Arc<Self>, cancel: CancellationToken) {
        let period = (self.config.lease / 2).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            match self.queue.store.reclaim_expired(now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(jobs = n, "reclaimed jobs whose worker stopped");
                    self.queue.notify();
                }
                Err(e) => tracing::warn!(error = %e, "reclaiming expired leases failed"),
            }
        }
    }

    async fn worker_loop(self: Arc<Self>, n: usize, cancel: CancellationToken) {
        let worker = format!("{}-{n}", self.name);
        while !cancel.is_cancelled() {
            // Register for a wake-up before looking, so an enqueue in between is not missed.
            let woken = self.queue.wake.notified();
            match self.claim(&worker, 1).await {
                Ok(jobs) if !jobs.is_empty() => {
                    for job in jobs {
                        if let Err(e) = self.run_job(&worker, job).await {
                            tracing::error!(error = %e, "could not record a job's result");
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed; retrying"),
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.config.idle_poll) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    async fn run_job(&self, worker: &str, job: Job) -> StoreResult<()> {
        let span = tracing::info_span!(
            "job",
            id = job.id,
            kind = %job.kind,
            pairing = job.pairing.as_deref().unwrap_or("-"),
            record = %job.dedupe_key,
            attempt = job.attempts,
        );
        self.finish_job(worker, job).instrument(span).await
    }

    async fn finish_job(&self, worker: &str, job: Job) -> StoreResult<()> {
        let started = Instant::now();
        let outcome = self.run_with_heartbeat(worker, &job).await;
        let kind = job.kind.clone();
        metrics::histogram!("job_duration_seconds", "kind" => kind.clone())
            .record(started.elapsed().as_secs_f64());
        let store = &self.queue.store;
        let now = now_ms();
        let label = match &outcome {
            Outcome::Done => {
                if !store.complete(job.id, worker).await? {
                    tracing::warn!("job finished after its lease was taken over");
                }
                "done"
            }
            Outcome::Retry { error, retry_after } => {
                let delay = match retry_after {
                    Some(d) => *d,
                    None => self.config.backoff.delay(job.attempts, &mut rand::rng()),
                };
                let how = Release::Retry {
                    run_at: now + duration_ms(delay),
                    error: error.clone(),
                };
                let state = store.release(job.id, worker, &how, now).await?;
                tracing::warn!(%error, retry_in_ms = duration_ms(delay), ?state, "job failed");
                if state == Some(JobState::Dead) {
                    "dead"
                } else {
                    "retry"
                }
            }
            Outcome::Fatal { error } => {
                let how = Release::Dead {
                    error: error.clone(),
                };
                store.release(job.id, worker, &how, now).await?;
                tracing::error!(%error, "job failed permanently");
                "dead"
            }
            Outcome::Wait { delay, reason } => {
                let how = Release::Wait {
                    run_at: now + duration_ms(*delay),
                    reason: reason.clone(),
                };
                store.release(job.id, worker, &how, now).await?;
                tracing::debug!(%reason, "job waits");
                "wait"
            }
        };
        metrics::counter!("jobs_processed_total", "kind" => kind, "outcome" => label).increment(1);
        Ok(())
    }

    /// Runs the handler in its own task (a panic becomes a retryable failure) while
    /// extending the lease every third of its length.
    async fn run_with_heartbeat(&self, worker: &str, job: &Job) -> Outcome {
        let handler = Arc::clone(&self.handler);
        let owned = job.clone();
        let mut task = tokio::spawn(async move { handler.handle(&owned).await });
        let lease = self.config.lease;
        let mut beat = tokio::time::interval(lease / 3);
        beat.tick().await;
        loop {
            tokio::select! {
                result = &mut task => {
                    return result.unwrap_or_else(|e| Outcome::Retry {
                        error: format!("job handler crashed: {e}"),
                        retry_after: None,
                    });
                }
                _ = beat.tick() => {
                    let until = now_ms() + duration_ms(lease);
                    match self.queue.store.extend_lease(job.id, worker, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("lost the lease of a running job"),
                        Err(e) => tracing::warn!(error = %e, "could not extend a job lease"),
                    }
                }
            }
        }
    }
}

pub fn duration_ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (1..=7).map(|a| b.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
    }

    #[test]
    fn backoff_delay_stays_within_half_and_full_ceiling() {
        let b = Backoff::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..15 {
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng);
                let c = b.ceiling(attempt);
                assert!(d >= c / 2 && d <= c, "attempt {attempt}: {d:?} vs {c:?}");
            }
        }
    }
}
