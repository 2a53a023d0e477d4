//! The webCRM HTTP client: login and token cache, request plumbing through the shared
//! outbound limiter/retry, error classification, paging.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::clients::outbound::{parse_retry_after, ApiError, Outbound, OutboundLimiter, Prepaid};

use super::config::{WebcrmClientConfig, MAX_PAGE_SIZE};
use super::dto::TokenResponse;

/// Name of this API in metrics, spans and the limiter status.
pub const API_NAME: &str = "webcrm";

/// Lifetime assumed when a login answer has no `ExpiresIn` (webCRM documents one hour).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest error text kept from a response body.
const MAX_MESSAGE_CHARS: usize = 500;

/// A typed client for the webCRM REST API. Cheap to clone; clones share the token cache and
/// the rate limiter.
#[derive(Clone)]
pub struct WebcrmClient {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for WebcrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebcrmClient")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    http: reqwest::Client,
    base_url: String,
    api_token: SecretString,
    outbound: Outbound,
    pub(super) page_size: u32,
    token: Mutex<TokenState>,
    logins: AtomicU64,
}

#[derive(Default)]
struct TokenState {
    current: Option<AccessToken>,
    generation: u64,
}

#[derive(Clone)]
struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
    generation: u64,
}

/// A successful answer: status and raw body.
pub(super) struct RawResponse {
    pub(super) body: Vec<u8>,
}

impl WebcrmClient {
    /// Builds a client with its own rate limiter of `config.rate_limit_per_minute`.
    pub fn new(config: WebcrmClientConfig) -> Result<Self, ApiError> {
        let limiter = OutboundLimiter::new(API_NAME, config.rate_limit_per_minute);
        let outbound = Outbound::new(limiter, config.retry.clone());
        Self::with_outbound(config, outbound)
    }

    /// Builds a client that shares an existing limiter and retry policy.
    pub fn with_outbound(config: WebcrmClientConfig, outbound: Outbound) -> Result<Self, ApiError> {
        let parsed = url::Url::parse(&config.base_url).map_err(|e| {
            ApiError::Decode(format!(
                "invalid webCRM base URL {:?}: {e}",
                config.base_url
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::Decode(format!(
                "webCRM base URL must be http(s), got {:?}",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .timeout(config.timeouts.request)
            .user_agent(concat!("webcrm-chargebee-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ApiError::from_reqwest)?;
        Ok(WebcrmClient {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url.trim_end_matches('/').to_owned(),
                api_token: config.api_token,
                outbound,
                page_size: config.page_size.clamp(1, MAX_PAGE_SIZE),
                token: Mutex::new(TokenState::default()),
                logins: AtomicU64::new(0),
            }),
        })
    }

    /// The shared rate limiter (for status pages).
    pub fn limiter(&self) -> &Arc<OutboundLimiter> {
        self.inner.outbound.limiter()
    }

    /// Takes one call's token from the limiter now (see [`Outbound::prepay`]).
    pub async fn prepay(&self) -> Prepaid {
        self.inner.outbound.prepay().await
    }

    /// How many `ApiLogin` calls this client (and its clones) made.
    pub fn login_count(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// Logs in now if there is no valid access token (useful as a start-up check).
    pub async fn ensure_logged_in(&self) -> Result<(), ApiError> {
        self.access_token(None).await.map(|_| ())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.inner.base_url, path)
    }

    /// A valid token; `failed` is the generation that just got a 401 and must be replaced.
    /// Holding the mutex across the login makes concurrent callers share one login.
    async fn access_token(&self, failed: Option<u64>) -> Result<AccessToken, ApiError> {
        let mut state = self.inner.token.lock().await;
        if let Some(token) = &state.current {
            let stale = failed == Some(token.generation);
            if !stale && Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
        }
        state.current = None;
        let (value, lifetime) = self.login().await?;
        state.generation += 1;
        let margin = (lifetime / 5).min(Duration::from_secs(300));
        let token = AccessToken {
            value,
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            generation: state.generation,
        };
        state.current = Some(token.clone());
        Ok(token)
    }

    /// `POST /Auth/ApiLogin` with the form field `authCode`.
    async fn login(&self) -> Result<(SecretString, Duration), ApiError> {
        self.inner.outbound.limiter().acquire().await;
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        let form = [("authCode", self.inner.api_token.expose_secret())];
        let response = self
            .inner
            .http
            .post(self.url("/Auth/ApiLogin"))
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(ApiError::from_reqwest)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(ApiError::from_reqwest)?;
        metrics::counter!("outbound_calls_total", "api" => API_NAME, "operation" => "auth.login",
            "status" => if status.is_success() { "ok" } else { "error" })
        .increment(1);
        if !status.is_success() {
            let err = classify_error(status, &headers, &body);
            return Err(match err {
                ApiError::Unauthorized => ApiError::Rejected {
                    status: status.as_u16(),
                    api_error_code: None,
                    param: None,
                    message: "webCRM refused the API token at /Auth/ApiLogin".to_owned(),
                },
                other => other,
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Decode(format!("webCRM login answer: {e}")))?;
        if token.is_error == Some(true) {
            let code = token.error.clone();
            let description = token
                .error_description
                .clone()
                .or_else(|| token.error.clone())
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(ApiError::Rejected {
                status: status.as_u16(),
                api_error_code: code,
                param: None,
                message: format!("webCRM login failed (IsError): {description}"),
            });
        }
        let value = token
            .access_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| ApiError::Decode("webCRM login answer has no AccessToken".into()))?;
        let lifetime = token
            .expires_in
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        tracing::debug!(expires_in_secs = lifetime.as_secs(), "logged in to webCRM");
        Ok((value, lifetime))
    }

    /// Sends one request through limiter and retries; on a 401 logs in again once.
    pub(super) async fn request(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ApiError> {
        let url = self.url(path);
        // A POST creates (webCRM has no idempotency key), so it is not sent again after a
        // failure that may have come after the record was made; every other method is safe
        // to repeat.
        let repeatable = method != Method::POST;
        let attempt = || {
            let url = url.clone();
            let method = method.clone();
            let body = body.clone();
            async move {
                let token = self.access_token(None).await?;
                let first = self
                    .send_once(&method, &url, query, body.clone(), &token)
                    .await?;
                if first.status() != StatusCode::UNAUTHORIZED {
                    return into_result(first).await;
                }
                tracing::debug!("webCRM answered 401; logging in again");
                let token = self.access_token(Some(token.generation)).await?;
                let second = self.send_once(&method, &url, query, body, &token).await?;
                into_result(second).await
            }
        };
        let outbound = &self.inner.outbound;
        if repeatable {
            outbound.call(operation, attempt).await
        } else {
            outbound.call_unrepeatable(operation, attempt).await
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        token: &AccessToken,
    ) -> Result<reqwest::Response, ApiError> {
        let mut builder = self
            .inner
            .http
            .request(method.clone(), url)
            .header(ACCEPT, "application/json")
            .header(
                AUTHORIZATION,
                format!("Bearer {}", token.value.expose_secret()),
            );
        if !query.is_empty() {
            builder = builder.query(query);
        }
        if let Some(body) = body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        }
        builder.send().await.map_err(ApiError::from_reqwest)
    }

    /// GET and decode a JSON body.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let raw = self
            .request(operation, Method::GET, path, query, None)
            .await?;
        decode_json(&raw.body)
    }

    /// GET a single record; an empty or `null` answer is `NotFound`.
    pub(super) async fn get_record<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
    ) -> Result<T, ApiError> {
        let raw = self
            .request(operation, Method::GET, path, &[], None)
            .await?;
        let trimmed = raw.body.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Err(ApiError::NotFound {
                message: format!("webCRM returned no record at {path}"),
            });
        }
        decode_json(trimmed)
    }

    /// Sends a JSON body (POST/PUT).
    pub(super) async fn send_json<B: Serialize + ?Sized>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<RawResponse, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ApiError::Decode(format!("could not encode the request: {e}")))?;
        self.request(operation, method, path, &[], Some(bytes))
            .await
    }

    /// One page (`Page` from 1) of a list endpoint.
    pub(super) async fn page<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        extra: &[(&str, String)],
        page: u32,
        size: u32,
    ) -> Result<Vec<T>, ApiError> {
        let mut query: Vec<(&str, String)> = extra.to_vec();
        query.push(("Page", page.to_string()));
        query.push(("Size", size.clamp(1, MAX_PAGE_SIZE).to_string()));
        let raw = self
            .request(operation, Method::GET, path, &query, None)
            .await?;
        if raw.body.trim_ascii().is_empty() {
            return Ok(Vec::new());
        }
        decode_json(&raw.body)
    }

    /// Every item of a paged list: pages of `page_size` until an empty or short page.
    pub(super) fn paged<T: DeserializeOwned + Send + 'static>(
        &self,
        operation: &'static str,
        path: String,
        extra: Vec<(&'static str, String)>,
    ) -> BoxStream<'static, Result<T, ApiError>> {
        let client = self.clone();
        let size = self.inner.page_size;
        stream::try_unfold(Some(1u32), move |next| {
            let client = client.clone();
            let path = path.clone();
            let extra = extra.clone();
            async move {
                let Some(page) = next else {
                    return Ok(None);
                };
                let items: Vec<T> = client.page(operation, &path, &extra, page, size).await?;
                if items.is_empty() {
                    return Ok(None);
                }
                let more = u32::try_from(items.len()).unwrap_or(u32::MAX) >= size;
                let next = if more { page.checked_add(1) } else { None };
                Ok(Some((items, next)))
            }
        })
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }
}

async fn into_result(response: reqwest::Response) -> Result<RawResponse, ApiError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(ApiError::from_reqwest)?;
    if status.is_success() {
        Ok(RawResponse {
            body: body.to_vec(),
        })
    } else {
        Err(classify_error(status, &headers, &body))
    }
}

pub(super) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Decode(format!("webCRM answer: {e}")))
}

/// Turns a non-success answer into an [`ApiError`] with webCRM's own message.
///
/// Understands the documented 429 body (`RetryAfterSeconds`, `Message`, `Type`), the
/// `Error`/`ErrorDescription` pair of the token DTO, ASP.NET validation bodies
/// (`{"errors": {"Field": ["…"]}}` or `{"Field": ["…"]}`) and plain text.
pub fn classify_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let object = json.as_ref().and_then(Value::as_object);
    let retry_after = parse_retry_after(headers).or_else(|| {
        object
            .and_then(|o| get_ci(o, "RetryAfterSeconds"))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(Duration::from_secs)
    });
    let mut code = None;
    let mut param = None;
    let mut message = None;
    if let Some(o) = object {
        code = ["Type", "Error", "Code"]
            .iter()
            .find_map(|k| get_ci(o, k).and_then(Value::as_str))
            .map(str::to_owned);
        message = ["Message", "ErrorDescription", "Detail", "Title", "Error"]
            .iter()
            .find_map(|k| get_ci(o, k).and_then(Value::as_str))
            .map(str::to_owned);
        let errors = get_ci(o, "errors").and_then(Value::as_object).unwrap_or(o);
        if let Some((field, msgs)) = errors.iter().find(|(_, v)| v.is_array()) {
            param = Some(field.clone());
            let first = msgs
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or("invalid value");
            message = Some(match message {
                Some(m) => format!("{m} {field}: {first}"),
                None => format!("{field}: {first}"),
            });
        }
    } else if let Some(Value::String(s)) = &json {
        message = Some(s.clone());
    }
    let message = message
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect::<String>();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message
    };
    ApiError::from_status(status.as_u16(), retry_after, code, param, message)
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Reads the id a create answered with: a JSON number, a quoted number, or nothing.
pub(super) fn parse_created_id(body: &[u8]) -> Result<Option<i64>, ApiError> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim().trim_matches('"').trim();
    if text.is_empty() || text == "null" {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::Decode("webCRM create answer is not an id".to_owned()))
}
