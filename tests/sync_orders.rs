//! `opportunities_orders` and `quotationlines_orders` end to end, through the real webhooks,
//! hooks, intake, queue and engine: won opportunities become invoices and orders, orders
//! become opportunities with their lines.

mod common;

use serde_json::{json, Value};
use wcs::sandbox::chargebee::{Fault, WebhookFaults};
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const OPPS: &str = "opportunities_orders";
const LINES: &str = "quotationlines_orders";

/// An organisation with one person (persons_customers makes its customer); returns the
/// person id.
fn make_person(w: &World) -> i64 {
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Acme A/S"}),
            )
            .unwrap();
    w.wc.state()
        .ui_create(
            SandboxEntity::Person,
            json!({
                "PersonOrganisationId": org,
                "PersonFirstName": "Ada",
                "PersonLastName": "Lovelace",
                "PersonEmail": "ada@example.com"
            }),
        )
        .unwrap()
}

fn make_opportunity(w: &World, person: i64, fields: Value) -> i64 {
    let mut body = json!({
        "OpportunityPersonId": person,
        "OpportunityDescription": "Big deal",
        "OpportunityCurrencyName": "DKK",
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    w.wc.state()
        .ui_create(SandboxEntity::Opportunity, body)
        .unwrap()
}

fn make_line(w: &World, opp: i64, fields: Value) -> i64 {
    let mut body = json!({"QuotationLineOpportunityId": opp});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    w.wc.state()
        .ui_create(SandboxEntity::QuotationLine, body)
        .unwrap()
}

/// A won DKK opportunity with two lines; returns (opportunity, [line ids]).
fn won_with_two_lines(w: &World) -> (i64, [i64; 2]) {
    let person = make_person(w);
    let opp = make_opportunity(
        w,
        person,
        json!({"OpportunityWinYesNo": true, "OpportunityComment": "Deliver Monday"}),
    );
    let a = make_line(
        w,
        opp,
        json!({"QuotationLineMemo": "Widget", "QuotationLinePrice": 19.99,
               "QuotationLineQuantity": 3.0, "QuotationLineDiscount": 10.0,
               "QuotationLineSortOrder": 1}),
    );
    let b = make_line(
        w,
        opp,
        json!({"QuotationLineMemo": "Support", "QuotationLinePrice": 100.0,
               "QuotationLineQuantity": 1.0, "QuotationLineSortOrder": 2}),
    );
    (opp, [a, b])
}

/// No job failed for good.
async fn assert_clean(w: &World) {
    let dead = w.dead_jobs().await;
    assert!(dead.is_empty(), "{dead:?}");
}

async fn won_opportunity_becomes_an_invoice_and_an_order(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, lines) = won_with_two_lines(&w);
    w.settle().await;
    assert_clean(&w).await;
    let order_id = format!("wc-opp-{opp}");
    let order = w.cb_record("order", &order_id);
    assert_eq!(order["reference_id"], opp.to_string());
    assert_eq!(order["note"], "Deliver Monday");
    assert_eq!(order["currency_code"], "DKK");
    let invoice_id = order["invoice_id"].as_str().unwrap();
    let invoice = w.cb_record("invoice", invoice_id);
    assert_eq!(
        invoice["customer_id"],
        "wc-person-".to_owned() + &lines_person(&w)
    );
    // Not collected by the sync.
    assert_eq!(invoice["status"], "payment_due");
    assert_eq!(invoice["amount_paid"], 0);
    let charges = invoice["line_items"].as_array().unwrap();
    assert_eq!(charges.len(), 2);
    // 19.99 x 3 less 10 % = 53.973 -> 53.97; then 100.00.
    assert_eq!(charges[0]["amount"], 5397);
    assert_eq!(charges[0]["description"], "Widget");
    assert_eq!(charges[1]["amount"], 10000);
    assert_eq!(charges[1]["description"], "Support");
    assert_eq!(order["total"], 15397);
    // The cross id and the invoiced value are on the opportunity.
    let o = w.wc_record(SandboxEntity::Opportunity, &opp.to_string());
    assert_eq!(o["OpportunityErpId"], order_id);
    assert_eq!(o["OpportunityOrderValue"], 153.97);
    let links = w.links(OPPS).await;
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].webcrm_id.as_str(), links[0].chargebee_id.as_str()),
        (opp.to_string().as_str(), order_id.as_str())
    );
    // Each quotation line is linked to the order line it was invoiced as.
    let order_lines = order["order_line_items"].as_array().unwrap();
    let mut line_links: Vec<(String, String)> = w
        .links(LINES)
        .await
        .into_iter()
        .map(|l| (l.webcrm_id, l.chargebee_id))
        .collect();
    line_links.sort();
    let mut want: Vec<(String, String)> = lines
        .iter()
        .zip(order_lines)
        .map(|(l, ol)| {
            (
                l.to_string(),
                format!("{order_id}/{}", ol["id"].as_str().unwrap()),
            )
        })
        .collect();
    want.sort();
    assert_eq!(line_links, want);
    assert!(
        w.pending_actions().await.is_empty(),
        "{:?}",
        w.pending_actions().await
    );
    assert_eq!(w.wc.state().count(SandboxEntity::QuotationLine), 2);
    w.shutdown().await;
}

fn lines_person(w: &World) -> String {
    w.wc.state()
        .records(SandboxEntity::Person)
        .first()
        .and_then(|p| p["PersonId"].as_i64())
        .unwrap()
        .to_string()
}

async fn the_same_event_three_times_makes_one_invoice_and_echo_writes_nothing(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    assert_clean(&w).await;
    let (cb, wc) = (w.cb_writes(), w.wc_writes());
    // customer, invoice, order; the opportunity's cross id and value.
    assert_eq!(cb, 3, "{:?}", w.cb.handle().write_counts());
    assert_eq!(wc, 1);
    let order_event =
        w.cb.handle()
            .events()
            .into_iter()
            .find(|e| e["event_type"] == "order_created")
            .unwrap();
    for _ in 0..3 {
        w.cb.handle()
            .redeliver(order_event["id"].as_str().unwrap())
            .unwrap();
        w.app
            .post_webcrm(
                "Opportunities",
                json!({"HookId": 1, "EventType": "Updated", "EntityType": "Opportunity", "Id": opp})
                    .to_string(),
            )
            .await;
    }
    w.settle().await;
    assert_eq!(w.cb.handle().records("invoice").len(), 1);
    assert_eq!(w.cb.handle().records("order").len(), 1);
    assert_eq!((w.cb_writes(), w.wc_writes()), (cb, wc));
    assert_eq!(w.links(OPPS).await.len(), 1);
    assert_eq!(w.links(LINES).await.len(), 2);
    w.shutdown().await;
}

async fn an_interrupted_create_reuses_its_invoice(backend: Backend) {
    let w = World::start(backend).await;
    // The invoice is made, then the order create fails for the whole first attempt.
    w.cb.handle().inject(
        Fault::server_error(500)
            .for_operation("order.create")
            .times(4),
    );
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    assert_clean(&w).await;
    assert!(w.cb.handle().request_count("order.create") > 4);
    assert_eq!(w.cb.handle().records("invoice").len(), 1);
    assert_eq!(w.cb.handle().records("order").len(), 1);
    let order = w.cb_record("order", &format!("wc-opp-{opp}"));
    assert_eq!(
        order["invoice_id"],
        w.cb.handle().records("invoice")[0]["id"]
    );
    assert_eq!(w.links(LINES).await.len(), 2);
    w.shutdown().await;
}

async fn an_open_opportunity_creates_nothing(backend: Backend) {
    let w = World::start(backend).await;
    let person = make_person(&w);
    let opp = make_opportunity(
        &w,
        person,
        json!({"OpportunityPercent": 50, "OpportunityOrderValue": 10.0}),
    );
    make_line(
        &w,
        opp,
        json!({"QuotationLineMemo": "X", "QuotationLinePrice": 10.0, "QuotationLineQuantity": 1.0}),
    );
    w.settle().await;
    assert_clean(&w).await;
    assert!(w.cb.handle().records("invoice").is_empty());
    assert!(w.cb.handle().records("order").is_empty());
    assert!(w.links(OPPS).await.is_empty());
    assert!(w.links(LINES).await.is_empty());
    // Winning it later (by percent) makes the order.
    w.wc.state()
        .ui_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityPercent": 100}),
        )
        .unwrap();
    w.settle().await;
    assert_clean(&w).await;
    assert_eq!(
        w.cb_record("order", &format!("wc-opp-{opp}"))["total"],
        1000
    );
    assert_eq!(w.links(LINES).await.len(), 1);
    w.shutdown().await;
}

/// A paid invoice with `charges` (amount, description) for a customer made in webCRM;
/// returns the system-generated order.
async fn paid_order(w: &World, currency: &str, charges: &[(i64, &str)]) -> Value {
    let person = make_person(w);
    w.settle().await;
    let customer = format!("wc-person-{person}");
    let mut pairs: Vec<(String, String)> = vec![
        ("customer_id".into(), customer),
        ("currency_code".into(), currency.into()),
    ];
    for (i, (amount, description)) in charges.iter().enumerate() {
        pairs.push((format!("charges[amount][{i}]"), amount.to_string()));
        pairs.push((
            format!("charges[description][{i}]"),
            description.to_string(),
        ));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let invoice =
        w.cb.handle()
            .dashboard_call("invoice.createForChargeItemsAndCharges", None, &refs)
            .unwrap();
    let invoice_id = invoice["invoice"]["id"].as_str().unwrap().to_owned();
    w.cb.handle()
        .pay_invoice(&invoice_id, true)
        .unwrap()
        .unwrap()
}

fn opportunity_of(w: &World, links: &[common::world::LinkRow]) -> serde_json::Map<String, Value> {
    assert_eq!(links.len(), 1, "{links:?}");
    w.wc_record(SandboxEntity::Opportunity, &links[0].webcrm_id)
}

async fn chargebee_order_becomes_an_opportunity_with_its_lines(backend: Backend) {
    let w = World::start(backend).await;
    let order = paid_order(&w, "DKK", &[(19995, "Widget"), (500, "Shipping")]).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let first_line = order["order_line_items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.cb.handle()
        .dashboard_call(
            "order.update",
            Some(&order_id),
            &[
                ("note", "Leave at the door"),
                ("order_line_items[id][0]", &first_line),
                ("order_line_items[sku][0]", "W-1"),
            ],
        )
        .unwrap();
    w.settle().await;
    assert_clean(&w).await;
    let links = w.links(OPPS).await;
    let o = opportunity_of(&w, &links);
    let number = order["document_number"].as_str().unwrap();
    assert_eq!(
        o["OpportunityDescription"],
        format!("Order {number} Widget")
    );
    assert_eq!(o["OpportunityOrderValue"], 204.95);
    assert_eq!(o["OpportunityCurrencyName"], "DKK");
    assert_eq!(o["OpportunityErpId"], order_id);
    assert_eq!(o["OpportunityComment"], "Leave at the door");
    assert_eq!(o["OpportunityWinYesNo"], true);
    assert_eq!(o["OpportunityPercent"], 100);
    let person = lines_person(&w);
    assert_eq!(o["OpportunityPersonId"].to_string(), person);
    assert!(o["OpportunityOrderDate"]
        .as_str()
        .is_some_and(|d| !d.starts_with("0001")));
    let org = w.wc_record(SandboxEntity::Person, &person)["PersonOrganisationId"].clone();
    assert_eq!(o["OpportunityOrganisationId"], org);
    // The opportunity id went back to the order as its reference.
    assert_eq!(
        w.cb_record("order", &order_id)["reference_id"],
        links[0].webcrm_id
    );
    // Both lines, with every mapped property.
    let line_links = w.links(LINES).await;
    assert_eq!(line_links.len(), 2, "{:?}", w.jobs().await);
    let mut lines: Vec<_> = line_links
        .iter()
        .map(|l| w.wc_record(SandboxEntity::QuotationLine, &l.webcrm_id))
        .collect();
    lines.sort_by_key(|l| l["QuotationLineSortOrder"].as_i64());
    assert_eq!(lines[0]["QuotationLineMemo"], "Widget");
    assert_eq!(lines[0]["QuotationLinePrice"], 199.95);
    assert_eq!(lines[0]["QuotationLineQuantity"], 1.0);
    assert_eq!(lines[0]["QuotationLineData1"], "W-1");
    assert_eq!(lines[0]["QuotationLineStockStatus"], "queued");
    assert_eq!(
        lines[0]["QuotationLineData9"],
        format!("{order_id}/{first_line}")
    );
    assert_eq!(
        lines[0]["QuotationLineOpportunityId"].to_string(),
        links[0].webcrm_id
    );
    assert_eq!(lines[1]["QuotationLineMemo"], "Shipping");
    assert_eq!(lines[1]["QuotationLinePrice"], 5.0);
    // Settled: a repeat of the order's events writes nothing.
    let (cb, wc) = (w.cb_writes(), w.wc_writes());
    for e in w.cb.handle().events() {
        if e["event_type"] == "order_created" {
            w.cb.handle().redeliver(e["id"].as_str().unwrap()).unwrap();
        }
    }
    w.settle().await;
    assert_eq!((w.cb_writes(), w.wc_writes()), (cb, wc));
    assert_eq!(w.wc.state().count(SandboxEntity::Opportunity), 1);
    assert_eq!(w.wc.state().count(SandboxEntity::QuotationLine), 2);
    // A SKU set on the webCRM line reaches the order line.
    let wc_line = line_links
        .iter()
        .find(|l| l.chargebee_id.ends_with(&first_line))
        .unwrap();
    w.wc.state()
        .ui_update(
            SandboxEntity::QuotationLine,
            wc_line.webcrm_id.parse().unwrap(),
            json!({"QuotationLineData1": "W-2", "QuotationLineStockStatus": "shipped"}),
        )
        .unwrap();
    w.settle().await;
    let cb_line = w.cb_record("order", &order_id)["order_line_items"][0].clone();
    assert_eq!(cb_line["sku"], "W-2");
    assert_eq!(cb_line["status"], "shipped");
    assert_clean(&w).await;
    w.shutdown().await;
}

async fn money_keeps_each_currencys_minor_units(backend: Backend) {
    let w = World::start(backend).await;
    // Chargebee -> webCRM through order totals and unit prices.
    for (currency, minor, major) in [
        ("JPY", 500, 500.0),
        ("KWD", 1234, 1.234),
        ("DKK", 19995, 199.95),
    ] {
        let order = paid_order(&w, currency, &[(minor, "Thing")]).await;
        w.settle().await;
        assert_clean(&w).await;
        let order_id = order["id"].as_str().unwrap();
        let link = w
            .links(OPPS)
            .await
            .into_iter()
            .find(|l| l.chargebee_id == order_id)
            .unwrap();
        let o = w.wc_record(SandboxEntity::Opportunity, &link.webcrm_id);
        assert_eq!(o["OpportunityOrderValue"], major, "{currency}");
        assert_eq!(o["OpportunityCurrencyName"], currency);
        let line = w
            .links(LINES)
            .await
            .into_iter()
            .find(|l| l.chargebee_id.starts_with(order_id))
            .unwrap();
        let l = w.wc_record(SandboxEntity::QuotationLine, &line.webcrm_id);
        assert_eq!(l["QuotationLinePrice"], major, "{currency}");
    }
    // webCRM -> Chargebee through the invoice charges.
    let person = lines_person(&w).parse().unwrap();
    let jpy = make_opportunity(
        &w,
        person,
        json!({"OpportunityWinYesNo": true, "OpportunityCurrencyName": "JPY"}),
    );
    make_line(
        &w,
        jpy,
        json!({"QuotationLineMemo": "Yen", "QuotationLinePrice": 500.0, "QuotationLineQuantity": 1.0}),
    );
    let kwd = make_opportunity(
        &w,
        person,
        json!({"OpportunityWinYesNo": true, "OpportunityCurrencyName": "KWD",
               "OpportunityOrderValue": 1.234}),
    );
    w.settle().await;
    assert_clean(&w).await;
    let o = w.cb_record("order", &format!("wc-opp-{jpy}"));
    assert_eq!(
        (o["total"].clone(), o["currency_code"].clone()),
        (json!(500), json!("JPY"))
    );
    let o = w.cb_record("order", &format!("wc-opp-{kwd}"));
    assert_eq!(
        (o["total"].clone(), o["currency_code"].clone()),
        (json!(1234), json!("KWD"))
    );
    assert!(
        w.pending_actions().await.is_empty(),
        "{:?}",
        w.pending_actions().await
    );
    w.shutdown().await;
}

async fn a_mapped_currency_name_is_resolved(backend: Backend) {
    let w = World::start_with(backend, &[("WEBCRM_CURRENCY_MAP", "00=DKK")]).await;
    let person = make_person(&w);
    let opp = make_opportunity(
        &w,
        person,
        json!({"OpportunityWinYesNo": true, "OpportunityCurrencyName": "00",
               "OpportunityOrderValue": 199.95}),
    );
    w.settle().await;
    assert_clean(&w).await;
    let o = w.cb_record("order", &format!("wc-opp-{opp}"));
    assert_eq!(
        (o["total"].clone(), o["currency_code"].clone()),
        (json!(19995), json!("DKK"))
    );
    w.shutdown().await;
}

async fn note_edits_travel_both_ways(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    let order_id = format!("wc-opp-{opp}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityComment": "Deliver Tuesday"}),
        )
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("order", &order_id)["note"], "Deliver Tuesday");
    w.cb.handle()
        .dashboard_edit("order", &order_id, json!({"note": "Deliver Friday"}))
        .unwrap();
    w.settle().await;
    let o = w.wc_record(SandboxEntity::Opportunity, &opp.to_string());
    assert_eq!(o["OpportunityComment"], "Deliver Friday");
    assert!(w.conflicts().await.is_empty());
    assert_clean(&w).await;
    w.shutdown().await;
}

async fn a_note_conflict_keeps_the_newer_and_is_recorded(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    let order_id = format!("wc-opp-{opp}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityComment": "From webCRM"}),
        )
        .unwrap();
    w.cb.handle()
        .advance_clock(std::time::Duration::from_secs(60));
    w.cb.handle()
        .dashboard_edit("order", &order_id, json!({"note": "From Chargebee"}))
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("order", &order_id)["note"], "From Chargebee");
    let o = w.wc_record(SandboxEntity::Opportunity, &opp.to_string());
    assert_eq!(o["OpportunityComment"], "From Chargebee");
    let conflicts = w.conflicts().await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].pairing, OPPS);
    assert_eq!(conflicts[0].field, "note");
    assert_eq!(conflicts[0].winner, "chargebee");
    assert_eq!(
        conflicts[0].webcrm_value.as_deref(),
        Some("\"From webCRM\"")
    );
    assert_clean(&w).await;
    w.shutdown().await;
}

async fn a_won_opportunity_waits_for_its_customer_to_be_linked(backend: Backend) {
    let w = World::start(backend).await;
    // The person's customer cannot be created at first: its job fails and is retried, so
    // the opportunity's job finds no customer link and waits for it.
    w.cb.handle().inject(
        Fault::server_error(500)
            .for_operation("customer.create")
            .times(4),
    );
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    assert_clean(&w).await;
    assert!(w.cb.handle().request_count("customer.create") > 4);
    let person = w.links("persons_customers").await;
    assert_eq!(person.len(), 1);
    let order = w.cb_record("order", &format!("wc-opp-{opp}"));
    let invoice = w.cb_record("invoice", order["invoice_id"].as_str().unwrap());
    assert_eq!(invoice["customer_id"], person[0].chargebee_id);
    assert_eq!(w.links(LINES).await.len(), 2);
    w.shutdown().await;
}

async fn an_order_for_a_new_customer_follows_its_customer(backend: Backend) {
    let w = World::start(backend).await;
    // The order's events arrive before the customer's.
    w.set_webhook_faults(WebhookFaults {
        duplicate: false,
        reorder_window: 10,
    });
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_new"),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("company", "US Navy"),
        ])
        .unwrap();
    let invoice =
        w.cb.handle()
            .dashboard_call(
                "invoice.createForChargeItemsAndCharges",
                None,
                &[
                    ("customer_id", "cust_new"),
                    ("currency_code", "DKK"),
                    ("charges[amount][0]", "1000"),
                    ("charges[description][0]", "Radar"),
                ],
            )
            .unwrap();
    let order =
        w.cb.handle()
            .pay_invoice(invoice["invoice"]["id"].as_str().unwrap(), true)
            .unwrap()
            .unwrap();
    w.settle().await;
    assert_clean(&w).await;
    let person = w.links("persons_customers").await;
    assert_eq!(person.len(), 1);
    let o = opportunity_of(&w, &w.links(OPPS).await);
    assert_eq!(o["OpportunityPersonId"].to_string(), person[0].webcrm_id);
    assert_eq!(o["OpportunityErpId"], order["id"]);
    assert_eq!(w.links(LINES).await.len(), 1);
    w.shutdown().await;
}

async fn webcrm_edits_of_an_invoiced_order_become_pending_actions(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, lines) = won_with_two_lines(&w);
    w.settle().await;
    let order_id = format!("wc-opp-{opp}");
    let (cb, _) = (w.cb_writes(), w.wc_writes());
    w.wc.state()
        .ui_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityOrderValue": 500.0}),
        )
        .unwrap();
    w.wc.state()
        .ui_update(
            SandboxEntity::QuotationLine,
            lines[1],
            json!({"QuotationLineQuantity": 2.0}),
        )
        .unwrap();
    w.settle().await;
    assert_clean(&w).await;
    assert_eq!(w.cb_writes(), cb, "an issued invoice is not changed");
    assert_eq!(w.cb_record("order", &order_id)["total"], 15397);
    let actions = w.pending_actions().await;
    let mut kinds: Vec<(&str, &str)> = actions
        .iter()
        .filter(|a| a.closed_at.is_none())
        .map(|a| (a.pairing.as_str(), a.kind.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![(OPPS, "value_change"), (LINES, "amount_change")],
        "{actions:?}"
    );
    // Setting the value back closes the action.
    w.wc.state()
        .ui_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityOrderValue": 153.97}),
        )
        .unwrap();
    w.settle().await;
    let open = w
        .pending_actions()
        .await
        .into_iter()
        .filter(|a| a.closed_at.is_none() && a.pairing == OPPS)
        .count();
    assert_eq!(open, 0);
    // A line added after the order was invoiced is reported too.
    make_line(
        &w,
        opp,
        json!({"QuotationLineMemo": "Extra", "QuotationLinePrice": 1.0, "QuotationLineQuantity": 1.0}),
    );
    w.settle().await;
    assert!(w
        .pending_actions()
        .await
        .iter()
        .any(|a| a.kind == "line_added" && a.closed_at.is_none()));
    assert_eq!(w.links(LINES).await.len(), 2);
    w.shutdown().await;
}

async fn without_create_invoices_only_an_existing_order_is_linked(backend: Backend) {
    let w = World::start_with(
        backend,
        &[("OPPORTUNITIES_ORDERS_CREATE_INVOICES", "false")],
    )
    .await;
    let person = make_person(&w);
    let opp = make_opportunity(
        &w,
        person,
        json!({"OpportunityWinYesNo": true, "OpportunityOrderValue": 10.0}),
    );
    w.settle().await;
    assert_clean(&w).await;
    assert!(w.cb.handle().records("invoice").is_empty());
    assert!(w.links(OPPS).await.is_empty());
    // Someone invoices it in Chargebee with the opportunity as the order's reference.
    let customer = w.links("persons_customers").await[0].chargebee_id.clone();
    let invoice =
        w.cb.handle()
            .dashboard_call(
                "invoice.createForChargeItemsAndCharges",
                None,
                &[
                    ("customer_id", &customer),
                    ("currency_code", "DKK"),
                    ("charges[amount][0]", "1000"),
                ],
            )
            .unwrap();
    let opp_id = opp.to_string();
    w.cb.handle()
        .dashboard_call(
            "order.create",
            None,
            &[
                ("id", "manual-1"),
                ("invoice_id", invoice["invoice"]["id"].as_str().unwrap()),
                ("reference_id", &opp_id),
            ],
        )
        .unwrap();
    w.settle().await;
    assert_clean(&w).await;
    let links = w.links(OPPS).await;
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].webcrm_id.as_str(), links[0].chargebee_id.as_str()),
        (opp_id.as_str(), "manual-1")
    );
    assert_eq!(w.cb.handle().records("invoice").len(), 1);
    assert_eq!(w.wc.state().count(SandboxEntity::Opportunity), 1);
    let o = w.wc_record(SandboxEntity::Opportunity, &opp_id);
    assert_eq!(o["OpportunityErpId"], "manual-1");
    w.shutdown().await;
}

async fn with_opportunity_scope_only_persons_of_won_opportunities_become_customers(
    backend: Backend,
) {
    let w = World::start_with(
        backend,
        &[("PERSONS_CUSTOMERS_CREATE_SCOPE", "opportunity")],
    )
    .await;
    let idle = make_person(&w);
    w.settle().await;
    assert!(
        w.cb.handle().records("customer").is_empty(),
        "no opportunity, no customer"
    );
    let (opp, _) = won_with_two_lines(&w);
    w.settle().await;
    assert_clean(&w).await;
    let customers = w.cb.handle().records("customer");
    assert_eq!(
        customers.len(),
        1,
        "only the won opportunity's person: {customers:?}"
    );
    assert_ne!(customers[0]["id"], format!("wc-person-{idle}"));
    assert!(w
        .cb
        .handle()
        .record("order", &format!("wc-opp-{opp}"))
        .is_some());
    w.shutdown().await;
}

async fn lost_links_are_rebuilt_and_lines_matched_by_position(backend: Backend) {
    let w = World::start(backend).await;
    let (opp, lines) = won_with_two_lines(&w);
    w.settle().await;
    assert_eq!(w.links(LINES).await.len(), 2);
    let writes = (w.cb_writes(), w.wc_writes());
    w.app
        .db
        .exec(
            "delete from links where pairing in ('opportunities_orders', 'quotationlines_orders')",
        )
        .await;
    let resync = |pairings: &[&str], rebuild_links: bool| {
        let options = wcs::resync_command::Options {
            pairings: pairings.iter().map(|p| p.to_string()).collect(),
            rebuild_links,
            dry_run: false,
        };
        let config = (*w.app.config).clone();
        async move {
            let mut out = Vec::new();
            wcs::resync_command::run(config, options, &mut out)
                .await
                .unwrap();
            String::from_utf8(out).unwrap()
        }
    };
    // The opportunity names its order (OpportunityErpId) and the order its opportunity
    // (reference_id): the pair is relinked from the two systems alone.
    let out = resync(&[OPPS], true).await;
    assert!(out.contains("matched on cross_id"), "{out}");
    let links = w.links(OPPS).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].webcrm_id, opp.to_string());
    // Lines made in webCRM carry no Chargebee id: a resync hands each order line to its
    // sync job, which finds the webCRM line at the same position of the linked order.
    let out = resync(&[LINES], false).await;
    assert!(out.contains("quotationlines_orders: 0 links"), "{out}");
    let mut relinked: Vec<String> = w
        .links(LINES)
        .await
        .into_iter()
        .map(|l| l.webcrm_id)
        .collect();
    relinked.sort();
    let mut expected: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    expected.sort();
    assert_eq!(relinked, expected);
    assert_eq!(
        w.wc.state().count(SandboxEntity::QuotationLine),
        2,
        "no line was added"
    );
    assert_eq!(
        (w.cb_writes(), w.wc_writes()),
        writes,
        "nothing was written"
    );
    assert_clean(&w).await;
    w.shutdown().await;
}

on_both_backends!(
    lost_links_are_rebuilt_and_lines_matched_by_position,
    with_opportunity_scope_only_persons_of_won_opportunities_become_customers,
    won_opportunity_becomes_an_invoice_and_an_order,
    the_same_event_three_times_makes_one_invoice_and_echo_writes_nothing,
    an_interrupted_create_reuses_its_invoice,
    an_open_opportunity_creates_nothing,
    chargebee_order_becomes_an_opportunity_with_its_lines,
    money_keeps_each_currencys_minor_units,
    a_mapped_currency_name_is_resolved,
    note_edits_travel_both_ways,
    a_note_conflict_keeps_the_newer_and_is_recorded,
    a_won_opportunity_waits_for_its_customer_to_be_linked,
    an_order_for_a_new_customer_follows_its_customer,
    webcrm_edits_of_an_invoiced_order_become_pending_actions,
    without_create_invoices_only_an_existing_order_is_linked,
);
