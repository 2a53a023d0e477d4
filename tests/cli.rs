//! The binary: `check`, `migrate`, `serve` and its shutdown, run as a real process.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

const SECRETS: [(&str, &str); 5] = [
    ("CHARGEBEE_API_KEY", "cb-secret-key-0123456789"),
    ("CHARGEBEE_WEBHOOK_PASSWORD", "cb-hook-password-0123"),
    ("WEBCRM_API_TOKEN", "wc-secret-token-0123456789"),
    ("WEBCRM_WEBHOOK_SECRET", "wc-hook-secret-0123456789"),
    ("ADMIN_TOKEN", "admin-secret-token-0123456789"),
];

fn command() -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    c
}

fn valid(c: &mut Command, database_url: &str, listen: &str) {
    c.env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", listen)
        .env("CHARGEBEE_SITE", "acme-test")
        .env("CHARGEBEE_WEBHOOK_USERNAME", "chargebee")
        .env("SHUTDOWN_GRACE_SECS", "3");
    for (k, v) in SECRETS {
        c.env(k, v);
    }
}

#[test]
fn check_with_an_empty_environment_lists_every_required_setting() {
    let out = command().arg("check").output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for s in wcs::config::SETTINGS
        .iter()
        .filter(|s| s.required_for_serve)
    {
        assert!(
            stdout.contains(&format!("error: {} is required", s.env)),
            "{} not reported:\n{stdout}",
            s.env
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one-line reason: {stderr}");
}

#[test]
fn check_with_a_valid_environment_succeeds_and_masks_secrets() {
    let mut c = command();
    valid(&mut c, "sqlite://unused.db", "127.0.0.1:8080");
    let out = c.arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("configuration OK"));
    assert!(stdout.contains("acme-test"));
    for (name, secret) in SECRETS {
        assert!(!stdout.contains(secret), "{name} leaked");
    }
}

#[test]
fn check_reads_a_toml_file_and_env_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.toml");
    std::fs::write(
        &file,
        "worker_concurrency = 7\nlisten_addr = \"0.0.0.0:9000\"\n",
    )
    .unwrap();
    let mut c = command();
    valid(&mut c, "sqlite://unused.db", "127.0.0.1:8081");
    let out = c.arg("--config").arg(&file).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("WORKER_CONCURRENCY") && l.contains("7 [file]")));
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("LISTEN_ADDR") && l.contains("127.0.0.1:8081 [env]")));
}

#[test]
fn serve_refuses_to_start_on_bad_config_with_the_same_message() {
    let mut c = command();
    valid(&mut c, "sqlite://unused.db", "not-an-address");
    c.env("WORKER_CONCURRENCY", "zero");
    let out = c.arg("serve").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LISTEN_ADDR=\"not-an-address\""),
        "{stderr}"
    );
    assert!(stderr.contains("WORKER_CONCURRENCY=\"zero\""), "{stderr}");
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    for _ in 0..2 {
        let out = command()
            .env("DATABASE_URL", &url)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("new.db").exists());
}

/// A child process that is killed when the test ends, even by a failed assertion, so a
/// failing test leaves no server behind.
struct Reaped(std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve_answers_and_exits_cleanly_on_sigterm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut c = command();
    valid(&mut c, &db.url, &addr);
    let mut child = Reaped(
        c.arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("http_requests_total"));

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(6),
            "did not exit within the 3 s grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(sqlx::FromRow)]
struct Count {
    n: i64,
}

/// A 2xx means committed: killing the process right after the answer loses nothing.
async fn acknowledged_webhook_survives_sigkill(backend: Backend) {
    let db = TestDb::new(backend).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let spawn = || {
        let mut c = command();
        valid(&mut c, &db.url, &addr);
        Reaped(
            c.arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut child = spawn();
    wait_ready(&client, &base).await;
    let event = serde_json::json!({"id": "ev_kill", "event_type": "customer_changed",
                                   "content": {"customer": {"id": "cust_k"}}});
    let resp = client
        .post(format!("{base}/webhooks/chargebee"))
        .basic_auth("chargebee", Some("cb-hook-password-0123"))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let events = db
        .rows::<Count>("select count(*) as n from inbound_events where event_id = 'ev_kill'")
        .await;
    assert_eq!(events[0].n, 1);
    let jobs = db
        .rows::<Count>("select count(*) as n from jobs where dedupe_key like '%:chargebee:cust_k'")
        .await;
    assert_eq!(jobs[0].n, 2);
    // The service comes back on the same database and sees the event as already taken.
    let mut child = spawn();
    wait_ready(&client, &base).await;
    let again = client
        .post(format!("{base}/webhooks/chargebee"))
        .basic_auth("chargebee", Some("cb-hook-password-0123"))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

on_both_backends!(
    serve_answers_and_exits_cleanly_on_sigterm,
    acknowledged_webhook_survives_sigkill
);

#[tokio::test]
async fn sandbox_command_serves_both_apis_and_prints_their_credentials() {
    use std::io::{BufRead, BufReader};
    let mut child = Reaped(
        command()
            .arg("sandbox")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("In-memory state"))
            .collect()
    })
    .await
    .unwrap();
    let value_of = |key: &str| -> String {
        lines
            .iter()
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{key} not printed: {lines:?}"))
    };
    let client = reqwest::Client::new();
    let customers = client
        .get(format!("{}/customers", value_of("CHARGEBEE_BASE_URL")))
        .basic_auth(value_of("CHARGEBEE_API_KEY"), Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(customers.status(), 200);
    let body: serde_json::Value = customers.json().await.unwrap();
    assert!(body["list"].is_array(), "{body}");
    let login = client
        .post(format!("{}/Auth/ApiLogin", value_of("WEBCRM_BASE_URL")))
        .form(&[("authCode", value_of("WEBCRM_API_TOKEN"))])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    assert!(body["AccessToken"].is_string(), "{body}");

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
