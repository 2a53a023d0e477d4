//! Configuration of the webCRM client.

use std::time::Duration;

use secrecy::SecretString;

use crate::clients::outbound::RetryPolicy;

/// The public API's address.
pub const DEFAULT_BASE_URL: &str = "https://api.webcrm.com";
/// webCRM's documented budget per application token.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 250;
/// The largest `Size` webCRM accepts.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// HTTP timeouts of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebcrmTimeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// A whole request, from sending to the last byte of the answer.
    pub request: Duration,
}

impl Default for WebcrmTimeouts {
    fn default() -> Self {
        WebcrmTimeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Everything [`super::WebcrmClient`] needs.
#[derive(Debug, Clone)]
pub struct WebcrmClientConfig {
    /// `https://api.webcrm.com` or a sandbox (validated by [`super::WebcrmClient::new`]).
    pub base_url: String,
    /// The application token (a GUID) sent as `authCode` to `POST /Auth/ApiLogin`.
    pub api_token: SecretString,
    /// Outbound budget for this token.
    pub rate_limit_per_minute: u32,
    /// HTTP timeouts.
    pub timeouts: WebcrmTimeouts,
    /// Retries of transient failures and 429s within one call.
    pub retry: RetryPolicy,
    /// `Size` used when paging (clamped to 1..=1000).
    pub page_size: u32,
}

impl WebcrmClientConfig {
    /// The defaults for the public API with this token.
    pub fn new(api_token: SecretString) -> Self {
        WebcrmClientConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_token,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            timeouts: WebcrmTimeouts::default(),
            retry: RetryPolicy::default(),
            page_size: MAX_PAGE_SIZE,
        }
    }

    /// Same, with another base URL (a sandbox).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}
