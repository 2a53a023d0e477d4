//! `products_items`: webCRM catalogue items (`/QuotationLines/LinkedData`) <-> Chargebee
//! items with one flat-fee item price `{item_id}-{CURRENCY}` (MAPPINGS.md §6).
//!
//! Name, description and price sync both ways. The catalogue code (`Data1`) becomes the item
//! id on create and never changes afterwards; an item made in Chargebee gets its id as code,
//! which is also how a retried create finds the catalogue item it already made. Catalogue
//! items carry no timestamps, so a conflict goes to Chargebee (the billing system).

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::clients::chargebee::{
    is_duplicate, Item, ItemCreate, ItemFamilyCreate, ItemPrice, ItemPriceCreate, ItemPriceUpdate,
    ItemUpdate, ListQuery,
};
use crate::clients::outbound::ApiError;
use crate::clients::webcrm::LinkedDataItem;
use crate::intake::Side;

use super::super::merge::{Fields, Observed, Rule};
use super::super::normalize::{money, text};
use super::super::pairing::{Created, Pairing, SyncContext, SyncError};
use super::super::values::{
    chargebee_ms, found, from_raw, get_str, raw, text_value, touches, webcrm_id,
};
use super::{check_limits, meta_with, Limit};

pub const NAME: &str = "products_items";
pub const DEFAULT_ITEM_FAMILY: &str = "webcrm-products";
pub const DEFAULT_ITEM_TYPE: &str = "charge";
/// The catalogue's entity type for products.
const PRODUCT: &str = "Product";
/// webCRM rejects empty `Data` values; its own integration writes this for "none".
const BLANK: &str = "-";
const CROSS_ID: &str = "webcrm_linked_data_id";

const RULES: &[Rule] = &[
    Rule::both("name"),
    Rule::both("description"),
    Rule::both("price"),
    Rule::to_chargebee(CROSS_ID),
];

const LIMITS: &[Limit] = &[("name", 100), ("description", 2000)];

fn money_error(e: money::MoneyError) -> SyncError {
    SyncError::Invalid(e.to_string())
}

/// A `Data` column as text; webCRM's `-` placeholder is unset.
fn data_value(s: Option<&str>) -> Value {
    text_value(s.filter(|v| v.trim() != BLANK))
}

/// The catalogue item as canonical fields; the price is in major units of `currency`.
pub fn webcrm_fields(item: &LinkedDataItem, currency: &str) -> Result<Fields, SyncError> {
    let price = money::from_f64(item.price.unwrap_or(0.0)).map_err(money_error)?;
    let mut f = Fields::new();
    f.insert("name".into(), data_value(item.data2.as_deref()));
    f.insert("description".into(), text_value(item.data_memo.as_deref()));
    f.insert("price".into(), json!(money::canonical(price, currency)));
    f.insert(
        CROSS_ID.into(),
        item.id.map(|i| json!(i.to_string())).unwrap_or(Value::Null),
    );
    Ok(f)
}

/// A `metadata` key as text; Chargebee may hand metadata back as a JSON string.
fn metadata_value(metadata: Option<&Value>, key: &str) -> Value {
    let parsed = match metadata {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    match parsed.get(key) {
        Some(Value::String(s)) => text_value(Some(s)),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    }
}

/// Whether an item price still counts (archived or deleted prices are no price).
fn live_price(price: Option<&ItemPrice>) -> Option<&ItemPrice> {
    price.filter(|p| !p.deleted && matches!(p.status.as_deref(), None | Some("active")))
}

/// The item and its price as canonical fields.
pub fn chargebee_fields(item: &Item, price: Option<&ItemPrice>, currency: &str) -> Fields {
    let mut f = Fields::new();
    f.insert("name".into(), text_value(item.name.as_deref()));
    f.insert(
        "description".into(),
        text_value(item.description.as_deref()),
    );
    f.insert(
        "price".into(),
        live_price(price)
            .and_then(|p| p.price)
            .map(|minor| {
                json!(money::canonical(
                    money::minor_to_major(minor, currency),
                    currency
                ))
            })
            .unwrap_or(Value::Null),
    );
    f.insert(
        CROSS_ID.into(),
        metadata_value(item.metadata.as_ref(), CROSS_ID),
    );
    f
}

/// A canonical price in minor units of `currency`.
pub fn minor_units(fields: &Fields, currency: &str) -> Result<Option<i64>, SyncError> {
    get_str(fields, "price")
        .map(|p| {
            let major: rust_decimal::Decimal = p
                .parse()
                .map_err(|_| SyncError::Invalid(format!("price {p:?} is not a number")))?;
            money::major_to_minor(major, currency).map_err(money_error)
        })
        .transpose()
}

/// The id of the item price that holds the catalogue price.
pub fn price_id(item_id: &str, currency: &str) -> String {
    format!("{item_id}-{currency}")
}

/// The Chargebee item id for a catalogue item: its code, sanitised, else `wc-prod-{id}`.
pub fn item_id_for(code: Option<&str>, linked_data_id: &str) -> String {
    code.filter(|c| c.trim() != BLANK)
        .and_then(|c| text::sanitize_id(c, 100))
        .unwrap_or_else(|| format!("wc-prod-{linked_data_id}"))
}

/// Puts the changes Chargebee made onto the catalogue item (the whole record is PUT back).
pub fn apply_to_item(
    item: &mut LinkedDataItem,
    changes: &Fields,
    currency: &str,
) -> Result<(), SyncError> {
    if changes.contains_key("name") {
        item.data2 = Some(get_str(changes, "name").unwrap_or(BLANK).to_owned());
    }
    if changes.contains_key("description") {
        item.data_memo = get_str(changes, "description").map(str::to_owned);
    }
    if changes.contains_key("price") {
        let major = match minor_units(changes, currency)? {
            Some(minor) => money::to_f64(money::minor_to_major(minor, currency)),
            None => 0.0,
        };
        item.price = Some(major);
    }
    Ok(())
}

/// The item update for `changes` (name also sets the external name customers see).
pub fn item_update(changes: &Fields, current_meta: Option<&Value>) -> Option<ItemUpdate> {
    let mut clear = Vec::new();
    let name = get_str(changes, "name").map(str::to_owned);
    let description = match changes.get("description") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            clear.push("description".to_owned());
            None
        }
        None => None,
    };
    let meta = match current_meta {
        Some(Value::String(s)) => serde_json::from_str(s).ok(),
        other => other.cloned(),
    };
    let update = ItemUpdate {
        external_name: name.clone(),
        name,
        description,
        metadata: touches(changes, &[CROSS_ID])
            .then(|| meta_with(meta.as_ref(), changes, &[CROSS_ID])),
        clear,
        ..ItemUpdate::default()
    };
    (update != ItemUpdate::default()).then_some(update)
}

/// `POST /item_prices` for the catalogue price of `item_id`.
pub fn price_create(
    item_id: &str,
    name: Option<&str>,
    minor: i64,
    currency: &str,
) -> ItemPriceCreate {
    let id = price_id(item_id, currency);
    ItemPriceCreate {
        // Item price names are unique per site: the id is.
        name: id.clone(),
        id,
        item_id: item_id.to_owned(),
        external_name: name.map(str::to_owned),
        currency_code: Some(currency.to_owned()),
        pricing_model: Some("flat_fee".into()),
        price: Some(minor),
        ..ItemPriceCreate::default()
    }
}

/// The catalogue item a new Chargebee item becomes (`Data1` = item id, its marker).
pub fn catalogue_item_for(
    item_id: &str,
    fields: &Fields,
    currency: &str,
) -> Result<LinkedDataItem, SyncError> {
    let mut item = LinkedDataItem {
        data1: Some(item_id.to_owned()),
        data2: Some(BLANK.to_owned()),
        entity_type: Some(PRODUCT.to_owned()),
        ..LinkedDataItem::default()
    };
    let changes: Fields = fields
        .iter()
        .filter(|(k, v)| ["name", "description", "price"].contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    apply_to_item(&mut item, &changes, currency)?;
    Ok(item)
}

pub struct ProductsItems;

impl ProductsItems {
    fn currency(cx: &SyncContext) -> String {
        cx.option(NAME, "currency")
            .unwrap_or_else(|| cx.config.default_currency.clone())
            .trim()
            .to_ascii_uppercase()
    }

    async fn read_catalogue_item(
        cx: &SyncContext,
        id: &str,
    ) -> Result<Option<Observed>, SyncError> {
        let Some(item) = found(cx.webcrm.get_linked_data_item(webcrm_id(id)?).await)? else {
            return Ok(None);
        };
        if item.entity_type.as_deref().is_some_and(|t| t != PRODUCT) {
            return Ok(None);
        }
        Ok(Some(Observed {
            id: id.to_owned(),
            fields: webcrm_fields(&item, &Self::currency(cx))?,
            // No timestamps in the catalogue: Chargebee wins a conflict.
            changed_at: None,
            version: None,
            raw: raw(&item),
        }))
    }

    /// The item with its catalogue price; archived or deleted items are gone.
    async fn read_item(cx: &SyncContext, id: &str) -> Result<Option<Observed>, SyncError> {
        let Some(item) = found(cx.chargebee.retrieve_item(id).await)? else {
            return Ok(None);
        };
        if item.deleted || matches!(item.status.as_deref(), Some("archived" | "deleted")) {
            return Ok(None);
        }
        let currency = Self::currency(cx);
        let price = found(
            cx.chargebee
                .retrieve_item_price(&price_id(id, &currency))
                .await,
        )?;
        Ok(Some(item_observed(&item, price.as_ref(), &currency)))
    }

    async fn ensure_family(cx: &SyncContext, family: &str) -> Result<(), SyncError> {
        if found(cx.chargebee.retrieve_item_family(family).await)?.is_some() {
            return Ok(());
        }
        let params = ItemFamilyCreate {
            id: family.to_owned(),
            name: family.to_owned(),
            description: Some("Products synced from the webCRM catalogue".into()),
            business_entity_id: None,
        };
        match cx
            .chargebee
            .create_item_family(&params, &format!("wcs-family-{family}"))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn upsert_price(
        cx: &SyncContext,
        item_id: &str,
        name: Option<&str>,
        minor: i64,
        currency: &str,
        existing: bool,
    ) -> Result<(), SyncError> {
        let id = price_id(item_id, currency);
        if existing {
            let update = ItemPriceUpdate {
                price: Some(minor),
                ..ItemPriceUpdate::default()
            };
            cx.chargebee.update_item_price(&id, &update, None).await?;
            return Ok(());
        }
        let params = price_create(item_id, name, minor, currency);
        match cx
            .chargebee
            .create_item_price(&params, &format!("wcs-price-{id}"))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_item(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let catalogue: LinkedDataItem = from_raw(&source.raw, "catalogue item")?;
        let Some(name) = get_str(&source.fields, "name") else {
            return Ok(Created::Skip("the catalogue item has no name".into()));
        };
        check_limits(&source.fields, LIMITS)?;
        let currency = Self::currency(cx);
        let minor = minor_units(&source.fields, &currency)?;
        let family = cx
            .option(NAME, "item_family_id")
            .unwrap_or_else(|| DEFAULT_ITEM_FAMILY.to_owned());
        let item_type = cx
            .option(NAME, "item_type")
            .unwrap_or_else(|| DEFAULT_ITEM_TYPE.to_owned());
        Self::ensure_family(cx, &family).await?;
        let id = item_id_for(catalogue.data1.as_deref(), &source.id);
        let params = ItemCreate {
            id: id.clone(),
            name: name.to_owned(),
            item_type,
            item_family_id: family,
            description: get_str(&source.fields, "description").map(str::to_owned),
            external_name: Some(name.to_owned()),
            metadata: Some(meta_with(None, &source.fields, &[CROSS_ID])),
            ..ItemCreate::default()
        };
        let key = format!("wcs-item-{}", source.id);
        match cx.chargebee.create_item(&params, &key).await {
            Ok(_) => {}
            // Made by an earlier attempt (or the code names an existing item): read and link.
            Err(e) if is_duplicate(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let price = found(
            cx.chargebee
                .retrieve_item_price(&price_id(&id, &currency))
                .await,
        )?;
        if let (Some(minor), None) = (minor, live_price(price.as_ref())) {
            Self::upsert_price(cx, &id, Some(name), minor, &currency, price.is_some()).await?;
        }
        match Self::read_item(cx, &id).await? {
            Some(observed) => Ok(Created::Record(observed)),
            None => Err(SyncError::Invalid(format!(
                "Chargebee item {id} exists but is archived or deleted; it cannot be linked"
            ))),
        }
    }

    async fn create_catalogue_item(
        cx: &SyncContext,
        source: &Observed,
    ) -> Result<Created, SyncError> {
        let item: Item = from_raw(&source.raw["item"], "item")?;
        let wanted = cx
            .option(NAME, "item_type")
            .unwrap_or_else(|| DEFAULT_ITEM_TYPE.to_owned());
        if item.item_type.as_deref() != Some(wanted.as_str()) {
            return Ok(Created::Skip(format!(
                "items of type {:?} are not synced (item_type = {wanted})",
                item.item_type
            )));
        }
        // Made from a catalogue item whose link was lost (or whose link is being committed).
        if let Some(linked) = get_str(&source.fields, CROSS_ID) {
            if let Some(existing) = Self::read_catalogue_item(cx, linked).await? {
                return Ok(Created::Record(existing));
            }
        }
        let currency = Self::currency(cx);
        // A retry finds the catalogue item an earlier attempt made, by its code.
        let existing = cx
            .webcrm
            .linked_data_items()
            .await?
            .into_iter()
            .filter(|c| c.entity_type.as_deref().is_none_or(|t| t == PRODUCT))
            .filter(|c| c.data1.as_deref() == Some(item.id.as_str()))
            .filter_map(|c| c.id)
            .min();
        let catalogue_id = match existing {
            Some(id) => id,
            None => {
                let new = catalogue_item_for(&item.id, &source.fields, &currency)?;
                cx.webcrm.create_linked_data_item(&new).await?
            }
        };
        let Some(observed) = Self::read_catalogue_item(cx, &catalogue_id.to_string()).await? else {
            return Err(SyncError::Api(ApiError::Transient(format!(
                "webCRM catalogue item {catalogue_id} was created but cannot be read yet"
            ))));
        };
        // The engine writes the cross id back (a one-way field) before it links the two.
        Ok(Created::Record(observed))
    }
}

pub fn item_observed(item: &Item, price: Option<&ItemPrice>, currency: &str) -> Observed {
    let item_at = chargebee_ms(item.updated_at, item.resource_version);
    let price_at = live_price(price).and_then(|p| chargebee_ms(p.updated_at, p.resource_version));
    Observed {
        id: item.id.clone(),
        fields: chargebee_fields(item, price, currency),
        changed_at: item_at.max(price_at),
        version: item.resource_version.map(|v| v.to_string()),
        raw: json!({ "item": raw(item), "item_price": price.map(raw) }),
    }
}

#[async_trait]
impl Pairing for ProductsItems {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn list(&self, cx: &SyncContext, side: Side) -> Result<Option<Vec<Observed>>, SyncError> {
        let currency = Self::currency(cx);
        Ok(Some(match side {
            Side::Webcrm => {
                let mut out = Vec::new();
                for item in cx.webcrm.linked_data_items().await? {
                    let Some(id) = item.id else { continue };
                    if item.entity_type.as_deref().is_some_and(|t| t != PRODUCT) {
                        continue;
                    }
                    out.push(Observed {
                        id: id.to_string(),
                        fields: webcrm_fields(&item, &currency)?,
                        changed_at: None,
                        version: None,
                        raw: raw(&item),
                    });
                }
                out
            }
            Side::Chargebee => {
                let item_type = cx
                    .option(NAME, "item_type")
                    .unwrap_or_else(|| DEFAULT_ITEM_TYPE.to_owned());
                let items: Vec<Item> = cx
                    .chargebee
                    .list_all_items(ListQuery::new().is("type", &item_type).limit(100))
                    .try_collect()
                    .await?;
                // One listing of the prices in our currency instead of a read per item.
                let prices: Vec<ItemPrice> = cx
                    .chargebee
                    .list_all_item_prices(
                        ListQuery::new().is("currency_code", &currency).limit(100),
                    )
                    .try_collect()
                    .await?;
                items
                    .iter()
                    .filter(|i| {
                        !i.deleted && !matches!(i.status.as_deref(), Some("archived" | "deleted"))
                    })
                    .map(|i| {
                        let price = prices.iter().find(|p| p.id == price_id(&i.id, &currency));
                        item_observed(i, price, &currency)
                    })
                    .collect()
            }
        }))
    }

    /// A deleted catalogue item archives its Chargebee item (reversible, and what Chargebee
    /// allows while the item has prices); an archived or deleted item removes the catalogue
    /// item.
    async fn propagate_delete(
        &self,
        cx: &SyncContext,
        gone: Side,
        counterpart_id: &str,
    ) -> Result<Option<&'static str>, SyncError> {
        match gone {
            Side::Webcrm => {
                let update = ItemUpdate {
                    status: Some("archived".into()),
                    ..ItemUpdate::default()
                };
                match cx
                    .chargebee
                    .update_item(counterpart_id, &update, None)
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {
                        Ok(Some("archived the Chargebee item"))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Side::Chargebee => {
                match cx
                    .webcrm
                    .delete_linked_data_item(webcrm_id(counterpart_id)?)
                    .await
                {
                    Ok(()) | Err(ApiError::NotFound { .. }) => {
                        Ok(Some("deleted the webCRM catalogue item"))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The code first (the item id is the catalogue code), then the exact name.
    fn match_keys(&self, side: Side, record: &Observed) -> Vec<String> {
        let code = match side {
            Side::Webcrm => record.raw["QuotationLineLinkedDataItemData1"]
                .as_str()
                .map(str::trim)
                .filter(|c| !c.is_empty() && *c != BLANK)
                .map(str::to_owned),
            Side::Chargebee => Some(record.id.clone()),
        };
        code.map(|c| format!("code:{c}"))
            .into_iter()
            .chain(get_str(&record.fields, "name").map(|n| format!("name:{n}")))
            .collect()
    }

    fn cross_id(&self, _cx: &SyncContext, side: Side, record: &Observed) -> Option<String> {
        match side {
            Side::Chargebee => get_str(&record.fields, CROSS_ID).map(str::to_owned),
            Side::Webcrm => None,
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
            Side::Webcrm => Self::read_catalogue_item(cx, id).await,
            Side::Chargebee => Self::read_item(cx, id).await,
        }
    }

    async fn write(
        &self,
        cx: &SyncContext,
        side: Side,
        current: &Observed,
        changes: &Fields,
    ) -> Result<Option<String>, SyncError> {
        let currency = Self::currency(cx);
        match side {
            Side::Webcrm => {
                let mut item: LinkedDataItem = from_raw(&current.raw, "catalogue item")?;
                apply_to_item(&mut item, changes, &currency)?;
                cx.webcrm
                    .update_linked_data_item(webcrm_id(&current.id)?, &item)
                    .await?;
                Ok(None)
            }
            Side::Chargebee => {
                let mut target = current.fields.clone();
                target.extend(changes.clone());
                check_limits(&target, LIMITS)?;
                let meta = current.raw["item"].get("metadata");
                let mut version = current.version.clone();
                if let Some(update) = item_update(changes, meta) {
                    let item = cx.chargebee.update_item(&current.id, &update, None).await?;
                    version = item.resource_version.map(|v| v.to_string());
                }
                if changes.contains_key("price") {
                    if let Some(minor) = minor_units(changes, &currency)? {
                        let price: Option<ItemPrice> = match &current.raw["item_price"] {
                            Value::Null => None,
                            v => Some(from_raw(v, "item price")?),
                        };
                        Self::upsert_price(
                            cx,
                            &current.id,
                            get_str(&target, "name"),
                            minor,
                            &currency,
                            price.is_some(),
                        )
                        .await?;
                    }
                }
                // The link follows the item's version; a price change has its own.
                Ok(version)
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
            Side::Webcrm => Self::create_item(cx, source).await,
            Side::Chargebee => Self::create_catalogue_item(cx, source).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(price: f64) -> LinkedDataItem {
        LinkedDataItem {
            id: Some(12),
            data1: Some("SKU 1/A".into()),
            data2: Some(" Widget ".into()),
            data_memo: Some("A fine widget".into()),
            price: Some(price),
            entity_type: Some(PRODUCT.into()),
            ..LinkedDataItem::default()
        }
    }

    fn fields(v: Value) -> Fields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn catalogue_item_maps_every_property() {
        let f = webcrm_fields(&catalogue(199.95), "DKK").unwrap();
        assert_eq!(
            f,
            fields(
                json!({"name": "Widget", "description": "A fine widget", "price": "199.95",
                          "webcrm_linked_data_id": "12"})
            )
        );
        let blank = LinkedDataItem {
            data2: Some("-".into()),
            ..catalogue(0.0)
        };
        assert_eq!(webcrm_fields(&blank, "EUR").unwrap()["name"], Value::Null);
    }

    #[test]
    fn prices_convert_exactly_in_both_directions() {
        for (major, currency, minor) in [
            (199.95, "DKK", 19995),
            (500.0, "JPY", 500),
            (1.234, "KWD", 1234),
        ] {
            let f = webcrm_fields(&catalogue(major), currency).unwrap();
            assert_eq!(
                minor_units(&f, currency).unwrap(),
                Some(minor),
                "{currency}"
            );
            let item = Item {
                id: "x".into(),
                name: Some("Widget".into()),
                description: Some("A fine widget".into()),
                metadata: Some(json!("{\"webcrm_linked_data_id\":\"12\"}")),
                ..Item::default()
            };
            let price = ItemPrice {
                id: price_id("x", currency),
                price: Some(minor),
                status: Some("active".into()),
                ..ItemPrice::default()
            };
            assert_eq!(
                chargebee_fields(&item, Some(&price), currency),
                f,
                "{currency}"
            );
            let mut back = LinkedDataItem::default();
            apply_to_item(&mut back, &f, currency).unwrap();
            assert_eq!(back.price, Some(major), "{currency}");
        }
    }

    #[test]
    fn archived_price_is_no_price() {
        let item = Item {
            id: "x".into(),
            ..Item::default()
        };
        let price = ItemPrice {
            price: Some(100),
            status: Some("archived".into()),
            ..ItemPrice::default()
        };
        assert_eq!(
            chargebee_fields(&item, Some(&price), "EUR")["price"],
            Value::Null
        );
    }

    #[test]
    fn item_ids_come_from_the_code_or_the_catalogue_id() {
        assert_eq!(item_id_for(Some("SKU 1/A"), "12"), "SKU-1-A");
        assert_eq!(item_id_for(Some("-"), "12"), "wc-prod-12");
        assert_eq!(item_id_for(None, "12"), "wc-prod-12");
        assert_eq!(item_id_for(Some(&"x".repeat(101)), "12"), "wc-prod-12");
        assert_eq!(price_id("SKU-1-A", "DKK"), "SKU-1-A-DKK");
    }

    #[test]
    fn item_update_sets_external_name_clears_description_and_keeps_metadata() {
        let changes =
            fields(json!({"name": "New", "description": null, "webcrm_linked_data_id": "5"}));
        let u = item_update(&changes, Some(&json!("{\"other\":1}"))).unwrap();
        assert_eq!(u.name.as_deref(), Some("New"));
        assert_eq!(u.external_name.as_deref(), Some("New"));
        assert_eq!(u.clear, vec!["description".to_owned()]);
        assert_eq!(
            u.metadata,
            Some(json!({"other": 1, "webcrm_linked_data_id": "5"}))
        );
        assert!(item_update(&fields(json!({"price": "1.00"})), None).is_none());
    }

    #[test]
    fn chargebee_item_becomes_a_catalogue_item_with_its_id_as_code() {
        let f = fields(json!({"name": "Gadget", "description": null, "price": "19.99"}));
        let item = catalogue_item_for("gadget", &f, "EUR").unwrap();
        assert_eq!(item.data1.as_deref(), Some("gadget"));
        assert_eq!(item.data2.as_deref(), Some("Gadget"));
        assert_eq!(item.data_memo, None);
        assert_eq!(item.price, Some(19.99));
        assert_eq!(item.entity_type.as_deref(), Some("Product"));
        let nameless = catalogue_item_for("g", &fields(json!({})), "EUR").unwrap();
        assert_eq!(
            nameless.data2.as_deref(),
            Some("-"),
            "webCRM rejects empty Data values"
        );
    }
}
