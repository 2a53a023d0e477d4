//! `demo`: the whole product in one process, with no Chargebee or webCRM account.
//!
//! Both API sandboxes, the service (HTTP, intake, workers) and an embedded SQLite store run
//! here. Both sides are seeded with records that predate the service, the first sync runs
//! through `resync` exactly as an operator would run it, and a short script of edits on both
//! sides shows each change travel through the real webhooks, hooks, queue and engine. A
//! summary read from the admin API closes it; without `--once` the service keeps serving.
//!
//! webCRM hooks are held by the sandbox and handed over while waiting for quiet, so the
//! demo decides when webCRM "calls": that is what lets the conflict step edit both sides
//! before either notification is acted on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat, Purpose, RawConfig};
use crate::sandbox::chargebee::{ChargebeeSandbox, RunningChargebeeSandbox, SandboxOptions};
use crate::sandbox::webcrm::{
    HookDelivery, RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox, WebcrmSandboxOptions,
};
use crate::serve::{self, Limiters, Running};
use crate::store::admin::{LinkFilter, Page};
use crate::store::{self, DynStore};

/// How long one step may take to come to rest before the demo gives up.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// How often the demo looks whether everything is quiet.
const SETTLE_TICK: Duration = Duration::from_millis(100);

/// What `demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Exit after the summary instead of serving until Ctrl-C.
    pub once: bool,
    /// The store to use; a temporary SQLite file when absent.
    pub database_url: Option<String>,
}

/// Runs the demo. Progress and results go to `out`; progress bars go to stderr.
pub async fn run(options: Options, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let temp_db = match &options.database_url {
        Some(_) => None,
        None => Some(TempDb::new()),
    };
    let result = run_inner(&options, temp_db.as_ref(), started, out).await;
    drop(temp_db);
    result
}

async fn run_inner(
    options: &Options,
    temp_db: Option<&TempDb>,
    started: Instant,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let database_url = match (&options.database_url, temp_db) {
        (Some(url), _) => url.clone(),
        (None, Some(t)) => t.url(),
        (None, None) => bail!("no database"),
    };
    heading(out, "Starting both sandboxes and the service")?;
    let cb = ChargebeeSandbox::start(SandboxOptions {
        site: "demo".into(),
        ..SandboxOptions::default()
    })
    .await
    .context("starting the Chargebee sandbox")?;
    // Hooks wait for `Demo::settle`, which hands them over like webCRM's hook dispatcher.
    let wc = WebcrmSandbox::start(WebcrmSandboxOptions {
        hook_delivery: HookDelivery::Manual,
        ..WebcrmSandboxOptions::default()
    })
    .await
    .context("starting the webCRM sandbox")?;
    let listen: SocketAddr = match std::env::var("LISTEN_ADDR") {
        Ok(addr) => addr
            .parse()
            .with_context(|| format!("LISTEN_ADDR={addr:?} is not an address"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let service_url = format!("http://{}", listener.local_addr()?);
    let secrets = Secrets::generate();
    let config = demo_config(&cb, &wc, &database_url, &service_url, &secrets)?;
    writeln!(out, "  Chargebee sandbox  {}", cb.base_url())?;
    writeln!(out, "  webCRM sandbox     {}", wc.base_url())?;
    writeln!(out, "  service            {service_url}")?;
    writeln!(
        out,
        "  store              {}",
        crate::config::mask_url(&database_url)
    )?;
    writeln!(out, "  admin token        {}", secrets.admin_token)?;
    writeln!(
        out,
        "  Chargebee webhook  user {} password {}",
        secrets.cb_user, secrets.cb_password
    )?;
    writeln!(out, "  webCRM hook secret {}", secrets.webcrm_secret)?;

    heading(out, "Seeding records that exist before the service does")?;
    let seeded = seed(&cb, &wc)?;
    seeded.print(&cb, &wc, out)?;
    let census = take_census(&cb, &wc);

    let store = store::connect(&config.database_url, 16).await?;
    store.migrate().await.context("applying migrations")?;
    // Demo records must never mix with a real installation's links (or an earlier demo's).
    let existing = store
        .list_links(
            &LinkFilter::default(),
            Page {
                before: None,
                limit: 1,
            },
        )
        .await?;
    if !existing.is_empty() {
        bail!(
            "{} already holds links; the demo needs an empty store (leave out \
             --database-url for a temporary one)",
            crate::config::mask_url(&config.database_url)
        );
    }
    let config = Arc::new(config);
    let limiters = Limiters::from_config(&config);
    let handler = Arc::new(serve::handlers(&config, &store, &limiters)?);
    let shutdown = CancellationToken::new();
    let running = serve::start(
        config.clone(),
        store.clone(),
        limiters,
        handler,
        listener,
        shutdown.clone(),
    )?;
    let mut demo = Demo {
        cb,
        wc,
        store,
        config: config.clone(),
        http: reqwest::Client::new(),
        service_url,
        admin_token: secrets.admin_token.clone(),
        delivery_base: (0, 0),
        census,
    };
    let result = demo.play(&seeded, options, &running, started, out).await;
    // Stop the service before the sandboxes it talks to.
    let stopped = running.stop().await;
    demo.cb.shutdown().await;
    demo.wc.shutdown().await;
    result?;
    stopped
}

/// A SQLite file in the temporary directory, removed (with its journal files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        let name = format!("wcs-demo-{}.db", uuid::Uuid::new_v4().simple());
        TempDb(std::env::temp_dir().join(name))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal", ".migrate-lock"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Fresh credentials for one run: nothing here is a default anyone could guess.
struct Secrets {
    admin_token: String,
    cb_user: String,
    cb_password: String,
    webcrm_secret: String,
}

impl Secrets {
    fn generate() -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Secrets {
            admin_token: random(),
            cb_user: "chargebee".into(),
            cb_password: random(),
            webcrm_secret: random(),
        }
    }
}

/// The service's configuration for the sandboxes: validated like any other, so the demo
/// runs the same code paths as production. Only `LISTEN_ADDR` is taken from the
/// environment; nothing else an operator set for a real installation leaks in.
fn demo_config(
    cb: &RunningChargebeeSandbox,
    wc: &RunningWebcrmSandbox,
    database_url: &str,
    service_url: &str,
    secrets: &Secrets,
) -> anyhow::Result<Config> {
    let cb_url = cb.base_url().to_string();
    let settings: Vec<(&str, String)> = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("PUBLIC_URL", service_url.to_owned()),
        ("CHARGEBEE_BASE_URL", cb_url),
        ("CHARGEBEE_SITE", cb.site().to_owned()),
        ("CHARGEBEE_API_KEY", cb.api_key().to_owned()),
        ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "60000".to_owned()),
        ("CHARGEBEE_WEBHOOK_USERNAME", secrets.cb_user.clone()),
        ("CHARGEBEE_WEBHOOK_PASSWORD", secrets.cb_password.clone()),
        ("WEBCRM_BASE_URL", wc.base_url()),
        ("WEBCRM_API_TOKEN", wc.api_token()),
        ("WEBCRM_RATE_LIMIT_PER_MINUTE", "60000".to_owned()),
        ("WEBCRM_WEBHOOK_SECRET", secrets.webcrm_secret.clone()),
        ("ADMIN_TOKEN", secrets.admin_token.clone()),
        ("DEFAULT_CURRENCY", "DKK".to_owned()),
        // One catalogue currency per installation: DKK here; EUR prices stay in Chargebee.
        ("PRODUCTS_ITEMS_CURRENCY", "DKK".to_owned()),
        ("SHUTDOWN_GRACE_SECS", "2".to_owned()),
    ];
    RawConfig::from_sources(None, settings.into_iter().map(|(k, v)| (k.to_owned(), v)))
        .validate(Purpose::Serve)
        .map_err(|e| anyhow!("the demo configuration is invalid: {e}"))
}

fn sandbox_error(what: &str, e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("seeding {what} failed: {e:?}")
}

/// The ids of what was seeded, for the script to edit.
struct Seeded {
    /// Organisation ids by name.
    orgs: BTreeMap<&'static str, i64>,
    /// Person ids by e-mail.
    persons: BTreeMap<&'static str, i64>,
    /// User ids by e-mail.
    users: BTreeMap<&'static str, i64>,
    /// The open opportunity the script wins.
    open_opportunity: i64,
}

impl Seeded {
    fn person(&self, email: &str) -> anyhow::Result<i64> {
        self.persons
            .get(email)
            .copied()
            .ok_or_else(|| anyhow!("no seeded person {email}"))
    }

    fn org(&self, name: &str) -> anyhow::Result<i64> {
        self.orgs
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("no seeded organisation {name}"))
    }

    fn user(&self, email: &str) -> anyhow::Result<i64> {
        self.users
            .get(email)
            .copied()
            .ok_or_else(|| anyhow!("no seeded user {email}"))
    }

    fn print(
        &self,
        cb: &RunningChargebeeSandbox,
        wc: &RunningWebcrmSandbox,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let s = wc.state();
        writeln!(
            out,
            "  webCRM:    {} organisations, {} persons, {} users, {} catalogue items (DKK), \
             {} opportunities ({} won) with {} quotation lines",
            s.count(SandboxEntity::Organisation),
            s.count(SandboxEntity::Person),
            s.count(SandboxEntity::User),
            s.count(SandboxEntity::LinkedData),
            s.count(SandboxEntity::Opportunity),
            s.records(SandboxEntity::Opportunity)
                .iter()
                .filter(|o| o.get("OpportunityWinYesNo") == Some(&json!(true)))
                .count(),
            s.count(SandboxEntity::QuotationLine),
        )?;
        let h = cb.handle();
        let prices = h.records("item_price");
        let in_currency = |c: &str| {
            prices
                .iter()
                .filter(|p| p["currency_code"] == json!(c))
                .count()
        };
        writeln!(
            out,
            "  Chargebee: {} customers (2 share an e-mail with webCRM), {} items with {} DKK \
             and {} EUR prices, {} paid invoices with orders",
            h.records("customer").len(),
            h.records("item").len(),
            in_currency("DKK"),
            in_currency("EUR"),
            h.records("order").len(),
        )?;
        Ok(())
    }
}

/// Both sides as they might look on the day the service is installed: some records exist on
/// one side only, some on both (same e-mail), and Chargebee has an order webCRM never saw.
fn seed(cb: &RunningChargebeeSandbox, wc: &RunningWebcrmSandbox) -> anyhow::Result<Seeded> {
    let s = wc.state();
    let create = |entity: SandboxEntity, fields: Value| {
        s.ui_create(entity, fields)
            .map_err(|e| sandbox_error(&format!("{entity:?}"), e))
    };
    let mut orgs = BTreeMap::new();
    for (name, address, postcode, city, country, vat) in [
        (
            "Nordlys A/S",
            "Strandvejen 12",
            "2100",
            "København Ø",
            "Danmark",
            "DK12345678",
        ),
        (
            "Fjord Logistics ApS",
            "Havnegade 4",
            "8000",
            "Aarhus C",
            "Danmark",
            "DK87654321",
        ),
        (
            "Berliner Brot GmbH",
            "Backstraße 7",
            "10115",
            "Berlin",
            "Deutschland",
            "DE123456789",
        ),
    ] {
        let id = create(
            SandboxEntity::Organisation,
            json!({
                "OrganisationName": name,
                "OrganisationAddress": address,
                "OrganisationPostCode": postcode,
                "OrganisationCity": city,
                "OrganisationCountry": country,
                "OrganisationVatNumber": vat,
            }),
        )?;
        orgs.insert(name, id);
    }
    let org = |name: &str| orgs.get(name).copied().unwrap_or_default();
    let mut persons = BTreeMap::new();
    for (org_name, first, last, email, phone) in [
        (
            "Nordlys A/S",
            "Anna",
            "Holm",
            "anna@nordlys.dk",
            "+45 20 11 22 33",
        ),
        ("Nordlys A/S", "Jonas", "Krog", "jonas@nordlys.dk", ""),
        (
            "Fjord Logistics ApS",
            "Karen",
            "Bech",
            "karen@fjordlogistics.dk",
            "+45 30 44 55 66",
        ),
        (
            "Fjord Logistics ApS",
            "Mads",
            "Lund",
            "mads@fjordlogistics.dk",
            "",
        ),
        (
            "Berliner Brot GmbH",
            "Lena",
            "Vogel",
            "lena@berliner-brot.de",
            "+49 30 1234567",
        ),
    ] {
        let mut fields = json!({
            "PersonOrganisationId": org(org_name),
            "PersonFirstName": first,
            "PersonLastName": last,
            "PersonEmail": email,
        });
        if !phone.is_empty() {
            fields["PersonDirectPhone"] = json!(phone);
        }
        persons.insert(email, create(SandboxEntity::Person, fields)?);
    }
    let mut users = BTreeMap::new();
    for (name, email, phone) in [
        ("Mette Sørensen", "mette@our-company.dk", "+45 70 10 20 30"),
        ("Peter Dahl", "peter@our-company.dk", "+45 70 10 20 31"),
    ] {
        let id = create(
            SandboxEntity::User,
            json!({"UserName": name, "UserEmail": email, "UserTelephone": phone}),
        )?;
        users.insert(email, id);
    }
    for (code, name, price) in [
        ("ONBOARD", "Onboarding workshop", 4995.0),
        ("SUPPORT-STD", "Standard support (month)", 1250.0),
        ("SEAT", "Extra seat", 199.95),
    ] {
        create(
            SandboxEntity::LinkedData,
            json!({
                "QuotationLineLinkedDataItemData1": code,
                "QuotationLineLinkedDataItemData2": name,
                "QuotationLineLinkedDataItemPrice": price,
                "QuotationLineLinkedDataItemEntityType": "Product",
            }),
        )?;
    }
    let person = |email: &str| persons.get(email).copied().unwrap_or_default();
    let opportunity = |person_id: i64, description: &str, won: bool, lines: &[(&str, f64, f64)]| {
        let id = create(
            SandboxEntity::Opportunity,
            json!({
                "OpportunityPersonId": person_id,
                "OpportunityDescription": description,
                "OpportunityCurrencyName": "DKK",
                "OpportunityWinYesNo": won,
            }),
        )?;
        for (n, (memo, price, quantity)) in lines.iter().enumerate() {
            create(
                SandboxEntity::QuotationLine,
                json!({
                    "QuotationLineOpportunityId": id,
                    "QuotationLineMemo": memo,
                    "QuotationLinePrice": price,
                    "QuotationLineQuantity": quantity,
                    "QuotationLineSortOrder": n + 1,
                }),
            )?;
        }
        Ok::<i64, anyhow::Error>(id)
    };
    opportunity(
        person("anna@nordlys.dk"),
        "Nordlys rollout",
        true,
        &[
            ("Onboarding workshop", 4995.0, 1.0),
            ("Extra seat", 199.95, 10.0),
        ],
    )?;
    let open_opportunity = opportunity(
        person("karen@fjordlogistics.dk"),
        "Fjord Logistics pilot",
        false,
        &[
            ("Onboarding workshop", 4995.0, 1.0),
            ("Standard support (month)", 1250.0, 3.0),
        ],
    )?;
    opportunity(
        person("lena@berliner-brot.de"),
        "Berliner Brot expansion",
        false,
        &[("Extra seat", 199.95, 25.0)],
    )?;

    let h = cb.handle();
    let customer = |pairs: &[(&str, &str)]| {
        h.dashboard_create_customer(pairs)
            .map_err(|e| sandbox_error("customer", e))
    };
    // Already in webCRM (same e-mail, other case): resync links these instead of copying.
    customer(&[
        ("id", "cust_anna"),
        ("first_name", "Anna"),
        ("last_name", "Holm"),
        ("email", "Anna@Nordlys.dk"),
        ("company", "Nordlys A/S"),
    ])?;
    customer(&[
        ("id", "cust_mette"),
        ("first_name", "Mette"),
        ("last_name", "Sørensen"),
        ("email", "mette@our-company.dk"),
    ])?;
    // Only in Chargebee: one joins an existing organisation, one brings a new one.
    customer(&[
        ("id", "cust_sofia"),
        ("first_name", "Sofia"),
        ("last_name", "Berg"),
        ("email", "sofia@fjordlogistics.dk"),
        ("company", "Fjord Logistics ApS"),
        ("phone", "+45 40 77 88 99"),
    ])?;
    customer(&[
        ("id", "cust_oskar"),
        ("first_name", "Oskar"),
        ("last_name", "Lind"),
        ("email", "oskar@kaffe-og-co.dk"),
        ("company", "Kaffe & Co"),
    ])?;
    let call = |op: &str, pairs: &[(&str, &str)]| {
        h.dashboard_call(op, None, pairs)
            .map_err(|e| sandbox_error(op, e))
    };
    call("itemFamily.create", &[("id", "shop"), ("name", "Shop")])?;
    for (id, name, dkk, eur) in [
        ("cloud-storage", "Cloud storage (100 GB)", "9900", "1350"),
        ("priority-support", "Priority support", "250000", "33500"),
    ] {
        call(
            "item.create",
            &[
                ("id", id),
                ("name", name),
                ("type", "charge"),
                ("item_family_id", "shop"),
            ],
        )?;
        for (currency, price) in [("DKK", dkk), ("EUR", eur)] {
            let price_id = format!("{id}-{currency}");
            call(
                "itemPrice.create",
                &[
                    ("id", &price_id),
                    ("name", &price_id),
                    ("item_id", id),
                    ("pricing_model", "flat_fee"),
                    ("currency_code", currency),
                    ("price", price),
                ],
            )?;
        }
    }
    // Orders webCRM has never seen: each becomes an opportunity with its lines.
    for (customer_id, charges) in [
        (
            "cust_sofia",
            [("Cloud storage (100 GB)", "9900"), ("Setup", "150000")],
        ),
        (
            "cust_oskar",
            [
                ("Priority support", "250000"),
                ("Espresso training", "45000"),
            ],
        ),
    ] {
        let mut pairs = vec![("customer_id", customer_id), ("currency_code", "DKK")];
        let keys: Vec<(String, String)> = (0..charges.len())
            .map(|n| {
                (
                    format!("charges[amount][{n}]"),
                    format!("charges[description][{n}]"),
                )
            })
            .collect();
        for ((amount_key, description_key), (description, amount)) in keys.iter().zip(&charges) {
            pairs.push((amount_key, amount));
            pairs.push((description_key, description));
        }
        let invoice = call("invoice.createForChargeItemsAndCharges", &pairs)?;
        let invoice_id = invoice["invoice"]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the sandbox made an invoice without an id"))?;
        h.pay_invoice(invoice_id, true)
            .map_err(|e| sandbox_error("payment", e))?;
    }
    Ok(Seeded {
        orgs,
        persons,
        users,
        open_opportunity,
    })
}

/// Counts that tell what one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    cb_writes: u64,
    wc_writes: usize,
    cb_deliveries: usize,
    wc_hooks: usize,
    conflicts: usize,
    pending: usize,
}

struct Demo {
    cb: RunningChargebeeSandbox,
    wc: RunningWebcrmSandbox,
    store: DynStore,
    config: Arc<Config>,
    http: reqwest::Client,
    service_url: String,
    admin_token: String,
    /// Chargebee (events, deliveries) when our endpoint was registered: later events of the
    /// subscribed types are each delivered once.
    delivery_base: (usize, usize),
    /// Per pairing, the (webCRM, Chargebee) ids that existed before the service started.
    census: Census,
}

/// Per pairing, the ids of the (webCRM, Chargebee) records that existed before the service
/// did: any other linked record was created by the sync. The sandboxes are the ground truth
/// here, so the count does not depend on how the engine words its log.
type Census = BTreeMap<&'static str, (BTreeSet<String>, BTreeSet<String>)>;

/// Each pairing's webCRM entity and Chargebee resource.
const PAIRED: [(&str, SandboxEntity, &str); 6] = [
    ("persons_customers", SandboxEntity::Person, "customer"),
    ("users_customers", SandboxEntity::User, "customer"),
    (
        "organisations_business_entities",
        SandboxEntity::Organisation,
        "business_entity",
    ),
    ("opportunities_orders", SandboxEntity::Opportunity, "order"),
    (
        "quotationlines_orders",
        SandboxEntity::QuotationLine,
        "order_line",
    ),
    ("products_items", SandboxEntity::LinkedData, "item"),
];

/// Business entities Chargebee announces once our endpoint exists: (id, name).
const BUSINESS_ENTITIES: [(&str, &str); 2] = [
    ("be_nordlys", "Nordlys A/S"),
    ("be_fjord", "Fjord Logistics ApS"),
];

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn take_census(cb: &RunningChargebeeSandbox, wc: &RunningWebcrmSandbox) -> Census {
    let h = cb.handle();
    PAIRED
        .iter()
        .map(|&(pairing, entity, resource)| {
            let webcrm = wc
                .state()
                .records(entity)
                .iter()
                .filter_map(|r| r.get(entity.id_field()).and_then(id_text))
                .collect();
            let chargebee = match resource {
                "business_entity" => BUSINESS_ENTITIES
                    .iter()
                    .map(|(id, _)| (*id).to_owned())
                    .collect(),
                "order_line" => h
                    .records("order")
                    .iter()
                    .flat_map(|o| {
                        let order = id_text(&o["id"]).unwrap_or_default();
                        o["order_line_items"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(move |l| {
                                id_text(&l["id"]).map(|line| format!("{order}/{line}"))
                            })
                    })
                    .collect(),
                _ => h
                    .records(resource)
                    .iter()
                    .filter_map(|r| id_text(&r["id"]))
                    .collect(),
            };
            (pairing, (webcrm, chargebee))
        })
        .collect()
}

impl Demo {
    async fn play(
        &mut self,
        seeded: &Seeded,
        options: &Options,
        running: &Running,
        started: Instant,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        heading(out, "Registering our webhook and hooks (register-webhooks)")?;
        let plan = crate::register::plan(&self.config).await?;
        let counts = crate::register::apply(&self.config, &plan).await?;
        self.delivery_base = (
            self.deliverable_events(),
            self.cb.handle().deliveries().len(),
        );
        writeln!(
            out,
            "  Chargebee endpoint -> {}{}; {} webCRM hooks -> {}{}…  ({} created)",
            plan.public_url,
            crate::register::CHARGEBEE_PATH,
            plan.webcrm.len(),
            plan.public_url,
            crate::register::WEBCRM_PATH_PREFIX,
            counts.create
        )?;
        // Business entities exist in Chargebee's API only as events.
        for (id, name) in BUSINESS_ENTITIES {
            self.cb.handle().emit_business_entity_created(id, name);
        }
        self.settle().await?;
        writeln!(
            out,
            "  Chargebee announced business entities be_nordlys and be_fjord; both linked to \
             the organisations of the same name"
        )?;

        heading(
            out,
            "First sync: resync (link by cross ids and e-mail, then create)",
        )?;
        let mut report = Vec::new();
        crate::resync_command::run(
            (*self.config).clone(),
            crate::resync_command::Options::default(),
            &mut report,
        )
        .await
        .context("the first sync failed")?;
        for line in String::from_utf8_lossy(&report).lines() {
            // Indented lines list every planned record; the per-pairing totals are enough.
            if !line.starts_with(char::is_whitespace) {
                writeln!(out, "  {line}")?;
            }
        }
        self.settle().await?;
        // Resync cannot list opportunities and orders yet; one catch-up poll pass (its first
        // cursor reaches back two minutes) brings over the seeded ones, as `serve` would.
        writeln!(
            out,
            "  one catch-up poll pass (Chargebee events, webCRM changes) for the pairings \
             resync does not list"
        )?;
        let now = store::now_ms();
        for job in crate::poller::poll_jobs(now, self.config.queue.max_attempts) {
            self.store.enqueue(&job, now).await?;
        }
        self.settle().await?;
        self.print_links(out).await?;

        heading(out, "The script: edits on both sides")?;
        self.script(seeded, out).await?;

        heading(out, "Summary")?;
        self.summary(out).await?;
        self.where_to_look(out)?;
        writeln!(
            out,
            "\ndemo finished in {:.1} s",
            started.elapsed().as_secs_f64()
        )?;
        if options.once {
            return Ok(());
        }
        writeln!(
            out,
            "\nServing until Ctrl-C (polling and the reconciler are running too)."
        )?;
        out.flush()?;
        tokio::spawn(crate::poller::schedule(
            self.store.clone(),
            self.config.clone(),
            running.shutdown.clone(),
        ));
        tokio::spawn(crate::reconciler::schedule(
            self.store.clone(),
            self.config.clone(),
            running.shutdown.clone(),
        ));
        // Keep handing webCRM's hooks over while serving, as webCRM would.
        let shutdown = running.shutdown.clone();
        let hooks = async {
            loop {
                self.wc.state().deliver_pending_hooks().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            _ = serve::wait_for_signal() => {}
            _ = shutdown.cancelled() => {}
            _ = hooks => {}
        }
        writeln!(out, "stopping")?;
        Ok(())
    }

    async fn script(&mut self, seeded: &Seeded, out: &mut dyn Write) -> anyhow::Result<()> {
        let anna = seeded.person("anna@nordlys.dk")?;
        let karen = seeded.person("karen@fjordlogistics.dk")?;
        let jonas = seeded.person("jonas@nordlys.dk")?;
        let anna_cb = self
            .counterpart("persons_customers", &anna.to_string())
            .await?;
        let karen_cb = self
            .counterpart("persons_customers", &karen.to_string())
            .await?;
        let jonas_cb = self
            .counterpart("persons_customers", &jonas.to_string())
            .await?;

        // 1. A name edit in webCRM.
        step(
            out,
            1,
            "webCRM: Karen Bech marries and becomes Karen Bech-Nielsen",
        )?;
        let before = self.tally().await?;
        self.wc_update(
            SandboxEntity::Person,
            karen,
            json!({"PersonLastName": "Bech-Nielsen"}),
        )?;
        self.settle().await?;
        writeln!(
            out,
            "  Chargebee customer {karen_cb}: last_name = {}",
            self.cb_field("customer", &karen_cb, "last_name")
        )?;
        self.print_delta(&before, out).await?;

        // 2. A phone edit in Chargebee.
        step(out, 2, "Chargebee: Anna Holm's phone number changes")?;
        let before = self.tally().await?;
        self.cb_edit("customer", &anna_cb, json!({"phone": "+45 99 88 77 66"}))?;
        self.settle().await?;
        writeln!(
            out,
            "  webCRM person {anna}: PersonDirectPhone = {}",
            self.wc_field(SandboxEntity::Person, anna, "PersonDirectPhone")
        )?;
        self.print_delta(&before, out).await?;

        // 3. An organisation rename.
        step(out, 3, "webCRM: Nordlys A/S is renamed Nordlys Group A/S")?;
        let nordlys = seeded.org("Nordlys A/S")?;
        let before = self.tally().await?;
        self.wc_update(
            SandboxEntity::Organisation,
            nordlys,
            json!({"OrganisationName": "Nordlys Group A/S"}),
        )?;
        self.settle().await?;
        for (person, customer) in [(anna, &anna_cb), (jonas, &jonas_cb)] {
            writeln!(
                out,
                "  Chargebee customer {customer} (person {person}): company = {}",
                self.cb_field("customer", customer, "company")
            )?;
        }
        for action in self.new_pending(before.pending).await? {
            writeln!(out, "  pending action: {action}")?;
        }
        self.print_delta(&before, out).await?;

        // 4. A conflict: both sides edit the same field before either is synced.
        step(
            out,
            4,
            "Both: Jonas's first name is edited in webCRM and, a minute later, in Chargebee",
        )?;
        let before = self.tally().await?;
        // webCRM's hook is held until the next settle: the two edits cross.
        self.wc_update(
            SandboxEntity::Person,
            jonas,
            json!({"PersonFirstName": "Jon"}),
        )?;
        self.cb.handle().advance_clock(Duration::from_secs(60));
        self.cb_edit("customer", &jonas_cb, json!({"first_name": "Jonas B."}))?;
        self.settle().await?;
        for conflict in self.new_conflicts(before.conflicts).await? {
            writeln!(out, "  conflict: {conflict}")?;
        }
        writeln!(
            out,
            "  now webCRM PersonFirstName = {}, Chargebee first_name = {}",
            self.wc_field(SandboxEntity::Person, jonas, "PersonFirstName"),
            self.cb_field("customer", &jonas_cb, "first_name")
        )?;
        self.print_delta(&before, out).await?;

        // 5. An echo: our own write comes back and writes nothing.
        let mette = seeded.user("mette@our-company.dk")?;
        let mette_cb = self
            .counterpart("users_customers", &mette.to_string())
            .await?;
        step(
            out,
            5,
            "webCRM: user Mette Sørensen gets a new phone; watch the echo",
        )?;
        let before = self.tally().await?;
        self.wc_update(
            SandboxEntity::User,
            mette,
            json!({"UserTelephone": "+45 70 10 20 99"}),
        )?;
        self.settle().await?;
        let after = self.tally().await?;
        writeln!(
            out,
            "  Chargebee customer {mette_cb}: phone = {}",
            self.cb_field("customer", &mette_cb, "phone")
        )?;
        writeln!(
            out,
            "  echo: our write to Chargebee came back as {} webhook(s); the sync re-read \
             both sides, found them equal to the last synced values and wrote nothing more: \
             {} Chargebee write(s) (the change itself), {} webCRM write(s)",
            after.cb_deliveries - before.cb_deliveries,
            after.cb_writes - before.cb_writes,
            after.wc_writes - before.wc_writes
        )?;

        // 6. A won opportunity becomes an invoice and an order.
        let opp = seeded.open_opportunity;
        step(
            out,
            6,
            "webCRM: the Fjord Logistics pilot is won (two quotation lines)",
        )?;
        let before = self.tally().await?;
        self.wc_update(
            SandboxEntity::Opportunity,
            opp,
            json!({"OpportunityWinYesNo": true}),
        )?;
        self.settle().await?;
        let order_id = self
            .counterpart("opportunities_orders", &opp.to_string())
            .await?;
        let order = self
            .cb
            .handle()
            .record("order", &order_id)
            .ok_or_else(|| anyhow!("no order {order_id}"))?;
        let total = order["total"].as_i64().unwrap_or(0);
        writeln!(
            out,
            "  Chargebee order {order_id}: invoice {}, {} lines, total {}.{:02} {}",
            order["invoice_id"].as_str().unwrap_or("?"),
            order["order_line_items"].as_array().map_or(0, Vec::len),
            total / 100,
            total % 100,
            order["currency_code"].as_str().unwrap_or("?"),
        )?;
        writeln!(
            out,
            "  webCRM opportunity {opp}: OpportunityErpId = {}, OpportunityOrderValue = {}",
            self.wc_field(SandboxEntity::Opportunity, opp, "OpportunityErpId"),
            self.wc_field(SandboxEntity::Opportunity, opp, "OpportunityOrderValue")
        )?;
        self.print_delta(&before, out).await?;
        Ok(())
    }

    fn wc_update(&self, entity: SandboxEntity, id: i64, changes: Value) -> anyhow::Result<()> {
        self.wc
            .state()
            .ui_update(entity, id, changes)
            .map_err(|e| anyhow!("editing webCRM {entity:?} {id} failed: {e:?}"))
    }

    fn cb_edit(&self, resource: &str, id: &str, patch: Value) -> anyhow::Result<()> {
        self.cb
            .handle()
            .dashboard_edit(resource, id, patch)
            .map(|_| ())
            .map_err(|e| anyhow!("editing Chargebee {resource} {id} failed: {e:?}"))
    }

    fn cb_field(&self, resource: &str, id: &str, field: &str) -> String {
        self.cb
            .handle()
            .record(resource, id)
            .map_or_else(|| "(missing)".into(), |r| show(&r[field]))
    }

    fn wc_field(&self, entity: SandboxEntity, id: i64, field: &str) -> String {
        self.wc
            .state()
            .record(entity, id)
            .map_or_else(|| "(missing)".into(), |r| show(&r[field]))
    }

    /// The Chargebee id linked to a webCRM record.
    async fn counterpart(&self, pairing: &str, webcrm_id: &str) -> anyhow::Result<String> {
        let links = self
            .store
            .list_links(
                &LinkFilter {
                    pairing: Some(pairing.into()),
                    webcrm_id: Some(webcrm_id.into()),
                    chargebee_id: None,
                    tombstoned: Some(false),
                },
                Page {
                    before: None,
                    limit: 1,
                },
            )
            .await?;
        links
            .into_iter()
            .next()
            .map(|l| l.chargebee_id)
            .ok_or_else(|| anyhow!("webCRM {webcrm_id} has no {pairing} link"))
    }

    /// Chargebee events of the types our endpoint subscribes to.
    fn deliverable_events(&self) -> usize {
        self.cb
            .handle()
            .events()
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .is_some_and(|t| crate::intake::chargebee::SUBSCRIBED_EVENT_TYPES.contains(&t))
            })
            .count()
    }

    async fn tally(&self) -> anyhow::Result<Tally> {
        Ok(Tally {
            cb_writes: self.cb.handle().write_counts().values().sum(),
            wc_writes: self.wc.state().total_writes(),
            cb_deliveries: self.cb.handle().deliveries().len(),
            wc_hooks: self.wc.state().hook_deliveries().len(),
            conflicts: self.admin_items("/conflicts?limit=200").await?.len(),
            pending: self.admin_items("/pending-actions?limit=200").await?.len(),
        })
    }

    async fn print_delta(&self, before: &Tally, out: &mut dyn Write) -> anyhow::Result<()> {
        let after = self.tally().await?;
        writeln!(
            out,
            "  traffic: in {} Chargebee webhook(s) and {} webCRM hook(s); out {} write(s) to \
             Chargebee and {} to webCRM",
            after.cb_deliveries - before.cb_deliveries,
            after.wc_hooks - before.wc_hooks,
            after.cb_writes - before.cb_writes,
            after.wc_writes - before.wc_writes,
        )?;
        Ok(())
    }

    /// Waits until nothing moves: every Chargebee event delivered, every webCRM hook handed
    /// over, and no job waiting or running, twice in a row.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut quiet_before = false;
        loop {
            let (events_then, deliveries_then) = self.delivery_base;
            let expected = deliveries_then + self.deliverable_events().saturating_sub(events_then);
            let delivered = self.cb.handle().deliveries().len() >= expected;
            let waiting: i64 = self
                .store
                .job_counts()
                .await?
                .iter()
                .filter(|c| matches!(c.state.as_str(), "pending" | "running" | "failed"))
                .map(|c| c.count)
                .sum();
            // Hooks go over once the queue is idle, so each step reads the same every run
            // (the engine handles them arriving mid-job too; the output would vary).
            let hooks = if waiting == 0 && delivered {
                self.wc.state().deliver_pending_hooks().await.len()
            } else {
                self.wc.state().pending_hook_count()
            };
            let quiet = hooks == 0 && delivered && waiting == 0;
            if quiet && quiet_before {
                return Ok(());
            }
            quiet_before = quiet;
            if Instant::now() > deadline {
                bail!(
                    "the sync did not come to rest within {SETTLE_DEADLINE:?} ({waiting} jobs \
                     waiting); see {}/admin/v1/jobs",
                    self.service_url
                );
            }
            tokio::time::sleep(SETTLE_TICK).await;
        }
    }

    /// `GET /admin/v1{path}` with the demo's token.
    async fn admin(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}/admin/v1{path}", self.service_url);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))
    }

    async fn admin_items(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self.admin(path).await?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Conflicts recorded after the first `skip` (the list is newest first).
    async fn new_conflicts(&self, skip: usize) -> anyhow::Result<Vec<String>> {
        let items = self.admin_items("/conflicts?limit=200").await?;
        let fresh = items.len().saturating_sub(skip);
        Ok(items.iter().take(fresh).map(describe_conflict).collect())
    }

    /// Pending actions opened after the first `skip` (the list is newest first).
    async fn new_pending(&self, skip: usize) -> anyhow::Result<Vec<String>> {
        let items = self.admin_items("/pending-actions?limit=200").await?;
        let fresh = items.len().saturating_sub(skip);
        Ok(items.iter().take(fresh).map(describe_pending).collect())
    }

    async fn print_links(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let status = self.admin("/status").await?;
        let empty = Vec::new();
        let pairings = status["pairings"].as_array().unwrap_or(&empty);
        let parts: Vec<String> = pairings
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["links"]["live"]
                )
            })
            .collect();
        writeln!(out, "  links now: {}", parts.join(", "))?;
        Ok(())
    }

    /// Per pairing: links, records created on each side, conflicts and pending actions.
    async fn summary(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let status = self.admin("/status").await?;
        let empty = Vec::new();
        let pairings = status["pairings"].as_array().unwrap_or(&empty);
        let conflicts = self.admin_items("/conflicts?limit=200").await?;
        let pending = self.admin_items("/pending-actions?limit=200").await?;
        writeln!(
            out,
            "  {:<32} {:>6} {:>12} {:>11} {:>10} {:>8} {:>5}",
            "pairing", "links", "->Chargebee", "->webCRM", "conflicts", "pending", "dead"
        )?;
        for p in pairings {
            let name = p["name"].as_str().unwrap_or("?");
            let (to_cb, to_wc) = self.creates(name).await?;
            let count = |items: &[Value]| items.iter().filter(|i| i["pairing"] == name).count();
            writeln!(
                out,
                "  {:<32} {:>6} {:>12} {:>11} {:>10} {:>8} {:>5}",
                name,
                p["links"]["live"].as_i64().unwrap_or(0),
                to_cb,
                to_wc,
                count(&conflicts),
                count(&pending),
                p["dead_jobs"].as_i64().unwrap_or(0)
            )?;
        }
        writeln!(
            out,
            "  (->Chargebee / ->webCRM: records the sync created on that side; the rest of the \
             links matched records that already existed)"
        )?;
        writeln!(out, "\n  conflicts ({}):", conflicts.len())?;
        for c in &conflicts {
            writeln!(out, "    {}", describe_conflict(c))?;
        }
        writeln!(out, "  pending actions ({}):", pending.len())?;
        for a in &pending {
            writeln!(out, "    {}", describe_pending(a))?;
        }
        Ok(())
    }

    /// Records a pairing created in Chargebee and in webCRM: linked records that were not
    /// there before the service started.
    async fn creates(&self, pairing: &str) -> anyhow::Result<(usize, usize)> {
        let links = self
            .store
            .list_links(
                &LinkFilter {
                    pairing: Some(pairing.into()),
                    webcrm_id: None,
                    chargebee_id: None,
                    tombstoned: None,
                },
                Page {
                    before: None,
                    limit: 1000,
                },
            )
            .await?;
        let empty = BTreeSet::new();
        let (webcrm, chargebee) = self
            .census
            .get(pairing)
            .map_or((&empty, &empty), |(w, c)| (w, c));
        let to_cb = links
            .iter()
            .filter(|l| !chargebee.contains(&l.chargebee_id))
            .count();
        let to_wc = links
            .iter()
            .filter(|l| !webcrm.contains(&l.webcrm_id))
            .count();
        Ok((to_cb, to_wc))
    }

    fn where_to_look(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let url = &self.service_url;
        heading(out, "Where to look")?;
        writeln!(
            out,
            "  console     {url}/console  (sign in with the token {})",
            self.admin_token
        )?;
        writeln!(
            out,
            "  admin API   {url}/admin/v1  (token {})",
            self.admin_token
        )?;
        writeln!(
            out,
            "    curl -s -H 'Authorization: Bearer {}' {url}/admin/v1/status",
            self.admin_token
        )?;
        writeln!(
            out,
            "    … /links, /conflicts, /pending-actions, /jobs, /events; OpenAPI at {url}/admin/v1/openapi.json"
        )?;
        writeln!(out, "  metrics     {url}/metrics")?;
        writeln!(out, "  health      {url}/healthz, {url}/readyz")?;
        writeln!(
            out,
            "  sandboxes   Chargebee {} (API key {}), webCRM {} (token {})",
            self.cb.base_url(),
            self.cb.api_key(),
            self.wc.base_url(),
            self.wc.api_token()
        )?;
        writeln!(
            out,
            "  docs        README.md, docs/sync.md, docs/operating.md"
        )?;
        Ok(())
    }
}

fn describe_conflict(c: &Value) -> String {
    format!(
        "{} {} <-> {} field {}: webCRM {} vs Chargebee {}; {} won",
        c["pairing"].as_str().unwrap_or("?"),
        c["webcrm_id"].as_str().unwrap_or("?"),
        c["chargebee_id"].as_str().unwrap_or("?"),
        c["field"].as_str().unwrap_or("?"),
        c["webcrm_value"].as_str().unwrap_or("null"),
        c["chargebee_value"].as_str().unwrap_or("null"),
        c["winner"].as_str().unwrap_or("?"),
    )
}

fn describe_pending(a: &Value) -> String {
    let state = if a["closed_at"].is_null() {
        "open".to_owned()
    } else {
        format!("closed: {}", a["closed_reason"].as_str().unwrap_or("?"))
    };
    format!(
        "{} {} ({state}): {}",
        a["pairing"].as_str().unwrap_or("?"),
        a["kind"].as_str().unwrap_or("?"),
        a["message"].as_str().unwrap_or("?"),
    )
}

/// A value as a person reads it: strings without quotes.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "(empty)".into(),
        other => other.to_string(),
    }
}

fn heading(out: &mut dyn Write, title: &str) -> anyhow::Result<()> {
    writeln!(out, "\n== {title}")?;
    out.flush()?;
    Ok(())
}

fn step(out: &mut dyn Write, n: usize, title: &str) -> anyhow::Result<()> {
    writeln!(out, "\n-- step {n}: {title}")?;
    out.flush()?;
    Ok(())
}

/// Quiet logs: the demo prints what matters, warnings still show.
pub fn init_logging() {
    crate::telemetry::init_logging("warn", LogFormat::Pretty);
}
