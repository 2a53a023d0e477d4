//! Configuration: defaults, then an optional TOML file, then the environment (env wins).
//!
//! Every setting is declared once in [`SETTINGS`] (or derived from [`PAIRING_SETTINGS`]);
//! loading, `check`, the configuration reference in the docs and the manifest test all read
//! that one table, so a setting cannot exist in one place and be missing in another.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Which command is loading the configuration: `serve` needs the API credentials,
/// `migrate` only the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Migrate,
}

/// One operator-facing setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable name; the TOML key is the same name in lower case.
    pub env: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub required_for_serve: bool,
    pub help: &'static str,
}

const fn setting(env: &'static str, default: Option<&'static str>, help: &'static str) -> Setting {
    Setting {
        env,
        default,
        secret: false,
        required_for_serve: false,
        help,
    }
}

const fn required(env: &'static str, secret: bool, help: &'static str) -> Setting {
    Setting {
        env,
        default: None,
        secret,
        required_for_serve: true,
        help,
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://webcrm-chargebee-sync.db";

/// The service-wide settings of the operator contract (ARCHITECTURE.md), plus the queue and
/// shutdown knobs this implementation adds.
pub const SETTINGS: &[Setting] = &[
    setting(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        "`postgres://…` or `sqlite://…`; SQLite is for a single instance",
    ),
    setting("LISTEN_ADDR", Some("127.0.0.1:8080"), "HTTP listen address"),
    required(
        "CHARGEBEE_SITE",
        false,
        "Chargebee site name (`{site}.chargebee.com`)",
    ),
    required("CHARGEBEE_API_KEY", true, "Chargebee API key"),
    setting(
        "CHARGEBEE_BASE_URL",
        None,
        "override of `https://{site}.chargebee.com/api/v2`, e.g. a sandbox",
    ),
    required(
        "CHARGEBEE_WEBHOOK_USERNAME",
        false,
        "HTTP Basic user Chargebee sends with webhooks",
    ),
    required(
        "CHARGEBEE_WEBHOOK_PASSWORD",
        true,
        "HTTP Basic password Chargebee sends with webhooks",
    ),
    setting(
        "CHARGEBEE_RATE_LIMIT_PER_MINUTE",
        Some("150"),
        "outbound request budget for Chargebee",
    ),
    setting(
        "CHARGEBEE_REQUEST_TIMEOUT_SECS",
        Some("60"),
        "how long one Chargebee request may take before it is abandoned and retried",
    ),
    required("WEBCRM_API_TOKEN", true, "webCRM application token (GUID)"),
    setting(
        "WEBCRM_BASE_URL",
        Some("https://api.webcrm.com"),
        "webCRM API base URL",
    ),
    required(
        "WEBCRM_WEBHOOK_SECRET",
        true,
        "key for the HMAC-derived URL tokens of webCRM hooks",
    ),
    setting(
        "WEBCRM_RATE_LIMIT_PER_MINUTE",
        Some("250"),
        "outbound request budget for webCRM",
    ),
    setting(
        "WEBCRM_REQUEST_TIMEOUT_SECS",
        Some("30"),
        "how long one webCRM request may take before it is abandoned and retried",
    ),
    required(
        "ADMIN_TOKEN",
        true,
        "bearer token(s) for `/admin/v1`; a comma-separated list allows rotation",
    ),
    setting("POLL_INTERVAL_SECS", Some("300"), "catch-up poll period"),
    setting(
        "RECONCILE_INTERVAL_SECS",
        Some("21600"),
        "period of the reconciler's full id sweep of every pairing (drift report in the admin status)",
    ),
    setting(
        "PUBLIC_URL",
        None,
        "the URL the two systems reach us at (for `register-webhooks`)",
    ),
    setting(
        "WORKER_CONCURRENCY",
        Some("4"),
        "jobs run at once per process",
    ),
    setting(
        "DEFAULT_CURRENCY",
        Some("EUR"),
        "ISO 4217 code for amounts whose record names no currency",
    ),
    setting(
        "WEBCRM_CURRENCY_MAP",
        None,
        "webCRM currency names that are not ISO codes, as `name=CODE` pairs separated by commas (e.g. `00=DKK,01=EUR`); an unmapped name stops that record with an error",
    ),
    setting(
        "RUST_LOG",
        Some("info"),
        "log filter (`tracing` EnvFilter syntax)",
    ),
    setting("LOG_FORMAT", Some("pretty"), "`pretty` or `json`"),
    setting(
        "JOB_MAX_ATTEMPTS",
        Some("10"),
        "attempts before a job is dead (retryable through the admin API)",
    ),
    setting(
        "JOB_LEASE_SECS",
        Some("30"),
        "how long a claimed job is reserved; a crashed worker's job is reclaimed after it",
    ),
    setting(
        "SHUTDOWN_GRACE_SECS",
        Some("20"),
        "how long workers may finish running jobs after SIGTERM",
    ),
];

/// Pairing names of the operator contract.
pub const PAIRINGS: &[&str] = &[
    "persons_customers",
    "users_customers",
    "organisations_business_entities",
    "opportunities_orders",
    "quotationlines_orders",
    "products_items",
];

/// A per-pairing setting: TOML `[pairings.<pairing>] <key> = …`, env `<PAIRING>_<KEY>`.
#[derive(Debug, Clone, Copy)]
pub struct PairingSetting {
    /// `None` applies to every pairing.
    pub pairing: Option<&'static str>,
    pub key: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

pub const PAIRING_SETTINGS: &[PairingSetting] = &[
    PairingSetting {
        pairing: None,
        key: "enabled",
        default: Some("true"),
        help: "switch the pairing on or off",
    },
    PairingSetting {
        pairing: None,
        key: "propagate_deletes",
        default: Some("false"),
        help: "propagate deletes instead of only tombstoning the link",
    },
    PairingSetting {
        pairing: Some("persons_customers"),
        key: "create_scope",
        default: Some("all"),
        help:
            "`all` persons, or only `opportunity` persons connected to a synchronised opportunity",
    },
    PairingSetting {
        pairing: Some("persons_customers"),
        key: "marker_field",
        default: Some("PersonCustom15"),
        help: "webCRM person text field where a person created from a customer keeps the customer id (reserve it for the sync)",
    },
    PairingSetting {
        pairing: Some("organisations_business_entities"),
        key: "marker_field",
        default: Some("OrganisationExtraCustom8"),
        help: "webCRM organisation text field where an organisation created from a business entity keeps the entity id (reserve it for the sync)",
    },
    PairingSetting {
        pairing: Some("opportunities_orders"),
        key: "create_invoices",
        default: Some("true"),
        help:
            "create an invoice and order for a won opportunity; `false` only links existing orders",
    },
    PairingSetting {
        pairing: Some("opportunities_orders"),
        key: "won_level",
        default: None,
        help: "an extra webCRM opportunity level that counts as won",
    },
    PairingSetting {
        pairing: Some("quotationlines_orders"),
        key: "marker_field",
        default: Some("QuotationLineData9"),
        help: "webCRM quotation line text field where a line created from an order line keeps `{order}/{line}` (reserve it for the sync)",
    },
    PairingSetting {
        pairing: Some("products_items"),
        key: "currency",
        default: None,
        help: "catalogue price currency (overrides DEFAULT_CURRENCY)",
    },
    PairingSetting {
        pairing: Some("products_items"),
        key: "item_family_id",
        default: Some("webcrm-products"),
        help: "Chargebee item family for created items (created if missing)",
    },
    PairingSetting {
        pairing: Some("products_items"),
        key: "item_type",
        default: Some("charge"),
        help: "Chargebee item type for created items (`charge`, `addon` or `plan`)",
    },
];

/// A setting as it appears to operators: the env name plus metadata, covering both tables.
#[derive(Debug, Clone)]
pub struct SettingInfo {
    pub env: String,
    pub toml_key: String,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub required_for_serve: bool,
    pub help: &'static str,
}

/// Every setting the service reads, in documentation order.
pub fn all_settings() -> Vec<SettingInfo> {
    let mut out: Vec<SettingInfo> = SETTINGS
        .iter()
        .map(|s| SettingInfo {
            env: s.env.to_string(),
            toml_key: s.env.to_ascii_lowercase(),
            default: s.default,
            secret: s.secret,
            required_for_serve: s.required_for_serve,
            help: s.help,
        })
        .collect();
    for pairing in PAIRINGS {
        for ps in PAIRING_SETTINGS
            .iter()
            .filter(|ps| ps.pairing.is_none_or(|p| p == *pairing))
        {
            out.push(SettingInfo {
                env: pairing_env(pairing, ps.key),
                toml_key: format!("pairings.{pairing}.{}", ps.key),
                default: ps.default,
                secret: false,
                required_for_serve: false,
                help: ps.help,
            });
        }
    }
    out
}

/// The configuration reference table (Markdown) for `docs/configuration.md`.
pub fn reference_table() -> String {
    let mut out = String::from(
        "| variable | TOML key | default | required for `serve` | secret | meaning |\n|---|---|---|---|---|---|\n",
    );
    for s in all_settings() {
        let yes = |b: bool| if b { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            s.env,
            s.toml_key,
            s.default.map(|d| format!("`{d}`")).unwrap_or_default(),
            yes(s.required_for_serve),
            yes(s.secret),
            s.help.replace('|', "\\|"),
        ));
    }
    out
}

/// The default of a pairing-specific setting.
pub fn pairing_default(pairing: &str, key: &str) -> Option<&'static str> {
    PAIRING_SETTINGS
        .iter()
        .find(|ps| ps.key == key && ps.pairing.is_none_or(|p| p == pairing))
        .and_then(|ps| ps.default)
}

fn pairing_env(pairing: &str, key: &str) -> String {
    format!("{pairing}_{key}").to_ascii_uppercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct ChargebeeSettings {
    pub site: String,
    pub api_key: SecretString,
    pub base_url: Url,
    pub webhook_username: String,
    pub webhook_password: SecretString,
    pub rate_limit_per_minute: u32,
    pub request_timeout: Duration,
}

impl ChargebeeSettings {
    pub fn client_config(&self) -> crate::clients::chargebee::ChargebeeClientConfig {
        let mut c = crate::clients::chargebee::ChargebeeClientConfig::new(
            self.base_url.clone(),
            self.api_key.clone(),
        );
        c.rate_limit_per_minute = self.rate_limit_per_minute;
        c.request_timeout = self.request_timeout;
        c
    }
}

#[derive(Debug, Clone)]
pub struct WebcrmSettings {
    pub api_token: SecretString,
    pub base_url: Url,
    pub webhook_secret: SecretString,
    pub rate_limit_per_minute: u32,
    pub request_timeout: Duration,
}

impl WebcrmSettings {
    pub fn client_config(&self) -> crate::clients::webcrm::WebcrmClientConfig {
        let mut c = crate::clients::webcrm::WebcrmClientConfig::new(self.api_token.clone());
        c.base_url = self.base_url.as_str().trim_end_matches('/').to_string();
        c.rate_limit_per_minute = self.rate_limit_per_minute;
        c.timeouts.request = self.request_timeout;
        c
    }
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub worker_concurrency: usize,
    pub max_attempts: i32,
    pub lease: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairingConfig {
    pub enabled: bool,
    pub propagate_deletes: bool,
    /// Pairing-specific options by key (`create_invoices`, `item_family_id`, …), already
    /// validated for type; the pairing modules read them.
    pub options: BTreeMap<String, String>,
}

/// The validated configuration. For `migrate`, API credentials are absent.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen_addr: SocketAddr,
    pub chargebee: Option<ChargebeeSettings>,
    pub webcrm: Option<WebcrmSettings>,
    pub admin_tokens: Vec<SecretString>,
    pub poll_interval: Duration,
    pub reconcile_interval: Duration,
    pub public_url: Option<Url>,
    pub default_currency: String,
    /// Validated webCRM currency names (`WEBCRM_CURRENCY_MAP`).
    pub currency_map: crate::sync::normalize::currency::CurrencyTable,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub queue: QueueSettings,
    pub pairings: BTreeMap<String, PairingConfig>,
}

/// Every problem found while loading, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problems): ", self.0.len())?;
        write!(f, "{}", self.0.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// Raw values by env name, with where each came from (for `check`).
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    values: BTreeMap<String, (String, Source)>,
    /// Problems found while reading the file (unknown keys, wrong types).
    file_errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
        })
    }
}

impl RawConfig {
    /// Reads defaults, the optional TOML file and the process environment.
    pub fn load(file: Option<&Path>) -> Self {
        Self::from_sources(file, std::env::vars())
    }

    /// Reads defaults, the optional file and the given environment (tests pass their own).
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut raw = RawConfig::default();
        let settings = all_settings();
        for s in &settings {
            if let Some(d) = s.default {
                raw.values
                    .insert(s.env.clone(), (d.to_string(), Source::Default));
            }
        }
        if let Some(path) = file {
            raw.read_file(path, &settings);
        }
        let known: std::collections::HashSet<&str> =
            settings.iter().map(|s| s.env.as_str()).collect();
        for (k, v) in env {
            if known.contains(k.as_str()) {
                raw.values.insert(k, (v, Source::Env));
            }
        }
        raw
    }

    fn read_file(&mut self, path: &Path, settings: &[SettingInfo]) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.file_errors
                    .push(format!("config file {}: {e}", path.display()));
                return;
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                self.file_errors
                    .push(format!("config file {}: {e}", path.display()));
                return;
            }
        };
        let by_key: BTreeMap<&str, &str> = settings
            .iter()
            .map(|s| (s.toml_key.as_str(), s.env.as_str()))
            .collect();
        let mut flat = Vec::new();
        flatten_toml("", &toml::Value::Table(table), &mut flat);
        for (key, value) in flat {
            match (by_key.get(key.as_str()), value) {
                (Some(env), Ok(v)) => {
                    self.values.insert(env.to_string(), (v, Source::File));
                }
                (Some(_), Err(kind)) => self.file_errors.push(format!(
                    "config file key `{key}`: expected a value, found {kind}"
                )),
                (None, _) => self
                    .file_errors
                    .push(format!("config file key `{key}` is not a known setting")),
            }
        }
    }

    pub fn get(&self, env: &str) -> Option<&str> {
        self.values
            .get(env)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    pub fn source(&self, env: &str) -> Option<Source> {
        self.values.get(env).map(|(_, s)| *s)
    }

    /// Validates and builds the typed configuration, collecting every problem.
    pub fn validate(&self, purpose: Purpose) -> Result<Config, ConfigErrors> {
        let mut v = Validator {
            raw: self,
            errors: self.file_errors.clone(),
        };
        let cfg = v.build(purpose);
        if v.errors.is_empty() {
            cfg.ok_or_else(|| ConfigErrors(vec!["configuration incomplete".into()]))
        } else {
            Err(ConfigErrors(v.errors))
        }
    }

    /// One line per setting, secrets masked, for `check`.
    pub fn describe(&self) -> Vec<String> {
        all_settings()
            .iter()
            .map(|s| {
                let shown = match self.get(&s.env) {
                    None => "(not set)".to_string(),
                    Some(_) if s.secret => "********".to_string(),
                    Some(v) => v.to_string(),
                };
                let source = self
                    .source(&s.env)
                    .filter(|_| self.get(&s.env).is_some())
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default();
                format!("{:<42} {shown}{source}", s.env)
            })
            .collect()
    }
}

type FlatValue = Result<String, &'static str>;

fn flatten_toml(prefix: &str, value: &toml::Value, out: &mut Vec<(String, FlatValue)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.to_ascii_lowercase()
                } else {
                    format!("{prefix}.{}", k.to_ascii_lowercase())
                };
                flatten_toml(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), Ok(s.clone()))),
        toml::Value::Integer(i) => out.push((prefix.to_string(), Ok(i.to_string()))),
        toml::Value::Float(f) => out.push((prefix.to_string(), Ok(f.to_string()))),
        toml::Value::Boolean(b) => out.push((prefix.to_string(), Ok(b.to_string()))),
        toml::Value::Datetime(d) => out.push((prefix.to_string(), Ok(d.to_string()))),
        toml::Value::Array(_) => out.push((prefix.to_string(), Err("an array"))),
    }
}

struct Validator<'a> {
    raw: &'a RawConfig,
    errors: Vec<String>,
}

impl Validator<'_> {
    fn fail(&mut self, msg: String) {
        self.errors.push(msg);
    }

    fn required(&mut self, env: &str) -> Option<String> {
        match self.raw.get(env) {
            Some(v) => Some(v.trim().to_string()),
            None => {
                self.fail(format!("{env} is required but not set"));
                None
            }
        }
    }

    fn optional(&self, env: &str) -> Option<String> {
        self.raw.get(env).map(|v| v.trim().to_string())
    }

    fn secret(&mut self, env: &str) -> Option<SecretString> {
        self.required(env).map(SecretString::from)
    }

    fn parse<T: std::str::FromStr>(&mut self, env: &str, what: &str) -> Option<T> {
        let value = self.optional(env)?;
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(format!("{env}={value:?} is not {what}"));
                None
            }
        }
    }

    fn positive(&mut self, env: &str) -> Option<u32> {
        match self.parse::<u32>(env, "a positive whole number")? {
            0 => {
                self.fail(format!("{env} must be at least 1"));
                None
            }
            n => Some(n),
        }
    }

    fn url(&mut self, env: &str) -> Option<Url> {
        let value = self.optional(env)?;
        match Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(_) => {
                self.fail(format!("{env}={value:?} must be an http(s) URL"));
                None
            }
            Err(e) => {
                self.fail(format!("{env}={value:?} is not a URL: {e}"));
                None
            }
        }
    }

    fn bool(&mut self, env: &str) -> Option<bool> {
        let value = self.optional(env)?;
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                self.fail(format!("{env}={value:?} is not a boolean (true/false)"));
                None
            }
        }
    }

    fn currency(&mut self, env: &str) -> Option<String> {
        let value = self.optional(env)?;
        if value.len() == 3 && value.chars().all(|c| c.is_ascii_alphabetic()) {
            Some(value.to_ascii_uppercase())
        } else {
            self.fail(format!("{env}={value:?} is not an ISO 4217 currency code"));
            None
        }
    }

    fn build(&mut self, purpose: Purpose) -> Option<Config> {
        let database_url = self.optional("DATABASE_URL");
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                self.fail(format!(
                    "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got {:?})",
                    mask_url(url)
                ));
            }
        }
        let listen_addr =
            self.parse::<SocketAddr>("LISTEN_ADDR", "a socket address like 0.0.0.0:8080");
        let chargebee = self.chargebee(purpose);
        let webcrm = self.webcrm(purpose);
        let admin_tokens = if purpose == Purpose::Serve {
            self.admin_tokens()
        } else {
            Some(Vec::new())
        };
        let poll = self.positive("POLL_INTERVAL_SECS");
        let reconcile = self.positive("RECONCILE_INTERVAL_SECS");
        let public_url = self.url("PUBLIC_URL");
        let concurrency = self.positive("WORKER_CONCURRENCY");
        let default_currency = self.currency("DEFAULT_CURRENCY");
        let currency_map = {
            let spec = self.optional("WEBCRM_CURRENCY_MAP").unwrap_or_default();
            match crate::sync::normalize::currency::CurrencyTable::parse(&spec) {
                Ok(table) => Some(table),
                Err(e) => {
                    self.fail(format!("WEBCRM_CURRENCY_MAP: {e}"));
                    None
                }
            }
        };
        let log_format = match self.optional("LOG_FORMAT").as_deref() {
            Some("json") => Some(LogFormat::Json),
            Some("pretty") | None => Some(LogFormat::Pretty),
            Some(other) => {
                self.fail(format!("LOG_FORMAT={other:?} must be `json` or `pretty`"));
                None
            }
        };
        let max_attempts = self.positive("JOB_MAX_ATTEMPTS");
        let lease = self.positive("JOB_LEASE_SECS");
        let grace = self.parse::<u64>("SHUTDOWN_GRACE_SECS", "a whole number of seconds");
        let pairings = self.pairings();

        Some(Config {
            database_url: database_url?,
            listen_addr: listen_addr?,
            chargebee: chargebee?,
            webcrm: webcrm?,
            admin_tokens: admin_tokens?,
            poll_interval: Duration::from_secs(u64::from(poll?)),
            reconcile_interval: Duration::from_secs(u64::from(reconcile?)),
            public_url,
            default_currency: default_currency?,
            currency_map: currency_map?,
            log_filter: self.optional("RUST_LOG").unwrap_or_else(|| "info".into()),
            log_format: log_format?,
            queue: QueueSettings {
                worker_concurrency: concurrency? as usize,
                max_attempts: i32::try_from(max_attempts?).ok()?,
                lease: Duration::from_secs(u64::from(lease?)),
                shutdown_grace: Duration::from_secs(grace?),
            },
            pairings: pairings?,
        })
    }

    /// `Some(None)` when not needed for this purpose; `None` when invalid.
    fn chargebee(&mut self, purpose: Purpose) -> Option<Option<ChargebeeSettings>> {
        if purpose != Purpose::Serve {
            return Some(None);
        }
        let site = self.required("CHARGEBEE_SITE");
        if let Some(s) = &site {
            if !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.fail(format!(
                    "CHARGEBEE_SITE={s:?} must be the bare site name (letters, digits, '-')"
                ));
            }
        }
        let api_key = self.secret("CHARGEBEE_API_KEY");
        let base_url = match (self.url("CHARGEBEE_BASE_URL"), &site) {
            (Some(u), _) => Some(u),
            (None, Some(site)) => Url::parse(&format!("https://{site}.chargebee.com/api/v2")).ok(),
            (None, None) => None,
        };
        let webhook_username = self.required("CHARGEBEE_WEBHOOK_USERNAME");
        let webhook_password = self.secret("CHARGEBEE_WEBHOOK_PASSWORD");
        let rate = self.positive("CHARGEBEE_RATE_LIMIT_PER_MINUTE");
        let timeout = self.positive("CHARGEBEE_REQUEST_TIMEOUT_SECS");
        Some(Some(ChargebeeSettings {
            site: site?,
            api_key: api_key?,
            base_url: base_url?,
            webhook_username: webhook_username?,
            webhook_password: webhook_password?,
            rate_limit_per_minute: rate?,
            request_timeout: Duration::from_secs(timeout?.into()),
        }))
    }

    fn webcrm(&mut self, purpose: Purpose) -> Option<Option<WebcrmSettings>> {
        if purpose != Purpose::Serve {
            return Some(None);
        }
        let api_token = self.secret("WEBCRM_API_TOKEN");
        let base_url = self.url("WEBCRM_BASE_URL");
        let webhook_secret = self.secret("WEBCRM_WEBHOOK_SECRET");
        if let Some(s) = &webhook_secret {
            if s.expose_secret().len() < 16 {
                self.fail("WEBCRM_WEBHOOK_SECRET must be at least 16 characters".into());
            }
        }
        let rate = self.positive("WEBCRM_RATE_LIMIT_PER_MINUTE");
        let timeout = self.positive("WEBCRM_REQUEST_TIMEOUT_SECS");
        Some(Some(WebcrmSettings {
            api_token: api_token?,
            base_url: base_url?,
            webhook_secret: webhook_secret?,
            rate_limit_per_minute: rate?,
            request_timeout: Duration::from_secs(timeout?.into()),
        }))
    }

    fn admin_tokens(&mut self) -> Option<Vec<SecretString>> {
        let raw = self.required("ADMIN_TOKEN")?;
        let tokens: Vec<SecretString> = raw
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .collect();
        if tokens.iter().any(|t| t.expose_secret().len() < 16) {
            self.fail("ADMIN_TOKEN: every token must be at least 16 characters".into());
            return None;
        }
        if tokens.is_empty() {
            self.fail("ADMIN_TOKEN is required but empty".into());
            return None;
        }
        Some(tokens)
    }

    fn pairings(&mut self) -> Option<BTreeMap<String, PairingConfig>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for pairing in PAIRINGS {
            let enabled = self.bool(&pairing_env(pairing, "enabled"));
            let propagate = self.bool(&pairing_env(pairing, "propagate_deletes"));
            let mut options = BTreeMap::new();
            for ps in PAIRING_SETTINGS
                .iter()
                .filter(|ps| ps.pairing == Some(*pairing))
            {
                let env = pairing_env(pairing, ps.key);
                let value = match ps.key {
                    "create_invoices" => self.bool(&env).map(|b| b.to_string()),
                    "currency" => self.currency(&env),
                    "create_scope" => match self.optional(&env).as_deref() {
                        Some(v @ ("all" | "opportunity")) => Some(v.to_string()),
                        Some(other) => {
                            self.fail(format!("{env}={other:?} must be `all` or `opportunity`"));
                            None
                        }
                        None => None,
                    },
                    "item_type" => match self.optional(&env).as_deref() {
                        Some(v @ ("charge" | "addon" | "plan")) => Some(v.to_string()),
                        Some(other) => {
                            self.fail(format!(
                                "{env}={other:?} must be `charge`, `addon` or `plan`"
                            ));
                            None
                        }
                        None => None,
                    },
                    _ => self.optional(&env),
                };
                if let Some(v) = value {
                    options.insert(ps.key.to_string(), v);
                }
            }
            match (enabled, propagate) {
                (Some(enabled), Some(propagate_deletes)) => {
                    out.insert(
                        pairing.to_string(),
                        PairingConfig {
                            enabled,
                            propagate_deletes,
                            options,
                        },
                    );
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Hides the password of a connection URL for messages and logs.
pub fn mask_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

impl Config {
    pub fn pairing(&self, name: &str) -> Option<&PairingConfig> {
        self.pairings.get(name)
    }

    /// Whether `token` equals one of the admin tokens, compared in constant time.
    pub fn is_admin_token(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        // Fold over all tokens without short-circuit so timing does not reveal which matched.
        self.admin_tokens.iter().fold(false, |acc, t| {
            acc | bool::from(t.expose_secret().as_bytes().ct_eq(token.as_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn valid_env() -> Vec<(String, String)> {
        env(&[
            ("CHARGEBEE_SITE", "acme-test"),
            ("CHARGEBEE_API_KEY", "test_key_123"),
            ("CHARGEBEE_WEBHOOK_USERNAME", "cb"),
            ("CHARGEBEE_WEBHOOK_PASSWORD", "pw-secret"),
            ("WEBCRM_API_TOKEN", "6f1c1a8e-0000-4000-8000-000000000000"),
            ("WEBCRM_WEBHOOK_SECRET", "0123456789abcdef0123"),
            ("ADMIN_TOKEN", "admin-token-0123456789"),
        ])
    }

    #[test]
    fn validate_empty_environment_lists_every_required_setting() {
        let raw = RawConfig::from_sources(None, Vec::new());
        let err = raw.validate(Purpose::Serve).unwrap_err();
        for s in SETTINGS.iter().filter(|s| s.required_for_serve) {
            assert!(
                err.0.iter().any(|e| e.starts_with(s.env)),
                "{} missing from {err}",
                s.env
            );
        }
        assert_eq!(
            err.0.len(),
            SETTINGS.iter().filter(|s| s.required_for_serve).count()
        );
    }

    #[test]
    fn validate_migrate_needs_only_defaults() {
        let cfg = RawConfig::from_sources(None, Vec::new())
            .validate(Purpose::Migrate)
            .unwrap();
        assert_eq!(cfg.database_url, DEFAULT_DATABASE_URL);
        assert!(cfg.chargebee.is_none());
    }

    #[test]
    fn validate_full_environment_applies_defaults() {
        let cfg = RawConfig::from_sources(None, valid_env())
            .validate(Purpose::Serve)
            .unwrap();
        let cb = cfg.chargebee.as_ref().unwrap();
        assert_eq!(
            cb.base_url.as_str(),
            "https://acme-test.chargebee.com/api/v2"
        );
        assert_eq!(cb.rate_limit_per_minute, 150);
        assert_eq!(cfg.webcrm.as_ref().unwrap().rate_limit_per_minute, 250);
        assert_eq!(cfg.queue.worker_concurrency, 4);
        assert_eq!(cfg.poll_interval, Duration::from_secs(300));
        assert_eq!(cfg.default_currency, "EUR");
        let products = cfg.pairing("products_items").unwrap();
        assert!(products.enabled);
        assert_eq!(products.options["item_family_id"], "webcrm-products");
    }

    #[test]
    fn validate_bad_values_are_all_reported_with_their_names() {
        let mut e = valid_env();
        e.extend(env(&[
            ("LISTEN_ADDR", "nope"),
            ("WORKER_CONCURRENCY", "0"),
            ("DEFAULT_CURRENCY", "euro"),
            ("PRODUCTS_ITEMS_ENABLED", "maybe"),
        ]));
        let err = RawConfig::from_sources(None, e)
            .validate(Purpose::Serve)
            .unwrap_err();
        let text = err.to_string();
        for name in [
            "LISTEN_ADDR",
            "WORKER_CONCURRENCY",
            "DEFAULT_CURRENCY",
            "PRODUCTS_ITEMS_ENABLED",
        ] {
            assert!(text.contains(name), "{name} not in {text}");
        }
        assert_eq!(err.0.len(), 4);
    }

    #[test]
    fn env_overrides_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "worker_concurrency = 8\npoll_interval_secs = 60\n[pairings.products_items]\ncurrency = \"DKK\"\nenabled = false\n",
        )
        .unwrap();
        let mut e = valid_env();
        e.push(("POLL_INTERVAL_SECS".into(), "30".into()));
        let raw = RawConfig::from_sources(Some(&path), e);
        let cfg = raw.validate(Purpose::Serve).unwrap();
        assert_eq!(cfg.queue.worker_concurrency, 8);
        assert_eq!(cfg.poll_interval, Duration::from_secs(30));
        let products = cfg.pairing("products_items").unwrap();
        assert!(!products.enabled);
        assert_eq!(products.options["currency"], "DKK");
        assert_eq!(raw.source("POLL_INTERVAL_SECS"), Some(Source::Env));
        assert_eq!(raw.source("WORKER_CONCURRENCY"), Some(Source::File));
    }

    #[test]
    fn file_with_unknown_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "worker_concurency = 8\n").unwrap();
        let err = RawConfig::from_sources(Some(&path), valid_env())
            .validate(Purpose::Serve)
            .unwrap_err();
        assert!(err.to_string().contains("worker_concurency"), "{err}");
    }

    #[test]
    fn describe_masks_secrets() {
        let raw = RawConfig::from_sources(None, valid_env());
        let text = raw.describe().join("\n");
        assert!(!text.contains("test_key_123"));
        assert!(!text.contains("pw-secret"));
        assert!(!text.contains("admin-token-0123456789"));
        assert!(text.contains("acme-test"));
    }

    #[test]
    fn admin_token_list_accepts_each_token() {
        let mut e = valid_env();
        e.retain(|(k, _)| k != "ADMIN_TOKEN");
        e.push((
            "ADMIN_TOKEN".into(),
            "first-token-0123456789, second-token-0123456789".into(),
        ));
        let cfg = RawConfig::from_sources(None, e)
            .validate(Purpose::Serve)
            .unwrap();
        assert!(cfg.is_admin_token("first-token-0123456789"));
        assert!(cfg.is_admin_token("second-token-0123456789"));
        assert!(!cfg.is_admin_token("second-token-012345678"));
        assert!(!cfg.is_admin_token(""));
    }

    /// The reference in docs/configuration.md is generated from the settings table; this
    /// fails when they drift. `UPDATE_DOCS=1 cargo test config_reference` rewrites it.
    #[test]
    fn config_reference_in_docs_matches_the_code() {
        const BEGIN: &str = "<!-- settings:begin -->\n";
        const END: &str = "<!-- settings:end -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
        let end = doc.find(END).expect("end marker");
        let expected = reference_table();
        if doc[start..end] != expected {
            if std::env::var_os("UPDATE_DOCS").is_some() {
                let updated = format!("{}{expected}{}", &doc[..start], &doc[end..]);
                std::fs::write(&path, updated).unwrap();
            } else {
                panic!("docs/configuration.md is out of date: run `UPDATE_DOCS=1 cargo test config_reference`");
            }
        }
    }

    #[test]
    fn mask_url_hides_password() {
        assert_eq!(
            mask_url("postgres://u:secret@db/x"),
            "postgres://u:********@db/x"
        );
    }
}
