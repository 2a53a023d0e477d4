//! The sandbox against the SDK-derived schema subset
//! (`chargebee/chargebee-sdk-derived-subset.json` in the reference directory): every route,
//! method, operation id and parameter the sandbox accepts, and every property it emits, must
//! exist there.
//!
//! The reference directory is `$WCS_REFERENCE_DIR`, else `../shared/reference` relative to
//! the crate. When neither exists the tests say so and pass (CI sets the variable).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};

use wcs::clients::chargebee::*;
use wcs::sandbox::chargebee::spec::{operations, Kind};
use wcs::sandbox::chargebee::{ChargebeeSandbox, SandboxOptions};

const SPEC_FILE: &str = "chargebee/chargebee-sdk-derived-subset.json";

/// Property emitted on every resource by the real API (`"object": "customer"`, observed in
/// recorded responses and documented), which the SDK types leave out.
const ALWAYS_ALLOWED: &[&str] = &["object"];

fn load_spec() -> Option<Value> {
    let dir = std::env::var_os("WCS_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    let file = dir.join(SPEC_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => Some(serde_json::from_str(&text).expect("the spec file is JSON")),
        Err(_) => {
            eprintln!(
                "SKIPPED: Chargebee reference not found at {} (set WCS_REFERENCE_DIR to the directory holding {SPEC_FILE})",
                file.display()
            );
            None
        }
    }
}

fn resolve<'a>(spec: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        v = &spec["components"]["schemas"][name];
    }
    v
}

/// Flatten request params as Chargebee sends them: `a`, `a[b]`, `a[b]` for arrays of objects.
fn flatten(
    spec: &Value,
    props: &Value,
    prefix: &str,
    required: &[String],
    out: &mut BTreeMap<String, (Value, bool)>,
) {
    let Some(props) = props.as_object() else {
        return;
    };
    for (k, v) in props {
        let v = resolve(spec, v);
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}[{k}]")
        };
        let ty = v.get("type").and_then(Value::as_str);
        let is_required = required.contains(k);
        if ty == Some("object")
            && v.get("properties")
                .is_some_and(|p| p.as_object().is_some_and(|m| !m.is_empty()))
        {
            flatten(spec, &v["properties"], &name, &strings(&v["required"]), out);
        } else if ty == Some("array")
            && resolve(spec, &v["items"])
                .get("type")
                .and_then(Value::as_str)
                == Some("object")
        {
            let items = resolve(spec, &v["items"]);
            flatten(
                spec,
                &items["properties"],
                &name,
                &strings(&items["required"]),
                out,
            );
        } else {
            out.insert(name, (v.clone(), is_required));
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn spec_params(spec: &Value, operation: &Value) -> BTreeMap<String, (Value, bool)> {
    let mut out = BTreeMap::new();
    if let Some(q) = operation.get("x-query") {
        flatten(
            spec,
            &q["properties"],
            "",
            &strings(&q["required"]),
            &mut out,
        );
    }
    let body = &operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    if body.is_object() {
        flatten(
            spec,
            &body["properties"],
            "",
            &strings(&body["required"]),
            &mut out,
        );
    }
    out
}

#[test]
fn sandbox_routes_methods_and_parameters_exist_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let mut problems = Vec::new();
    for op in operations() {
        let Some(operation) = spec["paths"][op.path].get(op.method.to_lowercase()) else {
            problems.push(format!(
                "{} {} ({}) is not in the spec",
                op.method, op.path, op.id
            ));
            continue;
        };
        if operation["operationId"] != json!(op.id) {
            problems.push(format!(
                "{} {}: operation id {} but the spec says {}",
                op.method, op.path, op.id, operation["operationId"]
            ));
        }
        let known = spec_params(&spec, operation);
        for param in &op.params {
            let Some((schema, required)) = known.get(&param.name) else {
                problems.push(format!(
                    "{}: parameter `{}` is not in the spec",
                    op.id, param.name
                ));
                continue;
            };
            let is_array = schema.get("type").and_then(Value::as_str) == Some("array");
            let per_field = param.name.contains('[') && is_array;
            if param.indexed != (is_array || per_field) {
                problems.push(format!(
                    "{}: `{}` indexed={} but the spec type is {}",
                    op.id, param.name, param.indexed, schema["type"]
                ));
            }
            let item_schema = if is_array { &schema["items"] } else { schema };
            match &param.kind {
                Kind::Str(max) | Kind::Email(max) => {
                    if let Some(spec_max) = item_schema.get("maxLength").and_then(Value::as_u64) {
                        if *max as u64 != spec_max {
                            problems.push(format!(
                                "{}: `{}` max length {max}, spec {spec_max}",
                                op.id, param.name
                            ));
                        }
                    }
                }
                Kind::Enum(values) => {
                    if let Some(spec_values) = item_schema.get("enum").and_then(Value::as_array) {
                        for v in *values {
                            if !spec_values.contains(&json!(v)) {
                                problems.push(format!(
                                    "{}: `{}` value {v} is not in the spec enum",
                                    op.id, param.name
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
            if param.required && !required {
                problems.push(format!(
                    "{}: `{}` is required by the sandbox but optional in the spec",
                    op.id, param.name
                ));
            }
        }
        for (name, (_, required)) in &known {
            if *required
                && !op.params.iter().any(|p| &p.name == name)
                && !name.starts_with("tax_providers_fields")
                && !name.starts_with("discounts")
            {
                problems.push(format!(
                    "{}: required spec parameter `{name}` is not accepted",
                    op.id
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "conformance problems:\n{}",
        problems.join("\n")
    );
}

fn check_object(
    spec: &Value,
    schema_name: &str,
    value: &Value,
    path: &str,
    problems: &mut BTreeSet<String>,
) {
    let schema = &spec["components"]["schemas"][schema_name];
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        problems.insert(format!("{path}: no schema {schema_name}"));
        return;
    };
    let Some(obj) = value.as_object() else {
        problems.insert(format!("{path}: expected an object"));
        return;
    };
    for required in strings(&schema["required"]) {
        if !obj.contains_key(&required) {
            problems.insert(format!(
                "{path}: required property `{required}` of {schema_name} is missing"
            ));
        }
    }
    for (k, v) in obj {
        if ALWAYS_ALLOWED.contains(&k.as_str()) {
            continue;
        }
        let Some(prop) = props.get(k) else {
            problems.insert(format!("{path}.{k}: not a property of {schema_name}"));
            continue;
        };
        if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
            check_object(
                spec,
                r.rsplit('/').next().unwrap_or_default(),
                v,
                &format!("{path}.{k}"),
                problems,
            );
        } else if let Some(r) = prop["items"].get("$ref").and_then(Value::as_str) {
            for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                check_object(
                    spec,
                    r.rsplit('/').next().unwrap_or_default(),
                    item,
                    &format!("{path}.{k}[{i}]"),
                    problems,
                );
            }
        } else if schema_name == "Event" && k == "content" {
            for (ck, cv) in v.as_object().into_iter().flatten() {
                match schema_for(ck) {
                    Some(s) => check_object(spec, s, cv, &format!("{path}.content.{ck}"), problems),
                    None => {
                        problems.insert(format!("{path}.content.{ck}: unknown content key"));
                    }
                }
            }
        } else {
            let ty = prop.get("type").and_then(Value::as_str);
            let ok = match (ty, v) {
                (Some("string"), Value::String(_)) => true,
                (Some("integer"), Value::Number(n)) => n.is_i64(),
                (Some("number"), Value::Number(_)) => true,
                (Some("boolean"), Value::Bool(_)) => true,
                (Some("array"), Value::Array(_)) => true,
                (Some("object"), Value::Object(_)) => true,
                (None, _) => true,
                _ => false,
            };
            if !ok {
                problems.insert(format!("{path}.{k}: {v} does not match type {ty:?}"));
            }
            if let (Some(values), Value::String(s)) =
                (prop.get("enum").and_then(Value::as_array), v)
            {
                if !values.contains(&json!(s)) {
                    problems.insert(format!("{path}.{k}: {s} is not in the enum"));
                }
            }
        }
    }
}

fn schema_for(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "customer" => "Customer",
        "item_family" => "ItemFamily",
        "item" => "Item",
        "item_price" => "ItemPrice",
        "invoice" => "Invoice",
        "order" => "Order",
        "event" => "Event",
        "webhook_endpoint" => "WebhookEndpoint",
        "business_entity" => "BusinessEntity",
        "business_entity_transfer" => "BusinessEntityTransfer",
        "card" => "Card",
        _ => return None,
    })
}

#[tokio::test]
async fn every_property_the_sandbox_emits_exists_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let sb = ChargebeeSandbox::start(SandboxOptions::default())
        .await
        .unwrap();
    let client = ChargebeeClient::new(sb.client_config()).unwrap();
    let address = AddressInput {
        first_name: Some("Ann".into()),
        last_name: Some("Smith".into()),
        email: Some("ann@example.com".into()),
        company: Some("Initech".into()),
        phone: Some("+45 1".into()),
        line1: Some("Main St 1".into()),
        line2: Some("2nd floor".into()),
        line3: Some("c/o".into()),
        city: Some("Copenhagen".into()),
        state_code: Some("84".into()),
        state: Some("Capital".into()),
        zip: Some("1620".into()),
        country: Some("DK".into()),
    };
    client
        .create_customer(
            &CustomerCreate {
                id: Some("c1".into()),
                first_name: Some("Ann".into()),
                last_name: Some("Smith".into()),
                email: Some("ann@example.com".into()),
                phone: Some("+45 1".into()),
                company: Some("Initech".into()),
                locale: Some("da".into()),
                preferred_currency_code: Some("EUR".into()),
                auto_collection: Some("off".into()),
                net_term_days: Some(14),
                vat_number: Some("DK1".into()),
                invoice_notes: Some("n".into()),
                business_entity_id: Some("1".into()),
                meta_data: Some(json!({"a": 1})),
                billing_address: Some(address.clone()),
            },
            "c1",
        )
        .await
        .unwrap();
    client
        .create_item_family(
            &ItemFamilyCreate {
                id: "f".into(),
                name: "F".into(),
                description: Some("d".into()),
                business_entity_id: None,
            },
            "f",
        )
        .await
        .unwrap();
    client
        .create_item(
            &ItemCreate {
                id: "i".into(),
                name: "I".into(),
                item_type: "charge".into(),
                item_family_id: "f".into(),
                description: Some("d".into()),
                external_name: Some("I ext".into()),
                is_shippable: Some(true),
                unit: Some("pcs".into()),
                metadata: Some(json!({"b": 2})),
                ..Default::default()
            },
            "i",
        )
        .await
        .unwrap();
    client
        .update_item(
            "i",
            &ItemUpdate {
                status: Some("archived".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    client
        .update_item(
            "i",
            &ItemUpdate {
                status: Some("active".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    client
        .create_item_price(
            &ItemPriceCreate {
                id: "p".into(),
                name: "P".into(),
                item_id: "i".into(),
                description: Some("d".into()),
                external_name: Some("P ext".into()),
                currency_code: Some("EUR".into()),
                pricing_model: Some("per_unit".into()),
                price: Some(100),
                is_taxable: Some(true),
                metadata: Some(json!({"c": 3})),
                ..Default::default()
            },
            "p",
        )
        .await
        .unwrap();
    let invoice = client
        .create_invoice_for_charges(
            &InvoiceForChargesCreate {
                customer_id: Some("c1".into()),
                currency_code: Some("EUR".into()),
                po_number: Some("PO1".into()),
                invoice_note: Some("thanks".into()),
                item_prices: vec![InvoiceItemPriceLine {
                    item_price_id: "p".into(),
                    quantity: Some(2),
                    ..Default::default()
                }],
                charges: vec![InvoiceCharge {
                    amount: 500,
                    description: Some("x".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "inv",
        )
        .await
        .unwrap();
    let order = client
        .create_order(
            &OrderCreate {
                id: Some("o1".into()),
                invoice_id: invoice.id.clone(),
                status: Some("new".into()),
                reference_id: Some("r".into()),
                fulfillment_status: Some("f".into()),
                note: Some("n".into()),
                tracking_id: Some("t".into()),
                tracking_url: Some("https://t.example".into()),
                batch_id: Some("b".into()),
            },
            "o1",
        )
        .await
        .unwrap();
    client
        .update_order(
            "o1",
            &OrderUpdate {
                shipping_address: Some(address),
                shipment_carrier: Some("DHL".into()),
                shipping_date: Some(1_800_000_000),
                order_line_items: vec![OrderLineItemUpdate {
                    id: order.order_line_items[0].id.clone(),
                    status: Some("shipped".into()),
                    sku: Some("S".into()),
                }],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    sb.handle().pay_invoice(&invoice.id, true).unwrap();
    let receiver =
        sb.handle()
            .add_webhook_endpoint("http://127.0.0.1:9/unreachable", Some("u"), Some("p"));
    client
        .create_webhook_endpoint(
            &WebhookEndpointCreate {
                name: "n".into(),
                url: "http://127.0.0.1:9/x".into(),
                enabled_events: vec!["customer_changed".into()],
                basic_auth_username: Some("u".into()),
                ..Default::default()
            },
            "we",
        )
        .await
        .unwrap();
    sb.handle().emit_business_entity_created("2", "B");
    sb.handle().transfer_customer("c1", "2").unwrap();
    sb.handle()
        .dashboard_edit("customer", "c1", json!({"phone": "+45 2"}))
        .unwrap();
    sb.handle()
        .wait_for_deliveries(1, std::time::Duration::from_secs(5))
        .await;
    let _ = receiver;

    let mut problems = BTreeSet::new();
    for resource in [
        "customer",
        "item_family",
        "item",
        "item_price",
        "invoice",
        "order",
        "event",
        "webhook_endpoint",
        "business_entity",
    ] {
        let records = sb.handle().records(resource);
        assert!(!records.is_empty(), "no {resource} to check");
        for record in records {
            let schema = schema_for(resource).unwrap_or_default();
            check_object(&spec, schema, &record, resource, &mut problems);
        }
    }
    // error bodies
    let err_body: Value = reqwest::Client::new()
        .get(format!("{}/customers/missing", sb.base_url()))
        .basic_auth(sb.api_key(), Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let error_props = spec["components"]["schemas"]["Error"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for k in err_body.as_object().into_iter().flatten().map(|(k, _)| k) {
        // `error_param` is a legacy field next to `error_code`/`error_msg` in SDK error classes.
        if !error_props.contains_key(k) && k != "error_param" {
            problems.insert(format!("error body: `{k}` is not in Error"));
        }
    }
    sb.shutdown().await;
    assert!(
        problems.is_empty(),
        "emitted properties not in the spec:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn checker_reports_unknown_properties_and_params() {
    let Some(spec) = load_spec() else { return };
    let mut problems = BTreeSet::new();
    let customer = json!({
        "id": "x", "auto_collection": "on", "net_term_days": 0, "allow_direct_debit": false,
        "created_at": 1, "promotional_credits": 0, "unbilled_charges": 0, "refundable_credits": 0,
        "excess_payments": 0, "deleted": false, "object": "customer",
        "mrr": 1, "billing_address": {"line1": "a", "bogus": "b"}
    });
    check_object(&spec, "Customer", &customer, "customer", &mut problems);
    let found: Vec<&str> = problems.iter().map(String::as_str).collect();
    assert_eq!(
        found,
        [
            "customer.billing_address.bogus: not a property of Customer.BillingAddress",
            "customer.mrr: not a property of Customer",
        ]
    );
    let update = spec_params(&spec, &spec["paths"]["/customers/{id}"]["post"]);
    assert!(!update.contains_key("billing_address[line1]"));
    let billing = spec_params(
        &spec,
        &spec["paths"]["/customers/{id}/update_billing_info"]["post"],
    );
    assert!(billing.contains_key("billing_address[line1]"));
    let invoice = spec_params(
        &spec,
        &spec["paths"]["/invoices/create_for_charge_items_and_charges"]["post"],
    );
    assert!(invoice.contains_key("charges[amount]"));
}

fn dto_fields<T: serde::Serialize + Default>() -> Vec<String> {
    serde_json::to_value(T::default())
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

#[test]
fn client_dto_fields_exist_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let checks: Vec<(&str, Vec<String>)> = vec![
        ("Customer", dto_fields::<Customer>()),
        ("Customer.BillingAddress", dto_fields::<Address>()),
        ("Order.ShippingAddress", dto_fields::<Address>()),
        ("ItemFamily", dto_fields::<ItemFamily>()),
        ("Item", dto_fields::<Item>()),
        ("ItemPrice", dto_fields::<ItemPrice>()),
        ("Invoice", dto_fields::<Invoice>()),
        ("Invoice.LineItem", dto_fields::<InvoiceLineItem>()),
        ("Invoice.LinkedOrder", dto_fields::<LinkedOrder>()),
        ("Order", dto_fields::<Order>()),
        ("Order.OrderLineItem", dto_fields::<OrderLineItem>()),
        ("Order.LineItemTax", dto_fields::<LineItemTax>()),
        ("Event", dto_fields::<Event>()),
        ("WebhookEndpoint", dto_fields::<WebhookEndpoint>()),
        ("BusinessEntity", dto_fields::<BusinessEntity>()),
        (
            "BusinessEntityTransfer",
            dto_fields::<BusinessEntityTransfer>(),
        ),
        ("Error", dto_fields::<ErrorBody>()),
    ];
    let mut problems = Vec::new();
    for (schema, fields) in checks {
        assert!(!fields.is_empty(), "{schema}: no fields serialised");
        let props = &spec["components"]["schemas"][schema]["properties"];
        for f in fields {
            // `error_param` is the legacy twin of `param` in the SDK error classes.
            if props.get(&f).is_none() && !(schema == "Error" && f == "error_param") {
                problems.push(format!("{schema}.{f}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "DTO fields not in the spec: {problems:?}"
    );
}
