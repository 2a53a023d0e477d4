//! The service binary run as child processes: spawned with an explicit environment, killed
//! when the test ends (even by a failed assertion), stopped with SIGTERM and timed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

/// A free TCP port on the loopback interface (released again before it is returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// A child process that is killed and reaped on drop.
pub struct Reaped {
    pub child: Child,
    /// Where its stdout and stderr go, for a failing test to show.
    pub log: PathBuf,
}

impl Reaped {
    /// Runs the binary with exactly `env` (plus `PATH`), output to `log`.
    pub fn spawn(args: &[&str], env: &[(String, String)], log: &Path) -> Reaped {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the service binary");
        Reaped {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    /// The last `lines` lines the process wrote.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit; returns the status and how long
    /// the process took to exit after the signal.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < limit,
                "process still running {limit:?} after SIGTERM:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `GET {base}/readyz` until it answers 2xx; panics after `limit` or if the process
    /// exits first.
    pub async fn wait_ready(&mut self, base: &str, limit: Duration) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "exited ({status}) before it was ready:\n{}",
                    self.log_tail(20)
                );
            }
            assert!(
                started.elapsed() < limit,
                "not ready after {limit:?}:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
