//! Shared machinery for every outbound API call: the error enum the API clients return, a
//! per-API rate limiter shared by all tasks of the process, a retry policy, and
//! [`Outbound::call`], which runs one request closure through all of them with a tracing span
//! and the `outbound_calls_total{api,operation,status}` counter.
//!
//! The module knows nothing about a particular API. Each client classifies its own responses
//! into [`ApiError`] (helpers: [`ApiError::from_status`], [`ApiError::from_reqwest`],
//! [`parse_retry_after`]) and hands a closure to [`Outbound::call`].

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::Serialize;
use tracing::Instrument;

/// The longest a single `Retry-After` may pause an API for everybody. A bogus header asking
/// for hours must not freeze the service; the job queue retries later instead.
pub const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

/// What went wrong with an outbound call, classified so callers can decide to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// HTTP 429 (or the API's equivalent). `retry_after` is the server's `Retry-After`.
    #[error("rate limited by the API (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, connection failures: worth retrying.
    #[error("transient failure: {0}")]
    Transient(String),
    /// A permanent 4xx: the request is wrong and retrying will not help.
    #[error("rejected with HTTP {status}: {message}")]
    Rejected {
        status: u16,
        api_error_code: Option<String>,
        param: Option<String>,
        message: String,
    },
    /// The record (or path) does not exist.
    #[error("not found: {message}")]
    NotFound { message: String },
    /// The credentials were refused (HTTP 401).
    #[error("unauthorized: the API refused the credentials")]
    Unauthorized,
    /// The response could not be understood.
    #[error("could not decode the response: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::RateLimited { .. } | ApiError::Transient(_))
    }

    /// The server-requested wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The API's own error code, when it sent one.
    pub fn api_error_code(&self) -> Option<&str> {
        match self {
            ApiError::Rejected { api_error_code, .. } => api_error_code.as_deref(),
            _ => None,
        }
    }

    /// The offending parameter, when the API named one.
    pub fn param(&self) -> Option<&str> {
        match self {
            ApiError::Rejected { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// A short, low-cardinality label used as the `status` of metrics and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Transient(_) => "transient",
            ApiError::Rejected { .. } => "rejected",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Decode(_) => "decode",
        }
    }

    /// Generic classification of a non-success HTTP status. API clients call this after
    /// extracting what their error body offers, and may refine the result.
    pub fn from_status(
        status: u16,
        retry_after: Option<Duration>,
        api_error_code: Option<String>,
        param: Option<String>,
        message: String,
    ) -> ApiError {
        match status {
            429 => ApiError::RateLimited { retry_after },
            // An overloaded server that names a wait is honoured like a 429.
            503 if retry_after.is_some() => ApiError::RateLimited { retry_after },
            401 => ApiError::Unauthorized,
            404 => ApiError::NotFound { message },
            408 | 425 | 500..=599 => ApiError::Transient(format!("HTTP {status}: {message}")),
            _ => ApiError::Rejected {
                status,
                api_error_code,
                param,
                message,
            },
        }
    }

    /// Classify a transport-level `reqwest` error. The URL is stripped so that query strings
    /// never reach logs.
    pub fn from_reqwest(err: reqwest::Error) -> ApiError {
        let err = err.without_url();
        if err.is_decode() {
            ApiError::Decode(err.to_string())
        } else if err.is_builder() {
            ApiError::Decode(format!("could not build the request: {err}"))
        } else if let Some(status) = err.status() {
            ApiError::from_status(status.as_u16(), None, None, None, err.to_string())
        } else {
            // timeouts, connect errors, resets, body errors
            ApiError::Transient(err.to_string())
        }
    }
}

/// Parse a `Retry-After` header: either delay-seconds or an HTTP date.
pub fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after_value(value, Utc::now())
}

/// [`parse_retry_after`] on a raw header value, relative to `now` (testable).
pub fn parse_retry_after_value(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(MAX_PAUSE.as_secs_f64())));
        }
        return None;
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Per-API outbound budget: a token bucket (GCRA) plus a pause honoured by every caller.
///
/// Share one instance per API per process through `Arc`.
pub struct OutboundLimiter {
    api: &'static str,
    per_minute: NonZeroU32,
    burst: NonZeroU32,
    bucket: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OutboundLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundLimiter")
            .field("api", &self.api)
            .field("per_minute", &self.per_minute)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a limiter for status pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimiterStatus {
    pub api: &'static str,
    /// Configured calls per minute.
    pub per_minute: u32,
    /// Calls that may be made back to back after an idle period.
    pub burst: u32,
    /// Set while a `Retry-After` pauses this API for every caller.
    pub paused_until: Option<DateTime<Utc>>,
    pub paused_remaining_ms: Option<u64>,
}

impl OutboundLimiter {
    /// A limiter allowing `per_minute` calls per minute (0 is treated as 1) with a burst of a
    /// thirtieth of that (at least 1).
    pub fn new(api: &'static str, per_minute: u32) -> Arc<Self> {
        let burst = (per_minute / 30).max(1);
        Self::with_burst(api, per_minute, burst)
    }

    /// A limiter with an explicit burst size (0 is treated as 1, more than `per_minute` as
    /// `per_minute`).
    ///
    /// A token bucket refilled at `per_minute` would let a sliding minute see the burst *plus*
    /// `per_minute` calls. The bucket therefore refills at `per_minute - burst` a minute, so
    /// that no 60-second window ever holds more than `per_minute` calls (for budgets above 1).
    pub fn with_burst(api: &'static str, per_minute: u32, burst: u32) -> Arc<Self> {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.min(per_minute.get())).unwrap_or(NonZeroU32::MIN);
        let refill = NonZeroU32::new(per_minute.get() - burst.get()).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(refill).allow_burst(burst);
        Arc::new(Self {
            api,
            per_minute,
            burst,
            bucket: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
        })
    }

    pub fn api(&self) -> &'static str {
        self.api
    }

    /// Wait until a call may be made: first any pause, then a token.
    pub async fn acquire(&self) {
        loop {
            if let Some(until) = self.current_pause() {
                // A little jitter so that the callers woken together do not stampede.
                let jitter = Duration::from_millis(rand::rng().random_range(0..=250));
                tokio::time::sleep_until(tokio::time::Instant::from_std(until) + jitter).await;
                continue;
            }
            self.bucket.until_ready().await;
            // A pause may have started while we waited for the token.
            if self.current_pause().is_none() {
                return;
            }
        }
    }

    /// Pause every caller of this API for `delay` (capped at [`MAX_PAUSE`]). An existing longer
    /// pause is kept.
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_PAUSE);
        let mut guard = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        match *guard {
            Some(existing) if existing >= until => {}
            _ => *guard = Some(until),
        }
    }

    /// The instant until which calls are paused, if that is in the future.
    pub fn current_pause(&self) -> Option<Instant> {
        let mut guard = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        match *guard {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                *guard = None;
                None
            }
            None => None,
        }
    }

    pub fn status(&self) -> LimiterStatus {
        let remaining = self
            .current_pause()
            .map(|until| until.saturating_duration_since(Instant::now()));
        LimiterStatus {
            api: self.api,
            per_minute: self.per_minute.get(),
            burst: self.burst.get(),
            paused_until: remaining
                .and_then(|r| chrono::Duration::from_std(r).ok())
                .map(|r| Utc::now() + r),
            paused_remaining_ms: remaining.map(|r| r.as_millis().try_into().unwrap_or(u64::MAX)),
        }
    }
}

/// How often and how long to retry a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Wall-clock budget for all attempts and waits; no wait starts that would end after it.
    pub max_total: Duration,
    /// The first backoff; doubled for each further attempt.
    pub base_delay: Duration,
    /// Upper bound of one backoff (before jitter).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_total: Duration::from_secs(60),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries (the job queue retries instead).
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff before attempt `retry` + 1 (`retry` starts at 1): exponential, capped,
    /// with "equal jitter" (half fixed, half random) so it is never zero.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let raw = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = raw / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }

    /// The wait before the next attempt after `err` on attempt `attempt` (1-based), or `None`
    /// when the error is final. `Retry-After` wins over the computed backoff.
    pub fn next_delay(&self, err: &ApiError, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if !err.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        let delay = err.retry_after().unwrap_or_else(|| self.backoff(attempt));
        if elapsed.saturating_add(delay) > self.max_total {
            return None;
        }
        Some(delay)
    }
}

tokio::task_local! {
    /// The API whose next call in this task is paid for already (see [`Outbound::prepay`]).
    static PAID: std::cell::Cell<Option<&'static str>>;
}

/// One call's token, taken from an API's limiter ahead of the call (see
/// [`Outbound::prepay`]). Dropped unspent, it is not given back: the budget is then only
/// under-used.
#[must_use = "a prepaid call is spent with `Outbound::spend`"]
#[derive(Debug)]
pub struct Prepaid {
    api: &'static str,
}

/// Limiter + retry policy for one API. Cheap to clone; clones share the limiter.
#[derive(Debug, Clone)]
pub struct Outbound {
    limiter: Arc<OutboundLimiter>,
    retry: RetryPolicy,
}

impl Outbound {
    pub fn new(limiter: Arc<OutboundLimiter>, retry: RetryPolicy) -> Self {
        Self { limiter, retry }
    }

    pub fn api(&self) -> &'static str {
        self.limiter.api()
    }

    pub fn limiter(&self) -> &Arc<OutboundLimiter> {
        &self.limiter
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Run `request` (one HTTP exchange per invocation) through the limiter and the retry
    /// policy. Each attempt waits for the limiter; a `RateLimited` answer pauses the API for
    /// every caller (for `Retry-After`, else the backoff). Emits one span per call with
    /// `api`, `operation`, `attempts` and `status`, and counts every attempt in
    /// `outbound_calls_total{api,operation,status}`. `operation` must not contain secrets or
    /// record data (use names such as `customer.update`).
    pub async fn call<T, F, Fut>(&self, operation: &'static str, request: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.run(operation, true, request).await
    }

    /// Waits for one call's token now, for a call that must not wait for the limiter when
    /// it is made: a webCRM PUT, which replaces the whole record and must follow the read
    /// it is based on with nothing in between.
    pub async fn prepay(&self) -> Prepaid {
        self.limiter.acquire().await;
        Prepaid { api: self.api() }
    }

    /// Runs `work`, whose first call of the prepaid API takes `paid` instead of waiting for
    /// the limiter (unless a `Retry-After` pause began meanwhile).
    pub async fn spend<F: Future>(paid: Prepaid, work: F) -> F::Output {
        PAID.scope(std::cell::Cell::new(Some(paid.api)), work).await
    }

    /// [`Outbound::call`] for a request that must not be carried out twice (a create that
    /// has no idempotency key): only a 429, which says it was not carried out, is retried
    /// here. After a timeout or a 5xx it may have been, so the error goes back to the
    /// caller, whose retry first looks for what the request made.
    pub async fn call_unrepeatable<T, F, Fut>(
        &self,
        operation: &'static str,
        request: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.run(operation, false, request).await
    }

    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        repeatable: bool,
        mut request: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let api = self.api();
        let span = tracing::info_span!(
            "outbound",
            api,
            operation,
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        async move {
            let started = Instant::now();
            let mut attempt: u32 = 0;
            loop {
                attempt += 1;
                let paid = PAID
                    .try_with(|p| p.get() == Some(api) && p.replace(None).is_some())
                    .unwrap_or(false);
                if !paid || self.limiter.current_pause().is_some() {
                    self.limiter.acquire().await;
                }
                let result = request().await;
                let status = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.kind(),
                };
                metrics::counter!(
                    "outbound_calls_total",
                    "api" => api,
                    "operation" => operation,
                    "status" => status
                )
                .increment(1);
                let err = match result {
                    Ok(value) => {
                        record_outcome(attempt, status);
                        return Ok(value);
                    }
                    Err(err) => err,
                };
                if let ApiError::RateLimited { retry_after } = &err {
                    let pause = retry_after.unwrap_or_else(|| self.retry.backoff(attempt));
                    self.limiter.pause_for(pause);
                }
                let may_repeat = repeatable || matches!(err, ApiError::RateLimited { .. });
                let delay = may_repeat
                    .then(|| self.retry.next_delay(&err, attempt, started.elapsed()))
                    .flatten();
                match delay {
                    Some(delay) => {
                        tracing::debug!(attempt, error = %err, delay_ms = delay.as_millis() as u64, "outbound call failed; retrying");
                        // A RateLimited pause is already enforced by the limiter itself.
                        if !matches!(err, ApiError::RateLimited { .. }) {
                            tokio::time::sleep(delay).await;
                        }
                    }
                    None => {
                        record_outcome(attempt, status);
                        if err.is_retryable() {
                            tracing::warn!(attempt, error = %err, "outbound call failed; giving up for now");
                        } else {
                            tracing::info!(attempt, error = %err, "outbound call rejected");
                        }
                        return Err(err);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

fn record_outcome(attempts: u32, status: &'static str) {
    let span = tracing::Span::current();
    span.record("attempts", attempts);
    span.record("status", status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast_policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            max_total: Duration::from_secs(5),
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after_value("7", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after_value("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after_value("soon", now), None);
    }

    #[test]
    fn from_status_classifies_by_status() {
        let e = |s| ApiError::from_status(s, None, None, None, "m".into());
        assert!(matches!(e(429), ApiError::RateLimited { .. }));
        assert_eq!(e(401), ApiError::Unauthorized);
        assert!(matches!(e(404), ApiError::NotFound { .. }));
        assert!(matches!(e(503), ApiError::Transient(_)));
        assert_eq!(
            ApiError::from_status(503, Some(Duration::from_secs(3)), None, None, "m".into()),
            ApiError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(e(400), ApiError::Rejected { status: 400, .. }));
        assert!(e(503).is_retryable());
        assert!(!e(400).is_retryable());
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d10 = p.backoff(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn next_delay_prefers_retry_after_and_respects_budget() {
        let p = fast_policy();
        let rl = ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            p.next_delay(&rl, 1, Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.next_delay(&rl, 1, Duration::from_secs(4)), None);
        assert_eq!(p.next_delay(&rl, 4, Duration::ZERO), None);
        assert_eq!(
            p.next_delay(&ApiError::Unauthorized, 1, Duration::ZERO),
            None
        );
    }

    #[tokio::test]
    async fn call_retries_transient_errors_until_success() {
        let out = Outbound::new(OutboundLimiter::new("test", 6000), fast_policy());
        let calls = AtomicU32::new(0);
        let result = out
            .call("op", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(ApiError::Transient("boom".into()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn call_fails_fast_on_rejection() {
        let out = Outbound::new(OutboundLimiter::new("test", 6000), fast_policy());
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = out
            .call("op", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ApiError::from_status(400, None, None, None, "bad".into())) }
            })
            .await;
        assert!(matches!(result, Err(ApiError::Rejected { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rate_limited_answer_pauses_the_api_for_every_caller() {
        let limiter = OutboundLimiter::new("test", 6000);
        let out = Outbound::new(limiter.clone(), fast_policy());
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = out
            .call("op", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(ApiError::RateLimited {
                            retry_after: Some(Duration::from_millis(300)),
                        })
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(300));
        limiter.pause_for(Duration::from_secs(30));
        let status = limiter.status();
        assert_eq!(status.per_minute, 6000);
        assert!(status.paused_until.is_some());
        assert!(status.paused_remaining_ms.unwrap_or(0) > 29_000);
    }

    #[tokio::test]
    async fn a_prepaid_call_does_not_wait_for_the_limiter() {
        // 60/min with a burst of 1: after the first token, the next comes about a second later.
        let outbound = Outbound::new(OutboundLimiter::with_burst("a", 60, 1), fast_policy());
        let other = Outbound::new(OutboundLimiter::with_burst("b", 60, 1), fast_policy());
        let ok = || async { Ok::<_, ApiError>(()) };
        let paid = outbound.prepay().await;
        other
            .call("b.first", ok)
            .await
            .expect("b has its own token");
        // Inside `spend`, the first call of "a" takes the prepaid token: no wait. A call of
        // "b" does not take it, and waits for its own limiter.
        let wait = Duration::from_millis(400);
        let (prompt, b_waited) = Outbound::spend(paid, async {
            let prompt = tokio::time::timeout(wait, outbound.call("a.put", ok))
                .await
                .is_ok();
            let b_waited = tokio::time::timeout(wait, other.call("b.next", ok))
                .await
                .is_err();
            (prompt, b_waited)
        })
        .await;
        assert!(
            prompt,
            "the prepaid call went without waiting for the limiter"
        );
        assert!(
            b_waited,
            "another API's call must not take the prepaid token"
        );
        // Once spent, the next call waits for the limiter again.
        assert!(tokio::time::timeout(wait, outbound.call("a.next", ok))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn limiter_spaces_calls_beyond_the_burst() {
        // 600/min = one call per 100 ms, burst 1.
        let limiter = OutboundLimiter::with_burst("test", 600, 1);
        let started = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(180));
    }
}
