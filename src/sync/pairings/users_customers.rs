//! `users_customers`: webCRM Users <-> Chargebee Customers (MAPPINGS.md §2).
//!
//! webCRM keeps one `UserName`; Chargebee splits it at the last space. Active users get a
//! customer `wc-user-{UserId}`; a customer never creates a webCRM user (that would create a
//! login). A User record carries password-like fields: it is never logged.

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::clients::chargebee::{is_duplicate, Customer, CustomerCreate, CustomerUpdate};
use crate::clients::webcrm::User;
use crate::intake::Side;

use super::super::merge::{Fields, Observed, Rule};
use super::super::normalize::text;
use super::super::pairing::{Created, Pairing, SyncContext, SyncError};
use super::super::values::{
    email_value, found, from_raw, get_str, raw, text_value, touches, webcrm_id, webcrm_ms,
};
use super::persons_customers::read_customer;
use super::{
    check_limits, cross_id_in, customer_in_event, customer_observed_as, email_keys, live_customers,
    meta_with, own_version, Limit,
};

pub const NAME: &str = "users_customers";

const RULES: &[Rule] = &[
    Rule::both("first_name"),
    Rule::both("last_name"),
    Rule::both("email"),
    Rule::both("phone"),
    Rule::to_chargebee("webcrm_user_id"),
];

const LIMITS: &[Limit] = &[
    ("first_name", 150),
    ("last_name", 150),
    ("email", 70),
    ("phone", 50),
];

pub fn webcrm_fields(user: &User) -> Fields {
    let (first, last) = user
        .name
        .as_deref()
        .map(text::split_name)
        .unwrap_or((None, None));
    let phone = text::clean(user.telephone.as_deref())
        .or_else(|| text::clean(user.mobile_phone.as_deref()));
    let mut f = Fields::new();
    f.insert(
        "first_name".into(),
        first.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert(
        "last_name".into(),
        last.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert("email".into(), email_value(user.email.as_deref()));
    f.insert(
        "phone".into(),
        phone.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert(
        "webcrm_user_id".into(),
        user.id.map(|i| json!(i.to_string())).unwrap_or(Value::Null),
    );
    f
}

pub fn chargebee_fields(c: &Customer) -> Fields {
    let mut f = Fields::new();
    f.insert("first_name".into(), text_value(c.first_name.as_deref()));
    f.insert("last_name".into(), text_value(c.last_name.as_deref()));
    f.insert("email".into(), email_value(c.email.as_deref()));
    f.insert("phone".into(), text_value(c.phone.as_deref()));
    f.insert(
        "webcrm_user_id".into(),
        c.meta_data
            .as_ref()
            .and_then(|m| m.get("webcrm_user_id"))
            .map(|v| match v {
                Value::String(s) => text_value(Some(s)),
                Value::Number(n) => json!(n.to_string()),
                _ => Value::Null,
            })
            .unwrap_or(Value::Null),
    );
    f
}

/// Puts the changes onto the user; the name is joined from the resulting first and last.
pub fn apply_to_user(user: &mut User, current: &Fields, changes: &Fields) {
    let mut target = current.clone();
    target.extend(changes.clone());
    if touches(changes, &["first_name", "last_name"]) {
        user.name = text::join_name(
            get_str(&target, "first_name"),
            get_str(&target, "last_name"),
        );
    }
    if changes.contains_key("email") {
        user.email = get_str(changes, "email").map(str::to_owned);
    }
    if changes.contains_key("phone") {
        user.telephone = get_str(changes, "phone").map(str::to_owned);
    }
}

pub fn customer_create(id: &str, fields: &Fields) -> CustomerCreate {
    let owned = |n: &str| get_str(fields, n).map(str::to_owned);
    CustomerCreate {
        id: Some(id.to_owned()),
        first_name: owned("first_name"),
        last_name: owned("last_name"),
        email: owned("email"),
        phone: owned("phone"),
        meta_data: Some(meta_with(None, fields, &["webcrm_user_id"])),
        ..CustomerCreate::default()
    }
}

pub fn customer_update(changes: &Fields, current_meta: Option<&Value>) -> CustomerUpdate {
    let mut clear = Vec::new();
    let mut set = |name: &str| match changes.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            clear.push(name.to_owned());
            None
        }
        None => None,
    };
    let update = CustomerUpdate {
        first_name: set("first_name"),
        last_name: set("last_name"),
        email: set("email"),
        phone: set("phone"),
        meta_data: changes
            .contains_key("webcrm_user_id")
            .then(|| meta_with(current_meta, changes, &["webcrm_user_id"])),
        ..CustomerUpdate::default()
    };
    CustomerUpdate { clear, ..update }
}

fn user_observed(id: &str, user: &User) -> Observed {
    Observed {
        id: id.to_owned(),
        fields: webcrm_fields(user),
        changed_at: webcrm_ms(user.updated_at),
        version: user.updated_at.map(|t| t.to_rfc3339()),
        raw: raw(user),
    }
}

fn customer_observed(customer: &Customer) -> Observed {
    customer_observed_as(customer, chargebee_fields(customer))
}

pub struct UsersCustomers;

#[async_trait]
impl Pairing for UsersCustomers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn list(&self, cx: &SyncContext, side: Side) -> Result<Option<Vec<Observed>>, SyncError> {
        Ok(Some(match side {
            Side::Webcrm => {
                let users: Vec<User> = cx.webcrm.users().try_collect().await?;
                users
                    .iter()
                    .filter_map(|u| u.id.map(|id| user_observed(&id.to_string(), u)))
                    .collect()
            }
            Side::Chargebee => live_customers(cx)
                .await?
                .iter()
                .map(customer_observed)
                .collect(),
        }))
    }

    fn reads_back_as_made(&self) -> bool {
        true
    }

    fn belongs_elsewhere(&self, side: Side, id: &str) -> bool {
        side == Side::Chargebee && id.starts_with("wc-person-")
    }

    fn match_keys(&self, _side: Side, record: &Observed) -> Vec<String> {
        email_keys(record)
    }

    fn cross_id(&self, _cx: &SyncContext, side: Side, record: &Observed) -> Option<String> {
        cross_id_in(side, record, "webcrm_user_id")
    }

    async fn read(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        _hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        match side {
            Side::Webcrm => {
                let Some(user) = found(cx.webcrm.get_user(webcrm_id(id)?).await)? else {
                    return Ok(None);
                };
                Ok(Some(user_observed(id, &user)))
            }
            Side::Chargebee => Ok(read_customer(cx, id).await?.as_ref().map(customer_observed)),
        }
    }

    fn record_from_event(&self, id: &str, content: &Value) -> Option<Observed> {
        customer_in_event(id, content)
            .as_ref()
            .map(customer_observed)
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
                let mut user: User = from_raw(&current.raw, "user")?;
                apply_to_user(&mut user, &current.fields, changes);
                cx.webcrm
                    .update_user(webcrm_id(&current.id)?, &user)
                    .await?;
                Ok(None)
            }
            Side::Chargebee => {
                let mut target = current.fields.clone();
                target.extend(changes.clone());
                check_limits(&target, LIMITS)?;
                let update = customer_update(changes, current.raw.get("meta_data"));
                let customer = cx
                    .chargebee
                    .update_customer(&current.id, &update, None)
                    .await?;
                Ok(own_version(&customer_observed(&customer), &target))
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
            Side::Chargebee => {
                // A customer made for a user whose link was lost: link it again.
                if let Some(user_id) = get_str(&source.fields, "webcrm_user_id") {
                    if let Some(user) = self.read(cx, Side::Webcrm, user_id, &Value::Null).await? {
                        return Ok(Created::Found(user));
                    }
                }
                Ok(Created::Skip(
                    "customers never create webCRM users (that would create a login)".into(),
                ))
            }
            Side::Webcrm => {
                let uid: i32 = webcrm_id(&source.id)?;
                let active: Vec<User> = cx.webcrm.active_users().try_collect().await?;
                if !active.iter().any(|u| u.id == Some(uid)) {
                    return Ok(Created::Skip("only active users get a customer".into()));
                }
                check_limits(&source.fields, LIMITS)?;
                let id = format!("wc-user-{uid}");
                let params = customer_create(&id, &source.fields);
                match cx.chargebee.create_customer(&params, &id).await {
                    Ok(c) => Ok(Created::Record(customer_observed(&c))),
                    // Made by an earlier attempt: read it and link.
                    Err(e) if is_duplicate(&e) => Ok(Created::Found(customer_observed(
                        &cx.chargebee.retrieve_customer(&id).await?,
                    ))),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_name_splits_at_the_last_space_and_joins_back() {
        let user = User {
            id: Some(4),
            name: Some("Anna Maria Berg".into()),
            email: Some("AMB@x.io".into()),
            mobile_phone: Some("555".into()),
            ..User::default()
        };
        let f = webcrm_fields(&user);
        assert_eq!(f["first_name"], json!("Anna Maria"));
        assert_eq!(f["last_name"], json!("Berg"));
        assert_eq!(f["email"], json!("amb@x.io"));
        assert_eq!(f["phone"], json!("555"));
        assert_eq!(f["webcrm_user_id"], json!("4"));
        let mut u = user.clone();
        let changes: Fields = serde_json::from_value(json!({"last_name": "Holm"})).unwrap();
        apply_to_user(&mut u, &f, &changes);
        assert_eq!(u.name.as_deref(), Some("Anna Maria Holm"));
    }

    #[test]
    fn created_customer_reads_back_as_the_same_fields() {
        let user = User {
            id: Some(4),
            name: Some("Bo Ek".into()),
            email: Some("bo@x.io".into()),
            telephone: Some("1".into()),
            ..User::default()
        };
        let f = webcrm_fields(&user);
        let p = customer_create("wc-user-4", &f);
        let c = Customer {
            id: "wc-user-4".into(),
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            phone: p.phone,
            meta_data: p.meta_data,
            ..Customer::default()
        };
        assert_eq!(chargebee_fields(&c), f);
    }
}
