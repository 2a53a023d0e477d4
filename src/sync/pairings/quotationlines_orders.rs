//! `quotationlines_orders`: webCRM QuotationLines <-> Chargebee order line items
//! (MAPPINGS.md §5). The Chargebee-side id of a line is `{order_id}/{order_line_item_id}`.
//!
//! An order line's money is fixed by its issued invoice. A webCRM line invoiced as an ad-hoc
//! charge comes back as one unit of its net amount (Chargebee charges have no quantity), so
//! the two sides are compared on the line's net `amount` (price x quantity less discount)
//! rather than on price and quantity separately; a later webCRM edit of any of them changes
//! that amount and becomes a pending action. Price, quantity and discount are still mapped
//! one by one when Chargebee creates a webCRM line. SKU and status travel both ways.

use async_trait::async_trait;
use futures::TryStreamExt;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::clients::chargebee::{
    ListQuery, Order, OrderLineItem, OrderLineItemUpdate, OrderUpdate,
};
use crate::clients::webcrm::{QuotationLine, QuotationLineUpdate};
use crate::intake::Side;
use crate::store::admin::NewPendingAction;

use super::super::merge::{Fields, Flow, Observed, Rule};
use super::super::normalize::money;
use super::super::pairing::{Created, Dependency, Expansion, Pairing, SyncContext, SyncError};
use super::super::values::{found, from_raw, get_str, raw, text_value, webcrm_id, webcrm_ms};
use super::opportunities_orders::{self as opportunities, read_order};

pub const NAME: &str = "quotationlines_orders";
/// Where a webCRM line created from an order line keeps `{order}/{line}`, so a retry after
/// an interrupted create finds it instead of adding the line twice. `Data1` is the SKU; the
/// last data column is the least likely to be used for anything else.
pub const DEFAULT_MARKER_FIELD: &str = "QuotationLineData9";

/// Line statuses Chargebee accepts in `order_line_items[status]`.
pub const LINE_STATUSES: &[&str] = &[
    "queued",
    "awaiting_shipment",
    "on_hold",
    "delivered",
    "shipped",
    "partially_delivered",
    "returned",
    "cancelled",
];

const RULES: &[Rule] = &[
    Rule::to_webcrm("memo"),
    // Fixed by the issued invoice: webCRM edits are reported.
    Rule::with("amount", Flow::Report, Flow::Ignore),
    Rule::with("vat", Flow::Report, Flow::Write),
    Rule::both("sku"),
    Rule::both("status"),
];

/// The Chargebee-side id of an order line.
pub fn line_key(order_id: &str, line_id: &str) -> String {
    format!("{order_id}/{line_id}")
}

/// `{order}/{line}` back into its parts.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
        .filter(|(o, l)| !o.is_empty() && !l.is_empty())
}

/// A percentage as a canonical decimal text (`25`, `12.5`); zero or none is unset.
pub fn percent_value(p: Option<f64>) -> Value {
    p.and_then(Decimal::from_f64)
        .map(|d| d.round_dp(4).normalize())
        .filter(|d| !d.is_zero())
        .map(|d| json!(d.to_string()))
        .unwrap_or(Value::Null)
}

/// The webCRM line as canonical fields, in its order's currency.
pub fn webcrm_fields(line: &QuotationLine, currency: &str) -> Result<Fields, SyncError> {
    let net = opportunities::line_net(line)?;
    let mut f = Fields::new();
    f.insert("memo".into(), text_value(line.memo.as_deref()));
    f.insert("amount".into(), json!(money::canonical(net, currency)));
    f.insert("vat".into(), percent_value(line.vat_percentage));
    f.insert("sku".into(), text_value(line.data1.as_deref()));
    f.insert("status".into(), text_value(line.stock_status.as_deref()));
    Ok(f)
}

/// The order line's discount as a percent of `unit_price` x quantity.
pub fn discount_percent(l: &OrderLineItem) -> Option<Decimal> {
    let gross = l.unit_price? * l.fulfillment_quantity.unwrap_or(1);
    let discount = l.discount_amount.filter(|d| *d != 0)?;
    (gross != 0).then(|| {
        (Decimal::from(discount) * Decimal::from(100) / Decimal::from(gross))
            .round_dp(4)
            .normalize()
    })
}

/// The order line as canonical fields (plus `price`, `quantity` and `discount`, which only
/// a create uses).
pub fn chargebee_fields(order: &Order, l: &OrderLineItem) -> Fields {
    let currency = order
        .currency_code
        .clone()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let quantity = l.fulfillment_quantity.unwrap_or(1);
    let gross = l
        .amount
        .or_else(|| l.unit_price.map(|u| u * quantity))
        .unwrap_or(0);
    let net = gross - l.discount_amount.unwrap_or(0);
    let vat = order
        .line_item_taxes
        .iter()
        .find(|t| t.line_item_id.as_deref() == Some(l.id.as_str()))
        .and_then(|t| t.tax_rate);
    let mut f = Fields::new();
    f.insert("memo".into(), text_value(l.description.as_deref()));
    f.insert(
        "amount".into(),
        json!(money::canonical(
            money::minor_to_major(net, &currency),
            &currency
        )),
    );
    f.insert("vat".into(), percent_value(vat));
    f.insert("sku".into(), text_value(l.sku.as_deref()));
    f.insert("status".into(), text_value(l.status.as_deref()));
    f.insert(
        "price".into(),
        l.unit_price
            .map(|u| {
                json!(money::canonical(
                    money::minor_to_major(u, &currency),
                    &currency
                ))
            })
            .unwrap_or(Value::Null),
    );
    f.insert("quantity".into(), json!(quantity));
    f.insert(
        "discount".into(),
        discount_percent(l)
            .map(|d| json!(d.to_string()))
            .unwrap_or(Value::Null),
    );
    f
}

fn decimal_of(fields: &Fields, name: &str) -> Result<Option<f64>, SyncError> {
    get_str(fields, name)
        .map(|s| {
            s.parse::<Decimal>()
                .map(money::to_f64)
                .map_err(|e| SyncError::Invalid(format!("{name} {s:?}: {e}")))
        })
        .transpose()
}

/// Puts the changes Chargebee may make onto the line.
pub fn apply_to_line(line: &mut QuotationLineUpdate, changes: &Fields) -> Result<(), SyncError> {
    let text = |name: &str| get_str(changes, name).map(str::to_owned);
    if changes.contains_key("memo") {
        line.memo = text("memo");
    }
    if changes.contains_key("vat") {
        line.vat_percentage = Some(decimal_of(changes, "vat")?.unwrap_or(0.0));
    }
    if changes.contains_key("sku") {
        line.data1 = text("sku");
    }
    if changes.contains_key("status") {
        line.stock_status = text("status");
    }
    Ok(())
}

/// The webCRM line a new order line becomes.
pub fn line_for(
    fields: &Fields,
    opportunity_id: i32,
    sort_order: i32,
    marker_field: &str,
    marker: &str,
) -> Result<QuotationLineUpdate, SyncError> {
    let mut line = QuotationLineUpdate {
        opportunity_id: Some(opportunity_id),
        price: Some(decimal_of(fields, "price")?.unwrap_or(0.0)),
        quantity: fields
            .get("quantity")
            .and_then(Value::as_i64)
            .map(|q| q as f64),
        discount: Some(decimal_of(fields, "discount")?.unwrap_or(0.0)),
        sort_order: Some(sort_order),
        ..QuotationLineUpdate::default()
    };
    let values: Fields = fields
        .iter()
        .filter(|(k, v)| !v.is_null() && ["memo", "vat", "sku", "status"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    apply_to_line(&mut line, &values)?;
    let mut body = raw(&line);
    if let Value::Object(map) = &mut body {
        map.insert(marker_field.to_owned(), json!(marker));
    }
    Ok(from_raw(&body, "quotation line")?)
}

/// The order line a webCRM line was invoiced as: the same position among the invoiced lines
/// (`charged_line_ids`, in invoice order) and the same description.
pub fn match_position(
    order: &Order,
    charged: &[(i32, String)],
    webcrm_line: i32,
) -> Option<OrderLineItem> {
    let index = charged.iter().position(|(id, _)| *id == webcrm_line)?;
    let order_line = order.order_line_items.get(index)?;
    (order_line.description.as_deref().map(str::trim) == Some(charged[index].1.as_str()))
        .then(|| order_line.clone())
}

/// The webCRM line an order line was invoiced from (the inverse of [`match_position`]).
pub fn match_order_line(order: &Order, charged: &[(i32, String)], line_id: &str) -> Option<i32> {
    let index = order
        .order_line_items
        .iter()
        .position(|l| l.id == line_id)?;
    let (id, description) = charged.get(index)?;
    (order.order_line_items[index]
        .description
        .as_deref()
        .map(str::trim)
        == Some(description.as_str()))
    .then_some(*id)
}

pub struct QuotationlinesOrders;

fn marker_field(cx: &SyncContext) -> String {
    cx.option(NAME, "marker_field")
        .unwrap_or_else(|| DEFAULT_MARKER_FIELD.to_owned())
}

/// The marker value of a line as read from webCRM (`extra` holds the data columns as JSON).
fn marker_of(line: &QuotationLine, marker_field: &str) -> Option<String> {
    raw(line)
        .get(marker_field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl QuotationlinesOrders {
    /// The line with the currency of its opportunity's order (or of the opportunity).
    async fn read_line(cx: &SyncContext, id: &str) -> Result<Option<Observed>, SyncError> {
        let Some(line) = found(cx.webcrm.get_quotation_line(webcrm_id(id)?).await)? else {
            return Ok(None);
        };
        let currency = Self::currency_of_line(cx, &line).await?;
        Ok(Some(Observed {
            id: id.to_owned(),
            fields: webcrm_fields(&line, &currency)?,
            changed_at: webcrm_ms(line.updated_at),
            version: line.updated_at.map(|t| t.to_rfc3339()),
            raw: raw(&line),
        }))
    }

    async fn currency_of_line(cx: &SyncContext, line: &QuotationLine) -> Result<String, SyncError> {
        let Some(opp_id) = line.opportunity_id.filter(|o| *o > 0) else {
            return Ok(cx.config.default_currency.clone());
        };
        if let Some(link) = cx
            .store
            .link_by_webcrm(opportunities::NAME, &opp_id.to_string())
            .await?
        {
            if let Some(order) = read_order(cx, &link.chargebee_id).await? {
                if let Some(c) = order.currency_code {
                    return Ok(c.to_ascii_uppercase());
                }
            }
        }
        match found(cx.webcrm.get_opportunity(opp_id).await)? {
            Some(o) => opportunities::opportunity_currency(
                &o,
                |name| {
                    cx.config
                        .currency_map
                        .resolve(name)
                        .map_err(|e| SyncError::Invalid(format!("OpportunityCurrencyName: {e}")))
                },
                &cx.config.default_currency,
            ),
            None => Ok(cx.config.default_currency.clone()),
        }
    }

    async fn read_order_line(cx: &SyncContext, key: &str) -> Result<Option<Observed>, SyncError> {
        let Some((order_id, line_id)) = split_key(key) else {
            return Err(SyncError::Invalid(format!(
                "{key:?} is not an order line id (`order/line`)"
            )));
        };
        let Some(order) = read_order(cx, order_id).await? else {
            return Ok(None);
        };
        Ok(order
            .order_line_items
            .iter()
            .find(|l| l.id == line_id)
            .map(|l| order_line_observed(&order, l)))
    }

    /// The opportunity's lines as invoiced: `(line id, charge description)` in invoice order.
    async fn charged_lines(
        cx: &SyncContext,
        opp_id: i32,
        currency: &str,
    ) -> Result<(Vec<QuotationLine>, Vec<(i32, String)>), SyncError> {
        let lines: Vec<QuotationLine> = cx
            .webcrm
            .opportunity_quotation_lines(opp_id)
            .try_collect()
            .await?;
        let lines = opportunities::ordered(lines);
        let opp = crate::clients::webcrm::Opportunity {
            id: Some(opp_id),
            order_value: Some(1.0),
            ..Default::default()
        };
        let charged = opportunities::charges(&opp, &lines, currency)?
            .into_iter()
            .filter_map(|(id, c)| Some((id?, c.description.unwrap_or_default())))
            .collect();
        Ok((lines, charged))
    }

    /// An order line without a link: find the webCRM line it came from or was made as
    /// before, else create one under the order's opportunity.
    async fn create_webcrm_line(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let Some((order_id, line_id)) = split_key(&source.id) else {
            return Err(SyncError::Invalid(format!(
                "{:?} is not an order line id",
                source.id
            )));
        };
        let Some(link) = cx
            .store
            .link_by_chargebee(opportunities::NAME, order_id)
            .await?
            .filter(|l| l.tombstoned_at.is_none())
        else {
            return Err(SyncError::wait(
                format!("the opportunity of order {order_id}"),
                vec![Dependency {
                    pairing: opportunities::NAME,
                    side: Side::Chargebee,
                    id: order_id.to_owned(),
                }],
            ));
        };
        let opp_id = webcrm_id(&link.webcrm_id)?;
        let Some(order) = read_order(cx, order_id).await? else {
            return Ok(Created::Skip("the order is gone".into()));
        };
        let currency = order
            .currency_code
            .clone()
            .unwrap_or_else(|| cx.config.default_currency.clone())
            .to_ascii_uppercase();
        let marker_field = marker_field(cx);
        let (lines, charged) = Self::charged_lines(cx, opp_id, &currency).await?;
        // Made by an earlier, interrupted attempt.
        if let Some(line) = lines
            .iter()
            .find(|l| marker_of(l, &marker_field).as_deref() == Some(source.id.as_str()))
        {
            return Self::observed_line(cx, line).await;
        }
        // Invoiced from this opportunity: the line it came from.
        if opportunities::opportunity_of_order(order_id) == Some(link.webcrm_id.as_str()) {
            return match match_order_line(&order, &charged, line_id) {
                Some(id) => match lines.iter().find(|l| l.id == Some(id)) {
                    Some(line) => Self::observed_line(cx, line).await,
                    None => Ok(Created::Skip("the matching webCRM line is gone".into())),
                },
                None => Ok(Created::Skip(
                    "a charge of the opportunity's value, not of a quotation line".into(),
                )),
            };
        }
        let position = order
            .order_line_items
            .iter()
            .position(|l| l.id == line_id)
            .unwrap_or(0);
        cx.store
            .record_pending_create(
                NAME,
                "webcrm",
                &source.id,
                &source.id,
                crate::store::now_ms(),
            )
            .await?;
        let line = line_for(
            &source.fields,
            opp_id,
            i32::try_from(position + 1).unwrap_or(i32::MAX),
            &marker_field,
            &source.id,
        )?;
        let id = cx.webcrm.create_quotation_line(&line).await?;
        match Self::read_line(cx, &id.to_string()).await? {
            Some(o) => Ok(Created::Record(o)),
            None => Err(SyncError::Api(
                crate::clients::outbound::ApiError::Transient(format!(
                    "webCRM quotation line {id} was created but cannot be read yet"
                )),
            )),
        }
    }

    async fn observed_line(cx: &SyncContext, line: &QuotationLine) -> Result<Created, SyncError> {
        let id = line.id.unwrap_or_default().to_string();
        match Self::read_line(cx, &id).await? {
            Some(o) => Ok(Created::Record(o)),
            None => Ok(Created::Skip("the webCRM line is gone".into())),
        }
    }

    /// A webCRM line without a link: the order line it was invoiced as (or made from), once
    /// its opportunity has an order. A line added after that cannot join the issued invoice.
    async fn link_order_line(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let line: QuotationLine = from_raw(&source.raw, "quotation line")?;
        if let Some(key) = marker_of(&line, &marker_field(cx)) {
            if let Some(o) = Self::read_order_line(cx, &key).await? {
                return Ok(Created::Record(o));
            }
        }
        let Some(opp_id) = line.opportunity_id.filter(|o| *o > 0) else {
            return Ok(Created::Skip("the line belongs to no opportunity".into()));
        };
        let Some(link) = cx
            .store
            .link_by_webcrm(opportunities::NAME, &opp_id.to_string())
            .await?
            .filter(|l| l.tombstoned_at.is_none())
        else {
            return Ok(Created::Skip(
                "the opportunity has no order yet; its lines are linked when it gets one".into(),
            ));
        };
        let Some(order) = read_order(cx, &link.chargebee_id).await? else {
            return Ok(Created::Skip("the order is gone".into()));
        };
        let currency = order
            .currency_code
            .clone()
            .unwrap_or_else(|| cx.config.default_currency.clone())
            .to_ascii_uppercase();
        let (_, charged) = Self::charged_lines(cx, opp_id, &currency).await?;
        if opportunities::opportunity_of_order(&order.id) == Some(link.webcrm_id.as_str()) {
            if let Some(l) = match_position(&order, &charged, webcrm_id(&source.id)?) {
                return Ok(Created::Record(order_line_observed(&order, &l)));
            }
        }
        let subject = format!("{}|{}|line", source.id, order.id);
        cx.store
            .open_pending_action(
                &NewPendingAction {
                    pairing: NAME.to_owned(),
                    kind: "line_added".into(),
                    subject,
                    webcrm_id: Some(source.id.clone()),
                    chargebee_id: Some(order.id.clone()),
                    message: format!(
                        "quotation line {} was added to opportunity {opp_id} after its order {} \
                         was invoiced; Chargebee cannot add lines to an issued invoice: invoice \
                         it separately or remove it",
                        source.id, order.id
                    ),
                    details: json!({ "line": source.fields }),
                },
                crate::store::now_ms(),
            )
            .await?;
        Ok(Created::Skip(
            "added after the order was invoiced (reported)".into(),
        ))
    }
}

pub fn order_line_observed(order: &Order, line: &OrderLineItem) -> Observed {
    Observed {
        id: line_key(&order.id, &line.id),
        fields: chargebee_fields(order, line),
        changed_at: super::super::values::chargebee_ms(order.updated_at, order.resource_version),
        version: order.resource_version.map(|v| v.to_string()),
        raw: raw(line),
    }
}

/// The webCRM update DTO of a line as read (the read DTO has read-only columns).
fn update_dto(current: &Value) -> Result<QuotationLineUpdate, SyncError> {
    let names: Vec<&str> = QuotationLineUpdate::FIELDS.iter().map(|f| f.name).collect();
    let body: serde_json::Map<String, Value> = current
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(from_raw(&Value::Object(body), "quotation line")?)
}

#[async_trait]
impl Pairing for QuotationlinesOrders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn expand(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        _hint: &Value,
    ) -> Result<Expansion, SyncError> {
        // An order event names the order: sync each of its lines.
        if side == Side::Chargebee && split_key(id).is_none() {
            let lines = read_order(cx, id)
                .await?
                .map(|o| {
                    o.order_line_items
                        .iter()
                        .map(|l| (Side::Chargebee, line_key(&o.id, &l.id)))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Expansion::Records(lines));
        }
        Ok(Expansion::Itself)
    }

    /// Lines on the webCRM side, each with its opportunity's currency (looked up once per
    /// opportunity); every line of every order on the Chargebee side.
    async fn list(&self, cx: &SyncContext, side: Side) -> Result<Option<Vec<Observed>>, SyncError> {
        Ok(Some(match side {
            Side::Webcrm => {
                let lines: Vec<QuotationLine> = cx.webcrm.quotation_lines().try_collect().await?;
                let mut currencies: std::collections::HashMap<Option<i32>, String> =
                    std::collections::HashMap::new();
                let mut out = Vec::with_capacity(lines.len());
                for line in &lines {
                    let Some(id) = line.id else { continue };
                    let currency = match currencies.get(&line.opportunity_id) {
                        Some(c) => c.clone(),
                        None => {
                            let c = Self::currency_of_line(cx, line).await?;
                            currencies.insert(line.opportunity_id, c.clone());
                            c
                        }
                    };
                    out.push(Observed {
                        id: id.to_string(),
                        fields: webcrm_fields(line, &currency)?,
                        changed_at: webcrm_ms(line.updated_at),
                        version: line.updated_at.map(|t| t.to_rfc3339()),
                        raw: raw(line),
                    });
                }
                out
            }
            Side::Chargebee => {
                let orders: Vec<Order> = cx
                    .chargebee
                    .list_all_orders(ListQuery::new().limit(100))
                    .try_collect()
                    .await?;
                orders
                    .iter()
                    .filter(|o| !o.deleted)
                    .flat_map(|o| {
                        o.order_line_items
                            .iter()
                            .map(move |l| order_line_observed(o, l))
                    })
                    .collect()
            }
        }))
    }

    /// A line made from an order line keeps `{order}/{line}` in its marker field. Lines made
    /// the other way round are matched by position within their linked order when their
    /// order line's job runs (its create path), so they need no key here.
    fn cross_id(&self, cx: &SyncContext, side: Side, record: &Observed) -> Option<String> {
        match side {
            Side::Webcrm => {
                let line: QuotationLine = serde_json::from_value(record.raw.clone()).ok()?;
                marker_of(&line, &marker_field(cx)).filter(|m| split_key(m).is_some())
            }
            Side::Chargebee => None,
        }
    }

    /// An order line that is gone removes its quotation line; order lines themselves cannot
    /// be deleted through Chargebee's API.
    async fn propagate_delete(
        &self,
        cx: &SyncContext,
        gone: Side,
        counterpart_id: &str,
    ) -> Result<Option<&'static str>, SyncError> {
        match gone {
            Side::Chargebee => match cx
                .webcrm
                .delete_quotation_line(webcrm_id(counterpart_id)?)
                .await
            {
                Ok(()) | Err(crate::clients::outbound::ApiError::NotFound { .. }) => {
                    Ok(Some("deleted the webCRM quotation line"))
                }
                Err(e) => Err(e.into()),
            },
            Side::Webcrm => Ok(None),
        }
    }

    async fn read(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        _hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        match side {
            Side::Webcrm => Self::read_line(cx, id).await,
            Side::Chargebee => Self::read_order_line(cx, id).await,
        }
    }

    async fn write(
        &self,
        cx: &SyncContext,
        side: Side,
        current: &Observed,
        changes: &Fields,
    ) -> Result<Option<String>, SyncError> {
        match side {
            Side::Webcrm => {
                let mut line = update_dto(&current.raw)?;
                apply_to_line(&mut line, changes)?;
                cx.webcrm
                    .update_quotation_line(webcrm_id(&current.id)?, &line)
                    .await?;
            }
            Side::Chargebee => {
                let Some((order_id, line_id)) = split_key(&current.id) else {
                    return Err(SyncError::Invalid(format!(
                        "{:?} is not an order line id",
                        current.id
                    )));
                };
                let mut update = OrderLineItemUpdate {
                    id: line_id.to_owned(),
                    ..OrderLineItemUpdate::default()
                };
                if changes.contains_key("sku") {
                    update.sku = Some(get_str(changes, "sku").unwrap_or_default().to_owned());
                }
                if let Some(status) = get_str(changes, "status") {
                    if LINE_STATUSES.contains(&status) {
                        update.status = Some(status.to_owned());
                    } else {
                        tracing::warn!(
                            status,
                            line = current.id,
                            "not a Chargebee order line status; not written"
                        );
                    }
                }
                if update.sku.is_some() || update.status.is_some() {
                    let order = OrderUpdate {
                        order_line_items: vec![update],
                        ..OrderUpdate::default()
                    };
                    cx.chargebee.update_order(order_id, &order, None).await?;
                }
            }
        }
        // Lines are linked under their order's id and version; a line write leaves the
        // version unknown, so its echo is re-read.
        Ok(None)
    }

    async fn create(
        &self,
        cx: &SyncContext,
        from: Side,
        source: &Observed,
        _hint: &Value,
    ) -> Result<Created, SyncError> {
        match from {
            Side::Webcrm => Self::link_order_line(cx, source).await,
            Side::Chargebee => Self::create_webcrm_line(cx, source).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::chargebee::LineItemTax;

    fn order() -> Order {
        Order {
            id: "wc-opp-5".into(),
            currency_code: Some("KWD".into()),
            order_line_items: vec![
                OrderLineItem {
                    id: "a".into(),
                    description: Some("Widget".into()),
                    unit_price: Some(1234),
                    fulfillment_quantity: Some(2),
                    amount: Some(2468),
                    discount_amount: Some(247),
                    sku: Some("W-1".into()),
                    status: Some("queued".into()),
                    ..OrderLineItem::default()
                },
                OrderLineItem {
                    id: "b".into(),
                    description: Some("Support".into()),
                    unit_price: Some(500),
                    ..OrderLineItem::default()
                },
            ],
            line_item_taxes: vec![LineItemTax {
                line_item_id: Some("a".into()),
                tax_rate: Some(25.0),
                ..LineItemTax::default()
            }],
            ..Order::default()
        }
    }

    #[test]
    fn keys_split_into_order_and_line() {
        assert_eq!(line_key("o", "l"), "o/l");
        assert_eq!(split_key("o/l"), Some(("o", "l")));
        assert_eq!(split_key("o"), None);
        assert_eq!(split_key("/l"), None);
    }

    #[test]
    fn order_line_maps_every_property() {
        let o = order();
        let f = chargebee_fields(&o, &o.order_line_items[0]);
        assert_eq!(f["memo"], json!("Widget"));
        assert_eq!(f["price"], json!("1.234"));
        assert_eq!(f["quantity"], json!(2));
        assert_eq!(f["amount"], json!("2.221"));
        // 0.247 of 2.468 is 10.008 %
        assert_eq!(f["discount"], json!("10.0081"));
        assert_eq!(f["vat"], json!("25"), "a rate, not the tax amount");
        assert_eq!(f["sku"], json!("W-1"));
        assert_eq!(f["status"], json!("queued"));
        let line = line_for(&f, 9, 1, DEFAULT_MARKER_FIELD, "wc-opp-5/a").unwrap();
        assert_eq!(line.price, Some(1.234));
        assert_eq!(line.quantity, Some(2.0));
        assert_eq!(line.vat_percentage, Some(25.0));
        assert_eq!(line.data1.as_deref(), Some("W-1"));
        assert_eq!(line.data9.as_deref(), Some("wc-opp-5/a"));
        assert_eq!(line.opportunity_id, Some(9));
    }

    #[test]
    fn a_line_and_its_charge_agree_on_the_net_amount() {
        let w = QuotationLine {
            id: Some(1),
            memo: Some("Widget".into()),
            price: Some(1.234),
            quantity: Some(2.0),
            discount: Some(10.0),
            ..QuotationLine::default()
        };
        let wf = webcrm_fields(&w, "KWD").unwrap();
        // 2.468 less 10 % = 2.2212 -> 2.221
        assert_eq!(wf["amount"], json!("2.221"));
        // Invoiced as one ad-hoc charge of the net amount.
        let charged = Order {
            currency_code: Some("KWD".into()),
            ..Order::default()
        };
        let l = OrderLineItem {
            id: "x".into(),
            description: Some("Widget".into()),
            unit_price: Some(2221),
            fulfillment_quantity: Some(1),
            amount: Some(2221),
            ..OrderLineItem::default()
        };
        let cf = chargebee_fields(&charged, &l);
        for k in ["memo", "amount", "vat", "sku", "status"] {
            assert_eq!(wf[k], cf[k], "{k}");
        }
    }

    #[test]
    fn lines_match_by_position_and_description() {
        let o = order();
        let charged = vec![(11, "Widget".to_string()), (12, "Support".to_string())];
        assert_eq!(
            match_position(&o, &charged, 12).map(|l| l.id),
            Some("b".into())
        );
        assert_eq!(match_order_line(&o, &charged, "a"), Some(11));
        let renamed = vec![(11, "Other".to_string())];
        assert_eq!(match_position(&o, &renamed, 11), None);
        assert_eq!(match_order_line(&o, &renamed, "a"), None);
    }

    #[test]
    fn only_what_chargebee_may_change_is_applied() {
        let mut l = QuotationLineUpdate {
            price: Some(3.0),
            ..QuotationLineUpdate::default()
        };
        let changes: Fields =
            serde_json::from_value(json!({"sku": "X", "status": null, "vat": "12.5"})).unwrap();
        apply_to_line(&mut l, &changes).unwrap();
        assert_eq!(l.data1.as_deref(), Some("X"));
        assert_eq!(l.stock_status, None);
        assert_eq!(l.vat_percentage, Some(12.5));
        assert_eq!(l.price, Some(3.0));
        assert_eq!(percent_value(Some(0.0)), Value::Null);
    }
}
