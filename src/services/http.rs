//! HTTP plumbing shared by the built-in services: binding, serving with TCP_NODELAY and
//! graceful shutdown, and the `/health` document.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::ListenerExt;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::ServeError;

/// Binds a TCP listener, mapping failure to [`ServeError::Bind`].
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains open requests.
/// Accepted sockets get TCP_NODELAY: without it small SSE frames stall ~40 ms.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_service(listener, app, shutdown).await
}

/// [`serve`] for any service (a router behind a front that answers some routes itself).
pub(crate) async fn serve_service<S>(
    listener: TcpListener,
    service: S,
    shutdown: CancellationToken,
) -> Result<(), ServeError>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, tower::make::Shared::new(service))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// [`serve`] over TLS (and plain HTTP for clients that do not start a handshake).
pub(crate) async fn serve_tls(
    listener: TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener = super::tls::TlsListener::new(listener, tls);
    axum::serve(listener, tower::make::Shared::new(app))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The body of `GET /health` (SPEC §4): status, version, uptime.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Health {
    /// `ok` when the service can serve.
    pub status: &'static str,
    /// Which built-in.
    pub service: &'static str,
    /// The `stack` version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

/// Tracks the start time of a service for [`Health`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Uptime {
    service: &'static str,
    started: Instant,
}

impl Uptime {
    /// Starts the clock now.
    pub(crate) fn start(service: &'static str) -> Self {
        Self {
            service,
            started: Instant::now(),
        }
    }

    /// A healthy `/health` document.
    pub(crate) fn health(&self) -> Health {
        Health {
            status: "ok",
            service: self.service,
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}
