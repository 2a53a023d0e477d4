//! Faults injected from tests: rate limiting, server errors and latency, for the next N
//! requests or a percentage of them, for one operation or all.

use std::time::Duration;

use rand::Rng;

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 `api_request_limit_exceeded`, with `Retry-After` when given (seconds).
    RateLimit { retry_after_secs: Option<u64> },
    /// A 5xx answer: 500 `internal_error`, 503 `internal_temporary_error`, others a plain
    /// (non-Chargebee) body as a proxy would send.
    ServerError { status: u16 },
    /// Delay the answer, then handle the request normally.
    Latency(Duration),
    /// Handle the request, then wait this long before answering: a client that gives up
    /// first never learns that its write happened (a timeout after the fact).
    LateAnswer(Duration),
}

/// One fault rule. Built with the constructors and refined with [`Fault::times`],
/// [`Fault::percent`] and [`Fault::for_operation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Operation id (e.g. `customer.create`); `None` for every request.
    pub operation: Option<String>,
    /// Applies this many more times; `None` for ever.
    pub remaining: Option<u32>,
    /// Applies to this share of matching requests (0–100); `None` for all.
    pub percent: Option<u8>,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            operation: None,
            remaining: Some(1),
            percent: None,
        }
    }

    /// The next request answers 429 (see [`Fault::times`]).
    pub fn rate_limit(retry_after_secs: Option<u64>) -> Self {
        Self::new(FaultKind::RateLimit { retry_after_secs })
    }

    /// The next request answers `status` (5xx).
    pub fn server_error(status: u16) -> Self {
        Self::new(FaultKind::ServerError { status })
    }

    /// The next request is delayed.
    pub fn latency(delay: Duration) -> Self {
        Self::new(FaultKind::Latency(delay))
    }

    /// The next request is handled, and its answer delayed.
    pub fn late_answer(delay: Duration) -> Self {
        Self::new(FaultKind::LateAnswer(delay))
    }

    /// Apply to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Apply until cleared.
    pub fn always(mut self) -> Self {
        self.remaining = None;
        self
    }

    /// Apply to `percent`% of matching requests (until cleared unless `times` is set after).
    pub fn percent(mut self, percent: u8) -> Self {
        self.percent = Some(percent.min(100));
        self.remaining = None;
        self
    }

    /// Only for one operation id, e.g. `customer.create`.
    pub fn for_operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_string());
        self
    }
}

/// Pick the faults that apply to this request (consuming their counts): at most one
/// delay (a [`FaultKind::Latency`] or a [`FaultKind::LateAnswer`]) and at most one error.
pub fn take(faults: &mut Vec<Fault>, operation: &str) -> (Option<FaultKind>, Option<FaultKind>) {
    let mut latency = None;
    let mut error = None;
    let mut rng = rand::rng();
    for fault in faults.iter_mut() {
        if fault.operation.as_deref().is_some_and(|op| op != operation) {
            continue;
        }
        if fault.remaining == Some(0) {
            continue;
        }
        let is_latency = matches!(fault.kind, FaultKind::Latency(_) | FaultKind::LateAnswer(_));
        if (is_latency && latency.is_some()) || (!is_latency && error.is_some()) {
            continue;
        }
        if let Some(p) = fault.percent {
            if rng.random_range(0..100u8) >= p {
                continue;
            }
        }
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        if is_latency {
            latency = Some(fault.kind.clone());
        } else {
            error = Some(fault.kind.clone());
        }
    }
    faults.retain(|f| f.remaining != Some(0));
    (latency, error)
}
