//! `opportunities_orders`: webCRM Opportunities <-> Chargebee Orders (MAPPINGS.md §4).
//!
//! A Chargebee order always belongs to an invoice and its amounts are read-only, so the two
//! directions differ. Chargebee -> webCRM: every order creates or updates an opportunity.
//! webCRM -> Chargebee: only a *won* opportunity gets an order, by first invoicing its
//! quotation lines as ad-hoc charges (`auto_collection=off`, nobody is charged by the sync)
//! and then creating the order `wc-opp-{OpportunityId}` for that invoice. Later edits of the
//! value or currency in webCRM cannot reach the issued invoice: they become pending actions.
//! The note travels both ways.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::clients::chargebee::{
    is_duplicate, InvoiceCharge, InvoiceForChargesCreate, ListQuery, Order, OrderCreate,
    OrderUpdate,
};
use crate::clients::webcrm::{Opportunity, QuotationLine, Table};
use crate::intake::Side;

use super::super::merge::{Fields, Flow, Observed, Rule};
use super::super::normalize::money;
use super::super::pairing::{Created, Dependency, Pairing, SyncContext, SyncError};
use super::super::values::{
    chargebee_ms, found, from_raw, get_str, raw, text_value, webcrm_id, webcrm_ms,
};
use super::{check_limits, own_version, Limit};

pub const NAME: &str = "opportunities_orders";

const RULES: &[Rule] = &[
    Rule::both("note"),
    // The invoice is issued: a webCRM edit of the amount cannot be applied, only reported.
    Rule::with("value", Flow::Report, Flow::Write),
    Rule::with("currency", Flow::Report, Flow::Write),
    Rule::to_webcrm("order_date"),
    Rule::to_webcrm("erp_id"),
    Rule::to_chargebee("reference_id"),
];

const LIMITS: &[Limit] = &[("note", 600), ("reference_id", 50)];

/// Chargebee's limit on an ad-hoc charge's description.
const CHARGE_DESCRIPTION_MAX: usize = 250;

/// The Chargebee id of the order made for an opportunity.
pub fn order_id_for(opportunity_id: &str) -> String {
    format!("wc-opp-{opportunity_id}")
}

/// The opportunity an order was made for by this service, from the order id.
pub fn opportunity_of_order(order_id: &str) -> Option<&str> {
    order_id.strip_prefix("wc-opp-")
}

/// Whether an opportunity counts as won (MAPPINGS §4): `OpportunityWinYesNo`,
/// `OpportunityPercent` 100, or the configured extra level.
pub fn is_won(o: &Opportunity, won_level: Option<i32>) -> bool {
    o.win_yes_no == Some(true)
        || o.percent == Some(100)
        || won_level.is_some_and(|l| o.level == Some(l))
}

fn money_error(e: money::MoneyError) -> SyncError {
    SyncError::Invalid(e.to_string())
}

/// The ISO currency of an opportunity: its currency name through the configured table
/// (`resolve`), `default` when blank. An unmapped name stops the record.
pub fn opportunity_currency(
    o: &Opportunity,
    resolve: impl Fn(&str) -> Result<String, SyncError>,
    default: &str,
) -> Result<String, SyncError> {
    match o
        .currency_name
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(name) => resolve(name),
        None => Ok(default.to_owned()),
    }
}

fn currency_of(cx: &SyncContext, o: &Opportunity) -> Result<String, SyncError> {
    opportunity_currency(
        o,
        |name| {
            cx.config
                .currency_map
                .resolve(name)
                .map_err(|e| SyncError::Invalid(format!("OpportunityCurrencyName: {e}")))
        },
        &cx.config.default_currency,
    )
}

/// A webCRM date as the canonical `YYYY-MM-DD`; webCRM's year-1 "unset" is unset.
pub fn date_value(at: Option<DateTime<Utc>>) -> Value {
    at.filter(|t| t.format("%Y").to_string() != "0001")
        .map(|t| json!(t.format("%Y-%m-%d").to_string()))
        .unwrap_or(Value::Null)
}

/// A Chargebee timestamp (unix seconds) as the canonical `YYYY-MM-DD` (UTC).
pub fn unix_date_value(at: Option<i64>) -> Value {
    at.and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map(|t| json!(t.format("%Y-%m-%d").to_string()))
        .unwrap_or(Value::Null)
}

/// The canonical date back as a webCRM instant (midnight UTC).
pub fn date_to_webcrm(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The opportunity as canonical fields.
pub fn webcrm_fields(o: &Opportunity, currency: &str) -> Result<Fields, SyncError> {
    let value = match o.order_value {
        Some(v) => json!(money::canonical(
            money::from_f64(v).map_err(money_error)?,
            currency
        )),
        None => Value::Null,
    };
    let mut f = Fields::new();
    f.insert("note".into(), text_value(o.comment.as_deref()));
    f.insert("value".into(), value);
    f.insert("currency".into(), json!(currency));
    f.insert("order_date".into(), date_value(o.order_date));
    f.insert("erp_id".into(), text_value(o.erp_id.as_deref()));
    f.insert(
        "reference_id".into(),
        o.id.map(|i| json!(i.to_string())).unwrap_or(Value::Null),
    );
    Ok(f)
}

/// The order as canonical fields.
pub fn chargebee_fields(o: &Order) -> Fields {
    let currency = o
        .currency_code
        .clone()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut f = Fields::new();
    f.insert("note".into(), text_value(o.note.as_deref()));
    f.insert(
        "value".into(),
        o.total
            .map(|t| {
                json!(money::canonical(
                    money::minor_to_major(t, &currency),
                    &currency
                ))
            })
            .unwrap_or(Value::Null),
    );
    f.insert(
        "currency".into(),
        if currency.is_empty() {
            Value::Null
        } else {
            json!(currency)
        },
    );
    f.insert("order_date".into(), unix_date_value(o.order_date));
    f.insert("erp_id".into(), json!(o.id));
    f.insert("reference_id".into(), text_value(o.reference_id.as_deref()));
    f
}

/// Puts the changes Chargebee may make onto the opportunity.
pub fn apply_to_opportunity(o: &mut Opportunity, changes: &Fields) -> Result<(), SyncError> {
    let text = |name: &str| get_str(changes, name).map(str::to_owned);
    if changes.contains_key("note") {
        o.comment = text("note");
    }
    if let Some(v) = changes.get("value") {
        o.order_value = match v.as_str() {
            Some(s) => Some(money::to_f64(s.parse::<Decimal>().map_err(|e| {
                SyncError::Invalid(format!("order value {s:?} is not a decimal: {e}"))
            })?)),
            None => None,
        };
    }
    if changes.contains_key("currency") {
        o.currency_name = text("currency");
    }
    if let Some(v) = changes.get("order_date") {
        o.order_date = date_to_webcrm(v);
    }
    if changes.contains_key("erp_id") {
        o.erp_id = text("erp_id");
    }
    Ok(())
}

/// The order update that applies `changes` (only what flows to Chargebee: note, reference).
pub fn order_update(changes: &Fields) -> Option<OrderUpdate> {
    let mut update = OrderUpdate::default();
    for (name, param) in [("note", "note"), ("reference_id", "reference_id")] {
        match changes.get(name) {
            Some(Value::String(s)) => {
                let s = Some(s.clone());
                if name == "note" {
                    update.note = s;
                } else {
                    update.reference_id = s;
                }
            }
            Some(_) => update.clear.push(param.to_owned()),
            None => {}
        }
    }
    (update != OrderUpdate::default()).then_some(update)
}

/// The description of the charge a quotation line becomes (also how a line is matched to
/// its order line again: position and description).
pub fn charge_description(line: &QuotationLine) -> String {
    line.memo
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Quotation line {}", line.id.unwrap_or_default()))
}

/// A line's net amount in major units: price x quantity less its discount percent.
pub fn line_net(line: &QuotationLine) -> Result<Decimal, SyncError> {
    let d = |v: Option<f64>| money::from_f64(v.unwrap_or(0.0)).map_err(money_error);
    let price = d(line.price)?;
    let quantity = d(line.quantity)?;
    let discount = d(line.discount)?;
    let gross = price * quantity;
    Ok(gross - gross * discount / Decimal::from(100))
}

/// The lines in the order they are invoiced (sort order, then id).
pub fn ordered(mut lines: Vec<QuotationLine>) -> Vec<QuotationLine> {
    lines.sort_by_key(|l| (l.sort_order.unwrap_or(0), l.id.unwrap_or(0)));
    lines
}

/// The invoice charges for an opportunity: one per quotation line with a positive amount
/// (in order), else one charge of the order value. Each charge keeps its line id.
pub fn charges(
    o: &Opportunity,
    lines: &[QuotationLine],
    currency: &str,
) -> Result<Vec<(Option<i32>, InvoiceCharge)>, SyncError> {
    let mut out = Vec::new();
    for line in lines {
        let amount = money::major_to_minor(line_net(line)?, currency).map_err(money_error)?;
        if amount < 1 {
            // Chargebee takes no charge below one minor unit (a free or credit line).
            continue;
        }
        let description = charge_description(line);
        if description.chars().count() > CHARGE_DESCRIPTION_MAX {
            return Err(SyncError::Invalid(format!(
                "quotation line {}: memo longer than {CHARGE_DESCRIPTION_MAX} characters cannot be a Chargebee charge description",
                line.id.unwrap_or_default()
            )));
        }
        out.push((
            line.id,
            InvoiceCharge {
                amount,
                description: Some(description),
                ..InvoiceCharge::default()
            },
        ));
    }
    if out.is_empty() {
        let value = money::from_f64(o.order_value.unwrap_or(0.0)).map_err(money_error)?;
        let amount = money::major_to_minor(value, currency).map_err(money_error)?;
        if amount < 1 {
            return Err(SyncError::Invalid(format!(
                "opportunity {} is won but has nothing to invoice (no quotation line and no order value)",
                o.id.unwrap_or_default()
            )));
        }
        let description = o
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.chars().take(CHARGE_DESCRIPTION_MAX).collect::<String>())
            .unwrap_or_else(|| format!("Opportunity {}", o.id.unwrap_or_default()));
        out.push((
            None,
            InvoiceCharge {
                amount,
                description: Some(description),
                ..InvoiceCharge::default()
            },
        ));
    }
    Ok(out)
}

/// The invoice for a won opportunity: never collected by the sync (`auto_collection=off`),
/// with the opportunity in `po_number` so people can trace it.
pub fn invoice_params(
    opp_id: &str,
    customer_id: &str,
    currency: &str,
    charges: Vec<(Option<i32>, InvoiceCharge)>,
) -> InvoiceForChargesCreate {
    InvoiceForChargesCreate {
        customer_id: Some(customer_id.to_owned()),
        currency_code: Some(currency.to_owned()),
        auto_collection: Some("off".into()),
        po_number: Some(format!("webcrm-opportunity-{opp_id}")),
        charges: charges.into_iter().map(|(_, c)| c).collect(),
        ..InvoiceForChargesCreate::default()
    }
}

/// The description of an opportunity made from an order: `Order {number}` and the first
/// line's description.
pub fn description_for(o: &Order) -> String {
    let number = o.document_number.as_deref().unwrap_or(&o.id);
    match o
        .order_line_items
        .first()
        .and_then(|l| l.description.as_deref())
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        Some(first) => format!("Order {number} {first}"),
        None => format!("Order {number}"),
    }
}

/// The opportunity a new order becomes (won, since the order exists).
pub fn opportunity_for(
    fields: &Fields,
    order: &Order,
    person_id: i32,
    organisation_id: Option<i32>,
    won_level: Option<i32>,
) -> Result<Opportunity, SyncError> {
    let mut o = Opportunity {
        description: Some(description_for(order)),
        person_id: Some(person_id),
        organisation_id,
        win_yes_no: Some(true),
        percent: Some(100),
        level: won_level,
        ..Opportunity::default()
    };
    let values: Fields = fields
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && ["note", "value", "currency", "order_date", "erp_id"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    apply_to_opportunity(&mut o, &values)?;
    Ok(o)
}

pub struct OpportunitiesOrders;

impl OpportunitiesOrders {
    fn won_level(cx: &SyncContext) -> Option<i32> {
        cx.option(NAME, "won_level")
            .and_then(|l| l.trim().parse().ok())
    }

    fn create_invoices(cx: &SyncContext) -> bool {
        cx.option(NAME, "create_invoices")
            .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
    }

    async fn read_opportunity(cx: &SyncContext, id: &str) -> Result<Option<Observed>, SyncError> {
        match found(cx.webcrm.get_opportunity(webcrm_id(id)?).await)? {
            Some(o) => Ok(Some(opportunity_observed(cx, id, &o)?)),
            None => Ok(None),
        }
    }

    /// The customer of a webCRM person, through its `persons_customers` link; waits for it.
    async fn customer_of(cx: &SyncContext, person_id: i32) -> Result<String, SyncError> {
        let id = person_id.to_string();
        match cx
            .store
            .link_by_webcrm(super::persons_customers::NAME, &id)
            .await?
        {
            Some(link) if link.tombstoned_at.is_none() => Ok(link.chargebee_id),
            _ => Err(SyncError::wait(
                format!("the customer of webCRM person {id}"),
                vec![Dependency {
                    pairing: super::persons_customers::NAME,
                    side: Side::Webcrm,
                    id,
                }],
            )),
        }
    }

    /// An order whose `reference_id` is the opportunity (the `create_invoices=false` match).
    async fn order_by_reference(
        cx: &SyncContext,
        opp_id: &str,
    ) -> Result<Option<Order>, SyncError> {
        let orders: Vec<Order> = cx
            .chargebee
            .list_all_orders(ListQuery::new().limit(100))
            .try_collect()
            .await?;
        let mut matches = orders
            .into_iter()
            .filter(|o| !o.deleted && o.reference_id.as_deref().map(str::trim) == Some(opp_id));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(Some(one)),
            (Some(a), Some(b)) => Err(SyncError::Invalid(format!(
                "opportunity {opp_id} matches more than one order ({}, {}): link it by hand",
                a.id, b.id
            ))),
            _ => Ok(None),
        }
    }

    async fn create_order(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let opp: Opportunity = from_raw(&source.raw, "opportunity")?;
        let opp_id = source.id.as_str();
        // Already made (or matched) earlier: its id is on the opportunity.
        if let Some(erp) = get_str(&source.fields, "erp_id") {
            if let Some(order) = found(cx.chargebee.retrieve_order(erp).await)? {
                if !order.deleted {
                    return Ok(Created::Record(order_observed(&order)));
                }
            }
        }
        if !is_won(&opp, Self::won_level(cx)) {
            return Ok(Created::Skip("the opportunity is not won".into()));
        }
        let order_id = order_id_for(opp_id);
        if let Some(order) = found(cx.chargebee.retrieve_order(&order_id).await)? {
            return Self::linked(cx, source, order).await;
        }
        if !Self::create_invoices(cx) {
            return match Self::order_by_reference(cx, opp_id).await? {
                Some(order) => Self::linked(cx, source, order).await,
                None => Ok(Created::Skip(
                    "create_invoices=false and no order has this opportunity as reference_id"
                        .into(),
                )),
            };
        }
        let Some(person_id) = opp.person_id.filter(|p| *p > 0) else {
            return Ok(Created::Skip(
                "the won opportunity has no person to invoice".into(),
            ));
        };
        let customer_id = Self::customer_of(cx, person_id).await?;
        check_limits(&source.fields, LIMITS)?;
        let currency = get_str(&source.fields, "currency")
            .unwrap_or(&cx.config.default_currency)
            .to_owned();
        // An invoice made by an interrupted earlier attempt is reused, never made twice.
        let invoice_id = match cx.store.pending_create(NAME, "chargebee", opp_id).await? {
            Some(id) if found(cx.chargebee.retrieve_invoice(&id).await)?.is_some() => id,
            _ => {
                let lines: Vec<QuotationLine> = cx
                    .webcrm
                    .opportunity_quotation_lines(webcrm_id(opp_id)?)
                    .try_collect()
                    .await?;
                let charges = charges(&opp, &ordered(lines), &currency)?;
                let params = invoice_params(opp_id, &customer_id, &currency, charges);
                let invoice = cx
                    .chargebee
                    .create_invoice_for_charges(&params, &format!("wcs-opp-{opp_id}-invoice"))
                    .await?;
                cx.store
                    .record_pending_create(
                        NAME,
                        "chargebee",
                        opp_id,
                        &invoice.id,
                        crate::store::now_ms(),
                    )
                    .await?;
                invoice.id
            }
        };
        let params = OrderCreate {
            id: Some(order_id.clone()),
            invoice_id,
            reference_id: Some(opp_id.to_owned()),
            note: get_str(&source.fields, "note").map(str::to_owned),
            ..OrderCreate::default()
        };
        let order = match cx
            .chargebee
            .create_order(&params, &format!("wcs-opp-{opp_id}-order"))
            .await
        {
            Ok(o) => o,
            Err(e) if is_duplicate(&e) => cx.chargebee.retrieve_order(&order_id).await?,
            Err(e) => return Err(e.into()),
        };
        cx.store
            .clear_pending_create(NAME, "chargebee", opp_id)
            .await?;
        Self::linked(cx, source, order).await
    }

    /// Links to `order`, first writing the order's values webCRM takes (the cross id, the
    /// invoiced value and currency, the order date) so the pair starts in agreement.
    async fn linked(
        cx: &SyncContext,
        source: &Observed,
        order: Order,
    ) -> Result<Created, SyncError> {
        let counterpart = order_observed(&order);
        if Self::take_order_values(cx, source, &counterpart).await? {
            if let Some(source) = Self::read_opportunity(cx, &source.id).await? {
                return Ok(Created::Both {
                    source,
                    counterpart,
                });
            }
        }
        Ok(Created::Record(counterpart))
    }

    /// Writes onto the opportunity what it takes from the order and does not yet hold.
    async fn take_order_values(
        cx: &SyncContext,
        source: &Observed,
        observed: &Observed,
    ) -> Result<bool, SyncError> {
        let changes: Fields = RULES
            .iter()
            .filter(|r| r.to_webcrm == Flow::Write && r.field != "note")
            .filter_map(|r| {
                let v = observed.fields.get(r.field)?;
                (source.fields.get(r.field) != Some(v)).then(|| (r.field.to_owned(), v.clone()))
            })
            .collect();
        if !changes.is_empty() {
            let mut opp: Opportunity = from_raw(&source.raw, "opportunity")?;
            apply_to_opportunity(&mut opp, &changes)?;
            cx.webcrm
                .update_opportunity(webcrm_id(&source.id)?, &opp)
                .await?;
        }
        Ok(!changes.is_empty())
    }

    /// The opportunity of an order: by `OpportunityErpId` (ours, after an interrupted
    /// create, or someone's earlier link), else by `reference_id` when that opportunity is
    /// free.
    async fn existing_opportunity(
        cx: &SyncContext,
        order: &Order,
    ) -> Result<Option<Observed>, SyncError> {
        let by_erp = cx
            .webcrm
            .ids_where_text_is(Table::Opportunity, "OpportunityErpId", &order.id)
            .await?
            .into_iter()
            .next();
        if let Some(id) = by_erp {
            return Self::read_opportunity(cx, &id.to_string()).await;
        }
        let reference = order
            .reference_id
            .as_deref()
            .map(str::trim)
            .filter(|r| r.parse::<i32>().is_ok());
        if let Some(reference) = reference {
            if let Some(o) = Self::read_opportunity(cx, reference).await? {
                let erp = get_str(&o.fields, "erp_id");
                if erp.is_none() || erp == Some(order.id.as_str()) {
                    return Ok(Some(o));
                }
            }
        }
        Ok(None)
    }

    async fn create_opportunity(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let order: Order = from_raw(&source.raw, "order")?;
        if let Some(existing) = Self::existing_opportunity(cx, &order).await? {
            // Matched, not made: it may lack the cross id and the invoiced values.
            if Self::take_order_values(cx, &existing, source).await? {
                if let Some(updated) = Self::read_opportunity(cx, &existing.id).await? {
                    return Ok(Created::Record(updated));
                }
            }
            return Ok(Created::Record(existing));
        }
        let Some(customer_id) = order.customer_id.clone() else {
            return Ok(Created::Skip("the order has no customer".into()));
        };
        let person_id = match cx
            .store
            .link_by_chargebee(super::persons_customers::NAME, &customer_id)
            .await?
        {
            Some(link) if link.tombstoned_at.is_none() => webcrm_id(&link.webcrm_id)?,
            _ => {
                return Err(SyncError::wait(
                    format!("the webCRM person of customer {customer_id}"),
                    vec![Dependency {
                        pairing: super::persons_customers::NAME,
                        side: Side::Chargebee,
                        id: customer_id,
                    }],
                ))
            }
        };
        let organisation_id = found(cx.webcrm.get_person(person_id).await)?
            .and_then(|p| p.organisation_id)
            .filter(|o| *o > 0);
        // The order id in `OpportunityErpId` is the marker a retry finds above.
        cx.store
            .record_pending_create(NAME, "webcrm", &order.id, &order.id, crate::store::now_ms())
            .await?;
        let opp = opportunity_for(
            &source.fields,
            &order,
            person_id,
            organisation_id,
            Self::won_level(cx),
        )?;
        let id = cx.webcrm.create_opportunity(&opp).await?;
        match Self::read_opportunity(cx, &id.to_string()).await? {
            Some(o) => Ok(Created::Record(o)),
            None => Err(SyncError::Api(
                crate::clients::outbound::ApiError::Transient(format!(
                    "webCRM opportunity {id} was created but cannot be read yet"
                )),
            )),
        }
    }
}

fn opportunity_observed(
    cx: &SyncContext,
    id: &str,
    o: &Opportunity,
) -> Result<Observed, SyncError> {
    let currency = currency_of(cx, o)?;
    Ok(Observed {
        id: id.to_owned(),
        fields: webcrm_fields(o, &currency)?,
        changed_at: webcrm_ms(o.updated_at),
        version: o.updated_at.map(|t| t.to_rfc3339()),
        raw: raw(o),
    })
}

pub fn order_observed(order: &Order) -> Observed {
    Observed {
        id: order.id.clone(),
        fields: chargebee_fields(order),
        changed_at: chargebee_ms(order.updated_at, order.resource_version),
        version: order.resource_version.map(|v| v.to_string()),
        raw: raw(order),
    }
}

/// Reads an order; a deleted one is gone.
pub async fn read_order(cx: &SyncContext, id: &str) -> Result<Option<Order>, SyncError> {
    Ok(found(cx.chargebee.retrieve_order(id).await)?.filter(|o| !o.deleted))
}

#[async_trait]
impl Pairing for OpportunitiesOrders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn list(&self, cx: &SyncContext, side: Side) -> Result<Option<Vec<Observed>>, SyncError> {
        Ok(Some(match side {
            Side::Webcrm => {
                let all: Vec<Opportunity> = cx.webcrm.opportunities().try_collect().await?;
                let mut out = Vec::with_capacity(all.len());
                for o in &all {
                    let Some(id) = o.id else { continue };
                    // One unmappable currency must not hide every other opportunity.
                    match opportunity_observed(cx, &id.to_string(), o) {
                        Ok(observed) => out.push(observed),
                        Err(e) => tracing::warn!(opportunity = id, error = %e, "not listed"),
                    }
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
                    .map(order_observed)
                    .collect()
            }
        }))
    }

    /// An order names its opportunity in `reference_id`; an opportunity its order in
    /// `OpportunityErpId`.
    fn cross_id(&self, _cx: &SyncContext, side: Side, record: &Observed) -> Option<String> {
        match side {
            Side::Chargebee => get_str(&record.fields, "reference_id")
                .filter(|r| r.parse::<i32>().is_ok())
                .map(str::to_owned),
            Side::Webcrm => get_str(&record.fields, "erp_id").map(str::to_owned),
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
            Side::Webcrm => Self::read_opportunity(cx, id).await,
            Side::Chargebee => Ok(read_order(cx, id).await?.as_ref().map(order_observed)),
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
                let mut opp: Opportunity = from_raw(&current.raw, "opportunity")?;
                apply_to_opportunity(&mut opp, changes)?;
                cx.webcrm
                    .update_opportunity(webcrm_id(&current.id)?, &opp)
                    .await?;
                Ok(None)
            }
            Side::Chargebee => {
                check_limits(changes, LIMITS)?;
                match order_update(changes) {
                    Some(update) => {
                        let order = cx
                            .chargebee
                            .update_order(&current.id, &update, None)
                            .await?;
                        let mut expected = current.fields.clone();
                        expected.extend(changes.clone());
                        Ok(own_version(&order_observed(&order), &expected))
                    }
                    None => Ok(current.version.clone()),
                }
            }
        }
    }

    async fn create(
        &self,
        cx: &SyncContext,
        from: Side,
        source: &Observed,
        _hint: &Value,
    ) -> Result<Created, SyncError> {
        match from {
            Side::Webcrm => Self::create_order(cx, source).await,
            Side::Chargebee => Self::create_opportunity(cx, source).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::chargebee::OrderLineItem;

    fn line(id: i32, memo: &str, price: f64, qty: f64, discount: f64, sort: i32) -> QuotationLine {
        QuotationLine {
            id: Some(id),
            memo: Some(memo.into()),
            price: Some(price),
            quantity: Some(qty),
            discount: Some(discount),
            sort_order: Some(sort),
            ..QuotationLine::default()
        }
    }

    fn opp() -> Opportunity {
        Opportunity {
            id: Some(5),
            comment: Some(" Ship fast ".into()),
            order_value: Some(199.95),
            currency_name: Some("DKK".into()),
            ..Opportunity::default()
        }
    }

    #[test]
    fn won_is_the_flag_the_percent_or_the_configured_level() {
        let mut o = opp();
        assert!(!is_won(&o, None));
        o.percent = Some(100);
        assert!(is_won(&o, None));
        o.percent = Some(90);
        o.level = Some(4);
        assert!(!is_won(&o, None));
        assert!(is_won(&o, Some(4)));
        o.win_yes_no = Some(true);
        assert!(is_won(&o, None));
    }

    #[test]
    fn opportunity_and_order_map_to_the_same_fields() {
        let f = webcrm_fields(&opp(), "DKK").unwrap();
        assert_eq!(f["note"], json!("Ship fast"));
        assert_eq!(f["value"], json!("199.95"));
        assert_eq!(f["currency"], json!("DKK"));
        assert_eq!(f["reference_id"], json!("5"));
        let order = Order {
            id: "wc-opp-5".into(),
            note: Some("Ship fast".into()),
            total: Some(19995),
            currency_code: Some("dkk".into()),
            reference_id: Some("5".into()),
            order_date: Some(1_700_000_000),
            ..Order::default()
        };
        let c = chargebee_fields(&order);
        for k in ["note", "value", "currency", "reference_id"] {
            assert_eq!(c[k], f[k], "{k}");
        }
        assert_eq!(c["erp_id"], json!("wc-opp-5"));
        assert_eq!(c["order_date"], json!("2023-11-14"));
    }

    #[test]
    fn money_keeps_each_currencys_exponent() {
        for (total, currency, major) in [
            (19995, "DKK", "199.95"),
            (500, "JPY", "500"),
            (1234, "KWD", "1.234"),
        ] {
            let order = Order {
                id: "o".into(),
                total: Some(total),
                currency_code: Some(currency.into()),
                ..Order::default()
            };
            assert_eq!(chargebee_fields(&order)["value"], json!(major));
            let mut o = Opportunity::default();
            apply_to_opportunity(&mut o, &chargebee_fields(&order)).unwrap();
            let back =
                money::major_to_minor(money::from_f64(o.order_value.unwrap()).unwrap(), currency);
            assert_eq!(back.unwrap(), total);
        }
    }

    #[test]
    fn each_positive_line_is_one_charge_in_order() {
        let lines = ordered(vec![
            line(2, "Support", 100.0, 1.0, 0.0, 2),
            line(1, "Widget", 19.99, 3.0, 10.0, 1),
            line(3, "Free", 0.0, 1.0, 0.0, 3),
        ]);
        let c = charges(&opp(), &lines, "DKK").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, Some(1));
        // 19.99 x 3 = 59.97, less 10 % = 53.973 -> 53.97
        assert_eq!(c[0].1.amount, 5397);
        assert_eq!(c[0].1.description.as_deref(), Some("Widget"));
        assert_eq!(c[1].1.amount, 10000);
    }

    #[test]
    fn without_lines_the_order_value_is_one_charge() {
        let c = charges(&opp(), &[], "DKK").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1.amount, 19995);
        let p = invoice_params("5", "wc-person-1", "DKK", c);
        assert_eq!(p.auto_collection.as_deref(), Some("off"));
        assert_eq!(p.po_number.as_deref(), Some("webcrm-opportunity-5"));
        assert_eq!(p.charges.len(), 1);
        let mut empty = opp();
        empty.order_value = None;
        assert!(matches!(
            charges(&empty, &[], "DKK"),
            Err(SyncError::Invalid(_))
        ));
    }

    #[test]
    fn an_order_becomes_a_won_opportunity() {
        let order = Order {
            id: "ord_1".into(),
            document_number: Some("12".into()),
            note: Some("n".into()),
            total: Some(500),
            currency_code: Some("JPY".into()),
            order_line_items: vec![OrderLineItem {
                id: "li".into(),
                description: Some("Gadget".into()),
                ..OrderLineItem::default()
            }],
            ..Order::default()
        };
        let o = opportunity_for(&chargebee_fields(&order), &order, 7, Some(3), None).unwrap();
        assert_eq!(o.description.as_deref(), Some("Order 12 Gadget"));
        assert_eq!(o.order_value, Some(500.0));
        assert_eq!(o.currency_name.as_deref(), Some("JPY"));
        assert_eq!(o.erp_id.as_deref(), Some("ord_1"));
        assert_eq!(o.comment.as_deref(), Some("n"));
        assert_eq!((o.person_id, o.organisation_id), (Some(7), Some(3)));
        assert!(is_won(&o, None));
    }

    #[test]
    fn only_note_and_reference_are_written_to_the_order() {
        let changes: Fields =
            serde_json::from_value(json!({"note": null, "reference_id": "5"})).unwrap();
        let u = order_update(&changes).unwrap();
        assert_eq!(u.reference_id.as_deref(), Some("5"));
        assert_eq!(u.clear, vec!["note".to_string()]);
        assert!(order_update(&Fields::new()).is_none());
    }
}
