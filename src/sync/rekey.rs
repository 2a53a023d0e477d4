//! `rekey_customer` jobs: Chargebee moved a customer to another business entity, which gives
//! it a new id; links that named the old id must name the new one.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::clients::chargebee::ChargebeeClient;
use crate::clients::outbound::ApiError;
use crate::queue::{JobHandler, Outcome};
use crate::store::{now_ms, DynStore, Job};

/// Pairings whose Chargebee side is a customer.
pub const CUSTOMER_PAIRINGS: &[&str] = &["persons_customers", "users_customers"];

pub struct RekeyCustomer {
    pub store: DynStore,
    pub chargebee: Arc<ChargebeeClient>,
}

/// Whether the event, as Chargebee reports it, moves `old_id` to `new_id`.
pub fn confirms_transfer(event_type: &str, content: &Value, old_id: &str, new_id: &str) -> bool {
    let transfer = &content["business_entity_transfer"];
    event_type == "customer_business_entity_changed"
        && transfer["resource_id"].as_str() == Some(old_id)
        && transfer["active_resource_id"].as_str() == Some(new_id)
}

pub fn outcome_of(error: ApiError) -> Outcome {
    if error.is_retryable() {
        Outcome::Retry {
            retry_after: error.retry_after(),
            error: error.to_string(),
        }
    } else {
        Outcome::Fatal {
            error: error.to_string(),
        }
    }
}

#[async_trait]
impl JobHandler for RekeyCustomer {
    async fn handle(&self, job: &Job) -> Outcome {
        let payload = job.payload_json();
        let (Some(event_id), Some(old_id), Some(new_id)) = (
            payload["event_id"].as_str(),
            payload["old_id"].as_str(),
            payload["new_id"].as_str(),
        ) else {
            return Outcome::Fatal {
                error: "rekey job without event_id, old_id and new_id".into(),
            };
        };
        // The webhook was only a hint: ask Chargebee what the event really says.
        let event = match self.chargebee.retrieve_event(event_id).await {
            Ok(e) => e,
            Err(e) => return outcome_of(e),
        };
        let event_type = event.event_type.as_deref().unwrap_or_default();
        let content = Value::Object(event.content);
        if !confirms_transfer(event_type, &content, old_id, new_id) {
            return Outcome::Fatal {
                error: format!(
                    "Chargebee's event {event_id} does not move customer {old_id} to {new_id}"
                ),
            };
        }
        match self
            .store
            .rekey_chargebee_id(CUSTOMER_PAIRINGS, old_id, new_id, job.id, now_ms())
            .await
        {
            Ok(moved) => {
                tracing::info!(old_id, new_id, links = moved, "customer links re-keyed");
                Outcome::Done
            }
            Err(e) => Outcome::Retry {
                error: e.to_string(),
                retry_after: None,
            },
        }
    }
}
