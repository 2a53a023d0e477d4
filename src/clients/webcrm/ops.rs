//! The webCRM operations this service uses, one method per endpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::clients::outbound::ApiError;

use super::client::{decode_json, parse_created_id, WebcrmClient};
use super::dto::{Hook, HookEntity};
use super::entities::{
    LinkedDataItem, LinkedSetup, Opportunity, Organisation, Person, QuotationLine,
    QuotationLineUpdate, User,
};
use super::query::{col, Order, Query, Table};

/// A row of a `/Queries` answer: an untyped object (columns of the table plus whatever raw
/// columns webCRM adds, such as `RowNumber`).
pub type QueryRow = Map<String, Value>;

fn id_of(value: i64, what: &str) -> Result<i32, ApiError> {
    i32::try_from(value).map_err(|_| ApiError::Decode(format!("{what} id {value} out of range")))
}

fn required_id(body: &[u8], what: &str) -> Result<i32, ApiError> {
    match parse_created_id(body)? {
        Some(id) => id_of(id, what),
        None => Err(ApiError::Decode(format!(
            "webCRM answered a {what} create without an id"
        ))),
    }
}

fn query_error(e: super::query::QueryError) -> ApiError {
    ApiError::Decode(format!("could not build a webCRM query: {e}"))
}

impl WebcrmClient {
    // ----- Organisations -------------------------------------------------------------

    /// `GET /Organisations` (all pages).
    pub fn organisations(&self) -> BoxStream<'static, Result<Organisation, ApiError>> {
        self.paged("organisation.list", "/Organisations".into(), Vec::new())
    }

    /// `GET /Organisations?Page&Size` (one page).
    pub async fn organisations_page(
        &self,
        page: u32,
        size: u32,
    ) -> Result<Vec<Organisation>, ApiError> {
        self.page("organisation.list", "/Organisations", &[], page, size)
            .await
    }

    /// `GET /Organisations/{id}`.
    pub async fn get_organisation(&self, id: i32) -> Result<Organisation, ApiError> {
        self.get_record("organisation.get", &format!("/Organisations/{id}"))
            .await
    }

    /// `POST /Organisations`. webCRM's specification answers with no body, so the id is
    /// `None` unless the server sends one; use [`Self::create_organisation_with_marker`] to
    /// learn it.
    pub async fn create_organisation(&self, org: &Organisation) -> Result<Option<i32>, ApiError> {
        let mut body = org.clone();
        body.id = Some(0);
        let raw = self
            .send_json("organisation.create", Method::POST, "/Organisations", &body)
            .await?;
        parse_created_id(&raw.body)?
            .map(|id| id_of(id, "organisation"))
            .transpose()
    }

    /// `PUT /Organisations/{id}` with the whole record (GET, change, PUT).
    pub async fn update_organisation(&self, id: i32, org: &Organisation) -> Result<(), ApiError> {
        let mut body = org.clone();
        body.id = Some(id);
        self.send_json(
            "organisation.update",
            Method::PUT,
            &format!("/Organisations/{id}"),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// `GET /Organisations/{id}/Persons` (all pages).
    pub fn organisation_persons(&self, id: i32) -> BoxStream<'static, Result<Person, ApiError>> {
        self.paged(
            "organisation.persons",
            format!("/Organisations/{id}/Persons"),
            Vec::new(),
        )
    }

    /// Organisations whose text column `field` equals `value` (through `/Queries`).
    pub async fn find_organisations_by(
        &self,
        field: &str,
        value: &str,
    ) -> Result<Vec<Organisation>, ApiError> {
        let query = Query::from(Table::Organisation)
            .filter(col(field).eq(value))
            .order_by("OrganisationId", Order::Asc);
        self.query_as(&query).try_collect().await
    }

    /// Creates an organisation carrying `marker` in the text column `marker_field` (a custom
    /// field such as `OrganisationExtraCustom1`) and returns its id.
    ///
    /// `POST /Organisations` returns no id, so the record is found again by its marker. The
    /// marker is looked up first as well: when an earlier attempt created the record but
    /// failed before learning its id, this returns that record instead of creating a second
    /// one. Two records with the same marker are refused (409, `duplicate_marker`).
    pub async fn create_organisation_with_marker(
        &self,
        org: &Organisation,
        marker_field: &str,
        marker: &str,
    ) -> Result<i32, ApiError> {
        if let Some(id) = self.organisation_id_by_marker(marker_field, marker).await? {
            return Ok(id);
        }
        let mut value = serde_json::to_value(org)
            .map_err(|e| ApiError::Decode(format!("could not encode the organisation: {e}")))?;
        if let Value::Object(map) = &mut value {
            map.insert(marker_field.to_owned(), Value::String(marker.to_owned()));
            map.insert("OrganisationId".to_owned(), Value::from(0));
        }
        let raw = self
            .send_json(
                "organisation.create",
                Method::POST,
                "/Organisations",
                &value,
            )
            .await?;
        if let Some(id) = parse_created_id(&raw.body)? {
            return id_of(id, "organisation");
        }
        for delay_ms in [0u64, 200, 500, 1000] {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            if let Some(id) = self.organisation_id_by_marker(marker_field, marker).await? {
                return Ok(id);
            }
        }
        Err(ApiError::Transient(
            "created organisation not found by its marker yet".to_owned(),
        ))
    }

    /// The id of the one organisation whose `marker_field` equals `marker`.
    pub async fn organisation_id_by_marker(
        &self,
        marker_field: &str,
        marker: &str,
    ) -> Result<Option<i32>, ApiError> {
        let ids = self
            .ids_where_text_is(Table::Organisation, marker_field, marker)
            .await?;
        match ids.as_slice() {
            [] => Ok(None),
            [one] => id_of(*one, "organisation").map(Some),
            many => Err(ApiError::Rejected {
                status: 409,
                api_error_code: Some("duplicate_marker".to_owned()),
                param: Some(marker_field.to_owned()),
                message: format!(
                    "{} webCRM organisations carry the same marker in {marker_field}",
                    many.len()
                ),
            }),
        }
    }

    /// Ids of the `table` records whose text column `field` is exactly `value`, ascending
    /// (the sync's markers: how a create finds what an interrupted attempt made).
    pub async fn ids_where_text_is(
        &self,
        table: Table,
        field: &str,
        value: &str,
    ) -> Result<Vec<i64>, ApiError> {
        let id_column = table.id_column();
        let query = Query::from(table)
            .select([id_column, field])
            .filter(col(field).eq(value));
        let rows: Vec<QueryRow> = self.query_rows(&query).try_collect().await?;
        // The comparison in webCRM may ignore case; only an exact match counts.
        let mut ids: Vec<i64> = rows
            .iter()
            .filter(|row| {
                row.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .and_then(|(_, v)| v.as_str())
                    == Some(value)
            })
            .filter_map(|row| row_id(row, id_column))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    // ----- Persons -------------------------------------------------------------------

    /// `GET /Persons` (all pages).
    pub fn persons(&self) -> BoxStream<'static, Result<Person, ApiError>> {
        self.paged("person.list", "/Persons".into(), Vec::new())
    }

    /// `GET /Persons?Page&Size` (one page).
    pub async fn persons_page(&self, page: u32, size: u32) -> Result<Vec<Person>, ApiError> {
        self.page("person.list", "/Persons", &[], page, size).await
    }

    /// `GET /Persons/{id}`.
    pub async fn get_person(&self, id: i32) -> Result<Person, ApiError> {
        self.get_record("person.get", &format!("/Persons/{id}"))
            .await
    }

    /// `POST /Persons`, returns the new id. webCRM requires `PersonLastName`.
    pub async fn create_person(&self, person: &Person) -> Result<i32, ApiError> {
        let mut body = person.clone();
        body.id = Some(0);
        let raw = self
            .send_json("person.create", Method::POST, "/Persons", &body)
            .await?;
        required_id(&raw.body, "person")
    }

    /// `PUT /Persons/{id}` with the whole record.
    pub async fn update_person(&self, id: i32, person: &Person) -> Result<(), ApiError> {
        let mut body = person.clone();
        body.id = Some(id);
        self.send_json(
            "person.update",
            Method::PUT,
            &format!("/Persons/{id}"),
            &body,
        )
        .await
        .map(|_| ())
    }

    // ----- Users ---------------------------------------------------------------------

    /// `GET /Users` (all pages).
    pub fn users(&self) -> BoxStream<'static, Result<User, ApiError>> {
        self.paged("user.list", "/Users".into(), Vec::new())
    }

    /// `GET /Users/AllActive` (all pages).
    pub fn active_users(&self) -> BoxStream<'static, Result<User, ApiError>> {
        self.paged("user.list_active", "/Users/AllActive".into(), Vec::new())
    }

    /// `GET /Users/{id}`.
    pub async fn get_user(&self, id: i32) -> Result<User, ApiError> {
        self.get_record("user.get", &format!("/Users/{id}")).await
    }

    /// `POST /Users` (the specification returns no id).
    pub async fn create_user(&self, user: &User) -> Result<Option<i32>, ApiError> {
        let mut body = user.clone();
        body.id = Some(0);
        let raw = self
            .send_json("user.create", Method::POST, "/Users", &body)
            .await?;
        parse_created_id(&raw.body)?
            .map(|id| id_of(id, "user"))
            .transpose()
    }

    /// `PUT /Users/{id}` with the whole record (password-like fields are sent back as read).
    pub async fn update_user(&self, id: i32, user: &User) -> Result<(), ApiError> {
        let mut body = user.clone();
        body.id = Some(id);
        self.send_json("user.update", Method::PUT, &format!("/Users/{id}"), &body)
            .await
            .map(|_| ())
    }

    // ----- Opportunities -------------------------------------------------------------

    /// `GET /Opportunities` (all pages).
    pub fn opportunities(&self) -> BoxStream<'static, Result<Opportunity, ApiError>> {
        self.paged("opportunity.list", "/Opportunities".into(), Vec::new())
    }

    /// `GET /Opportunities/{id}`.
    pub async fn get_opportunity(&self, id: i32) -> Result<Opportunity, ApiError> {
        self.get_record("opportunity.get", &format!("/Opportunities/{id}"))
            .await
    }

    /// `POST /Opportunities`, returns the new id.
    pub async fn create_opportunity(&self, opportunity: &Opportunity) -> Result<i32, ApiError> {
        let mut body = opportunity.clone();
        body.id = Some(0);
        let raw = self
            .send_json("opportunity.create", Method::POST, "/Opportunities", &body)
            .await?;
        required_id(&raw.body, "opportunity")
    }

    /// `PUT /Opportunities/{id}` with the whole record.
    pub async fn update_opportunity(
        &self,
        id: i32,
        opportunity: &Opportunity,
    ) -> Result<(), ApiError> {
        let mut body = opportunity.clone();
        body.id = Some(id);
        self.send_json(
            "opportunity.update",
            Method::PUT,
            &format!("/Opportunities/{id}"),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// `GET /Opportunities/{id}/QuotationLines` (all pages).
    pub fn opportunity_quotation_lines(
        &self,
        id: i32,
    ) -> BoxStream<'static, Result<QuotationLine, ApiError>> {
        self.paged(
            "opportunity.quotation_lines",
            format!("/Opportunities/{id}/QuotationLines"),
            Vec::new(),
        )
    }

    // ----- Quotation lines -----------------------------------------------------------

    /// `GET /QuotationLines` (all pages).
    pub fn quotation_lines(&self) -> BoxStream<'static, Result<QuotationLine, ApiError>> {
        self.paged("quotation_line.list", "/QuotationLines".into(), Vec::new())
    }

    /// `GET /QuotationLines/{id}`.
    pub async fn get_quotation_line(&self, id: i32) -> Result<QuotationLine, ApiError> {
        self.get_record("quotation_line.get", &format!("/QuotationLines/{id}"))
            .await
    }

    /// `POST /QuotationLines` (an update DTO), returns the new id.
    pub async fn create_quotation_line(&self, line: &QuotationLineUpdate) -> Result<i32, ApiError> {
        let mut body = line.clone();
        body.id = Some(0);
        let raw = self
            .send_json(
                "quotation_line.create",
                Method::POST,
                "/QuotationLines",
                &body,
            )
            .await?;
        required_id(&raw.body, "quotation line")
    }

    /// `PUT /QuotationLines/{id}` (an update DTO).
    pub async fn update_quotation_line(
        &self,
        id: i32,
        line: &QuotationLineUpdate,
    ) -> Result<(), ApiError> {
        let mut body = line.clone();
        body.id = Some(id);
        self.send_json(
            "quotation_line.update",
            Method::PUT,
            &format!("/QuotationLines/{id}"),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /QuotationLines/{id}`.
    pub async fn delete_quotation_line(&self, id: i32) -> Result<(), ApiError> {
        self.request(
            "quotation_line.delete",
            Method::DELETE,
            &format!("/QuotationLines/{id}"),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    // ----- Product catalogue (quotation-line linked data) -----------------------------

    /// `GET /QuotationLines/LinkedData` (the whole catalogue; not paged).
    pub async fn linked_data_items(&self) -> Result<Vec<LinkedDataItem>, ApiError> {
        self.get_json("linked_data.list", "/QuotationLines/LinkedData", &[])
            .await
    }

    /// `GET /QuotationLines/LinkedData/{id}`.
    pub async fn get_linked_data_item(&self, id: i32) -> Result<LinkedDataItem, ApiError> {
        self.get_record(
            "linked_data.get",
            &format!("/QuotationLines/LinkedData/{id}"),
        )
        .await
    }

    /// `POST /QuotationLines/LinkedData`, returns the new id.
    pub async fn create_linked_data_item(&self, item: &LinkedDataItem) -> Result<i32, ApiError> {
        let mut body = item.clone();
        body.id = Some(0);
        let raw = self
            .send_json(
                "linked_data.create",
                Method::POST,
                "/QuotationLines/LinkedData",
                &body,
            )
            .await?;
        required_id(&raw.body, "catalogue item")
    }

    /// `PUT /QuotationLines/LinkedData/{id}`.
    pub async fn update_linked_data_item(
        &self,
        id: i32,
        item: &LinkedDataItem,
    ) -> Result<(), ApiError> {
        let mut body = item.clone();
        body.id = Some(id);
        self.send_json(
            "linked_data.update",
            Method::PUT,
            &format!("/QuotationLines/LinkedData/{id}"),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /QuotationLines/LinkedData/{id}` (one item; the collection-wide DELETE that
    /// erases the whole catalogue is deliberately not offered).
    pub async fn delete_linked_data_item(&self, id: i32) -> Result<(), ApiError> {
        self.request(
            "linked_data.delete",
            Method::DELETE,
            &format!("/QuotationLines/LinkedData/{id}"),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /QuotationLines/LinkedSetup`: which `Data` column of the catalogue is what.
    pub async fn linked_setup(&self) -> Result<LinkedSetup, ApiError> {
        self.get_record("linked_setup.get", "/QuotationLines/LinkedSetup")
            .await
    }

    // ----- Hooks ---------------------------------------------------------------------

    /// `GET /{Entity}/Hooks` (all pages; webCRM returns the caller's own hooks).
    pub fn hooks(&self, entity: HookEntity) -> BoxStream<'static, Result<Hook, ApiError>> {
        self.paged(
            "hook.list",
            format!("/{}/Hooks", entity.collection()),
            Vec::new(),
        )
    }

    /// `GET /{Entity}/Hooks/{id}`.
    pub async fn get_hook(&self, entity: HookEntity, id: i64) -> Result<Hook, ApiError> {
        self.get_record("hook.get", &format!("/{}/Hooks/{id}", entity.collection()))
            .await
    }

    /// `POST /{Entity}/Hooks`, returns the new hook id.
    pub async fn create_hook(&self, entity: HookEntity, hook: &Hook) -> Result<i64, ApiError> {
        let mut body = hook.clone();
        body.id = 0;
        let raw = self
            .send_json(
                "hook.create",
                Method::POST,
                &format!("/{}/Hooks", entity.collection()),
                &body,
            )
            .await?;
        parse_created_id(&raw.body)?
            .ok_or_else(|| ApiError::Decode("webCRM answered a hook create without an id".into()))
    }

    /// `PUT /{Entity}/Hooks/{id}`.
    pub async fn update_hook(
        &self,
        entity: HookEntity,
        id: i64,
        hook: &Hook,
    ) -> Result<(), ApiError> {
        let mut body = hook.clone();
        body.id = id;
        self.send_json(
            "hook.update",
            Method::PUT,
            &format!("/{}/Hooks/{id}", entity.collection()),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /{Entity}/Hooks/{id}`.
    pub async fn delete_hook(&self, entity: HookEntity, id: i64) -> Result<(), ApiError> {
        self.request(
            "hook.delete",
            Method::DELETE,
            &format!("/{}/Hooks/{id}", entity.collection()),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    // ----- Queries -------------------------------------------------------------------

    /// One page of `GET /Queries?script=…&Page&Size&formatCustomFields=true`.
    pub async fn query_page(
        &self,
        query: &Query,
        page: u32,
        size: u32,
    ) -> Result<Vec<QueryRow>, ApiError> {
        let script = query.to_script().map_err(query_error)?;
        let extra = [
            ("script", script),
            ("formatCustomFields", "true".to_owned()),
        ];
        self.page("query", "/Queries", &extra, page, size).await
    }

    /// Every row of a query, paged.
    pub fn query_rows(&self, query: &Query) -> BoxStream<'static, Result<QueryRow, ApiError>> {
        match query.to_script() {
            Ok(script) => self.paged(
                "query",
                "/Queries".into(),
                vec![
                    ("script", script),
                    ("formatCustomFields", "true".to_owned()),
                ],
            ),
            Err(e) => futures::stream::once(async move { Err(query_error(e)) }).boxed(),
        }
    }

    /// Every row of a query decoded as `T` (columns it does not know land in `extra`).
    pub fn query_as<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &Query,
    ) -> BoxStream<'static, Result<T, ApiError>> {
        self.query_rows(query)
            .and_then(|row| async move {
                let bytes = serde_json::to_vec(&row)
                    .map_err(|e| ApiError::Decode(format!("query row: {e}")))?;
                decode_json(&bytes)
            })
            .boxed()
    }

    /// Records of `table` changed at or after `since`, oldest first (the poller's delta).
    pub fn changed_since<T: DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        since: DateTime<Utc>,
    ) -> BoxStream<'static, Result<T, ApiError>> {
        let query = Query::from(table)
            .filter(col(table.updated_at_column()).ge(since))
            .order_by(table.updated_at_column(), Order::Asc)
            .order_by(table.id_column(), Order::Asc);
        self.query_as(&query)
    }

    /// Every id of `table` (the reconciler's sweep).
    pub fn all_ids(&self, table: Table) -> BoxStream<'static, Result<i64, ApiError>> {
        let query = Query::from(table)
            .select([table.id_column()])
            .order_by(table.id_column(), Order::Asc);
        let id_column = table.id_column();
        self.query_rows(&query)
            .and_then(move |row| async move {
                row_id(&row, id_column)
                    .ok_or_else(|| ApiError::Decode(format!("query row without {id_column}")))
            })
            .boxed()
    }
}

/// The integer in column `name` (case-insensitive; numbers or numeric text).
pub fn row_id(row: &QueryRow, name: &str) -> Option<i64> {
    let value = row.get(name).or_else(|| {
        row.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}
