//! An in-memory emulator of the webCRM REST API for tests, `demo` and `sandbox`.
//!
//! Same paths, auth (`POST /Auth/ApiLogin` → bearer token with an expiry) and JSON shapes as
//! webCRM for everything [`crate::clients::webcrm::WebcrmClient`] uses; server-assigned ids,
//! maintained `*CreatedAt/By`, `*UpdatedAt/By`; a real parser for the `/Queries` subset the
//! client builds; hooks fired on create/update/delete; fault injection through
//! [`WebcrmSandboxState`].

mod options;
pub mod query;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use rand::seq::SliceRandom;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clients::outbound::RetryPolicy;
use crate::clients::webcrm::WebcrmClientConfig;

pub use options::{
    DateStyle, Fault, HookDelivery, HookPayloadShape, LoginFailureStyle, PutSemantics,
    SandboxEntity, WebcrmSandboxOptions,
};
pub use routes::{router, ROUTES, UNROUTED_HEADER};
pub use state::{HookDeliveryRecord, PutAfterRead, RecordedCall, Reject, WebcrmSandboxState};

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Binding or serving failed.
    #[error("webCRM sandbox I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts webCRM sandboxes.
#[derive(Debug)]
pub struct WebcrmSandbox;

impl WebcrmSandbox {
    /// Binds (port 0 picks a free port) and serves in the background.
    pub async fn start(
        options: WebcrmSandboxOptions,
    ) -> Result<RunningWebcrmSandbox, SandboxError> {
        let listener = TcpListener::bind(SocketAddr::new(options.bind, options.port)).await?;
        let addr = listener.local_addr()?;
        let state = WebcrmSandboxState::new(options);
        let (tx, rx) = mpsc::unbounded_channel();
        state.set_immediate_sender(tx);
        let hook_worker = tokio::spawn(deliver_immediately(state.clone(), rx));
        let app = routes::router(state.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(RunningWebcrmSandbox {
            addr,
            state,
            stop: Some(stop_tx),
            server: Some(server),
            hook_worker,
        })
    }
}

/// Background delivery of hook notifications, in order unless reordering is asked for.
async fn deliver_immediately(
    state: WebcrmSandboxState,
    mut rx: mpsc::UnboundedReceiver<state::PendingDelivery>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        if state.reorder_enabled() {
            // Gather what arrives within a short window, then shuffle it.
            tokio::time::sleep(Duration::from_millis(30)).await;
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            batch.shuffle(&mut rand::rng());
        }
        for d in batch {
            state.send_delivery(d).await;
        }
    }
}

/// A sandbox serving in the background; shut it down with [`Self::shutdown`] (dropping it
/// stops it too).
#[derive(Debug)]
pub struct RunningWebcrmSandbox {
    addr: SocketAddr,
    state: WebcrmSandboxState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    hook_worker: JoinHandle<()>,
}

impl RunningWebcrmSandbox {
    /// `http://127.0.0.1:{port}` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The application token to log in with.
    pub fn api_token(&self) -> String {
        self.state.api_token()
    }

    /// The handle on the sandbox's data and faults.
    pub fn state(&self) -> &WebcrmSandboxState {
        &self.state
    }

    /// A client configuration pointing at this sandbox, with fast retries for tests.
    pub fn client_config(&self) -> WebcrmClientConfig {
        let mut config = WebcrmClientConfig::new(SecretString::from(self.api_token()))
            .with_base_url(self.base_url());
        config.rate_limit_per_minute = 60_000;
        config.retry = RetryPolicy {
            max_attempts: 4,
            max_total: Duration::from_secs(20),
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        };
        config
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.hook_worker.abort();
    }
}

impl Drop for RunningWebcrmSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.hook_worker.abort();
    }
}

/// Runs a sandbox until `shutdown` completes, logging its URL and token at start
/// (for the `sandbox` subcommand; use [`WebcrmSandbox::start`] to print them yourself).
pub async fn run(
    options: WebcrmSandboxOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SandboxError> {
    let running = WebcrmSandbox::start(options).await?;
    tracing::info!(
        base_url = %running.base_url(),
        api_token = %running.api_token(),
        "webCRM sandbox listening"
    );
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
