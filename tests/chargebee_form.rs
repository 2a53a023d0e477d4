//! Properties of the Chargebee form encoder and decoder.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use wcs::clients::chargebee::form::{decode, decode_str, split_key, Form};
use wcs::clients::chargebee::{
    AddressInput, CustomerCreate, InvoiceCharge, InvoiceForChargesCreate, InvoiceItemPriceLine,
};

/// Values as real data may have them: blanks, spaces, brackets, `&`, `=`, `%`, non-ASCII.
fn value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 &=%+\\[\\]æøåÆØÅ@.,'\"-]{0,20}",
    ])
}

#[derive(Debug, Clone)]
struct Line {
    amount: Option<String>,
    description: Option<String>,
}

fn lines() -> impl Strategy<Value = Vec<Line>> {
    prop::collection::vec(
        (value(), value()).prop_map(|(amount, description)| Line {
            amount,
            description,
        }),
        0..6,
    )
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// What decoding must give for the generated input.
fn expected(
    scalars: &[(String, Option<String>)],
    address: &[(String, Option<String>)],
    list: &[Option<String>],
    objects: &[Line],
) -> Value {
    let mut out = Map::new();
    for (k, v) in scalars {
        if let Some(v) = present(v) {
            out.insert(k.clone(), json!(v));
        }
    }
    let addr: Map<String, Value> = address
        .iter()
        .filter_map(|(k, v)| present(v).map(|v| (k.clone(), json!(v))))
        .collect();
    if !addr.is_empty() {
        out.insert("billing_address".into(), Value::Object(addr));
    }
    let items: Vec<Value> = list
        .iter()
        .filter_map(|v| present(v).map(|v| json!(v)))
        .collect();
    if !items.is_empty() {
        out.insert("applicable_items".into(), Value::Array(items));
    }
    let objs: Vec<Value> = objects
        .iter()
        .filter_map(|l| {
            let mut m = Map::new();
            if let Some(a) = present(&l.amount) {
                m.insert("amount".into(), json!(a));
            }
            if let Some(d) = present(&l.description) {
                m.insert("description".into(), json!(d));
            }
            (!m.is_empty()).then_some(Value::Object(m))
        })
        .collect();
    if !objs.is_empty() {
        out.insert("charges".into(), Value::Array(objs));
    }
    Value::Object(out)
}

fn build(
    scalars: &[(String, Option<String>)],
    address: &[(String, Option<String>)],
    list: &[Option<String>],
    objects: &[Line],
) -> Form {
    let mut f = Form::new();
    for (k, v) in scalars {
        f.opt(k, v.as_deref());
    }
    for (k, v) in address {
        f.nested("billing_address", k, v.as_deref());
    }
    let list: Vec<String> = list.iter().map(|v| v.clone().unwrap_or_default()).collect();
    f.scalar_list("applicable_items", &list);
    f.object_list("charges", objects, |l| {
        vec![
            ("amount", l.amount.clone()),
            ("description", l.description.clone()),
        ]
    });
    f
}

fn scalar_fields() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    (value(), value(), value()).prop_map(|(a, b, c)| {
        vec![
            ("first_name".to_string(), a),
            ("email".to_string(), b),
            ("phone".to_string(), c),
        ]
    })
}

fn address_fields() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    (value(), value(), value()).prop_map(|(a, b, c)| {
        vec![
            ("line1".to_string(), a),
            ("city".to_string(), b),
            ("zip".to_string(), c),
        ]
    })
}

proptest! {
    #[test]
    fn encoding_then_decoding_gives_back_every_present_value(
        scalars in scalar_fields(),
        address in address_fields(),
        list in prop::collection::vec(value(), 0..5),
        objects in lines(),
    ) {
        let form = build(&scalars, &address, &list, &objects);
        let want = expected(&scalars, &address, &list, &objects);
        prop_assert_eq!(Value::Object(decode(form.pairs()).unwrap()), want.clone());
        // and through the urlencoded wire format
        prop_assert_eq!(Value::Object(decode_str(&form.encode()).unwrap()), want);
    }

    #[test]
    fn encoder_never_emits_blank_values(
        scalars in scalar_fields(),
        address in address_fields(),
        list in prop::collection::vec(value(), 0..5),
        objects in lines(),
    ) {
        let form = build(&scalars, &address, &list, &objects);
        for (k, v) in form.pairs() {
            prop_assert!(!v.is_empty(), "blank value for {}", k);
        }
    }

    #[test]
    fn array_indexes_are_contiguous_from_zero(
        list in prop::collection::vec(value(), 0..8),
        objects in lines(),
    ) {
        let form = build(&[], &[], &list, &objects);
        for parent in ["applicable_items", "charges"] {
            let indexes: BTreeSet<usize> = form
                .pairs()
                .iter()
                .filter(|(k, _)| k.starts_with(parent))
                .map(|(k, _)| {
                    let segments = split_key(k).unwrap();
                    segments.last().unwrap().parse::<usize>().unwrap()
                })
                .collect();
            let want: BTreeSet<usize> = (0..indexes.len()).collect();
            prop_assert_eq!(indexes, want);
        }
    }

    #[test]
    fn invoice_lines_are_indexed_per_field(
        amounts in prop::collection::vec(1i64..1_000_000, 0..5),
        quantities in prop::collection::vec(prop::option::of(1i64..100), 0..5),
    ) {
        let params = InvoiceForChargesCreate {
            customer_id: Some("c".into()),
            item_prices: quantities
                .iter()
                .enumerate()
                .map(|(i, q)| InvoiceItemPriceLine {
                    item_price_id: format!("p{i}"),
                    quantity: *q,
                    ..Default::default()
                })
                .collect(),
            charges: amounts
                .iter()
                .map(|a| InvoiceCharge { amount: *a, ..Default::default() })
                .collect(),
            ..Default::default()
        };
        let form = params.to_form();
        for (i, a) in amounts.iter().enumerate() {
            let key = format!("charges[amount][{i}]");
            let want = a.to_string();
            prop_assert!(form.pairs().iter().any(|(k, v)| k == &key && v == &want));
        }
        for (i, q) in quantities.iter().enumerate() {
            let id_key = format!("item_prices[item_price_id][{i}]");
            prop_assert!(form.pairs().iter().any(|(k, _)| k == &id_key));
            let q_key = format!("item_prices[quantity][{i}]");
            prop_assert_eq!(form.pairs().iter().any(|(k, _)| k == &q_key), q.is_some());
        }
    }
}

#[test]
fn customer_create_sends_meta_data_as_a_json_string_and_nests_the_address() {
    let form = CustomerCreate {
        id: Some("wc-person-1".into()),
        email: Some(String::new()),
        meta_data: Some(json!({"webcrm_person_id": 1})),
        billing_address: Some(AddressInput {
            line1: Some("Main St 1".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .to_form();
    assert_eq!(
        form.pairs(),
        [
            ("id".to_string(), "wc-person-1".to_string()),
            (
                "meta_data".to_string(),
                "{\"webcrm_person_id\":1}".to_string()
            ),
            (
                "billing_address[line1]".to_string(),
                "Main St 1".to_string()
            ),
        ]
    );
    assert_eq!(
        form.encode(),
        "id=wc-person-1&meta_data=%7B%22webcrm_person_id%22%3A1%7D&billing_address%5Bline1%5D=Main+St+1"
    );
}
