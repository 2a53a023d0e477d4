//! Typed client for the Chargebee Billing API v2 (Product Catalog 2.0).
//!
//! One `reqwest::Client` built once; HTTP Basic with the API key as user and an empty
//! password; form-encoded requests ([`form`]); JSON envelopes; every call through the shared
//! [`Outbound`] limiter and retry policy. Errors are classified from Chargebee's error body
//! into [`ApiError`].

pub mod form;
pub mod list;
pub mod params;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::clients::outbound::{
    parse_retry_after, ApiError, Outbound, OutboundLimiter, RetryPolicy,
};

pub use form::Form;
pub use list::{ListQuery, Page};
pub use params::*;
pub use types::*;

/// The `api` label of metrics and spans.
pub const API_NAME: &str = "chargebee";
/// The idempotency key sent for one request: the caller's key (derived from our own ids,
/// so that a retry after a crash sends it again) joined to a digest of the request. A retry
/// of the same request is then replayed, while a retry whose values changed meanwhile (the
/// record was edited) is a new request rather than a refused reuse of the key; a create
/// made twice that way meets `duplicate_entry` on its deterministic id.
fn request_key(base: &str, path: &str, pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    let mut digest = Sha256::new();
    digest.update(path.as_bytes());
    for (k, v) in sorted {
        for part in [k, v] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
    }
    let hex = crate::hex::encode(&digest.finalize()[..8]);
    // Chargebee takes keys of up to 100 characters.
    let base: String = base
        .chars()
        .take(IDEMPOTENCY_KEY_MAX - hex.len() - 1)
        .collect();
    format!("{base}.{hex}")
}

/// The longest idempotency key Chargebee accepts.
const IDEMPOTENCY_KEY_MAX: usize = 100;

/// Request header carrying the caller's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "chargebee-idempotency-key";
/// Response header set when Chargebee replays a stored response.
pub const IDEMPOTENCY_REPLAYED_HEADER: &str = "chargebee-idempotency-replayed";

/// Everything the client needs; the service configuration builds it.
#[derive(Clone)]
pub struct ChargebeeClientConfig {
    /// e.g. `https://acme-test.chargebee.com/api/v2` or a sandbox URL.
    pub base_url: Url,
    pub api_key: SecretString,
    /// Outbound budget (150 on test sites).
    pub rate_limit_per_minute: u32,
    pub connect_timeout: Duration,
    /// Whole request, including reading the body.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ChargebeeClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargebeeClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl ChargebeeClientConfig {
    /// Defaults for a base URL: 150 calls/min, 10 s connect, 60 s total, default retries.
    pub fn new(base_url: Url, api_key: SecretString) -> Self {
        Self {
            base_url,
            api_key,
            rate_limit_per_minute: 150,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }

    /// `https://{site}.chargebee.com/api/v2`.
    pub fn for_site(site: &str, api_key: SecretString) -> Result<Self, url::ParseError> {
        let url = Url::parse(&format!("https://{site}.chargebee.com/api/v2"))?;
        Ok(Self::new(url, api_key))
    }
}

/// Whether the error is Chargebee's answer to creating something that already exists
/// (for us: a create retried after a lost response, or a deterministic id already taken).
pub fn is_duplicate(err: &ApiError) -> bool {
    match err {
        ApiError::Rejected {
            api_error_code,
            param,
            message,
            ..
        } => {
            api_error_code.as_deref() == Some("duplicate_entry")
                || (param.as_deref() == Some("id") && message.contains("already"))
        }
        _ => false,
    }
}

/// Classify a non-2xx answer from its status, headers and body.
pub fn classify_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let retry_after = parse_retry_after(headers);
    let parsed = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .filter(|b| b.api_error_code.is_some() || b.error_code.is_some() || b.message.is_some());
    let Some(b) = parsed else {
        // Not a Chargebee error (a proxy page, an empty 503, ...).
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.chars().take(200).collect();
        let message = if snippet.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            snippet
        };
        return ApiError::from_status(status.as_u16(), retry_after, None, None, message);
    };
    let code = b.api_error_code.or(b.error_code);
    let message = b
        .message
        .or(b.error_msg)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let param = b.param.or(b.error_param);
    match code.as_deref() {
        Some("api_request_limit_exceeded") => ApiError::RateLimited { retry_after },
        Some("resource_not_found") => ApiError::NotFound { message },
        Some("api_authentication_failed" | "basic_authentication_failed") => ApiError::Unauthorized,
        Some("internal_temporary_error" | "internal_error" | "lock_timeout" | "site_not_ready") => {
            match retry_after {
                Some(_) => ApiError::RateLimited { retry_after },
                None => ApiError::Transient(format!("HTTP {}: {message}", status.as_u16())),
            }
        }
        _ => ApiError::from_status(status.as_u16(), retry_after, code, param, message),
    }
}

/// The Chargebee API client. Cheap to clone; clones share the HTTP pool and the limiter.
#[derive(Clone)]
pub struct ChargebeeClient {
    http: reqwest::Client,
    base_url: Url,
    api_key: SecretString,
    outbound: Outbound,
}

impl std::fmt::Debug for ChargebeeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargebeeClient")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

type JsonResult = Result<(Value, bool), ApiError>;

impl ChargebeeClient {
    /// A client with its own limiter of `config.rate_limit_per_minute`.
    pub fn new(config: ChargebeeClientConfig) -> Result<Self, ApiError> {
        let limiter = OutboundLimiter::new(API_NAME, config.rate_limit_per_minute);
        Self::with_limiter(config, limiter)
    }

    /// A client sharing an existing limiter (one per API per process).
    pub fn with_limiter(
        config: ChargebeeClientConfig,
        limiter: Arc<OutboundLimiter>,
    ) -> Result<Self, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .default_headers(headers)
            .user_agent(concat!("webcrm-chargebee-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Decode(format!("could not build the HTTP client: {e}")))?;
        if config.base_url.cannot_be_a_base() {
            return Err(ApiError::Decode(
                "the Chargebee base URL cannot be a base".into(),
            ));
        }
        Ok(Self {
            http,
            base_url: config.base_url,
            api_key: config.api_key,
            outbound: Outbound::new(limiter, config.retry),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn limiter(&self) -> &Arc<OutboundLimiter> {
        self.outbound.limiter()
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| ApiError::Decode("base URL cannot be a base".into()))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// One HTTP exchange: returns the JSON body and whether it was an idempotent replay.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        pairs: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> JsonResult {
        let mut req = self
            .http
            .request(method.clone(), url)
            .basic_auth(self.api_key.expose_secret(), Some(""));
        if method == Method::GET {
            if !pairs.is_empty() {
                req = req.query(pairs);
            }
        } else {
            req = req.form(pairs);
            if let Some(key) = idempotency_key {
                req = req.header(IDEMPOTENCY_HEADER, key);
            }
        }
        let resp = req.send().await.map_err(ApiError::from_reqwest)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(ApiError::from_reqwest)?;
        if !status.is_success() {
            return Err(classify_error(status, &headers, &body));
        }
        let replayed = headers
            .get(IDEMPOTENCY_REPLAYED_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Decode(format!("response is not JSON: {e}")))?;
        Ok((value, replayed))
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        segments: &[&str],
        pairs: Vec<(String, String)>,
        idempotency_key: Option<&str>,
    ) -> JsonResult {
        let url = self.url(segments)?;
        let key = idempotency_key.map(|k| request_key(k, url.path(), &pairs));
        self.outbound
            .call(operation, || {
                self.exchange(method.clone(), url.clone(), &pairs, key.as_deref())
            })
            .await
    }

    async fn get_one<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        key: &str,
    ) -> Result<T, ApiError> {
        let (value, _) = self
            .call(operation, Method::GET, segments, Vec::new(), None)
            .await?;
        envelope(value, key)
    }

    async fn post_one<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        form: Form,
        key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        let (value, replayed) = self
            .call(
                operation,
                Method::POST,
                segments,
                form.into_pairs(),
                idempotency_key,
            )
            .await?;
        if replayed {
            tracing::debug!(operation, "idempotent replay");
        }
        envelope(value, key)
    }

    /// One page of a list operation.
    pub async fn list_page<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        key: &str,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<T>, ApiError> {
        let (value, _) = self
            .call(
                operation,
                Method::GET,
                &[path],
                query.to_pairs(offset),
                None,
            )
            .await?;
        parse_page(value, key)
    }

    /// Every record of a listing, following `next_offset` and resending the filters.
    pub fn list_all<T: DeserializeOwned + Send + 'static>(
        &self,
        operation: &'static str,
        path: &'static str,
        key: &'static str,
        query: ListQuery,
    ) -> BoxStream<'_, Result<T, ApiError>> {
        let state = Some(None::<String>);
        stream::try_unfold(state, move |state| {
            let query = query.clone();
            async move {
                let Some(offset) = state else {
                    return Ok(None);
                };
                let page: Page<T> = self
                    .list_page(operation, path, key, &query, offset.as_deref())
                    .await?;
                let next = page.next_offset.map(Some);
                Ok(Some((stream::iter(page.items.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    // ---- customers ----

    /// `POST /customers`. `idempotency_key` should derive from our id.
    pub async fn create_customer(
        &self,
        params: &CustomerCreate,
        idempotency_key: &str,
    ) -> Result<Customer, ApiError> {
        self.post_one(
            "customer.create",
            &["customers"],
            params.to_form(),
            "customer",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_customer(&self, id: &str) -> Result<Customer, ApiError> {
        self.get_one("customer.retrieve", &["customers", id], "customer")
            .await
    }

    /// `POST /customers/{id}` (no address: see [`Self::update_customer_billing_info`]).
    pub async fn update_customer(
        &self,
        id: &str,
        params: &CustomerUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<Customer, ApiError> {
        self.post_one(
            "customer.update",
            &["customers", id],
            params.to_form(),
            "customer",
            idempotency_key,
        )
        .await
    }

    /// `POST /customers/{id}/update_billing_info`.
    pub async fn update_customer_billing_info(
        &self,
        id: &str,
        params: &BillingInfoUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<Customer, ApiError> {
        self.post_one(
            "customer.updateBillingInfo",
            &["customers", id, "update_billing_info"],
            params.to_form(),
            "customer",
            idempotency_key,
        )
        .await
    }

    pub async fn list_customers(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<Customer>, ApiError> {
        self.list_page("customer.list", "customers", "customer", query, offset)
            .await
    }

    pub fn list_all_customers(
        &self,
        query: ListQuery,
    ) -> BoxStream<'_, Result<Customer, ApiError>> {
        self.list_all("customer.list", "customers", "customer", query)
    }

    // ---- item families ----

    pub async fn create_item_family(
        &self,
        params: &ItemFamilyCreate,
        idempotency_key: &str,
    ) -> Result<ItemFamily, ApiError> {
        self.post_one(
            "itemFamily.create",
            &["item_families"],
            params.to_form(),
            "item_family",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_item_family(&self, id: &str) -> Result<ItemFamily, ApiError> {
        self.get_one("itemFamily.retrieve", &["item_families", id], "item_family")
            .await
    }

    pub async fn list_item_families(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<ItemFamily>, ApiError> {
        self.list_page(
            "itemFamily.list",
            "item_families",
            "item_family",
            query,
            offset,
        )
        .await
    }

    pub fn list_all_item_families(
        &self,
        query: ListQuery,
    ) -> BoxStream<'_, Result<ItemFamily, ApiError>> {
        self.list_all("itemFamily.list", "item_families", "item_family", query)
    }

    // ---- items ----

    pub async fn create_item(
        &self,
        params: &ItemCreate,
        idempotency_key: &str,
    ) -> Result<Item, ApiError> {
        self.post_one(
            "item.create",
            &["items"],
            params.to_form(),
            "item",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_item(&self, id: &str) -> Result<Item, ApiError> {
        self.get_one("item.retrieve", &["items", id], "item").await
    }

    pub async fn update_item(
        &self,
        id: &str,
        params: &ItemUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<Item, ApiError> {
        self.post_one(
            "item.update",
            &["items", id],
            params.to_form(),
            "item",
            idempotency_key,
        )
        .await
    }

    pub async fn list_items(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<Item>, ApiError> {
        self.list_page("item.list", "items", "item", query, offset)
            .await
    }

    pub fn list_all_items(&self, query: ListQuery) -> BoxStream<'_, Result<Item, ApiError>> {
        self.list_all("item.list", "items", "item", query)
    }

    // ---- item prices ----

    pub async fn create_item_price(
        &self,
        params: &ItemPriceCreate,
        idempotency_key: &str,
    ) -> Result<ItemPrice, ApiError> {
        self.post_one(
            "itemPrice.create",
            &["item_prices"],
            params.to_form(),
            "item_price",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_item_price(&self, id: &str) -> Result<ItemPrice, ApiError> {
        self.get_one("itemPrice.retrieve", &["item_prices", id], "item_price")
            .await
    }

    pub async fn update_item_price(
        &self,
        id: &str,
        params: &ItemPriceUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<ItemPrice, ApiError> {
        self.post_one(
            "itemPrice.update",
            &["item_prices", id],
            params.to_form(),
            "item_price",
            idempotency_key,
        )
        .await
    }

    pub async fn list_item_prices(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<ItemPrice>, ApiError> {
        self.list_page("itemPrice.list", "item_prices", "item_price", query, offset)
            .await
    }

    pub fn list_all_item_prices(
        &self,
        query: ListQuery,
    ) -> BoxStream<'_, Result<ItemPrice, ApiError>> {
        self.list_all("itemPrice.list", "item_prices", "item_price", query)
    }

    // ---- invoices ----

    /// `POST /invoices/create_for_charge_items_and_charges`.
    pub async fn create_invoice_for_charges(
        &self,
        params: &InvoiceForChargesCreate,
        idempotency_key: &str,
    ) -> Result<Invoice, ApiError> {
        self.post_one(
            "invoice.createForChargeItemsAndCharges",
            &["invoices", "create_for_charge_items_and_charges"],
            params.to_form(),
            "invoice",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_invoice(&self, id: &str) -> Result<Invoice, ApiError> {
        self.get_one("invoice.retrieve", &["invoices", id], "invoice")
            .await
    }

    // ---- orders ----

    pub async fn create_order(
        &self,
        params: &OrderCreate,
        idempotency_key: &str,
    ) -> Result<Order, ApiError> {
        self.post_one(
            "order.create",
            &["orders"],
            params.to_form(),
            "order",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_order(&self, id: &str) -> Result<Order, ApiError> {
        self.get_one("order.retrieve", &["orders", id], "order")
            .await
    }

    pub async fn update_order(
        &self,
        id: &str,
        params: &OrderUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<Order, ApiError> {
        self.post_one(
            "order.update",
            &["orders", id],
            params.to_form(),
            "order",
            idempotency_key,
        )
        .await
    }

    pub async fn list_orders(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<Order>, ApiError> {
        self.list_page("order.list", "orders", "order", query, offset)
            .await
    }

    pub fn list_all_orders(&self, query: ListQuery) -> BoxStream<'_, Result<Order, ApiError>> {
        self.list_all("order.list", "orders", "order", query)
    }

    // ---- events ----

    pub async fn list_events(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<Event>, ApiError> {
        self.list_page("event.list", "events", "event", query, offset)
            .await
    }

    pub fn list_all_events(&self, query: ListQuery) -> BoxStream<'_, Result<Event, ApiError>> {
        self.list_all("event.list", "events", "event", query)
    }

    pub async fn retrieve_event(&self, id: &str) -> Result<Event, ApiError> {
        self.get_one("event.retrieve", &["events", id], "event")
            .await
    }

    // ---- webhook endpoints ----

    pub async fn create_webhook_endpoint(
        &self,
        params: &WebhookEndpointCreate,
        idempotency_key: &str,
    ) -> Result<WebhookEndpoint, ApiError> {
        self.post_one(
            "webhookEndpoint.create",
            &["webhook_endpoints"],
            params.to_form(),
            "webhook_endpoint",
            Some(idempotency_key),
        )
        .await
    }

    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        params: &WebhookEndpointUpdate,
        idempotency_key: Option<&str>,
    ) -> Result<WebhookEndpoint, ApiError> {
        self.post_one(
            "webhookEndpoint.update",
            &["webhook_endpoints", id],
            params.to_form(),
            "webhook_endpoint",
            idempotency_key,
        )
        .await
    }

    pub async fn retrieve_webhook_endpoint(&self, id: &str) -> Result<WebhookEndpoint, ApiError> {
        self.get_one(
            "webhookEndpoint.retrieve",
            &["webhook_endpoints", id],
            "webhook_endpoint",
        )
        .await
    }

    pub async fn list_webhook_endpoints(
        &self,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<Page<WebhookEndpoint>, ApiError> {
        self.list_page(
            "webhookEndpoint.list",
            "webhook_endpoints",
            "webhook_endpoint",
            query,
            offset,
        )
        .await
    }

    pub fn list_all_webhook_endpoints(
        &self,
        query: ListQuery,
    ) -> BoxStream<'_, Result<WebhookEndpoint, ApiError>> {
        self.list_all(
            "webhookEndpoint.list",
            "webhook_endpoints",
            "webhook_endpoint",
            query,
        )
    }
}

fn envelope<T: DeserializeOwned>(mut value: Value, key: &str) -> Result<T, ApiError> {
    let inner = value
        .get_mut(key)
        .map(Value::take)
        .ok_or_else(|| ApiError::Decode(format!("response has no `{key}`")))?;
    serde_json::from_value(inner).map_err(|e| ApiError::Decode(format!("`{key}`: {e}")))
}

fn parse_page<T: DeserializeOwned>(mut value: Value, key: &str) -> Result<Page<T>, ApiError> {
    let next_offset = value
        .get("next_offset")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let list = match value.get_mut("list").map(Value::take) {
        Some(Value::Array(list)) => list,
        _ => return Err(ApiError::Decode("list response has no `list` array".into())),
    };
    let items = list
        .into_iter()
        .map(|entry| envelope(entry, key))
        .collect::<Result<Vec<T>, _>>()?;
    Ok(Page { items, next_offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_follow_the_request() {
        let pairs = |v: &str| {
            vec![
                ("id".to_owned(), "c1".to_owned()),
                ("last_name".to_owned(), v.to_owned()),
            ]
        };
        let key = request_key("wc-person-1", "/api/v2/customers", &pairs("A"));
        assert!(key.starts_with("wc-person-1."), "{key}");
        assert_eq!(
            key,
            request_key("wc-person-1", "/api/v2/customers", &pairs("A"))
        );
        let mut reordered = pairs("A");
        reordered.reverse();
        assert_eq!(
            key,
            request_key("wc-person-1", "/api/v2/customers", &reordered)
        );
        assert_ne!(
            key,
            request_key("wc-person-1", "/api/v2/customers", &pairs("B"))
        );
        assert_ne!(
            key,
            request_key("wc-person-1", "/api/v2/items", &pairs("A"))
        );
        // A key and a value cannot trade characters and give the same digest.
        let a = vec![("ab".to_owned(), "c".to_owned())];
        let b = vec![("a".to_owned(), "bc".to_owned())];
        assert_ne!(request_key("k", "/p", &a), request_key("k", "/p", &b));
        let long = request_key(&"x".repeat(300), "/p", &a);
        assert_eq!(long.chars().count(), IDEMPOTENCY_KEY_MAX);
    }

    #[test]
    fn classify_error_maps_chargebee_codes() {
        let h = HeaderMap::new();
        let body = br#"{"message":"Please try after some time","type":"operation_failed","api_error_code":"api_request_limit_exceeded","http_status_code":429}"#;
        assert!(matches!(
            classify_error(StatusCode::TOO_MANY_REQUESTS, &h, body),
            ApiError::RateLimited { .. }
        ));
        let body = br#"{"message":"Plan is not present","type":"invalid_request","api_error_code":"resource_not_found","param":"item_id"}"#;
        assert!(matches!(
            classify_error(StatusCode::NOT_FOUND, &h, body),
            ApiError::NotFound { .. }
        ));
        let body = br#"{"message":"The value wc-1 is already present.","type":"invalid_request","api_error_code":"duplicate_entry","param":"id"}"#;
        let e = classify_error(StatusCode::BAD_REQUEST, &h, body);
        assert!(is_duplicate(&e));
        assert_eq!(e.param(), Some("id"));
        let e = classify_error(StatusCode::SERVICE_UNAVAILABLE, &h, b"<html>down</html>");
        assert!(e.is_retryable());
    }

    #[test]
    fn config_debug_hides_the_api_key() {
        let c = ChargebeeClientConfig::for_site("acme-test", SecretString::from("live_secret_key"))
            .unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("live_secret_key"));
        assert!(s.contains("acme-test.chargebee.com"));
    }
}
