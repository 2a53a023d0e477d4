//! The behaviour of each emulated operation.

use serde_json::{json, Map, Value};

use super::spec::{Kind, Operation};
use super::state::{list, random_id, Actor, DefaultSort, Params, SbError, SbResult, State};

/// What an operation needs besides its parameters.
pub struct Ctx<'a> {
    pub actor: Actor,
    pub currency: &'a str,
}

fn typed(op: &Operation, key: &str, value: &str) -> Value {
    match op.param(key).map(|p| &p.kind) {
        Some(Kind::Int | Kind::IntRange(..)) => {
            value.parse::<i64>().map_or(json!(value), |v| json!(v))
        }
        Some(Kind::Bool) => json!(value == "true"),
        Some(Kind::Json) => serde_json::from_str(value).unwrap_or(Value::Null),
        _ => json!(value),
    }
}

/// Copy the named top-level fields from the params into the record (typed), and remove the
/// ones sent blank.
fn set_fields(data: &mut Map<String, Value>, op: &Operation, params: &Params, fields: &[&str]) {
    for field in fields {
        if let Some(v) = params.str(field) {
            data.insert((*field).to_string(), typed(op, field, v));
        } else if params.is_blank(field) {
            data.remove(*field);
        }
    }
}

/// Merge `parent[...]` into the record's nested address object.
fn merge_address(data: &mut Map<String, Value>, op: &Operation, params: &Params, parent: &str) {
    let given = params.obj(parent);
    let prefix = format!("{parent}[");
    let blanks: Vec<&String> = params
        .blanks
        .iter()
        .filter(|b| b.starts_with(&prefix))
        .collect();
    if given.is_none() && blanks.is_empty() {
        return;
    }
    let mut address = data
        .get(parent)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(given) = given {
        for (k, v) in given {
            if let Some(s) = v.as_str() {
                address.insert(k.clone(), typed(op, &format!("{parent}[{k}]"), s));
            }
        }
    }
    for b in blanks {
        let field = b.trim_start_matches(&prefix).trim_end_matches(']');
        address.remove(field);
    }
    let has_content = address
        .keys()
        .any(|k| k != "object" && k != "validation_status");
    if has_content {
        address
            .entry("validation_status")
            .or_insert_with(|| json!("not_validated"));
        address.insert("object".into(), json!(parent));
        data.insert(parent.to_string(), Value::Object(address));
    } else {
        data.remove(parent);
    }
}

fn path_id(id: Option<&str>) -> SbResult<&str> {
    id.ok_or_else(|| SbError::not_found("Sorry, we couldn't find that resource"))
}

fn envelope(key: &str, data: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert(key.to_string(), Value::Object(data));
    Value::Object(out)
}

fn list_envelope(key: &str, items: Vec<Map<String, Value>>, next: Option<String>) -> Value {
    let list: Vec<Value> = items.into_iter().map(|d| envelope(key, d)).collect();
    let mut out = json!({ "list": list });
    if let Some(next) = next {
        out["next_offset"] = json!(next);
    }
    out
}

fn not_found(what: &str, id: &str, param: Option<&str>) -> SbError {
    let e = SbError::not_found(format!("{what} not found for id {id}"));
    match param {
        Some(p) => e.with_param(p),
        None => e,
    }
}

fn retrieve(state: &State, resource: &str, what: &str, id: Option<&str>) -> SbResult<Value> {
    let id = path_id(id)?;
    let data = state
        .table(resource)
        .and_then(|t| t.get(id))
        .cloned()
        .ok_or_else(|| not_found(what, id, None))?;
    // Deleted customers and orders are purged: gone for retrieve, listed only with
    // `include_deleted`. Catalogue records are soft-deleted and stay readable.
    if matches!(resource, "customer" | "order") && data.get("deleted") == Some(&json!(true)) {
        return Err(not_found(what, id, None));
    }
    Ok(envelope(resource, data))
}

const CUSTOMER_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "preferred_currency_code",
    "auto_collection",
    "net_term_days",
    "allow_direct_debit",
    "taxability",
    "locale",
    "invoice_notes",
    "auto_close_invoices",
    "consolidated_invoicing",
    "meta_data",
    "vat_number",
    "vat_number_prefix",
    "business_entity_id",
    "created_from_ip",
    "fraud_flag",
    "registered_for_gst",
    "business_customer_without_vat_number",
];

/// Run one operation against the state.
pub fn execute(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    id: Option<&str>,
    params: &Params,
) -> SbResult<Value> {
    match op.id {
        "customer.create" => customer_create(state, ctx, op, params),
        "customer.retrieve" => retrieve(state, "customer", "Customer", id),
        "customer.update" | "customer.updateBillingInfo" => {
            customer_update(state, ctx, op, path_id(id)?, params)
        }
        "customer.list" => {
            let include_deleted = params.bool("include_deleted").unwrap_or(false);
            let (items, next) = list(
                &state.customers,
                params,
                DefaultSort {
                    field: "created_at",
                    ascending: false,
                },
                |d| include_deleted || d.get("deleted") != Some(&json!(true)),
            )?;
            Ok(list_envelope("customer", items, next))
        }
        "itemFamily.create" => item_family_create(state, ctx, op, params),
        "itemFamily.retrieve" => retrieve(state, "item_family", "Item family", id),
        "itemFamily.update" => simple_update(
            state,
            ctx,
            op,
            "item_family",
            "Item family",
            path_id(id)?,
            params,
            &["name", "description"],
        ),
        "itemFamily.list" => {
            let (items, next) = list(
                &state.item_families,
                params,
                DefaultSort {
                    field: "updated_at",
                    ascending: false,
                },
                |_| true,
            )?;
            Ok(list_envelope("item_family", items, next))
        }
        "item.create" => item_create(state, ctx, op, params),
        "item.retrieve" => retrieve(state, "item", "Item", id),
        "item.update" => item_update(state, ctx, op, path_id(id)?, params),
        "item.list" => {
            let (items, next) = list(
                &state.items,
                params,
                DefaultSort {
                    field: "updated_at",
                    ascending: false,
                },
                |_| true,
            )?;
            Ok(list_envelope("item", items, next))
        }
        "itemPrice.create" => item_price_create(state, ctx, op, params),
        "itemPrice.retrieve" => retrieve(state, "item_price", "Item price", id),
        "itemPrice.update" => item_price_update(state, ctx, op, path_id(id)?, params),
        "itemPrice.list" => {
            let (items, next) = list(
                &state.item_prices,
                params,
                DefaultSort {
                    field: "updated_at",
                    ascending: false,
                },
                |_| true,
            )?;
            Ok(list_envelope("item_price", items, next))
        }
        "invoice.createForChargeItemsAndCharges" => invoice_create(state, ctx, op, params),
        "invoice.retrieve" => retrieve(state, "invoice", "Invoice", id),
        "order.create" => order_create(state, ctx, op, params),
        "order.retrieve" => retrieve(state, "order", "Order", id),
        "order.update" => order_update(state, ctx, op, path_id(id)?, params),
        "order.list" => {
            let include_deleted = params.bool("include_deleted").unwrap_or(false);
            let (items, next) = list(
                &state.orders,
                params,
                DefaultSort {
                    field: "created_at",
                    ascending: false,
                },
                |d| include_deleted || d.get("deleted") != Some(&json!(true)),
            )?;
            Ok(list_envelope("order", items, next))
        }
        "event.list" => {
            let (items, next) = list(
                &state.events,
                params,
                DefaultSort {
                    field: "occurred_at",
                    ascending: false,
                },
                |_| true,
            )?;
            Ok(list_envelope("event", items, next))
        }
        "event.retrieve" => retrieve(state, "event", "Event", id),
        "webhookEndpoint.create" => endpoint_create(state, op, params),
        "webhookEndpoint.update" => endpoint_update(state, op, path_id(id)?, params),
        "webhookEndpoint.retrieve" => retrieve(state, "webhook_endpoint", "Webhook endpoint", id),
        "webhookEndpoint.list" => {
            let (items, next) = list(
                &state.webhook_endpoints,
                params,
                DefaultSort {
                    field: "id",
                    ascending: true,
                },
                |_| true,
            )?;
            Ok(list_envelope("webhook_endpoint", items, next))
        }
        other => Err(SbError::new(
            405,
            "http_method_not_supported",
            format!("{other} is not supported by the sandbox"),
        )),
    }
}

// ---- customers ----

/// A new customer with Chargebee's defaults.
pub fn customer_defaults(state: &mut State, id: &str, currency: &str) -> Map<String, Value> {
    let now = state.now();
    let mut c = Map::new();
    c.insert("id".into(), json!(id));
    c.insert("auto_collection".into(), json!("on"));
    c.insert("net_term_days".into(), json!(0));
    c.insert("allow_direct_debit".into(), json!(false));
    c.insert("created_at".into(), json!(now));
    c.insert("taxability".into(), json!("taxable"));
    c.insert("pii_cleared".into(), json!("active"));
    c.insert("channel".into(), json!("web"));
    c.insert("card_status".into(), json!("no_card"));
    c.insert("promotional_credits".into(), json!(0));
    c.insert("refundable_credits".into(), json!(0));
    c.insert("excess_payments".into(), json!(0));
    c.insert("unbilled_charges".into(), json!(0));
    c.insert("preferred_currency_code".into(), json!(currency));
    c.insert("deleted".into(), json!(false));
    c.insert("object".into(), json!("customer"));
    c
}

fn customer_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    let id = match params.str("id") {
        Some(id) => {
            if state.customers.contains(id) {
                return Err(SbError::duplicate("id", id));
            }
            id.to_string()
        }
        None => random_id(""),
    };
    let mut c = customer_defaults(state, &id, ctx.currency);
    set_fields(&mut c, op, params, CUSTOMER_FIELDS);
    merge_address(&mut c, op, params, "billing_address");
    state.touch(&mut c);
    state.insert("customer", &id, c.clone());
    state.emit_one("customer_created", "customer", &c, &ctx.actor);
    Ok(envelope("customer", c))
}

fn customer_update(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    id: &str,
    params: &Params,
) -> SbResult<Value> {
    let mut c = state
        .customers
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("Customer", id, None))?;
    if c.get("deleted") == Some(&json!(true)) {
        return Err(not_found("Customer", id, None));
    }
    set_fields(&mut c, op, params, CUSTOMER_FIELDS);
    merge_address(&mut c, op, params, "billing_address");
    state.touch(&mut c);
    if let Some(slot) = state.customers.get_mut(id) {
        *slot = c.clone();
    }
    state.emit_one("customer_changed", "customer", &c, &ctx.actor);
    Ok(envelope("customer", c))
}

// ---- item families ----

fn item_family_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    let id = params.str("id").unwrap_or_default().to_string();
    if state.item_families.contains(&id) {
        return Err(SbError::duplicate("id", &id));
    }
    let mut f = Map::new();
    f.insert("id".into(), json!(id));
    set_fields(
        &mut f,
        op,
        params,
        &["name", "description", "business_entity_id"],
    );
    f.insert("status".into(), json!("active"));
    f.insert("channel".into(), json!("web"));
    f.insert("deleted".into(), json!(false));
    f.insert("object".into(), json!("item_family"));
    state.touch(&mut f);
    state.insert("item_family", &id, f.clone());
    state.emit_one("item_family_created", "item_family", &f, &ctx.actor);
    Ok(envelope("item_family", f))
}

#[allow(clippy::too_many_arguments)]
fn simple_update(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    resource: &str,
    what: &str,
    id: &str,
    params: &Params,
    fields: &[&str],
) -> SbResult<Value> {
    let mut data = state
        .table(resource)
        .and_then(|t| t.get(id))
        .cloned()
        .ok_or_else(|| not_found(what, id, None))?;
    set_fields(&mut data, op, params, fields);
    state.touch(&mut data);
    if let Some(slot) = state.table_mut(resource).and_then(|t| t.get_mut(id)) {
        *slot = data.clone();
    }
    state.emit_one(&format!("{resource}_updated"), resource, &data, &ctx.actor);
    Ok(envelope(resource, data))
}

// ---- items ----

const ITEM_FIELDS: &[&str] = &[
    "name",
    "description",
    "is_shippable",
    "external_name",
    "enabled_in_portal",
    "redirect_url",
    "enabled_for_checkout",
    "item_applicability",
    "unit",
    "included_in_mrr",
    "metadata",
    "is_giftable",
    "metered",
    "business_entity_id",
    "item_family_id",
];

fn applicable_items(data: &mut Map<String, Value>, params: &Params) {
    let ids = params.strings("applicable_items");
    if !ids.is_empty() {
        let list: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
        data.insert("applicable_items".into(), Value::Array(list));
    }
}

fn item_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    let id = params.str("id").unwrap_or_default().to_string();
    if state.items.contains(&id) {
        return Err(SbError::duplicate("id", &id));
    }
    let family = params.str("item_family_id").unwrap_or_default();
    if !state.item_families.contains(family) {
        return Err(not_found("Item family", family, Some("item_family_id")));
    }
    let mut i = Map::new();
    i.insert("id".into(), json!(id));
    i.insert("type".into(), json!(params.str("type").unwrap_or("charge")));
    i.insert("status".into(), json!("active"));
    i.insert("is_shippable".into(), json!(false));
    i.insert("is_giftable".into(), json!(false));
    i.insert("enabled_for_checkout".into(), json!(true));
    i.insert("enabled_in_portal".into(), json!(true));
    i.insert("item_applicability".into(), json!("all"));
    i.insert("metered".into(), json!(false));
    i.insert("channel".into(), json!("web"));
    i.insert("deleted".into(), json!(false));
    i.insert("object".into(), json!("item"));
    set_fields(&mut i, op, params, ITEM_FIELDS);
    if !i.contains_key("external_name") {
        if let Some(name) = i.get("name").cloned() {
            i.insert("external_name".into(), name);
        }
    }
    applicable_items(&mut i, params);
    state.touch(&mut i);
    state.insert("item", &id, i.clone());
    state.emit_one("item_created", "item", &i, &ctx.actor);
    Ok(envelope("item", i))
}

fn item_update(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    id: &str,
    params: &Params,
) -> SbResult<Value> {
    let mut i = state
        .items
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("Item", id, None))?;
    if i.get("deleted") == Some(&json!(true)) {
        return Err(not_found("Item", id, None));
    }
    if let Some(family) = params.str("item_family_id") {
        if !state.item_families.contains(family) {
            return Err(not_found("Item family", family, Some("item_family_id")));
        }
    }
    set_fields(&mut i, op, params, ITEM_FIELDS);
    if params.bool("clear_applicable_items") == Some(true) {
        i.remove("applicable_items");
    }
    applicable_items(&mut i, params);
    match params.str("status") {
        Some("archived") if i.get("status") != Some(&json!("archived")) => {
            i.insert("status".into(), json!("archived"));
            i.insert("archived_at".into(), json!(state.now()));
        }
        Some("active") => {
            i.insert("status".into(), json!("active"));
            i.remove("archived_at");
        }
        _ => {}
    }
    state.touch(&mut i);
    if let Some(slot) = state.items.get_mut(id) {
        *slot = i.clone();
    }
    state.emit_one("item_updated", "item", &i, &ctx.actor);
    Ok(envelope("item", i))
}

// ---- item prices ----

const PRICE_FIELDS: &[&str] = &[
    "name",
    "description",
    "external_name",
    "currency_code",
    "invoice_notes",
    "is_taxable",
    "free_quantity",
    "metadata",
    "pricing_model",
    "price",
    "period_unit",
    "period",
    "business_entity_id",
];

fn check_price(p: &Map<String, Value>) -> SbResult<()> {
    let model = p
        .get("pricing_model")
        .and_then(Value::as_str)
        .unwrap_or("flat_fee");
    if matches!(model, "flat_fee" | "per_unit") && !p.contains_key("price") {
        return Err(SbError::bad_param("price", "cannot be blank"));
    }
    let item_type = p
        .get("item_type")
        .and_then(Value::as_str)
        .unwrap_or("charge");
    if item_type == "charge" && (p.contains_key("period") || p.contains_key("period_unit")) {
        return Err(SbError::bad_param(
            "period",
            "is not applicable to charge items",
        ));
    }
    Ok(())
}

fn item_price_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    let id = params.str("id").unwrap_or_default().to_string();
    if state.item_prices.contains(&id) {
        return Err(SbError::duplicate("id", &id));
    }
    let name = params.str("name").unwrap_or_default();
    let name_taken = state.item_prices.rows.values().any(|r| {
        r.data.get("name").and_then(Value::as_str) == Some(name)
            && r.data.get("deleted") != Some(&json!(true))
    });
    if name_taken {
        return Err(SbError::duplicate("name", name));
    }
    let item_id = params.str("item_id").unwrap_or_default();
    let item = state
        .items
        .get(item_id)
        .cloned()
        .ok_or_else(|| not_found("Item", item_id, Some("item_id")))?;
    let mut p = Map::new();
    p.insert("id".into(), json!(id));
    p.insert("item_id".into(), json!(item_id));
    if let Some(f) = item.get("item_family_id") {
        p.insert("item_family_id".into(), f.clone());
    }
    if let Some(t) = item.get("type") {
        p.insert("item_type".into(), t.clone());
    }
    p.insert("status".into(), json!("active"));
    p.insert("pricing_model".into(), json!("flat_fee"));
    p.insert("currency_code".into(), json!(ctx.currency));
    p.insert("free_quantity".into(), json!(0));
    p.insert("is_taxable".into(), json!(true));
    p.insert("channel".into(), json!("web"));
    p.insert("created_at".into(), json!(state.now()));
    p.insert("deleted".into(), json!(false));
    p.insert("object".into(), json!("item_price"));
    set_fields(&mut p, op, params, PRICE_FIELDS);
    check_price(&p)?;
    state.touch(&mut p);
    state.insert("item_price", &id, p.clone());
    state.emit_one("item_price_created", "item_price", &p, &ctx.actor);
    Ok(envelope("item_price", p))
}

fn item_price_update(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    id: &str,
    params: &Params,
) -> SbResult<Value> {
    let mut p = state
        .item_prices
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("Item price", id, None))?;
    if let Some(name) = params.str("name") {
        let taken = state.item_prices.rows.iter().any(|(other, r)| {
            other != id && r.data.get("name").and_then(Value::as_str) == Some(name)
        });
        if taken {
            return Err(SbError::duplicate("name", name));
        }
    }
    set_fields(&mut p, op, params, PRICE_FIELDS);
    match params.str("status") {
        Some("archived") => {
            p.insert("status".into(), json!("archived"));
            p.insert("archived_at".into(), json!(state.now()));
        }
        Some("active") => {
            p.insert("status".into(), json!("active"));
            p.remove("archived_at");
        }
        _ => {}
    }
    check_price(&p)?;
    state.touch(&mut p);
    if let Some(slot) = state.item_prices.get_mut(id) {
        *slot = p.clone();
    }
    state.emit_one("item_price_updated", "item_price", &p, &ctx.actor);
    Ok(envelope("item_price", p))
}

// ---- invoices ----

fn int_of(m: &Map<String, Value>, key: &str) -> Option<i64> {
    m.get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn invoice_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    if let Some(sub) = params.str("subscription_id") {
        return Err(not_found("Subscription", sub, Some("subscription_id")));
    }
    let customer_id = params
        .str("customer_id")
        .ok_or_else(|| SbError::bad_param("customer_id", "cannot be blank"))?;
    let customer = state
        .customers
        .get(customer_id)
        .cloned()
        .ok_or_else(|| not_found("Customer", customer_id, Some("customer_id")))?;
    let currency = params
        .str("currency_code")
        .map(str::to_string)
        .or_else(|| {
            customer
                .get("preferred_currency_code")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| ctx.currency.to_string());
    let now = state.now();
    let date = params.int("invoice_date").unwrap_or(now);
    let mut lines = Vec::new();
    for (i, line) in params.objects("item_prices") {
        let param = format!("item_prices[item_price_id][{i}]");
        let price_id = line
            .get("item_price_id")
            .and_then(Value::as_str)
            .ok_or_else(|| SbError::bad_param(&param, "cannot be blank"))?;
        let price = state
            .item_prices
            .get(price_id)
            .ok_or_else(|| not_found("Item price", price_id, Some(&param)))?;
        if price.get("item_type").and_then(Value::as_str) != Some("charge") {
            return Err(SbError::bad_param(
                &param,
                "only charge item prices are allowed",
            ));
        }
        if price.get("status").and_then(Value::as_str) != Some("active") {
            return Err(SbError::bad_param(&param, "item price is not active"));
        }
        if price.get("currency_code").and_then(Value::as_str) != Some(currency.as_str()) {
            return Err(SbError::bad_param(
                &param,
                "currency does not match the invoice currency",
            ));
        }
        let quantity = int_of(line, "quantity").unwrap_or(1);
        let unit = int_of(line, "unit_price")
            .or_else(|| price.get("price").and_then(Value::as_i64))
            .unwrap_or(0);
        let description = line
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                price
                    .get("external_name")
                    .or_else(|| price.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let model = price
            .get("pricing_model")
            .cloned()
            .unwrap_or_else(|| json!("flat_fee"));
        lines.push(json!({
            "id": random_id("li_"),
            "date_from": int_of(line, "date_from").unwrap_or(date),
            "date_to": int_of(line, "date_to").unwrap_or(date),
            "unit_amount": unit,
            "quantity": quantity,
            "amount": unit * quantity,
            "pricing_model": model,
            "is_taxed": false,
            "tax_amount": 0,
            "discount_amount": 0,
            "item_level_discount_amount": 0,
            "description": description,
            "entity_type": "charge_item_price",
            "entity_id": price_id,
            "customer_id": customer_id,
            "object": "line_item",
        }));
    }
    for (_, charge) in params.objects("charges") {
        let amount = int_of(charge, "amount").unwrap_or(0);
        let description = charge
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("Ad-hoc charge");
        lines.push(json!({
            "id": random_id("li_"),
            "date_from": int_of(charge, "date_from").unwrap_or(date),
            "date_to": int_of(charge, "date_to").unwrap_or(date),
            "unit_amount": amount,
            "quantity": 1,
            "amount": amount,
            "pricing_model": "flat_fee",
            "is_taxed": false,
            "tax_amount": 0,
            "discount_amount": 0,
            "item_level_discount_amount": 0,
            "description": description,
            "entity_type": "adhoc",
            "customer_id": customer_id,
            "object": "line_item",
        }));
    }
    if lines.is_empty() {
        return Err(SbError::new(
            400,
            "invalid_request",
            "At least one item price or charge should be present",
        ));
    }
    let total: i64 = lines
        .iter()
        .filter_map(|l| l.get("amount").and_then(Value::as_i64))
        .sum();
    let net_term_days = params
        .int("net_term_days")
        .or_else(|| customer.get("net_term_days").and_then(Value::as_i64))
        .unwrap_or(0);
    state.invoice_counter += 1;
    let id = state.invoice_counter.to_string();
    let mut inv = Map::new();
    inv.insert("id".into(), json!(id));
    inv.insert("customer_id".into(), json!(customer_id));
    inv.insert("recurring".into(), json!(false));
    inv.insert(
        "status".into(),
        json!(if total == 0 { "paid" } else { "payment_due" }),
    );
    inv.insert("price_type".into(), json!("tax_exclusive"));
    inv.insert("date".into(), json!(date));
    inv.insert("due_date".into(), json!(date + net_term_days * 86_400));
    inv.insert("net_term_days".into(), json!(net_term_days));
    inv.insert("currency_code".into(), json!(currency));
    inv.insert("tax".into(), json!(0));
    inv.insert("sub_total".into(), json!(total));
    inv.insert("total".into(), json!(total));
    inv.insert(
        "amount_due".into(),
        json!(if total == 0 { 0 } else { total }),
    );
    inv.insert("amount_paid".into(), json!(0));
    inv.insert("amount_adjusted".into(), json!(0));
    inv.insert("credits_applied".into(), json!(0));
    inv.insert("write_off_amount".into(), json!(0));
    inv.insert("first_invoice".into(), json!(false));
    inv.insert("has_advance_charges".into(), json!(false));
    inv.insert("term_finalized".into(), json!(true));
    inv.insert("is_gifted".into(), json!(false));
    inv.insert("generated_at".into(), json!(date));
    inv.insert("channel".into(), json!("web"));
    inv.insert("deleted".into(), json!(false));
    inv.insert("object".into(), json!("invoice"));
    inv.insert("line_items".into(), Value::Array(lines));
    inv.insert("linked_orders".into(), json!([]));
    for key in ["po_number", "business_entity_id"] {
        if let Some(v) = params.str(key).map(str::to_string).or_else(|| {
            (key == "business_entity_id")
                .then(|| {
                    customer
                        .get(key)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .flatten()
        }) {
            inv.insert(key.into(), json!(v));
        }
    }
    if let Some(note) = params.str("invoice_note") {
        inv.insert("notes".into(), json!([{ "note": note }]));
    }
    merge_address(&mut inv, op, params, "shipping_address");
    if let Some(b) = customer.get("billing_address") {
        inv.insert("billing_address".into(), b.clone());
    }
    state.touch(&mut inv);
    state.insert("invoice", &id, inv.clone());
    state.emit_one("invoice_generated", "invoice", &inv, &ctx.actor);
    Ok(envelope("invoice", inv))
}

// ---- orders ----

/// Build an order from an invoice (shared by the API create and system-generated orders).
pub fn order_from_invoice(
    state: &mut State,
    id: &str,
    invoice: &Map<String, Value>,
    order_type: &str,
    status: &str,
) -> Map<String, Value> {
    let now = state.now();
    state.order_counter += 1;
    let invoice_id = invoice.get("id").cloned().unwrap_or(Value::Null);
    let paid = invoice.get("status") == Some(&json!("paid"));
    let lines: Vec<Value> = invoice
        .get("line_items")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let amount = l.get("amount").cloned().unwrap_or(json!(0));
                    json!({
                        "id": random_id("o_li_"),
                        "invoice_id": invoice_id,
                        "invoice_line_item_id": l.get("id"),
                        "unit_price": l.get("unit_amount"),
                        "description": l.get("description"),
                        "amount": amount,
                        "fulfillment_quantity": l.get("quantity"),
                        "fulfillment_amount": amount,
                        "tax_amount": l.get("tax_amount").cloned().unwrap_or(json!(0)),
                        "amount_paid": if paid { amount.clone() } else { json!(0) },
                        "amount_adjusted": 0,
                        "refundable_credits_issued": 0,
                        "refundable_credits": if paid { amount.clone() } else { json!(0) },
                        "is_shippable": true,
                        "status": "queued",
                        "entity_type": l.get("entity_type"),
                        "entity_id": l.get("entity_id"),
                        "item_level_discount_amount": 0,
                        "discount_amount": 0,
                        "object": "order_line_item",
                    })
                })
                .map(|mut v| {
                    if let Value::Object(m) = &mut v {
                        m.retain(|_, x| !x.is_null());
                    }
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    let copy = |o: &mut Map<String, Value>, key: &str| {
        if let Some(v) = invoice.get(key) {
            o.insert(key.into(), v.clone());
        }
    };
    let mut o = Map::new();
    o.insert("id".into(), json!(id));
    o.insert(
        "document_number".into(),
        json!(state.order_counter.to_string()),
    );
    o.insert("invoice_id".into(), invoice_id.clone());
    copy(&mut o, "customer_id");
    copy(&mut o, "subscription_id");
    o.insert("status".into(), json!(status));
    o.insert(
        "payment_status".into(),
        json!(if paid { "paid" } else { "not_paid" }),
    );
    o.insert("order_type".into(), json!(order_type));
    o.insert("price_type".into(), json!("tax_exclusive"));
    o.insert("order_date".into(), json!(now));
    o.insert(
        "created_by".into(),
        json!(if order_type == "system_generated" {
            "Auto generated by system"
        } else {
            "api"
        }),
    );
    let total = invoice.get("total").cloned().unwrap_or(json!(0));
    o.insert(
        "tax".into(),
        invoice.get("tax").cloned().unwrap_or(json!(0)),
    );
    o.insert(
        "amount_paid".into(),
        if paid { total.clone() } else { json!(0) },
    );
    o.insert("amount_adjusted".into(), json!(0));
    o.insert("refundable_credits_issued".into(), json!(0));
    o.insert(
        "refundable_credits".into(),
        if paid { total.clone() } else { json!(0) },
    );
    o.insert("rounding_adjustement".into(), json!(0));
    if paid {
        o.insert(
            "paid_on".into(),
            invoice.get("paid_at").cloned().unwrap_or(json!(now)),
        );
    }
    o.insert("created_at".into(), json!(now));
    o.insert("status_update_at".into(), json!(now));
    o.insert("is_resent".into(), json!(false));
    o.insert("order_line_items".into(), Value::Array(lines));
    copy(&mut o, "shipping_address");
    copy(&mut o, "billing_address");
    o.insert("discount".into(), json!(0));
    copy(&mut o, "sub_total");
    o.insert("total".into(), total);
    o.insert("line_item_taxes".into(), json!([]));
    o.insert("line_item_discounts".into(), json!([]));
    o.insert("linked_credit_notes".into(), json!([]));
    o.insert("deleted".into(), json!(false));
    copy(&mut o, "currency_code");
    o.insert("is_gifted".into(), json!(false));
    copy(&mut o, "business_entity_id");
    o.insert("object".into(), json!("order"));
    for key in ["shipping_address", "billing_address"] {
        if let Some(Value::Object(a)) = o.get_mut(key) {
            a.insert("object".into(), json!(key));
        }
    }
    state.touch(&mut o);
    o
}

/// Link an order to its invoice's `linked_orders`.
pub fn link_order(state: &mut State, invoice_id: &str, order: &Map<String, Value>) {
    let linked = json!({
        "id": order.get("id"),
        "document_number": order.get("document_number"),
        "status": order.get("status"),
        "order_type": order.get("order_type"),
        "reference_id": order.get("reference_id"),
        "fulfillment_status": order.get("fulfillment_status"),
        "batch_id": order.get("batch_id"),
        "created_at": order.get("created_at"),
        "object": "linked_order",
    });
    let mut linked = linked;
    if let Value::Object(m) = &mut linked {
        m.retain(|_, v| !v.is_null());
    }
    let Some(mut inv) = state.invoices.get(invoice_id).cloned() else {
        return;
    };
    if let Some(Value::Array(list)) = inv.get_mut("linked_orders") {
        list.push(linked);
    }
    state.touch(&mut inv);
    if let Some(slot) = state.invoices.get_mut(invoice_id) {
        *slot = inv;
    }
}

const ORDER_FIELDS: &[&str] = &[
    "reference_id",
    "batch_id",
    "note",
    "shipping_date",
    "order_date",
    "shipped_at",
    "delivered_at",
    "tracking_url",
    "tracking_id",
    "shipment_carrier",
    "fulfillment_status",
];

fn order_create(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    params: &Params,
) -> SbResult<Value> {
    let invoice_id = params.str("invoice_id").unwrap_or_default();
    let invoice = state
        .invoices
        .get(invoice_id)
        .cloned()
        .ok_or_else(|| not_found("Invoice", invoice_id, Some("invoice_id")))?;
    let id = match params.str("id") {
        Some(id) => {
            if state.orders.contains(id) {
                return Err(SbError::duplicate("id", id));
            }
            id.to_string()
        }
        None => random_id(""),
    };
    let status = params.str("status").unwrap_or("new");
    let mut o = order_from_invoice(state, &id, &invoice, "manual", status);
    set_fields(&mut o, op, params, ORDER_FIELDS);
    state.touch(&mut o);
    state.insert("order", &id, o.clone());
    link_order(state, invoice_id, &o);
    state.emit_one("order_created", "order", &o, &ctx.actor);
    Ok(envelope("order", o))
}

fn order_update(
    state: &mut State,
    ctx: &Ctx<'_>,
    op: &Operation,
    id: &str,
    params: &Params,
) -> SbResult<Value> {
    let mut o = state
        .orders
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("Order", id, None))?;
    set_fields(&mut o, op, params, ORDER_FIELDS);
    if let Some(status) = params.str("status") {
        if o.get("status").and_then(Value::as_str) != Some(status) {
            o.insert("status".into(), json!(status));
            o.insert("status_update_at".into(), json!(state.now()));
        }
    }
    merge_address(&mut o, op, params, "shipping_address");
    let changes = params.objects("order_line_items");
    if !changes.is_empty() {
        let mut lines = o
            .get("order_line_items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, change) in changes {
            let param = format!("order_line_items[id][{i}]");
            let line_id = change
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| SbError::bad_param(&param, "cannot be blank"))?;
            let line = lines
                .iter_mut()
                .find(|l| l.get("id").and_then(Value::as_str) == Some(line_id))
                .ok_or_else(|| SbError::bad_param(&param, "no such order line item"))?;
            for key in ["status", "sku"] {
                if let Some(v) = change.get(key) {
                    line[key] = v.clone();
                }
            }
        }
        o.insert("order_line_items".into(), Value::Array(lines));
    }
    state.touch(&mut o);
    if let Some(slot) = state.orders.get_mut(id) {
        *slot = o.clone();
    }
    state.emit_one("order_updated", "order", &o, &ctx.actor);
    Ok(envelope("order", o))
}

// ---- webhook endpoints ----

const MAX_ENDPOINTS: usize = 5;

fn endpoint_fields(
    e: &mut Map<String, Value>,
    op: &Operation,
    params: &Params,
    state: &mut State,
    id: &str,
) {
    set_fields(
        e,
        op,
        params,
        &[
            "name",
            "url",
            "api_version",
            "primary_url",
            "disabled",
            "send_card_resource",
            "chargebee_response_schema_type",
        ],
    );
    let events = params.strings("enabled_events");
    if !events.is_empty() {
        e.insert("enabled_events".into(), json!(events));
    }
    let auth = state.endpoint_auth.entry(id.to_string()).or_default();
    if let Some(u) = params.str("basic_auth_username") {
        auth.username = Some(u.to_string());
    }
    if let Some(p) = params.str("basic_auth_password") {
        auth.password = Some(p.to_string());
    }
}

fn endpoint_create(state: &mut State, op: &Operation, params: &Params) -> SbResult<Value> {
    if state.webhook_endpoints.len() >= MAX_ENDPOINTS {
        return Err(SbError::new(
            400,
            "invalid_request",
            "A site can have at most 5 webhook endpoints",
        ));
    }
    let url = params.str("url").unwrap_or_default();
    if url::Url::parse(url).is_err() {
        return Err(SbError::bad_param("url", "invalid URL"));
    }
    let id = random_id("whv2_");
    let mut e = Map::new();
    e.insert("id".into(), json!(id));
    e.insert("api_version".into(), json!("v2"));
    e.insert("primary_url".into(), json!(false));
    e.insert("disabled".into(), json!(false));
    e.insert("send_card_resource".into(), json!(false));
    e.insert("chargebee_response_schema_type".into(), json!("items"));
    e.insert("object".into(), json!("webhook_endpoint"));
    endpoint_fields(&mut e, op, params, state, &id);
    state.insert("webhook_endpoint", &id, e.clone());
    Ok(envelope("webhook_endpoint", e))
}

fn endpoint_update(
    state: &mut State,
    op: &Operation,
    id: &str,
    params: &Params,
) -> SbResult<Value> {
    let mut e = state
        .webhook_endpoints
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("Webhook endpoint", id, None))?;
    if let Some(url) = params.str("url") {
        if url::Url::parse(url).is_err() {
            return Err(SbError::bad_param("url", "invalid URL"));
        }
    }
    endpoint_fields(&mut e, op, params, state, id);
    if let Some(slot) = state.webhook_endpoints.get_mut(id) {
        *slot = e.clone();
    }
    Ok(envelope("webhook_endpoint", e))
}
