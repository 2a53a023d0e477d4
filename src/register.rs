//! `register-webhooks`: make Chargebee and webCRM notify this service at `PUBLIC_URL`.
//!
//! [`plan`] reads what both accounts have and works out what must change; [`apply`] does it.
//! Only endpoints and hooks whose URL points at our `PUBLIC_URL` (same origin, path prefix
//! and one of our webhook paths) are ours: we create and update those, and never touch,
//! let alone delete, anything else (other integrations share both accounts).
//!
//! Chargebee never shows an endpoint's Basic password, so it cannot be compared. The
//! endpoint's name carries a fingerprint of the credentials instead
//! (`webcrm-chargebee-sync auth:<10 chars>`, an HMAC keyed with `WEBCRM_WEBHOOK_SECRET`, so
//! it reveals nothing about the password): a run whose credentials differ from the ones last
//! sent sees a different name and updates the endpoint; every update sends the credentials.
//! A run where everything readable matches writes nothing. See `docs/webhooks.md`.

use std::collections::BTreeSet;
use std::io::Write;

use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::Sha256;
use url::Url;

use crate::clients::chargebee::{
    ChargebeeClient, ListQuery, WebhookEndpoint, WebhookEndpointCreate, WebhookEndpointUpdate,
};
use crate::clients::outbound::ApiError;
use crate::clients::webcrm::{Hook, HookEntity, HookEventType, WebcrmClient};
use crate::config::{ChargebeeSettings, Config, WebcrmSettings};
use crate::intake::chargebee::SUBSCRIBED_EVENT_TYPES;
use crate::intake::webcrm::{hook_path, HOOK_ENTITIES};

/// Where Chargebee delivers events, below `PUBLIC_URL`.
pub const CHARGEBEE_PATH: &str = "/webhooks/chargebee";
/// Where webCRM hooks call, below `PUBLIC_URL` (then `{entity}/{token}`).
pub const WEBCRM_PATH_PREFIX: &str = "/webhooks/webcrm/";
/// The start of our Chargebee endpoint's name; the credentials fingerprint follows.
pub const ENDPOINT_NAME_PREFIX: &str = "webcrm-chargebee-sync auth:";
/// Chargebee allows this many webhook endpoints per site.
pub const CHARGEBEE_ENDPOINT_LIMIT: usize = 5;
/// The Chargebee API version our intake reads.
pub const API_VERSION: &str = "v2";
/// One hook per entity and event type.
pub const EVENT_TYPES: [HookEventType; 3] = [
    HookEventType::Create,
    HookEventType::Update,
    HookEventType::Delete,
];

/// Why registering could not be planned or applied. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `PUBLIC_URL` is missing or unusable.
    #[error("PUBLIC_URL {0}")]
    PublicUrl(String),
    /// Some other setting is missing (the API credentials).
    #[error("{0}")]
    Config(String),
    /// Creating our endpoint would exceed Chargebee's limit.
    #[error(
        "Chargebee allows at most {limit} webhook endpoints per site and this site has {count}, \
         none of them pointing at {url}; remove or repoint one in Chargebee (Settings > \
         Webhooks) and run register-webhooks again"
    )]
    EndpointLimit {
        limit: usize,
        count: usize,
        url: String,
    },
    /// The plan was made for another `PUBLIC_URL` than the configuration now names.
    #[error("the plan was made for PUBLIC_URL {planned} but the configuration says {current}; plan again")]
    StalePlan { planned: String, current: String },
    /// An API call failed.
    #[error("{what} failed: {source}{}", done_note(*.done))]
    Api {
        what: String,
        done: usize,
        #[source]
        source: ApiError,
    },
}

fn done_note(done: usize) -> String {
    match done {
        0 => String::new(),
        n => format!(" ({n} earlier changes were applied; run register-webhooks again to finish)"),
    }
}

/// What a run does to one endpoint or hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
        }
    }
}

/// What to do to our Chargebee webhook endpoint. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointPlan {
    pub action: Action,
    /// The existing endpoint (update, unchanged).
    pub endpoint_id: Option<String>,
    pub name: String,
    pub url: String,
    pub api_version: &'static str,
    pub enabled_events: Vec<&'static str>,
    pub basic_auth_username: String,
    /// What differs from the existing endpoint (`url`, `api_version`, `disabled`,
    /// `enabled_events`, `credentials`, `name`).
    pub changes: Vec<&'static str>,
    /// Whether the write sends the Basic credentials (every create and update does).
    pub sends_credentials: bool,
}

/// What to do to the hook of one webCRM entity and event type.
#[derive(Debug, Clone, Serialize)]
pub struct HookPlan {
    pub action: Action,
    /// The API collection (`Persons`, ...).
    pub entity: &'static str,
    pub event_type: HookEventType,
    /// The existing hook (update, unchanged).
    pub hook_id: Option<i64>,
    /// The target URL with its token masked.
    pub target_url: String,
    /// What differs from the existing hook (`target_url`, `enabled`, `filter`, `event_type`).
    pub changes: Vec<&'static str>,
    /// The hook as it will be written (its URL carries the token, so it is not serialised).
    #[serde(skip)]
    desired: Hook,
    #[serde(skip)]
    hook_entity: HookEntity,
}

/// An endpoint or hook that is not ours to change (or an extra copy of ours), reported and
/// left as it is.
#[derive(Debug, Clone, Serialize)]
pub struct LeftAlone {
    /// `chargebee` or `webcrm`.
    pub system: &'static str,
    /// The webCRM entity, for hooks.
    pub entity: Option<&'static str>,
    pub id: String,
    /// Scheme, host and port of its URL (the path may hold another integration's secret).
    pub origin: String,
    pub reason: String,
}

/// Everything one run would do, serialisable for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `PUBLIC_URL` as used (normalised, no trailing slash).
    pub public_url: String,
    pub chargebee: EndpointPlan,
    pub webcrm: Vec<HookPlan>,
    pub left_alone: Vec<LeftAlone>,
}

/// How many writes a plan needs, or an apply made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        let actions =
            std::iter::once(self.chargebee.action).chain(self.webcrm.iter().map(|h| h.action));
        for a in actions {
            match a {
                Action::Create => c.create += 1,
                Action::Update => c.update += 1,
                Action::Unchanged => c.unchanged += 1,
            }
        }
        c
    }

    /// Whether applying would write anything.
    pub fn is_noop(&self) -> bool {
        let c = self.counts();
        c.create == 0 && c.update == 0
    }

    /// One line per action, then one per endpoint or hook left alone.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let cb = &self.chargebee;
        let what = match &cb.endpoint_id {
            Some(id) => format!("chargebee endpoint {id}"),
            None => "chargebee endpoint".to_string(),
        };
        let mut detail = format!(
            "({} event types, api {}, Basic user {:?}",
            cb.enabled_events.len(),
            cb.api_version,
            cb.basic_auth_username
        );
        if !cb.changes.is_empty() {
            detail.push_str(&format!("; changed: {}", cb.changes.join(", ")));
        }
        if cb.sends_credentials {
            detail.push_str("; credentials sent");
        }
        detail.push(')');
        out.push(format!(
            "{:<9} {what} {} {detail}",
            cb.action.as_str(),
            cb.url
        ));
        for h in &self.webcrm {
            let mut line = format!(
                "{:<9} webcrm {} {} hook",
                h.action.as_str(),
                h.entity,
                h.event_type.as_str()
            );
            if let Some(id) = h.hook_id {
                line.push_str(&format!(" {id}"));
            }
            line.push(' ');
            line.push_str(&h.target_url);
            if !h.changes.is_empty() {
                line.push_str(&format!(" (changed: {})", h.changes.join(", ")));
            }
            out.push(line);
        }
        for l in &self.left_alone {
            let what = match l.entity {
                Some(entity) => format!("webcrm {entity} hook {}", l.id),
                None => format!("{} endpoint {}", l.system, l.id),
            };
            out.push(format!(
                "{:<9} {what} at {}: {}",
                "skip", l.origin, l.reason
            ));
        }
        out
    }
}

/// `PUBLIC_URL`, checked: https (http only for localhost), no query, fragment or user info.
#[derive(Debug, Clone)]
struct PublicBase {
    url: Url,
    /// Without trailing slash, e.g. `https://sync.example.com` or `https://x.example/sync`.
    text: String,
    /// The path prefix, without trailing slash (empty at the root).
    prefix: String,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn public_base(config: &Config) -> Result<PublicBase, RegisterError> {
    let Some(url) = config.public_url.clone() else {
        return Err(RegisterError::PublicUrl(
            "is not set: register-webhooks needs the https URL at which Chargebee and webCRM \
             reach this service (e.g. PUBLIC_URL=https://sync.example.com)"
                .into(),
        ));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(RegisterError::PublicUrl(format!(
                "={url} must use https (plain http is only allowed for localhost and 127.0.0.1)"
            )))
        }
        other => {
            return Err(RegisterError::PublicUrl(format!(
                "={url} must be an https URL, not {other}:"
            )))
        }
    }
    if url.host().is_none() {
        return Err(RegisterError::PublicUrl(format!("={url} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(RegisterError::PublicUrl(format!(
            "={url} must not have a query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RegisterError::PublicUrl(
            "must not contain a user name or password".into(),
        ));
    }
    let text = url.as_str().trim_end_matches('/').to_string();
    let prefix = url.path().trim_end_matches('/').to_string();
    Ok(PublicBase { url, text, prefix })
}

impl PublicBase {
    /// The path of `candidate` below our prefix, when it has our origin.
    fn rest<'a>(&self, candidate: &'a Url) -> Option<&'a str> {
        if candidate.origin() != self.url.origin() {
            return None;
        }
        candidate.path().strip_prefix(self.prefix.as_str())
    }

    fn is_our_chargebee_url(&self, candidate: &str) -> bool {
        let Ok(u) = Url::parse(candidate) else {
            return false;
        };
        matches!(
            self.rest(&u),
            Some(rest) if rest.trim_end_matches('/') == CHARGEBEE_PATH
        )
    }

    fn is_our_webcrm_url(&self, candidate: &str) -> bool {
        let Ok(u) = Url::parse(candidate) else {
            return false;
        };
        self.rest(&u)
            .is_some_and(|rest| rest.starts_with(WEBCRM_PATH_PREFIX))
    }
}

/// Scheme, host and port of a URL, for reports (never the path, which may hold a secret).
fn origin_of(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(unparseable URL)".to_string(),
    }
}

/// The webCRM hook URL with its token shortened to four characters and stars.
pub fn mask_token(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((head, token)) if !token.is_empty() => {
            let shown: String = token.chars().take(4).collect();
            format!("{head}/{shown}****")
        }
        _ => url.to_string(),
    }
}

/// The credentials fingerprint in our endpoint's name: base64url of
/// HMAC-SHA256(key = `WEBCRM_WEBHOOK_SECRET`, message = username NUL password), 10 chars.
pub fn endpoint_name(chargebee: &ChargebeeSettings, webcrm: &WebcrmSettings) -> String {
    use base64::Engine;
    let Ok(mut mac) =
        Hmac::<Sha256>::new_from_slice(webcrm.webhook_secret.expose_secret().as_bytes())
    else {
        return ENDPOINT_NAME_PREFIX.trim_end_matches(':').to_string();
    };
    mac.update(b"chargebee-webhook-credentials\0");
    mac.update(chargebee.webhook_username.as_bytes());
    mac.update(b"\0");
    mac.update(chargebee.webhook_password.expose_secret().as_bytes());
    let digest =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let short: String = digest.chars().take(10).collect();
    format!("{ENDPOINT_NAME_PREFIX}{short}")
}

fn settings(config: &Config) -> Result<(&ChargebeeSettings, &WebcrmSettings), RegisterError> {
    match (&config.chargebee, &config.webcrm) {
        (Some(cb), Some(wc)) => Ok((cb, wc)),
        _ => Err(RegisterError::Config(
            "register-webhooks needs the Chargebee and webCRM settings (validate the \
             configuration for serve)"
                .into(),
        )),
    }
}

fn clients(config: &Config) -> Result<(ChargebeeClient, WebcrmClient), RegisterError> {
    let (cb, wc) = settings(config)?;
    let chargebee = ChargebeeClient::new(cb.client_config()).map_err(|e| RegisterError::Api {
        what: "building the Chargebee client".into(),
        done: 0,
        source: e,
    })?;
    let webcrm = WebcrmClient::new(wc.client_config()).map_err(|e| RegisterError::Api {
        what: "building the webCRM client".into(),
        done: 0,
        source: e,
    })?;
    Ok((chargebee, webcrm))
}

fn api(what: impl Into<String>) -> impl FnOnce(ApiError) -> RegisterError {
    let what = what.into();
    move |source| RegisterError::Api {
        what,
        done: 0,
        source,
    }
}

/// Reads both accounts and works out what must change. Writes nothing.
pub async fn plan(config: &Config) -> Result<Plan, RegisterError> {
    let base = public_base(config)?;
    let (cb_settings, wc_settings) = settings(config)?;
    let (chargebee, webcrm) = clients(config)?;

    let endpoints: Vec<WebhookEndpoint> = chargebee
        .list_all_webhook_endpoints(ListQuery::new())
        .try_collect()
        .await
        .map_err(api("listing the Chargebee webhook endpoints"))?;
    let mut left_alone = Vec::new();
    let chargebee_plan = plan_endpoint(
        &base,
        cb_settings,
        endpoint_name(cb_settings, wc_settings),
        &endpoints,
        &mut left_alone,
    )?;

    let mut hook_plans = Vec::new();
    for entity in HOOK_ENTITIES {
        let Some(hook_entity) = HookEntity::from_collection(entity.collection) else {
            return Err(RegisterError::Config(format!(
                "webCRM has no hooks for {}",
                entity.collection
            )));
        };
        let hooks: Vec<Hook> =
            webcrm
                .hooks(hook_entity)
                .try_collect()
                .await
                .map_err(api(format!(
                    "listing the webCRM {} hooks",
                    entity.collection
                )))?;
        let target = format!(
            "{}{}",
            base.text,
            hook_path(&wc_settings.webhook_secret, entity.collection)
        );
        hook_plans.extend(plan_hooks(
            &base,
            entity.collection,
            hook_entity,
            &target,
            hooks,
            &mut left_alone,
        ));
    }

    Ok(Plan {
        public_url: base.text,
        chargebee: chargebee_plan,
        webcrm: hook_plans,
        left_alone,
    })
}

fn endpoint_changes(e: &WebhookEndpoint, url: &str, name: &str) -> Vec<&'static str> {
    let mut changes = Vec::new();
    if e.url.as_deref() != Some(url) {
        changes.push("url");
    }
    if e.api_version.as_deref() != Some(API_VERSION) {
        changes.push("api_version");
    }
    if e.disabled {
        changes.push("disabled");
    }
    let have: BTreeSet<&str> = e.enabled_events.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = SUBSCRIBED_EVENT_TYPES.iter().copied().collect();
    if have != want {
        changes.push("enabled_events");
    }
    if e.name.as_deref() != Some(name) {
        let ours = e
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(ENDPOINT_NAME_PREFIX));
        changes.push(if ours { "credentials" } else { "name" });
    }
    changes
}

fn plan_endpoint(
    base: &PublicBase,
    settings: &ChargebeeSettings,
    name: String,
    endpoints: &[WebhookEndpoint],
    left_alone: &mut Vec<LeftAlone>,
) -> Result<EndpointPlan, RegisterError> {
    let url = format!("{}{CHARGEBEE_PATH}", base.text);
    let mut ours: Vec<(&WebhookEndpoint, Vec<&'static str>)> = Vec::new();
    for e in endpoints {
        match e.url.as_deref() {
            Some(u) if base.is_our_chargebee_url(u) => {
                ours.push((e, endpoint_changes(e, &url, &name)));
            }
            other => left_alone.push(LeftAlone {
                system: "chargebee",
                entity: None,
                id: e.id.clone(),
                origin: other.map(origin_of).unwrap_or_else(|| "(no URL)".into()),
                reason: "points elsewhere; not ours, left as is".into(),
            }),
        }
    }
    // Keep the one needing the fewest changes (an exact match first, then enabled ones);
    // further copies are reported and left as they are.
    ours.sort_by_key(|(e, changes)| (changes.len(), e.disabled));
    let mut ours = ours.into_iter();
    let kept = ours.next();
    for (e, _) in ours {
        left_alone.push(LeftAlone {
            system: "chargebee",
            entity: None,
            id: e.id.clone(),
            origin: e.url.as_deref().map(origin_of).unwrap_or_default(),
            reason: format!(
                "another endpoint for our URL (keeping {}); left as is",
                kept.as_ref().map(|(k, _)| k.id.as_str()).unwrap_or("")
            ),
        });
    }
    let (action, endpoint_id, changes) = match kept {
        Some((e, changes)) if changes.is_empty() => {
            (Action::Unchanged, Some(e.id.clone()), changes)
        }
        Some((e, changes)) => (Action::Update, Some(e.id.clone()), changes),
        None => {
            if endpoints.len() >= CHARGEBEE_ENDPOINT_LIMIT {
                return Err(RegisterError::EndpointLimit {
                    limit: CHARGEBEE_ENDPOINT_LIMIT,
                    count: endpoints.len(),
                    url,
                });
            }
            (Action::Create, None, Vec::new())
        }
    };
    Ok(EndpointPlan {
        action,
        endpoint_id,
        name,
        url,
        api_version: API_VERSION,
        enabled_events: SUBSCRIBED_EVENT_TYPES.to_vec(),
        basic_auth_username: settings.webhook_username.clone(),
        changes,
        sends_credentials: action != Action::Unchanged,
    })
}

fn hook_changes(h: &Hook, target: &str, event: HookEventType) -> Vec<&'static str> {
    let mut changes = Vec::new();
    if h.target_url != target {
        changes.push("target_url");
    }
    if !h.is_enabled {
        changes.push("enabled");
    }
    if h.filter != ["All"] {
        changes.push("filter");
    }
    if h.event_type != Some(event) {
        changes.push("event_type");
    }
    changes
}

fn plan_hooks(
    base: &PublicBase,
    entity: &'static str,
    hook_entity: HookEntity,
    target: &str,
    hooks: Vec<Hook>,
    left_alone: &mut Vec<LeftAlone>,
) -> Vec<HookPlan> {
    let (mut ours, foreign): (Vec<Hook>, Vec<Hook>) = hooks
        .into_iter()
        .partition(|h| base.is_our_webcrm_url(&h.target_url));
    for h in foreign {
        left_alone.push(LeftAlone {
            system: "webcrm",
            entity: Some(entity),
            id: h.id.to_string(),
            origin: origin_of(&h.target_url),
            reason: "points elsewhere; not ours, left as is".into(),
        });
    }
    ours.sort_by_key(|h| h.id);
    // First the hooks already reporting the slot's event type (the best match first), then
    // hooks of ours without an event type fill the slots still empty.
    let mut slots: Vec<Option<Hook>> = vec![None; EVENT_TYPES.len()];
    for (slot, event) in slots.iter_mut().zip(EVENT_TYPES) {
        let best = ours
            .iter()
            .enumerate()
            .filter(|(_, h)| h.event_type == Some(event))
            .min_by_key(|(_, h)| (hook_changes(h, target, event).len(), h.id))
            .map(|(i, _)| i);
        if let Some(i) = best {
            *slot = Some(ours.remove(i));
        }
    }
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        if let Some(i) = ours.iter().position(|h| h.event_type.is_none()) {
            *slot = Some(ours.remove(i));
        }
    }
    for h in ours {
        left_alone.push(LeftAlone {
            system: "webcrm",
            entity: Some(entity),
            id: h.id.to_string(),
            origin: origin_of(&h.target_url),
            reason: format!(
                "another {} hook for our URL; left as is",
                h.event_type.map(HookEventType::as_str).unwrap_or("untyped")
            ),
        });
    }
    slots
        .into_iter()
        .zip(EVENT_TYPES)
        .map(|(existing, event)| match existing {
            Some(h) => {
                let changes = hook_changes(&h, target, event);
                let mut desired = h.clone();
                desired.target_url = target.to_string();
                desired.is_enabled = true;
                desired.filter = vec!["All".to_string()];
                desired.event_type = Some(event);
                HookPlan {
                    action: if changes.is_empty() {
                        Action::Unchanged
                    } else {
                        Action::Update
                    },
                    entity,
                    event_type: event,
                    hook_id: Some(h.id),
                    target_url: mask_token(target),
                    changes,
                    desired,
                    hook_entity,
                }
            }
            None => HookPlan {
                action: Action::Create,
                entity,
                event_type: event,
                hook_id: None,
                target_url: mask_token(target),
                changes: Vec::new(),
                desired: Hook::new(target, event),
                hook_entity,
            },
        })
        .collect()
}

/// Performs a plan: creates and updates what it says, nothing else. Returns how many
/// endpoints and hooks were created, updated and left unchanged.
pub async fn apply(config: &Config, plan: &Plan) -> Result<Counts, RegisterError> {
    let base = public_base(config)?;
    if base.text != plan.public_url {
        return Err(RegisterError::StalePlan {
            planned: plan.public_url.clone(),
            current: base.text,
        });
    }
    let (cb_settings, _) = settings(config)?;
    let (chargebee, webcrm) = clients(config)?;
    let mut done = Counts::default();
    let written = |d: &Counts| d.create + d.update;

    let cb = &plan.chargebee;
    match (cb.action, &cb.endpoint_id) {
        (Action::Create, _) => {
            let params = WebhookEndpointCreate {
                name: cb.name.clone(),
                url: cb.url.clone(),
                api_version: Some(API_VERSION.to_string()),
                primary_url: None,
                disabled: Some(false),
                basic_auth_username: Some(cb_settings.webhook_username.clone()),
                basic_auth_password: Some(cb_settings.webhook_password.clone()),
                send_card_resource: None,
                chargebee_response_schema_type: None,
                enabled_events: cb.enabled_events.iter().map(|s| s.to_string()).collect(),
            };
            // A fresh key per create: the client's retries of this call reuse it, so a
            // response lost in transit cannot create a second endpoint.
            let key = format!("register-webhooks-{}", uuid::Uuid::new_v4());
            chargebee
                .create_webhook_endpoint(&params, &key)
                .await
                .map_err(|source| RegisterError::Api {
                    what: "creating the Chargebee webhook endpoint".into(),
                    done: 0,
                    source,
                })?;
            done.create += 1;
        }
        (Action::Update, Some(id)) => {
            let params = WebhookEndpointUpdate {
                name: Some(cb.name.clone()),
                url: Some(cb.url.clone()),
                api_version: Some(API_VERSION.to_string()),
                disabled: Some(false),
                basic_auth_username: Some(cb_settings.webhook_username.clone()),
                basic_auth_password: Some(cb_settings.webhook_password.clone()),
                enabled_events: cb.enabled_events.iter().map(|s| s.to_string()).collect(),
                ..WebhookEndpointUpdate::default()
            };
            chargebee
                .update_webhook_endpoint(id, &params, None)
                .await
                .map_err(|source| RegisterError::Api {
                    what: format!("updating the Chargebee webhook endpoint {id}"),
                    done: 0,
                    source,
                })?;
            done.update += 1;
        }
        _ => done.unchanged += 1,
    }

    for h in &plan.webcrm {
        let what = |verb: &str| {
            format!(
                "{verb} the webCRM {} {} hook",
                h.entity,
                h.event_type.as_str()
            )
        };
        match (h.action, h.hook_id) {
            (Action::Create, _) => {
                webcrm
                    .create_hook(h.hook_entity, &h.desired)
                    .await
                    .map_err(|source| RegisterError::Api {
                        what: what("creating"),
                        done: written(&done),
                        source,
                    })?;
                done.create += 1;
            }
            (Action::Update, Some(id)) => {
                webcrm
                    .update_hook(h.hook_entity, id, &h.desired)
                    .await
                    .map_err(|source| RegisterError::Api {
                        what: format!("{} {id}", what("updating")),
                        done: written(&done),
                        source,
                    })?;
                done.update += 1;
            }
            _ => done.unchanged += 1,
        }
    }
    Ok(done)
}

/// The `register-webhooks` command: plan, print one line per action, apply unless
/// `dry_run`, print a summary.
pub async fn run(config: &Config, dry_run: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let plan = plan(config).await?;
    for line in plan.lines() {
        writeln!(out, "{line}")?;
    }
    let planned = plan.counts();
    if dry_run {
        writeln!(
            out,
            "dry run: nothing written ({} to create, {} to update, {} unchanged)",
            planned.create, planned.update, planned.unchanged
        )?;
        return Ok(());
    }
    if plan.is_noop() {
        writeln!(out, "nothing to do: {} unchanged", planned.unchanged)?;
        return Ok(());
    }
    let done = apply(config, &plan).await?;
    writeln!(
        out,
        "done: {} created, {} updated, {} unchanged",
        done.create, done.update, done.unchanged
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Purpose, RawConfig};

    fn config(public_url: Option<&str>) -> Config {
        let mut env: Vec<(String, String)> = [
            ("CHARGEBEE_SITE", "acme-test"),
            ("CHARGEBEE_API_KEY", "test_key_123"),
            ("CHARGEBEE_WEBHOOK_USERNAME", "cb"),
            ("CHARGEBEE_WEBHOOK_PASSWORD", "pw-secret"),
            ("WEBCRM_API_TOKEN", "6f1c1a8e-0000-4000-8000-000000000000"),
            ("WEBCRM_WEBHOOK_SECRET", "0123456789abcdef0123"),
            ("ADMIN_TOKEN", "admin-token-0123456789"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(u) = public_url {
            env.push(("PUBLIC_URL".into(), u.into()));
        }
        RawConfig::from_sources(None, env)
            .validate(Purpose::Serve)
            .unwrap()
    }

    #[test]
    fn public_base_accepts_https_and_loopback_http_only() {
        for ok in [
            "https://sync.example.com",
            "https://sync.example.com/",
            "https://example.com/sync/",
            "http://127.0.0.1:9999",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(public_base(&config(Some(ok))).is_ok(), "{ok}");
        }
        for bad in [
            "http://sync.example.com",
            "https://sync.example.com/?x=1",
            "https://u:p@sync.example.com",
        ] {
            let e = public_base(&config(Some(bad))).unwrap_err().to_string();
            assert!(e.starts_with("PUBLIC_URL"), "{bad}: {e}");
        }
        let e = public_base(&config(None)).unwrap_err().to_string();
        assert!(e.starts_with("PUBLIC_URL is not set"), "{e}");
    }

    #[test]
    fn ours_means_same_origin_prefix_and_our_paths() {
        let base = public_base(&config(Some("https://x.example/sync/"))).unwrap();
        assert_eq!(base.text, "https://x.example/sync");
        assert!(base.is_our_chargebee_url("https://x.example/sync/webhooks/chargebee"));
        assert!(base.is_our_chargebee_url("https://X.example:443/sync/webhooks/chargebee/"));
        assert!(!base.is_our_chargebee_url("https://x.example/webhooks/chargebee"));
        assert!(!base.is_our_chargebee_url("http://x.example/sync/webhooks/chargebee"));
        assert!(!base.is_our_chargebee_url("https://x.example:8443/sync/webhooks/chargebee"));
        assert!(!base.is_our_chargebee_url("https://other.example/sync/webhooks/chargebee"));
        assert!(base.is_our_webcrm_url("https://x.example/sync/webhooks/webcrm/Persons/old"));
        assert!(!base.is_our_webcrm_url("https://x.example/sync/webhooks/chargebee"));
        assert!(!base.is_our_webcrm_url("not a url"));
    }

    #[test]
    fn mask_token_keeps_four_characters() {
        assert_eq!(
            mask_token("https://x/webhooks/webcrm/Persons/t_8Ip9cLEyaDMOJ"),
            "https://x/webhooks/webcrm/Persons/t_8I****"
        );
    }

    #[test]
    fn endpoint_name_changes_with_the_credentials_and_fits_chargebee() {
        let c = config(Some("https://x.example"));
        let (cb, wc) = settings(&c).unwrap();
        let name = endpoint_name(cb, wc);
        assert!(name.len() <= 50, "{name}");
        assert!(name.starts_with(ENDPOINT_NAME_PREFIX));
        assert!(!name.contains("pw-secret"));
        let mut other = cb.clone();
        other.webhook_password = secrecy::SecretString::from("pw-secret-2");
        assert_ne!(endpoint_name(&other, wc), name);
        assert_eq!(endpoint_name(cb, wc), name);
    }

    fn hook(id: i64, url: &str, enabled: bool, event: Option<HookEventType>) -> Hook {
        Hook {
            id,
            target_url: url.into(),
            is_enabled: enabled,
            filter: vec!["All".into()],
            event_type: event,
            ..Hook::default()
        }
    }

    #[test]
    fn plan_hooks_updates_ours_creates_missing_and_skips_the_rest() {
        let base = public_base(&config(Some("https://x.example"))).unwrap();
        let target = "https://x.example/webhooks/webcrm/Persons/new";
        let hooks = vec![
            hook(
                1,
                "https://other.example/hook",
                true,
                Some(HookEventType::Create),
            ),
            hook(2, target, true, Some(HookEventType::Create)),
            hook(
                3,
                "https://x.example/webhooks/webcrm/Persons/old",
                true,
                Some(HookEventType::Update),
            ),
            hook(4, target, true, Some(HookEventType::Create)),
            hook(5, target, false, None),
        ];
        let mut left = Vec::new();
        let plans = plan_hooks(
            &base,
            "Persons",
            HookEntity::Persons,
            target,
            hooks,
            &mut left,
        );
        let summary: Vec<_> = plans
            .iter()
            .map(|p| (p.event_type, p.action, p.hook_id, p.changes.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (HookEventType::Create, Action::Unchanged, Some(2), vec![]),
                (
                    HookEventType::Update,
                    Action::Update,
                    Some(3),
                    vec!["target_url"]
                ),
                (
                    HookEventType::Delete,
                    Action::Update,
                    Some(5),
                    vec!["enabled", "event_type"]
                ),
            ]
        );
        let left: Vec<_> = left.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(left, ["1", "4"]);
    }
}
