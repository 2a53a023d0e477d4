//! The operations the sandbox emulates: method, path, Chargebee operation id, and every
//! parameter it accepts with its type and limits (taken from the SDK-derived schema subset).
//! A parameter not listed here is refused with 400, so client bugs surface in tests. The
//! conformance test checks this table against the reference file.

use std::sync::OnceLock;

/// How a parameter's value is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// String with a maximum length in characters.
    Str(usize),
    /// E-mail address with a maximum length.
    Email(usize),
    /// Signed integer.
    Int,
    /// Integer within bounds.
    IntRange(i64, i64),
    Bool,
    Enum(&'static [&'static str]),
    /// A JSON object sent as one string (`meta_data`, `metadata`).
    Json,
    /// A 10-digit unix timestamp (filters `after`, `before`, `on`).
    Timestamp,
    /// `[t1,t2]` (filter `between`).
    TimestampRange,
    /// A bracketed list (filters `in`, `not_in`).
    List,
}

/// One accepted parameter. `name` is in Chargebee's flat form: `email`,
/// `billing_address[line1]`, `charges[amount]` (sent as `charges[amount][i]`), `email[is]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    /// Sent with a trailing index: `name[i]`.
    pub indexed: bool,
}

/// One emulated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The SDK operation id, e.g. `customer.updateBillingInfo`; also the key of write counts.
    pub id: &'static str,
    pub method: &'static str,
    /// With `{id}` for the path parameter, e.g. `/customers/{id}/update_billing_info`.
    pub path: &'static str,
    pub params: Vec<Param>,
}

impl Operation {
    pub fn is_write(&self) -> bool {
        self.method == "POST"
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

fn p(name: &str, kind: Kind) -> Param {
    Param {
        name: name.to_string(),
        kind,
        required: false,
        indexed: false,
    }
}

fn req(name: &str, kind: Kind) -> Param {
    Param {
        required: true,
        ..p(name, kind)
    }
}

fn idx(name: &str, kind: Kind) -> Param {
    Param {
        indexed: true,
        ..p(name, kind)
    }
}

const ADDRESS_VALIDATION: &[&str] = &["not_validated", "valid", "partially_valid", "invalid"];

fn address(parent: &str) -> Vec<Param> {
    let f = |field: &str, kind: Kind| p(&format!("{parent}[{field}]"), kind);
    vec![
        f("first_name", Kind::Str(150)),
        f("last_name", Kind::Str(150)),
        f("email", Kind::Email(70)),
        f("company", Kind::Str(250)),
        f("phone", Kind::Str(50)),
        f("line1", Kind::Str(150)),
        f("line2", Kind::Str(150)),
        f("line3", Kind::Str(150)),
        f("city", Kind::Str(50)),
        f("state_code", Kind::Str(50)),
        f("state", Kind::Str(50)),
        f("zip", Kind::Str(20)),
        f("country", Kind::Str(50)),
        f("validation_status", Kind::Enum(ADDRESS_VALIDATION)),
    ]
}

fn paging() -> Vec<Param> {
    vec![
        p("limit", Kind::IntRange(1, 100)),
        p("offset", Kind::Str(1000)),
    ]
}

fn string_filter(field: &str, ops: &[&str]) -> Vec<Param> {
    ops.iter()
        .map(|op| {
            let kind = match *op {
                "in" | "not_in" => Kind::List,
                "is_present" => Kind::Enum(&["true", "false"]),
                _ => Kind::Str(usize::MAX),
            };
            p(&format!("{field}[{op}]"), kind)
        })
        .collect()
}

fn enum_filter(field: &str, values: &'static [&'static str]) -> Vec<Param> {
    vec![
        p(&format!("{field}[is]"), Kind::Enum(values)),
        p(&format!("{field}[is_not]"), Kind::Enum(values)),
        p(&format!("{field}[in]"), Kind::List),
        p(&format!("{field}[not_in]"), Kind::List),
    ]
}

fn ts_filter(field: &str) -> Vec<Param> {
    vec![
        p(&format!("{field}[after]"), Kind::Timestamp),
        p(&format!("{field}[before]"), Kind::Timestamp),
        p(&format!("{field}[on]"), Kind::Timestamp),
        p(&format!("{field}[between]"), Kind::TimestampRange),
    ]
}

fn sort(fields: &'static [&'static str]) -> Vec<Param> {
    vec![
        p("sort_by[asc]", Kind::Enum(fields)),
        p("sort_by[desc]", Kind::Enum(fields)),
    ]
}

const STR_OPS: &[&str] = &["is", "is_not", "starts_with", "in", "not_in"];
const TEXT_OPS: &[&str] = &["is", "is_not", "starts_with", "is_present"];
pub const AUTO_COLLECTION: &[&str] = &["on", "off"];
pub const ITEM_TYPES: &[&str] = &["plan", "addon", "charge"];
pub const ITEM_STATUS: &[&str] = &["active", "archived", "deleted"];
pub const PRICING_MODELS: &[&str] = &["flat_fee", "per_unit", "tiered", "volume", "stairstep"];
pub const PERIOD_UNITS: &[&str] = &["day", "week", "month", "year"];
pub const LEGACY_ORDER_STATUS: &[&str] = &["new", "processing", "complete", "cancelled", "voided"];
pub const ORDER_STATUS: &[&str] = &[
    "new",
    "processing",
    "complete",
    "cancelled",
    "voided",
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
];
pub const LINE_STATUS: &[&str] = &[
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
    "cancelled",
];
pub const EVENT_SOURCES: &[&str] = &[
    "admin_console",
    "api",
    "bulk_operation",
    "scheduled_job",
    "hosted_page",
    "portal",
    "system",
    "none",
    "js_api",
    "migration",
    "external_service",
];

fn customer_common() -> Vec<Param> {
    vec![
        p("first_name", Kind::Str(150)),
        p("last_name", Kind::Str(150)),
        p("email", Kind::Email(70)),
        p("preferred_currency_code", Kind::Str(3)),
        p("phone", Kind::Str(50)),
        p("company", Kind::Str(250)),
        p("auto_collection", Kind::Enum(AUTO_COLLECTION)),
        p("net_term_days", Kind::Int),
        p("allow_direct_debit", Kind::Bool),
        p("taxability", Kind::Enum(&["taxable", "exempt"])),
        p("locale", Kind::Str(50)),
        p("invoice_notes", Kind::Str(2000)),
        p("auto_close_invoices", Kind::Bool),
        p("consolidated_invoicing", Kind::Bool),
        p("meta_data", Kind::Json),
    ]
}

fn build() -> Vec<Operation> {
    let mut ops = Vec::new();
    let op = |id, method, path, params: Vec<Param>| Operation {
        id,
        method,
        path,
        params,
    };

    // customers
    let mut params = vec![p("id", Kind::Str(50))];
    params.extend(customer_common());
    params.extend([
        p("vat_number", Kind::Str(20)),
        p("vat_number_prefix", Kind::Str(10)),
        p("business_entity_id", Kind::Str(50)),
        p("created_from_ip", Kind::Str(50)),
    ]);
    params.extend(address("billing_address"));
    ops.push(op("customer.create", "POST", "/customers", params));

    let mut params = paging();
    params.push(p("include_deleted", Kind::Bool));
    params.extend(string_filter("id", STR_OPS));
    for f in ["first_name", "last_name", "email", "company", "phone"] {
        params.extend(string_filter(f, TEXT_OPS));
    }
    params.extend(enum_filter("auto_collection", AUTO_COLLECTION));
    params.extend(ts_filter("created_at"));
    params.extend(ts_filter("updated_at"));
    params.push(p("business_entity_id[is]", Kind::Str(usize::MAX)));
    params.extend(sort(&["created_at", "updated_at"]));
    ops.push(op("customer.list", "GET", "/customers", params));
    ops.push(op("customer.retrieve", "GET", "/customers/{id}", vec![]));

    let mut params = customer_common();
    params.push(p("fraud_flag", Kind::Enum(&["safe", "fraudulent"])));
    ops.push(op("customer.update", "POST", "/customers/{id}", params));

    let mut params = vec![
        p("vat_number", Kind::Str(20)),
        p("vat_number_prefix", Kind::Str(10)),
        p("registered_for_gst", Kind::Bool),
        p("business_customer_without_vat_number", Kind::Bool),
    ];
    params.extend(address("billing_address"));
    ops.push(op(
        "customer.updateBillingInfo",
        "POST",
        "/customers/{id}/update_billing_info",
        params,
    ));

    // item families
    ops.push(op(
        "itemFamily.create",
        "POST",
        "/item_families",
        vec![
            req("id", Kind::Str(50)),
            req("name", Kind::Str(50)),
            p("description", Kind::Str(500)),
            p("business_entity_id", Kind::Str(50)),
        ],
    ));
    let mut params = paging();
    params.extend(string_filter("id", STR_OPS));
    params.extend(string_filter("name", &["is", "is_not", "starts_with"]));
    params.extend(ts_filter("updated_at"));
    ops.push(op("itemFamily.list", "GET", "/item_families", params));
    ops.push(op(
        "itemFamily.retrieve",
        "GET",
        "/item_families/{id}",
        vec![],
    ));
    ops.push(op(
        "itemFamily.update",
        "POST",
        "/item_families/{id}",
        vec![p("name", Kind::Str(50)), p("description", Kind::Str(500))],
    ));

    // items
    let item_common = || {
        vec![
            p("description", Kind::Str(2000)),
            p("is_shippable", Kind::Bool),
            p("external_name", Kind::Str(100)),
            p("enabled_in_portal", Kind::Bool),
            p("redirect_url", Kind::Str(500)),
            p("enabled_for_checkout", Kind::Bool),
            p("item_applicability", Kind::Enum(&["all", "restricted"])),
            idx("applicable_items", Kind::Str(100)),
            p("unit", Kind::Str(30)),
            p("included_in_mrr", Kind::Bool),
            p("metadata", Kind::Json),
        ]
    };
    let mut params = vec![
        req("id", Kind::Str(100)),
        req("name", Kind::Str(100)),
        req("type", Kind::Enum(ITEM_TYPES)),
        req("item_family_id", Kind::Str(100)),
        p("is_giftable", Kind::Bool),
        p("metered", Kind::Bool),
        p("business_entity_id", Kind::Str(50)),
    ];
    params.extend(item_common());
    ops.push(op("item.create", "POST", "/items", params));
    let mut params = paging();
    params.extend(string_filter("id", STR_OPS));
    params.extend(string_filter("item_family_id", STR_OPS));
    params.extend(enum_filter("type", ITEM_TYPES));
    params.extend(string_filter("name", &["is", "is_not", "starts_with"]));
    params.extend(enum_filter("status", ITEM_STATUS));
    params.extend(ts_filter("updated_at"));
    params.extend(sort(&["name", "id", "updated_at"]));
    ops.push(op("item.list", "GET", "/items", params));
    ops.push(op("item.retrieve", "GET", "/items/{id}", vec![]));
    let mut params = vec![
        p("name", Kind::Str(100)),
        p("item_family_id", Kind::Str(100)),
        p("status", Kind::Enum(&["active", "archived"])),
        p("clear_applicable_items", Kind::Bool),
    ];
    params.extend(item_common());
    ops.push(op("item.update", "POST", "/items/{id}", params));

    // item prices
    let price_common = || {
        vec![
            p("description", Kind::Str(2000)),
            p("external_name", Kind::Str(100)),
            p("currency_code", Kind::Str(3)),
            p("invoice_notes", Kind::Str(2000)),
            p("is_taxable", Kind::Bool),
            p("free_quantity", Kind::IntRange(0, i64::MAX)),
            p("metadata", Kind::Json),
            p("pricing_model", Kind::Enum(PRICING_MODELS)),
            p("price", Kind::IntRange(0, i64::MAX)),
            p("period_unit", Kind::Enum(PERIOD_UNITS)),
            p("period", Kind::IntRange(1, i64::MAX)),
        ]
    };
    let mut params = vec![
        req("id", Kind::Str(100)),
        req("name", Kind::Str(100)),
        req("item_id", Kind::Str(100)),
        p("business_entity_id", Kind::Str(50)),
    ];
    params.extend(price_common());
    ops.push(op("itemPrice.create", "POST", "/item_prices", params));
    let mut params = paging();
    params.extend(string_filter("id", STR_OPS));
    params.extend(string_filter("name", STR_OPS));
    params.extend(string_filter("item_id", STR_OPS));
    params.extend(string_filter("item_family_id", STR_OPS));
    params.extend(enum_filter("item_type", ITEM_TYPES));
    params.extend(string_filter("currency_code", STR_OPS));
    params.extend(enum_filter("pricing_model", PRICING_MODELS));
    params.extend(enum_filter("status", ITEM_STATUS));
    params.extend(ts_filter("updated_at"));
    params.extend(sort(&["name", "id", "updated_at"]));
    ops.push(op("itemPrice.list", "GET", "/item_prices", params));
    ops.push(op("itemPrice.retrieve", "GET", "/item_prices/{id}", vec![]));
    let mut params = vec![
        p("name", Kind::Str(100)),
        p("status", Kind::Enum(&["active", "archived"])),
    ];
    params.extend(price_common());
    ops.push(op("itemPrice.update", "POST", "/item_prices/{id}", params));

    // invoices
    let mut params = vec![
        p("customer_id", Kind::Str(50)),
        p("subscription_id", Kind::Str(50)),
        p("currency_code", Kind::Str(3)),
        p("invoice_note", Kind::Str(2000)),
        p("po_number", Kind::Str(100)),
        p("auto_collection", Kind::Enum(AUTO_COLLECTION)),
        p("net_term_days", Kind::Int),
        p("invoice_date", Kind::Int),
        idx("item_prices[item_price_id]", Kind::Str(100)),
        idx("item_prices[quantity]", Kind::IntRange(1, i64::MAX)),
        idx("item_prices[unit_price]", Kind::IntRange(0, i64::MAX)),
        idx("item_prices[description]", Kind::Str(250)),
        idx("item_prices[date_from]", Kind::Int),
        idx("item_prices[date_to]", Kind::Int),
        idx("charges[amount]", Kind::IntRange(1, i64::MAX)),
        idx("charges[description]", Kind::Str(250)),
        idx("charges[taxable]", Kind::Bool),
        idx("charges[date_from]", Kind::Int),
        idx("charges[date_to]", Kind::Int),
    ];
    params.extend(address("shipping_address"));
    ops.push(op(
        "invoice.createForChargeItemsAndCharges",
        "POST",
        "/invoices/create_for_charge_items_and_charges",
        params,
    ));
    ops.push(op("invoice.retrieve", "GET", "/invoices/{id}", vec![]));

    // orders
    ops.push(op(
        "order.create",
        "POST",
        "/orders",
        vec![
            p("id", Kind::Str(40)),
            req("invoice_id", Kind::Str(50)),
            p("status", Kind::Enum(LEGACY_ORDER_STATUS)),
            p("reference_id", Kind::Str(50)),
            p("fulfillment_status", Kind::Str(50)),
            p("note", Kind::Str(600)),
            p("tracking_id", Kind::Str(50)),
            p("tracking_url", Kind::Str(255)),
            p("batch_id", Kind::Str(50)),
        ],
    ));
    let mut params = paging();
    params.push(p("include_deleted", Kind::Bool));
    params.extend(string_filter("id", STR_OPS));
    params.extend(string_filter("invoice_id", STR_OPS));
    params.extend(enum_filter("status", ORDER_STATUS));
    params.extend(ts_filter("updated_at"));
    params.extend(ts_filter("created_at"));
    params.extend(sort(&["created_at", "updated_at"]));
    ops.push(op("order.list", "GET", "/orders", params));
    ops.push(op("order.retrieve", "GET", "/orders/{id}", vec![]));
    let mut params = vec![
        p("reference_id", Kind::Str(50)),
        p("batch_id", Kind::Str(50)),
        p("note", Kind::Str(600)),
        p("shipping_date", Kind::Int),
        p("order_date", Kind::Int),
        p("shipped_at", Kind::Int),
        p("delivered_at", Kind::Int),
        p("tracking_url", Kind::Str(255)),
        p("tracking_id", Kind::Str(50)),
        p("shipment_carrier", Kind::Str(50)),
        p("fulfillment_status", Kind::Str(50)),
        p("status", Kind::Enum(ORDER_STATUS)),
        idx("order_line_items[id]", Kind::Str(40)),
        idx("order_line_items[status]", Kind::Enum(LINE_STATUS)),
        idx("order_line_items[sku]", Kind::Str(250)),
    ];
    params.extend(address("shipping_address"));
    ops.push(op("order.update", "POST", "/orders/{id}", params));

    // events
    let mut params = paging();
    params.extend(string_filter("id", STR_OPS));
    params.extend([
        p("event_type[is]", Kind::Str(100)),
        p("event_type[is_not]", Kind::Str(100)),
        p("event_type[in]", Kind::List),
        p("event_type[not_in]", Kind::List),
    ]);
    params.extend(enum_filter("source", EVENT_SOURCES));
    params.extend(ts_filter("occurred_at"));
    params.extend(sort(&["occurred_at"]));
    ops.push(op("event.list", "GET", "/events", params));
    ops.push(op("event.retrieve", "GET", "/events/{id}", vec![]));

    // webhook endpoints
    let endpoint_common = || {
        vec![
            p("api_version", Kind::Enum(&["v1", "v2"])),
            p("primary_url", Kind::Bool),
            p("disabled", Kind::Bool),
            p("basic_auth_password", Kind::Str(250)),
            p("basic_auth_username", Kind::Str(250)),
            p("send_card_resource", Kind::Bool),
            idx("enabled_events", Kind::Str(100)),
        ]
    };
    let mut params = vec![
        req("name", Kind::Str(50)),
        req("url", Kind::Str(512)),
        p(
            "chargebee_response_schema_type",
            Kind::Enum(&["plans_addons", "items", "compat"]),
        ),
    ];
    params.extend(endpoint_common());
    ops.push(op(
        "webhookEndpoint.create",
        "POST",
        "/webhook_endpoints",
        params,
    ));
    ops.push(op(
        "webhookEndpoint.list",
        "GET",
        "/webhook_endpoints",
        paging(),
    ));
    ops.push(op(
        "webhookEndpoint.retrieve",
        "GET",
        "/webhook_endpoints/{id}",
        vec![],
    ));
    let mut params = vec![p("name", Kind::Str(50)), p("url", Kind::Str(512))];
    params.extend(endpoint_common());
    ops.push(op(
        "webhookEndpoint.update",
        "POST",
        "/webhook_endpoints/{id}",
        params,
    ));
    ops
}

/// Every emulated operation.
pub fn operations() -> &'static [Operation] {
    static OPS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPS.get_or_init(build)
}

/// Find the operation for a method and a path below `/api/v2`, with the path's `{id}`.
pub fn resolve(method: &str, path: &str) -> Result<(&'static Operation, Option<String>), Resolve> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut path_matched = false;
    for op in operations() {
        let pattern: Vec<&str> = op.path.trim_matches('/').split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut id = None;
        let matches = pattern.iter().zip(&segments).all(|(p, s)| {
            if *p == "{id}" {
                id = Some((*s).to_string());
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !matches {
            continue;
        }
        path_matched = true;
        if op.method == method {
            return Ok((op, id));
        }
    }
    if path_matched {
        Err(Resolve::MethodNotAllowed)
    } else {
        Err(Resolve::NotFound)
    }
}

/// Why a request matched no operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    NotFound,
    MethodNotAllowed,
}
