//! Webhook delivery: every event is POSTed as JSON to each enabled endpoint with HTTP Basic
//! auth, optionally duplicated or reordered to mimic Chargebee's at-least-once, unordered
//! delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::state::{Delivery, State};

/// Delivery faults, changeable while the sandbox runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFaults {
    /// Deliver every event twice.
    pub duplicate: bool,
    /// Collect up to this many events (waiting at most 500 ms) and deliver them in reverse
    /// order. 0 or 1: in order.
    pub reorder_window: usize,
}

struct Target {
    endpoint_id: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
}

fn targets(state: &State, event_type: &str) -> Vec<Target> {
    let mut endpoints: Vec<_> = state.webhook_endpoints.rows.values().collect();
    endpoints.sort_by_key(|r| r.seq);
    endpoints
        .into_iter()
        .filter(|r| r.data.get("disabled") != Some(&json!(true)))
        .filter(
            |r| match r.data.get("enabled_events").and_then(Value::as_array) {
                Some(list) if !list.is_empty() => {
                    list.iter().any(|e| e.as_str() == Some(event_type))
                }
                _ => true,
            },
        )
        .filter_map(|r| {
            let id = r.data.get("id")?.as_str()?.to_string();
            let url = r.data.get("url")?.as_str()?.to_string();
            let auth = state.endpoint_auth.get(&id).cloned().unwrap_or_default();
            Some(Target {
                endpoint_id: id,
                url,
                username: auth.username,
                password: auth.password,
            })
        })
        .collect()
}

async fn deliver(
    http: &reqwest::Client,
    state: &Arc<Mutex<State>>,
    faults: &Arc<Mutex<WebhookFaults>>,
    event: &Value,
) {
    let event_id = event
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let event_type = event
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (targets, duplicate) = {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        let dup = faults.lock().unwrap_or_else(|e| e.into_inner()).duplicate;
        (targets(&st, &event_type), dup)
    };
    let mut statuses = Vec::new();
    for target in targets {
        let times = if duplicate { 2 } else { 1 };
        let mut last_ok = false;
        for _ in 0..times {
            let mut req = http.post(&target.url).json(event);
            if let Some(user) = &target.username {
                req = req.basic_auth(user, target.password.as_deref());
            }
            let status = req.send().await.ok().map(|r| r.status().as_u16());
            last_ok = status.is_some_and(|s| (200..300).contains(&s));
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.deliveries.push(Delivery {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                endpoint_id: target.endpoint_id.clone(),
                url: target.url.clone(),
                status,
            });
        }
        statuses.push((target.endpoint_id, last_ok));
    }
    if statuses.is_empty() {
        return;
    }
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ev) = st.events.get_mut(&event_id) {
        let all_ok = statuses.iter().all(|(_, ok)| *ok);
        ev.insert(
            "webhook_status".into(),
            json!(if all_ok { "succeeded" } else { "re_scheduled" }),
        );
        let hooks: Vec<Value> = statuses
            .iter()
            .map(|(id, ok)| {
                json!({
                    "id": id,
                    "webhook_status": if *ok { "succeeded" } else { "re_scheduled" },
                    "object": "webhook",
                })
            })
            .collect();
        ev.insert("webhooks".into(), Value::Array(hooks));
    }
}

/// Run the delivery loop until the channel closes.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Value>,
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<WebhookFaults>>,
) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .user_agent("ChargeBee")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "sandbox webhook sender could not start");
            return;
        }
    };
    while let Some(first) = rx.recv().await {
        let window = faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reorder_window;
        let mut batch = vec![first];
        if window > 1 {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while batch.len() < window {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(ev)) => batch.push(ev),
                    _ => break,
                }
            }
            batch.reverse();
        }
        for event in &batch {
            deliver(&http, &state, &faults, event).await;
        }
    }
}
