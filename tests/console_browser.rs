//! The operator console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against the real sync (`World`). Signs in, watches the overview refresh
//! itself, finds a record by e-mail and reads its sync log, resolves a conflict, retries a
//! dead job and runs a dry-run resync. Saves screenshots under the target directory
//! (`<target>/console-screenshots/`), and into `docs/img/` with `UPDATE_SCREENSHOTS=1`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`CHROMEDRIVER` and `CHROMIUM` override
//! the paths). `.ci/run` installs them and sets `CONSOLE_BROWSER_REQUIRED=1`, so in CI a
//! missing browser fails the test. Elsewhere (a fresh machine running `cargo test`) the
//! test says loudly that it did not run and how to run it, instead of failing the suite.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;
use wcs::store::{now_ms, NewJob, Release};

use common::app::ADMIN;
use common::world::World;
use common::Backend;

/// How long to wait for something to show in the browser.
const PATIENCE: Duration = Duration::from_secs(20);

fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .chain(names.iter().map(|n| Path::new("/usr/bin").join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
    profile_path: String,
}

impl Driver {
    async fn start() -> Driver {
        let driver = find_binary("CHROMEDRIVER", &["chromedriver"]).unwrap_or_else(|| {
            panic!(
                "chromedriver not found: the console's browser test needs headless Chromium and \
                 its WebDriver. Install them with `apt-get install -y chromium chromium-driver` \
                 (.ci/run does this in CI), or point CHROMEDRIVER and CHROMIUM at them."
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{url}/status")).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let profile_path = profile.path().display().to_string();
        Driver {
            child,
            url,
            _profile: profile,
            profile_path,
        }
    }

    async fn browser(&self) -> Client {
        let chromium =
            find_binary("CHROMIUM", &["chromium", "chromium-browser"]).unwrap_or_else(|| {
                panic!("chromium not found: install it with `apt-get install -y chromium`")
            });
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", self.profile_path),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: the CI artefact folder under the target directory, and `docs/img`
/// when `UPDATE_SCREENSHOTS=1`.
fn save_screenshot(png: &[u8], name: &str) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("console-screenshots"))
        .unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(name), png).unwrap();
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), png).unwrap();
    }
}

/// The text of the first element matching `css`. The overview replaces its cells when it
/// refreshes, so an element found a moment ago may be gone: look it up again then.
async fn text_of(b: &Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        let el = b
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        match el.text().await {
            Ok(text) => return text,
            Err(e) if started.elapsed() < PATIENCE => {
                eprintln!("{css} changed under the read ({e}); reading it again");
            }
            Err(e) => panic!("cannot read {css}: {e}"),
        }
    }
}

async fn click_button(b: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no button {label:?}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn wait_for_text(b: &Client, css: &str, wanted: &str) {
    let started = Instant::now();
    loop {
        if let Ok(el) = b.find(Locator::Css(css)).await {
            if el.text().await.unwrap_or_default().contains(wanted) {
                return;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{css} never showed {wanted:?}; page:\n{}",
            b.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn dead_job(w: &World, key: &str) -> i64 {
    let store = &w.app.store;
    let now = now_ms();
    let job = NewJob {
        kind: "sync".into(),
        pairing: Some("persons_customers".into()),
        dedupe_key: key.into(),
        payload: json!({ "record": key }),
        run_at: now - 60_000,
        max_attempts: 5,
    };
    let id = store.enqueue(&job, now).await.unwrap();
    let claimed = store.claim("test-worker", now, 600_000, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let how = Release::Dead {
        error: "Chargebee answered 400: email is invalid".into(),
    };
    store.release(id, "test-worker", &how, now).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_uses_the_console_in_a_browser() {
    let installed = find_binary("CHROMEDRIVER", &["chromedriver"]).is_some()
        && find_binary("CHROMIUM", &["chromium", "chromium-browser"]).is_some();
    if !installed && std::env::var_os("CONSOLE_BROWSER_REQUIRED").is_none() {
        eprintln!(
            "NOT RUN: the console's browser test needs `apt-get install -y chromium \
             chromium-driver`; CI installs them and requires this test \
             (CONSOLE_BROWSER_REQUIRED=1)."
        );
        return;
    }
    let driver = Driver::start().await;
    let w = World::start(Backend::Sqlite).await;
    // A person synced to a customer, then edited on both sides: one conflict.
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Acme A/S", "OrganisationCity": "København"}),
            )
            .unwrap();
    let person =
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonOrganisationId": org, "PersonFirstName": "Ada",
                       "PersonLastName": "Lovelace", "PersonEmail": "ada@example.com",
                       "PersonDirectPhone": "+45 11 22 33 44"}),
            )
            .unwrap();
    w.settle().await;
    let customer = format!("wc-person-{person}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    w.cb.handle().advance_clock(Duration::from_secs(60));
    w.cb.handle()
        .dashboard_edit("customer", &customer, json!({"first_name": "Ada Augusta"}))
        .unwrap();
    w.settle().await;
    let job = dead_job(&w, "sync:persons_customers:person:4711").await;

    let b = driver.browser().await;
    let base = w.app.url("");

    // Sign in: a page without a session sends the browser to the form.
    b.goto(&format!("{base}/console/jobs")).await.unwrap();
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("input#token"))
        .await
        .unwrap()
        .send_keys(ADMIN)
        .await
        .unwrap();
    click_button(&b, "Sign in").await;
    // Back on the page first asked for, then to the overview.
    assert_eq!(text_of(&b, "main h1").await, "Failed and dead jobs");
    b.goto(&format!("{base}/console")).await.unwrap();
    assert_eq!(text_of(&b, "main h1").await, "Overview");
    assert_eq!(text_of(&b, "[data-k='persons_customers.dead']").await, "1");
    assert_eq!(
        text_of(&b, "[data-k='persons_customers.conflicts']").await,
        "1"
    );
    // The overview refreshes itself (the script runs under the CSP): a second dead job
    // shows without a reload.
    let second = dead_job(&w, "sync:persons_customers:person:4712").await;
    wait_for_text(&b, "[data-k='persons_customers.dead']", "2").await;
    save_screenshot(&b.screenshot().await.unwrap(), "console-overview.png");
    w.app.store.discard_job(second).await.unwrap();

    // Find the record by e-mail and read its sync log.
    b.find(Locator::LinkText("Find a record"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("input#q"))
        .await
        .unwrap()
        .send_keys("Ada@Example.com")
        .await
        .unwrap();
    click_button(&b, "Find").await;
    wait_for_text(&b, "main h1", "Link #").await;
    let log = text_of(&b, "table.synclog").await;
    assert!(log.contains("created_in_chargebee"), "{log}");
    let snapshot = text_of(&b, "table.snapshot").await;
    assert!(snapshot.contains("ada@example.com"), "{snapshot}");
    // Scrolled to the log for the picture.
    let here = b.current_url().await.unwrap();
    b.goto(&format!("{here}#log-h")).await.unwrap();
    save_screenshot(&b.screenshot().await.unwrap(), "console-sync-log.png");

    // Resolve the conflict: keep webCRM's value.
    b.find(Locator::LinkText("Conflicts"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(&b, "article.conflict").await.contains("Augusta"));
    click_button(&b, "Keep webCRM").await;
    wait_for_text(&b, "p.notice.ok", "Conflict resolved").await;
    assert!(text_of(&b, "main").await.contains("No open conflicts."));

    // Retry the dead job.
    b.find(Locator::LinkText("Jobs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(&b, "table.jobs").await.contains("email is invalid"));
    click_button(&b, "Retry").await;
    wait_for_text(&b, "p.notice.ok", "Job queued").await;
    assert_eq!(
        w.app.store.get_job(job).await.unwrap().unwrap().state,
        "pending"
    );
    w.app.store.discard_job(job).await.unwrap();

    // A dry-run resync: queued, run by the workers, its plan shown when the page reloads.
    b.goto(&format!("{base}/console/pairings/persons_customers"))
        .await
        .unwrap();
    click_button(&b, "Start a dry run").await;
    wait_for_text(&b, "p.notice.ok", "Resync queued").await;
    assert!(text_of(&b, ".progress").await.contains("dry run"));
    w.settle().await;
    wait_for_text(&b, "section.plan", "Last dry-run plan").await;
    let plan = text_of(&b, "section.plan").await;
    assert!(plan.contains("persons_customers:"), "{plan}");
    assert!(b
        .find(Locator::XPath(
            "//button[normalize-space()='Run the resync']"
        ))
        .await
        .is_ok());

    // The conflict's kept value reached both sides.
    assert_eq!(w.cb_record("customer", &customer)["first_name"], "Augusta");
    b.close().await.unwrap();
    w.shutdown().await;
}
