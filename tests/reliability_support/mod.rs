//! Shared by the `reliability_*` tests: the service as a child `serve` process against the
//! in-test sandboxes and database, so that it can be killed and restarted like a real
//! deployment.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::app::{test_config_with, ADMIN, CB_PASSWORD, CB_USER, WEBCRM_SECRET};
use crate::common::world::World;

pub const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `serve` child process; its stdout and stderr go to one log file per start.
pub struct ServeProcess {
    pub env: Vec<(String, String)>,
    pub port: u16,
    pub child: Option<Child>,
    pub logs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl ServeProcess {
    /// The full production environment for the world's sandboxes and database; `extra`
    /// overrides or adds settings.
    pub fn new(w: &World, database_url: &str, extra: &[(&str, &str)]) -> ServeProcess {
        let port = free_port();
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url.to_owned()),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("CHARGEBEE_BASE_URL", w.cb.base_url().to_string()),
            ("CHARGEBEE_API_KEY", w.cb.api_key().to_owned()),
            ("CHARGEBEE_SITE", "acme-test".into()),
            ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "60000".into()),
            ("CHARGEBEE_WEBHOOK_USERNAME", CB_USER.into()),
            ("CHARGEBEE_WEBHOOK_PASSWORD", CB_PASSWORD.into()),
            ("WEBCRM_BASE_URL", w.wc.base_url()),
            ("WEBCRM_API_TOKEN", w.wc.api_token()),
            ("WEBCRM_RATE_LIMIT_PER_MINUTE", "60000".into()),
            ("WEBCRM_WEBHOOK_SECRET", WEBCRM_SECRET.into()),
            ("ADMIN_TOKEN", ADMIN.into()),
            ("RUST_LOG", "warn".into()),
            ("JOB_LEASE_SECS", "2".into()),
            ("SHUTDOWN_GRACE_SECS", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        ServeProcess {
            env,
            port,
            child: None,
            logs: Vec::new(),
            dir: tempfile::tempdir().expect("log dir"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Registers the Chargebee webhook and the webCRM hooks at this process's address, as
    /// `register-webhooks` would.
    pub async fn register(&self, w: &World, database_url: &str) {
        let pairs: Vec<(&str, &str)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "DATABASE_URL" && k != "LISTEN_ADDR" && k != "RUST_LOG")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let config = test_config_with(database_url, &pairs);
        let plan = wcs::register::plan(&config).await.expect("plan");
        wcs::register::apply(&config, &plan)
            .await
            .expect("register webhooks");
        let _ = w;
    }

    /// Starts the process (it must not be running) and waits until `/healthz` answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self
            .dir
            .path()
            .join(format!("serve-{}.log", self.logs.len()));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn serve");
        self.child = Some(child);
        self.logs.push(log);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("serve exited with {status}: {}", self.all_logs());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not come up: {}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit (logs flushed).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn all_logs(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn admin_token(&self) -> &str {
        self.var("ADMIN_TOKEN").unwrap_or(ADMIN)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it returns `Ok`, or panics with its last error after
/// `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => panic!("not reached in {timeout:?}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A Postgres server of the test's own (initdb + pg_ctl in a temp directory, as the
/// `postgres` user when running as root), so that the test may stop and start it. Never the
/// machine's or the shared test server.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    as_root: bool,
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let initdb = pg_bin("initdb").expect("initdb");
        let pg_ctl = pg_bin("pg_ctl").expect("pg_ctl");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::tempdir().expect("temp dir");
        if as_root {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success(), "cannot hand the directory to postgres");
        }
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
            pg_ctl,
            as_root,
        };
        let out = pg
            .command(&initdb)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "-D"])
            .arg(pg.data())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.resume();
        pg
    }

    fn command(&self, bin: &std::path::Path) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn resume(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command(&self.pg_ctl)
            .args(["start", "-w", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(opts)
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        let out = self
            .command(&self.pg_ctl)
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data())
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command(&self.pg_ctl)
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
    }
}

/// For every pair of requests (arrival times), checks the outbound budget: no 60-second
/// window holds more than `per_minute`, and no shorter window more than the limiter's burst
/// plus its refill (`per_minute - burst` a minute) allow, with `slack` for network jitter.
/// Returns the largest count seen in any 60-second window and the highest share of its
/// allowance any window used.
pub fn check_budget(api: &str, times: &[Instant], per_minute: u32, slack: usize) -> (usize, f64) {
    let mut times = times.to_vec();
    times.sort_unstable();
    let burst = (per_minute / 30).max(1) as f64;
    let refill = f64::from(per_minute) - burst;
    let mut max_minute = 0;
    let mut tightest: f64 = 0.0;
    for i in 0..times.len() {
        for j in i..times.len() {
            let span = times[j].duration_since(times[i]).as_secs_f64();
            if span >= 60.0 {
                break;
            }
            let count = j - i + 1;
            max_minute = max_minute.max(count);
            let allowed = (burst + refill * span / 60.0).floor() as usize + slack;
            tightest = tightest.max(count as f64 / allowed as f64);
            assert!(
                count <= allowed,
                "{api}: {count} requests within {span:.2} s; the budget of {per_minute}/min \
                 allows {allowed}"
            );
        }
    }
    assert!(
        max_minute <= per_minute as usize,
        "{api}: {max_minute} requests in one minute, budget {per_minute}"
    );
    (max_minute, tightest)
}
