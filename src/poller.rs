//! Catch-up polling: the service stays correct when webhooks and hooks are lost.
//!
//! A `poll` job reads what changed since its cursor on one source and entity and enqueues the
//! same `sync` jobs a notification would have: Chargebee's `GET /events` (each event stored
//! and deduplicated on its id exactly like a webhook, so a webhook and a poll of one event run
//! one job), webCRM's `GET /Queries` on each entity's `…UpdatedAt`. The cursor only moves after
//! a complete pass, and every pass re-reads an overlap, because both APIs may show a change a
//! little after its timestamp. Poll jobs are keyed per source and entity, so however many
//! replicas schedule them, one runs at a time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::clients::chargebee::{Event, ListQuery};
use crate::clients::outbound::ApiError;
use crate::clients::webcrm::{parse_webcrm_datetime, row_id, QueryRow, Table};
use crate::config::Config;
use crate::intake::chargebee::{jobs_for, Envelope, SUBSCRIBED_EVENT_TYPES};
use crate::intake::webcrm::{targets, HOOK_ENTITIES};
use crate::intake::POLL_JOB;
use crate::intake::{Side, SyncTarget};
use crate::queue::{JobHandler, Outcome};
use crate::store::{now_ms, DynStore, Job, NewInboundEvent, NewJob, StoreError};
use crate::sync::merge::Snapshot;
use crate::sync::pairing::{Pairing, SyncContext, SyncError};
use crate::sync::pairings::products_items::{self, ProductsItems};
use crate::sync::rekey::outcome_of;

/// How far each pass reaches back before its cursor.
pub const OVERLAP: Duration = Duration::from_secs(120);
/// The Chargebee "entity" polled: its event stream.
pub const CHARGEBEE_EVENTS: &str = "events";
/// The webCRM product catalogue: no hooks and no timestamps, so each poll reads it whole and
/// compares every item with its link's snapshot.
pub const CATALOGUE: &str = "Catalogue";

/// Every poll job of this version, due `now`.
pub fn poll_jobs(now: i64, max_attempts: i32) -> Vec<NewJob> {
    let mut sources: Vec<(&str, &str)> = vec![("chargebee", CHARGEBEE_EVENTS)];
    sources.extend(HOOK_ENTITIES.iter().map(|e| ("webcrm", e.collection)));
    sources.push(("webcrm", CATALOGUE));
    sources
        .into_iter()
        .map(|(source, entity)| NewJob {
            kind: POLL_JOB.into(),
            pairing: None,
            dedupe_key: format!("poll:{source}:{entity}"),
            payload: json!({ "source": source, "entity": entity }),
            run_at: now,
            max_attempts,
        })
        .collect()
}

/// Enqueues every poll job now and then every `POLL_INTERVAL_SECS` until cancelled.
pub async fn schedule(store: DynStore, config: Arc<Config>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(config.poll_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let now = now_ms();
        for job in poll_jobs(now, config.queue.max_attempts) {
            if let Err(e) = store.enqueue(&job, now).await {
                tracing::warn!(error = %e, "could not schedule a poll");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Sync(String),
}

impl From<SyncError> for PollError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Api(e) => PollError::Api(e),
            SyncError::Store(e) => PollError::Store(e),
            other => PollError::Sync(other.to_string()),
        }
    }
}

/// The `poll` job handler.
pub struct Poller {
    /// The store, both clients and the configuration the sync engine uses.
    pub cx: Arc<SyncContext>,
}

#[async_trait]
impl JobHandler for Poller {
    async fn handle(&self, job: &Job) -> Outcome {
        let payload = job.payload_json();
        let (source, entity) = (
            payload["source"].as_str().unwrap_or_default(),
            payload["entity"].as_str().unwrap_or_default(),
        );
        let result = match source {
            "chargebee" if entity == CHARGEBEE_EVENTS => self.chargebee_events().await,
            "webcrm" if entity == CATALOGUE => self.catalogue().await,
            "webcrm" => match webcrm_table(entity) {
                Some(table) => self.webcrm_changes(entity, table).await,
                None => return unknown(source, entity),
            },
            _ => return unknown(source, entity),
        };
        match result {
            Ok(found) => {
                tracing::info!(source, entity, found, "polled");
                Outcome::Done
            }
            Err(PollError::Api(e)) => outcome_of(e),
            Err(PollError::Store(e)) => Outcome::Retry {
                error: e.to_string(),
                retry_after: None,
            },
            Err(PollError::Sync(error)) => Outcome::Fatal { error },
        }
    }
}

fn unknown(source: &str, entity: &str) -> Outcome {
    Outcome::Fatal {
        error: format!("nothing to poll for source {source:?} entity {entity:?}"),
    }
}

/// The query table behind a hook collection.
fn webcrm_table(collection: &str) -> Option<Table> {
    Some(match collection {
        "Organisations" => Table::Organisation,
        "Persons" => Table::Person,
        "Users" => Table::User,
        "Opportunities" => Table::Opportunity,
        "QuotationLines" => Table::QuotationLine,
        _ => return None,
    })
}

fn overlap_secs() -> i64 {
    i64::try_from(OVERLAP.as_secs()).unwrap_or(120)
}

impl Poller {
    fn enabled(&self, pairing: &str) -> bool {
        self.cx.config.pairing(pairing).is_some_and(|p| p.enabled)
    }

    /// Chargebee events since the cursor (unix seconds), stored and planned like webhooks.
    async fn chargebee_events(&self) -> Result<usize, PollError> {
        let started = Utc::now().timestamp();
        let cursor = self
            .cx
            .store
            .cursor("chargebee", CHARGEBEE_EVENTS)
            .await?
            .and_then(|c| c.parse::<i64>().ok());
        let since = cursor.unwrap_or(started) - overlap_secs();
        let query = ListQuery::new()
            .after("occurred_at", since)
            .sort_asc("occurred_at")
            .is_in("event_type", SUBSCRIBED_EVENT_TYPES)
            .limit(100);
        let events: Vec<Event> = self
            .cx
            .chargebee
            .list_all_events(query)
            .try_collect()
            .await?;
        let mut newest = cursor.unwrap_or(started);
        let mut stored = 0;
        for event in &events {
            newest = newest.max(event.occurred_at);
            if self.record_event(event).await? {
                stored += 1;
            }
        }
        self.cx
            .store
            .set_cursor("chargebee", CHARGEBEE_EVENTS, &newest.to_string(), now_ms())
            .await?;
        Ok(stored)
    }

    /// Stores one polled event with its jobs; `false` when a webhook brought it already.
    async fn record_event(&self, event: &Event) -> Result<bool, PollError> {
        let envelope = Envelope {
            id: event.id.clone(),
            event_type: event.event_type.clone().unwrap_or_default(),
            occurred_at: Some(event.occurred_at),
            source: event.source.clone(),
            user: event.user.clone(),
            api_version: event.api_version.clone(),
            content: Value::Object(event.content.clone()),
        };
        let now = now_ms();
        let enabled = |p: &str| self.enabled(p);
        let (jobs, ignored) = jobs_for(&envelope, &enabled, now, self.cx.config.queue.max_attempts);
        let record = NewInboundEvent {
            source: "chargebee".into(),
            event_id: Some(envelope.id.clone()),
            event_type: Some(envelope.event_type.clone()),
            outcome: if ignored.is_some() {
                "ignored"
            } else {
                "accepted"
            }
            .into(),
            detail: Some(match ignored {
                Some(reason) => format!("polled; {reason}"),
                None => "polled".to_owned(),
            }),
            body: serde_json::to_string(event).ok(),
            received_at: now,
            subject: None,
        };
        Ok(matches!(
            self.cx.store.record_inbound(&record, &jobs, now).await?,
            crate::store::Recorded::Stored { .. }
        ))
    }

    /// Every catalogue item whose fields differ from its link's webCRM snapshot (or that has
    /// no link) gets a sync job.
    async fn catalogue(&self) -> Result<usize, PollError> {
        let pairing = ProductsItems;
        if !self.enabled(products_items::NAME) {
            return Ok(0);
        }
        let items = pairing
            .list(&self.cx, Side::Webcrm)
            .await?
            .unwrap_or_default();
        let now = now_ms();
        let mut found = 0;
        for item in &items {
            let link = self
                .cx
                .store
                .link_by_webcrm(products_items::NAME, &item.id)
                .await?;
            let unchanged = link
                .as_ref()
                .is_some_and(|l| Snapshot::parse(&l.snapshot).webcrm == item.fields);
            if unchanged {
                continue;
            }
            let job = SyncTarget {
                pairing: products_items::NAME,
                side: Side::Webcrm,
                id: item.id.clone(),
                hint: json!({ "entity": CATALOGUE, "event_type": "Polled" }),
            }
            .into_job(now, self.cx.config.queue.max_attempts);
            self.cx.store.enqueue(&job, now).await?;
            found += 1;
        }
        self.cx
            .store
            .set_cursor("webcrm", CATALOGUE, &items.len().to_string(), now_ms())
            .await?;
        Ok(found)
    }

    /// webCRM records of one entity changed since the cursor (an RFC 3339 instant).
    async fn webcrm_changes(&self, collection: &str, table: Table) -> Result<usize, PollError> {
        let started = Utc::now();
        let cursor: Option<DateTime<Utc>> = self
            .cx
            .store
            .cursor("webcrm", collection)
            .await?
            .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
            .map(|c| c.with_timezone(&Utc));
        let since = cursor.unwrap_or(started) - chrono::Duration::seconds(overlap_secs());
        let rows: Vec<QueryRow> = self
            .cx
            .webcrm
            .changed_since::<QueryRow>(table, since)
            .try_collect()
            .await?;
        let Some(hook) = HOOK_ENTITIES.iter().find(|e| e.collection == collection) else {
            return Ok(0);
        };
        let now = now_ms();
        let mut newest = cursor.unwrap_or(started);
        let mut found = 0;
        for row in &rows {
            let Some(id) = row_id(row, table.id_column()) else {
                continue;
            };
            if let Some(at) = row
                .get(table.updated_at_column())
                .and_then(Value::as_str)
                .and_then(|s| parse_webcrm_datetime(s).ok().flatten())
            {
                newest = newest.max(at);
            }
            for target in targets(hook, &id.to_string(), Some("Polled")) {
                if self.enabled(target.pairing) {
                    let job = target.into_job(now, self.cx.config.queue.max_attempts);
                    self.cx.store.enqueue(&job, now).await?;
                    found += 1;
                }
            }
        }
        self.cx
            .store
            .set_cursor("webcrm", collection, &newest.to_rfc3339(), now_ms())
            .await?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_poll_job_per_source_and_entity() {
        let jobs = poll_jobs(0, 3);
        let keys: Vec<&str> = jobs.iter().map(|j| j.dedupe_key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "poll:chargebee:events",
                "poll:webcrm:Organisations",
                "poll:webcrm:Persons",
                "poll:webcrm:Opportunities",
                "poll:webcrm:QuotationLines",
                "poll:webcrm:Users",
                "poll:webcrm:Catalogue",
            ]
        );
        assert!(jobs.iter().all(|j| j.kind == POLL_JOB));
    }
}
