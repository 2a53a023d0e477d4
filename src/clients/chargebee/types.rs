//! Response DTOs. Lenient by design: every field the service does not strictly need is
//! optional, enum-like fields are plain strings (Chargebee adds values every month), money is
//! `i64` minor units, timestamps are unix seconds (`resource_version` milliseconds), and
//! unknown fields are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A postal address as Chargebee nests it (`billing_address`, `shipping_address`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub line3: Option<String>,
    pub city: Option<String>,
    pub state_code: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub validation_status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub vat_number: Option<String>,
    pub locale: Option<String>,
    pub preferred_currency_code: Option<String>,
    pub auto_collection: Option<String>,
    pub net_term_days: Option<i64>,
    pub billing_address: Option<Address>,
    /// JSON object (the API stores what was sent as `meta_data`).
    pub meta_data: Option<Value>,
    pub business_entity_id: Option<String>,
    /// Set when a business-entity transfer deprecated this record: the active copy's id.
    pub active_id: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemFamily {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub business_entity_id: Option<String>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub name: Option<String>,
    pub external_name: Option<String>,
    pub description: Option<String>,
    /// `active` | `archived` | `deleted` (kept as a string).
    pub status: Option<String>,
    pub item_family_id: Option<String>,
    /// `plan` | `addon` | `charge`.
    #[serde(rename = "type")]
    pub item_type: Option<String>,
    pub is_shippable: Option<bool>,
    pub unit: Option<String>,
    pub metadata: Option<Value>,
    pub archived_at: Option<i64>,
    pub business_entity_id: Option<String>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemPrice {
    pub id: String,
    pub name: Option<String>,
    pub item_id: Option<String>,
    pub item_family_id: Option<String>,
    pub item_type: Option<String>,
    pub external_name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub pricing_model: Option<String>,
    /// Minor units.
    pub price: Option<i64>,
    pub currency_code: Option<String>,
    pub period: Option<i64>,
    pub period_unit: Option<String>,
    pub metadata: Option<Value>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLineItem {
    pub id: Option<String>,
    pub description: Option<String>,
    pub unit_amount: Option<i64>,
    pub quantity: Option<i64>,
    pub amount: Option<i64>,
    pub tax_amount: Option<i64>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkedOrder {
    pub id: String,
    pub document_number: Option<String>,
    pub status: Option<String>,
    pub reference_id: Option<String>,
    pub created_at: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub currency_code: Option<String>,
    pub date: Option<i64>,
    pub due_date: Option<i64>,
    pub po_number: Option<String>,
    pub sub_total: Option<i64>,
    pub tax: Option<i64>,
    pub total: Option<i64>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    #[serde(default)]
    pub line_items: Vec<InvoiceLineItem>,
    #[serde(default)]
    pub linked_orders: Vec<LinkedOrder>,
    pub business_entity_id: Option<String>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderLineItem {
    pub id: String,
    pub invoice_id: Option<String>,
    pub invoice_line_item_id: Option<String>,
    pub description: Option<String>,
    pub unit_price: Option<i64>,
    pub fulfillment_quantity: Option<i64>,
    pub amount: Option<i64>,
    pub tax_amount: Option<i64>,
    pub discount_amount: Option<i64>,
    pub sku: Option<String>,
    pub status: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineItemTax {
    pub line_item_id: Option<String>,
    pub tax_name: Option<String>,
    /// A percentage, e.g. `25.0`.
    pub tax_rate: Option<f64>,
    pub tax_amount: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub document_number: Option<String>,
    pub invoice_id: Option<String>,
    pub subscription_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub order_type: Option<String>,
    pub payment_status: Option<String>,
    pub reference_id: Option<String>,
    pub fulfillment_status: Option<String>,
    pub note: Option<String>,
    pub order_date: Option<i64>,
    pub shipping_date: Option<i64>,
    pub currency_code: Option<String>,
    pub sub_total: Option<i64>,
    pub tax: Option<i64>,
    pub discount: Option<i64>,
    pub total: Option<i64>,
    #[serde(default)]
    pub order_line_items: Vec<OrderLineItem>,
    #[serde(default)]
    pub line_item_taxes: Vec<LineItemTax>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    pub business_entity_id: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BusinessEntity {
    pub id: String,
    pub name: Option<String>,
    pub status: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub resource_version: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BusinessEntityTransfer {
    pub id: String,
    pub resource_type: Option<String>,
    /// The deprecated original record.
    pub resource_id: Option<String>,
    /// The new active copy.
    pub active_resource_id: Option<String>,
    pub source_business_entity_id: Option<String>,
    pub destination_business_entity_id: Option<String>,
    pub reason_code: Option<String>,
    pub created_at: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An event as `GET /events` returns it and as webhooks deliver it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub occurred_at: i64,
    pub event_type: Option<String>,
    pub source: Option<String>,
    pub user: Option<String>,
    pub api_version: Option<String>,
    pub webhook_status: Option<String>,
    /// Resource name → resource object, e.g. `{"customer": {...}}`.
    #[serde(default)]
    pub content: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// Deserialize one resource of the content, e.g. `event.content_as::<Customer>("customer")`.
    pub fn content_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.content
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn customer(&self) -> Option<Customer> {
        self.content_as("customer")
    }
    pub fn order(&self) -> Option<Order> {
        self.content_as("order")
    }
    pub fn item(&self) -> Option<Item> {
        self.content_as("item")
    }
    pub fn item_price(&self) -> Option<ItemPrice> {
        self.content_as("item_price")
    }
    pub fn business_entity(&self) -> Option<BusinessEntity> {
        self.content_as("business_entity")
    }
    pub fn business_entity_transfer(&self) -> Option<BusinessEntityTransfer> {
        self.content_as("business_entity_transfer")
    }
}

/// A webhook endpoint. The API never returns the basic-auth credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub api_version: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub primary_url: bool,
    #[serde(default)]
    pub enabled_events: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Chargebee's error body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    pub api_error_code: Option<String>,
    pub param: Option<String>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
    pub error_param: Option<String>,
    pub error_cause_id: Option<String>,
    pub http_status_code: Option<u16>,
}
