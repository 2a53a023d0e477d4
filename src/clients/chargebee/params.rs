//! Request parameters for the write operations, each rendered into a [`Form`] with
//! Chargebee's conventions. `None` (and blank strings) are never sent: a blank clears the
//! field on Chargebee's side. To clear a field on purpose, list it in `clear`.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::form::Form;

/// An address to write (`billing_address[...]`, `shipping_address[...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressInput {
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
}

impl AddressInput {
    fn write(&self, form: &mut Form, parent: &str) {
        form.nested(parent, "first_name", self.first_name.as_deref())
            .nested(parent, "last_name", self.last_name.as_deref())
            .nested(parent, "email", self.email.as_deref())
            .nested(parent, "company", self.company.as_deref())
            .nested(parent, "phone", self.phone.as_deref())
            .nested(parent, "line1", self.line1.as_deref())
            .nested(parent, "line2", self.line2.as_deref())
            .nested(parent, "line3", self.line3.as_deref())
            .nested(parent, "city", self.city.as_deref())
            .nested(parent, "state_code", self.state_code.as_deref())
            .nested(parent, "state", self.state.as_deref())
            .nested(parent, "zip", self.zip.as_deref())
            .nested(parent, "country", self.country.as_deref());
    }
}

fn clear_all(form: &mut Form, clear: &[String]) {
    for key in clear {
        form.clear(key.clone());
    }
}

/// `POST /customers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerCreate {
    /// Our deterministic id, e.g. `wc-person-123` (≤ 50).
    pub id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub locale: Option<String>,
    pub preferred_currency_code: Option<String>,
    pub auto_collection: Option<String>,
    pub net_term_days: Option<i64>,
    pub vat_number: Option<String>,
    pub invoice_notes: Option<String>,
    /// Only settable at create.
    pub business_entity_id: Option<String>,
    /// Sent as a JSON string.
    pub meta_data: Option<Value>,
    pub billing_address: Option<AddressInput>,
}

impl CustomerCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("id", self.id.as_deref())
            .opt("first_name", self.first_name.as_deref())
            .opt("last_name", self.last_name.as_deref())
            .opt("email", self.email.as_deref())
            .opt("phone", self.phone.as_deref())
            .opt("company", self.company.as_deref())
            .opt("locale", self.locale.as_deref())
            .opt(
                "preferred_currency_code",
                self.preferred_currency_code.as_deref(),
            )
            .opt("auto_collection", self.auto_collection.as_deref())
            .opt("net_term_days", self.net_term_days)
            .opt("vat_number", self.vat_number.as_deref())
            .opt("invoice_notes", self.invoice_notes.as_deref())
            .opt("business_entity_id", self.business_entity_id.as_deref())
            .json("meta_data", self.meta_data.as_ref());
        if let Some(a) = &self.billing_address {
            a.write(&mut f, "billing_address");
        }
        f
    }
}

/// `POST /customers/{id}`. Takes no address or VAT number: see [`BillingInfoUpdate`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub locale: Option<String>,
    pub preferred_currency_code: Option<String>,
    pub auto_collection: Option<String>,
    pub net_term_days: Option<i64>,
    pub invoice_notes: Option<String>,
    /// Replaces the whole `meta_data` object.
    pub meta_data: Option<Value>,
    /// Params sent blank on purpose to clear them, e.g. `"phone"`.
    pub clear: Vec<String>,
}

impl CustomerUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("first_name", self.first_name.as_deref())
            .opt("last_name", self.last_name.as_deref())
            .opt("email", self.email.as_deref())
            .opt("phone", self.phone.as_deref())
            .opt("company", self.company.as_deref())
            .opt("locale", self.locale.as_deref())
            .opt(
                "preferred_currency_code",
                self.preferred_currency_code.as_deref(),
            )
            .opt("auto_collection", self.auto_collection.as_deref())
            .opt("net_term_days", self.net_term_days)
            .opt("invoice_notes", self.invoice_notes.as_deref())
            .json("meta_data", self.meta_data.as_ref());
        clear_all(&mut f, &self.clear);
        f
    }
}

/// `POST /customers/{id}/update_billing_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingInfoUpdate {
    pub billing_address: Option<AddressInput>,
    pub vat_number: Option<String>,
    pub vat_number_prefix: Option<String>,
    /// Params sent blank on purpose, e.g. `"vat_number"` or `"billing_address[line2]"`.
    pub clear: Vec<String>,
}

impl BillingInfoUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("vat_number", self.vat_number.as_deref())
            .opt("vat_number_prefix", self.vat_number_prefix.as_deref());
        if let Some(a) = &self.billing_address {
            a.write(&mut f, "billing_address");
        }
        clear_all(&mut f, &self.clear);
        f
    }
}

/// `POST /item_families`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFamilyCreate {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub business_entity_id: Option<String>,
}

impl ItemFamilyCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.set("id", &self.id)
            .set("name", &self.name)
            .opt("description", self.description.as_deref())
            .opt("business_entity_id", self.business_entity_id.as_deref());
        f
    }
}

/// `POST /items`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemCreate {
    pub id: String,
    pub name: String,
    /// `plan` | `addon` | `charge`.
    pub item_type: String,
    pub item_family_id: String,
    pub description: Option<String>,
    pub external_name: Option<String>,
    pub is_shippable: Option<bool>,
    pub unit: Option<String>,
    pub enabled_for_checkout: Option<bool>,
    pub enabled_in_portal: Option<bool>,
    /// Sent as a JSON string.
    pub metadata: Option<Value>,
    pub business_entity_id: Option<String>,
}

impl ItemCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.set("id", &self.id)
            .set("name", &self.name)
            .set("type", &self.item_type)
            .set("item_family_id", &self.item_family_id)
            .opt("description", self.description.as_deref())
            .opt("external_name", self.external_name.as_deref())
            .opt("is_shippable", self.is_shippable)
            .opt("unit", self.unit.as_deref())
            .opt("enabled_for_checkout", self.enabled_for_checkout)
            .opt("enabled_in_portal", self.enabled_in_portal)
            .json("metadata", self.metadata.as_ref())
            .opt("business_entity_id", self.business_entity_id.as_deref());
        f
    }
}

/// `POST /items/{id}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub external_name: Option<String>,
    pub item_family_id: Option<String>,
    pub is_shippable: Option<bool>,
    pub unit: Option<String>,
    /// `active` | `archived`.
    pub status: Option<String>,
    pub metadata: Option<Value>,
    pub clear: Vec<String>,
}

impl ItemUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("name", self.name.as_deref())
            .opt("description", self.description.as_deref())
            .opt("external_name", self.external_name.as_deref())
            .opt("item_family_id", self.item_family_id.as_deref())
            .opt("is_shippable", self.is_shippable)
            .opt("unit", self.unit.as_deref())
            .opt("status", self.status.as_deref())
            .json("metadata", self.metadata.as_ref());
        clear_all(&mut f, &self.clear);
        f
    }
}

/// `POST /item_prices`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemPriceCreate {
    pub id: String,
    pub name: String,
    pub item_id: String,
    pub description: Option<String>,
    pub external_name: Option<String>,
    pub currency_code: Option<String>,
    /// `flat_fee` | `per_unit` | ...
    pub pricing_model: Option<String>,
    /// Minor units.
    pub price: Option<i64>,
    pub period: Option<i64>,
    pub period_unit: Option<String>,
    pub is_taxable: Option<bool>,
    pub metadata: Option<Value>,
    pub business_entity_id: Option<String>,
}

impl ItemPriceCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.set("id", &self.id)
            .set("name", &self.name)
            .set("item_id", &self.item_id)
            .opt("description", self.description.as_deref())
            .opt("external_name", self.external_name.as_deref())
            .opt("currency_code", self.currency_code.as_deref())
            .opt("pricing_model", self.pricing_model.as_deref())
            .opt("price", self.price)
            .opt("period", self.period)
            .opt("period_unit", self.period_unit.as_deref())
            .opt("is_taxable", self.is_taxable)
            .json("metadata", self.metadata.as_ref())
            .opt("business_entity_id", self.business_entity_id.as_deref());
        f
    }
}

/// `POST /item_prices/{id}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemPriceUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub external_name: Option<String>,
    /// `active` | `archived`.
    pub status: Option<String>,
    pub pricing_model: Option<String>,
    pub price: Option<i64>,
    pub currency_code: Option<String>,
    pub metadata: Option<Value>,
    pub clear: Vec<String>,
}

impl ItemPriceUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("name", self.name.as_deref())
            .opt("description", self.description.as_deref())
            .opt("external_name", self.external_name.as_deref())
            .opt("status", self.status.as_deref())
            .opt("pricing_model", self.pricing_model.as_deref())
            .opt("price", self.price)
            .opt("currency_code", self.currency_code.as_deref())
            .json("metadata", self.metadata.as_ref());
        clear_all(&mut f, &self.clear);
        f
    }
}

/// One `item_prices[...][i]` line of an invoice (a price of a charge item).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceItemPriceLine {
    pub item_price_id: String,
    pub quantity: Option<i64>,
    /// Minor units; overrides the catalogue price.
    pub unit_price: Option<i64>,
    pub description: Option<String>,
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
}

/// One ad-hoc `charges[...][i]` line of an invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceCharge {
    /// Minor units, ≥ 1.
    pub amount: i64,
    pub description: Option<String>,
    pub taxable: Option<bool>,
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
}

/// `POST /invoices/create_for_charge_items_and_charges`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceForChargesCreate {
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub currency_code: Option<String>,
    /// `on` collects now; `off` leaves the invoice payment-due.
    pub auto_collection: Option<String>,
    pub po_number: Option<String>,
    pub invoice_note: Option<String>,
    pub net_term_days: Option<i64>,
    pub invoice_date: Option<i64>,
    pub item_prices: Vec<InvoiceItemPriceLine>,
    pub charges: Vec<InvoiceCharge>,
}

impl InvoiceForChargesCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("customer_id", self.customer_id.as_deref())
            .opt("subscription_id", self.subscription_id.as_deref())
            .opt("currency_code", self.currency_code.as_deref())
            .opt("auto_collection", self.auto_collection.as_deref())
            .opt("po_number", self.po_number.as_deref())
            .opt("invoice_note", self.invoice_note.as_deref())
            .opt("net_term_days", self.net_term_days)
            .opt("invoice_date", self.invoice_date);
        f.object_list("item_prices", &self.item_prices, |l| {
            vec![
                ("item_price_id", Some(l.item_price_id.clone())),
                ("quantity", l.quantity.map(|v| v.to_string())),
                ("unit_price", l.unit_price.map(|v| v.to_string())),
                ("description", l.description.clone()),
                ("date_from", l.date_from.map(|v| v.to_string())),
                ("date_to", l.date_to.map(|v| v.to_string())),
            ]
        });
        f.object_list("charges", &self.charges, |c| {
            vec![
                ("amount", Some(c.amount.to_string())),
                ("description", c.description.clone()),
                ("taxable", c.taxable.map(|v| v.to_string())),
                ("date_from", c.date_from.map(|v| v.to_string())),
                ("date_to", c.date_to.map(|v| v.to_string())),
            ]
        });
        f
    }
}

/// `POST /orders` (needs an existing invoice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderCreate {
    /// ≤ 40; generated when absent.
    pub id: Option<String>,
    pub invoice_id: String,
    /// Legacy statuses only: new | processing | complete | cancelled | voided.
    pub status: Option<String>,
    /// Our external id (≤ 50).
    pub reference_id: Option<String>,
    pub fulfillment_status: Option<String>,
    /// ≤ 600.
    pub note: Option<String>,
    pub tracking_id: Option<String>,
    pub tracking_url: Option<String>,
    pub batch_id: Option<String>,
}

impl OrderCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("id", self.id.as_deref())
            .set("invoice_id", &self.invoice_id)
            .opt("status", self.status.as_deref())
            .opt("reference_id", self.reference_id.as_deref())
            .opt("fulfillment_status", self.fulfillment_status.as_deref())
            .opt("note", self.note.as_deref())
            .opt("tracking_id", self.tracking_id.as_deref())
            .opt("tracking_url", self.tracking_url.as_deref())
            .opt("batch_id", self.batch_id.as_deref());
        f
    }
}

/// One `order_line_items[...][i]` change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderLineItemUpdate {
    pub id: String,
    pub status: Option<String>,
    pub sku: Option<String>,
}

/// `POST /orders/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderUpdate {
    pub reference_id: Option<String>,
    pub batch_id: Option<String>,
    pub note: Option<String>,
    pub shipping_date: Option<i64>,
    pub order_date: Option<i64>,
    pub status: Option<String>,
    pub fulfillment_status: Option<String>,
    pub tracking_id: Option<String>,
    pub tracking_url: Option<String>,
    pub shipment_carrier: Option<String>,
    pub shipping_address: Option<AddressInput>,
    pub order_line_items: Vec<OrderLineItemUpdate>,
    pub clear: Vec<String>,
}

impl OrderUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("reference_id", self.reference_id.as_deref())
            .opt("batch_id", self.batch_id.as_deref())
            .opt("note", self.note.as_deref())
            .opt("shipping_date", self.shipping_date)
            .opt("order_date", self.order_date)
            .opt("status", self.status.as_deref())
            .opt("fulfillment_status", self.fulfillment_status.as_deref())
            .opt("tracking_id", self.tracking_id.as_deref())
            .opt("tracking_url", self.tracking_url.as_deref())
            .opt("shipment_carrier", self.shipment_carrier.as_deref());
        if let Some(a) = &self.shipping_address {
            a.write(&mut f, "shipping_address");
        }
        f.object_list("order_line_items", &self.order_line_items, |l| {
            vec![
                ("id", Some(l.id.clone())),
                ("status", l.status.clone()),
                ("sku", l.sku.clone()),
            ]
        });
        clear_all(&mut f, &self.clear);
        f
    }
}

/// `POST /webhook_endpoints`.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointCreate {
    pub name: String,
    pub url: String,
    /// `v2` unless set.
    pub api_version: Option<String>,
    pub primary_url: Option<bool>,
    pub disabled: Option<bool>,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password: Option<SecretString>,
    pub send_card_resource: Option<bool>,
    pub chargebee_response_schema_type: Option<String>,
    /// Empty: all events.
    pub enabled_events: Vec<String>,
}

impl WebhookEndpointCreate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.set("name", &self.name)
            .set("url", &self.url)
            .opt("api_version", self.api_version.as_deref())
            .opt("primary_url", self.primary_url)
            .opt("disabled", self.disabled)
            .opt("basic_auth_username", self.basic_auth_username.as_deref())
            .opt(
                "basic_auth_password",
                self.basic_auth_password.as_ref().map(|s| s.expose_secret()),
            )
            .opt("send_card_resource", self.send_card_resource)
            .opt(
                "chargebee_response_schema_type",
                self.chargebee_response_schema_type.as_deref(),
            )
            .scalar_list("enabled_events", &self.enabled_events);
        f
    }
}

/// `POST /webhook_endpoints/{id}`.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointUpdate {
    pub name: Option<String>,
    pub url: Option<String>,
    pub api_version: Option<String>,
    pub primary_url: Option<bool>,
    pub disabled: Option<bool>,
    pub basic_auth_username: Option<String>,
    pub basic_auth_password: Option<SecretString>,
    pub send_card_resource: Option<bool>,
    pub enabled_events: Vec<String>,
}

impl WebhookEndpointUpdate {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.opt("name", self.name.as_deref())
            .opt("url", self.url.as_deref())
            .opt("api_version", self.api_version.as_deref())
            .opt("primary_url", self.primary_url)
            .opt("disabled", self.disabled)
            .opt("basic_auth_username", self.basic_auth_username.as_deref())
            .opt(
                "basic_auth_password",
                self.basic_auth_password.as_ref().map(|s| s.expose_secret()),
            )
            .opt("send_card_resource", self.send_card_resource)
            .scalar_list("enabled_events", &self.enabled_events);
        f
    }
}
