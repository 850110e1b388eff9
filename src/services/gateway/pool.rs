//! Keep-alive connections to each upstream URL (and the context server): HTTP/1 over TCP,
//! or over TLS (rustls) for `https://`, where HTTP/2 is used when the upstream offers it
//! by ALPN (one connection, shared by every request).
//!
//! A connection is taken from its endpoint's idle list for one request and given back when
//! that request's answer has been read to the end, so a connection in the list is free (or
//! about to be, once its task has seen the end of the answer). Compared with a general
//! client this skips the pool key hashing, the connect-or-checkout race and the task that
//! waits for a busy connection to free up: on this gateway's hot path that was about a
//! sixth of the instructions a request costs.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

/// Idle connections kept per endpoint, at most.
const MAX_IDLE: usize = 1024;

/// One upstream URL: where to connect, and its idle connections.
#[derive(Debug)]
pub(super) struct Endpoint {
    uri: Uri,
    host: String,
    port: u16,
    /// The address when the host is an IP literal (no resolver call per connection).
    addr: Option<SocketAddr>,
    host_header: Option<HeaderValue>,
    connect_timeout: Duration,
    /// An idle connection older than this is closed rather than reused.
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    /// For `https://`: the TLS client and the name the certificate must carry.
    tls: Option<Tls>,
    /// The HTTP/2 connection, once the upstream chose HTTP/2: shared, never idle-listed.
    h2: Mutex<Option<http2::SendRequest<Body>>>,
    /// The tasks that drive this endpoint's connections: they end with it.
    drivers: Mutex<JoinSet<()>>,
    /// The task that closes idle connections: it ends with the endpoint.
    reaper: OnceLock<AbortOnDropHandle<()>>,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

/// The TLS side of an `https://` endpoint.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

/// A connection's request side.
#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Sender {
    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn try_send(
        &mut self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}

impl Endpoint {
    /// An endpoint for `uri` (`http[s]://host:port[/prefix]`; `tls` is the client
    /// configuration for `https`). Inside a runtime, a task closes its idle connections
    /// once they are `idle_timeout` old; it is aborted when the endpoint is dropped.
    pub(super) fn start(
        uri: Uri,
        connect_timeout: Duration,
        idle_timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Arc<Endpoint> {
        let endpoint = Arc::new(Endpoint::new(uri, connect_timeout, idle_timeout, tls));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&endpoint);
            let period = (idle_timeout / 2).max(Duration::from_millis(10));
            let reaper = rt.spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(endpoint) = weak.upgrade() else {
                        return;
                    };
                    endpoint.close_idle();
                }
            });
            let _ = endpoint.reaper.set(AbortOnDropHandle::new(reaper));
        }
        endpoint
    }

    fn new(
        uri: Uri,
        connect_timeout: Duration,
        idle_timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Endpoint {
        let https = uri.scheme_str() == Some("https");
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match uri.authority() {
            Some(a) => (
                a.host().trim_matches(['[', ']']).to_string(),
                a.port_u16().unwrap_or(default_port),
            ),
            None => (String::new(), default_port),
        };
        // Without a configuration (or a name) an https endpoint refuses to connect.
        let tls = https
            .then(|| {
                Some(Tls {
                    connector: tokio_rustls::TlsConnector::from(tls?.clone()),
                    name: ServerName::try_from(host.clone()).ok()?,
                })
            })
            .flatten();
        let addr = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let host_header = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        Endpoint {
            uri,
            host,
            port,
            addr,
            host_header,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            tls,
            h2: Mutex::new(None),
            drivers: Mutex::new(JoinSet::new()),
            reaper: OnceLock::new(),
        }
    }

    /// The URL.
    pub(super) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The `host` header requests to this endpoint carry.
    pub(super) fn host_header(&self) -> Option<&HeaderValue> {
        self.host_header.as_ref()
    }

    /// Sends `req` (origin-form URI, headers complete) on an idle connection, or a new one.
    /// A request that an idle connection closed before taking is sent again on another.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, String> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(s) => (s, true),
                // Boxed: a connect (TLS and HTTP/2 handshakes included) is rare, and its
                // state would otherwise grow, and be copied with, every request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(crate::causes::with_causes(&e));
            }
            if let Sender::H2(_) = sender {
                // HTTP/2 names the target by `:scheme` and `:authority`, not `host`.
                *req.uri_mut() = self.absolute(req.uri());
                req.headers_mut().remove(axum::http::header::HOST);
            }
            match sender.try_send(req).await {
                Ok(resp) => {
                    let endpoint = self.clone();
                    return Ok(resp.map(|body| PooledBody::new(body, sender, endpoint)));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: safe to send on another connection.
                    Some(r) if reused => req = r,
                    _ => return Err(crate::causes::with_causes(e.error())),
                },
            }
        }
    }

    /// `uri` (origin-form) on this endpoint's scheme and authority.
    fn absolute(&self, uri: &Uri) -> Uri {
        let mut parts = uri.clone().into_parts();
        parts.scheme = self.uri.scheme().cloned();
        parts.authority = self.uri.authority().cloned();
        Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
    }

    fn checkout(&self) -> Option<Sender> {
        if self.tls.is_some() {
            let h2 = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = h2.as_ref().filter(|s| !s.is_closed()) {
                return Some(Sender::H2(s.clone()));
            }
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Idle { sender, since }) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < self.idle_timeout {
                return Some(Sender::H1(sender));
            }
        }
        None
    }

    fn checkin(&self, sender: Sender) {
        // An HTTP/2 connection is shared, never handed out: nothing to give back.
        let Sender::H1(sender) = sender else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // At the cap, the oldest (at the front) goes; the old ones go in `close_idle`.
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { sender, since: now });
    }

    /// Closes the connections idle for too long, and forgets the closed ones.
    fn close_idle(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < self.idle_timeout);
    }

    /// Whether a TCP connection to the endpoint opens within `timeout` (`/health`).
    pub(super) async fn reachable(&self, timeout: Duration) -> bool {
        self.tcp(timeout).await.is_ok()
    }

    async fn tcp(&self, timeout: Duration) -> Result<TcpStream, String> {
        let connect = async {
            match self.addr {
                Some(addr) => TcpStream::connect(addr).await,
                None => TcpStream::connect((self.host.as_str(), self.port)).await,
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(tcp)) => Ok(tcp),
            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
            Err(_) => Err(format!("cannot connect within {} ms", timeout.as_millis())),
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        if self.tls.is_none() && self.uri.scheme_str() == Some("https") {
            return Err(format!("no TLS client for `{}`", self.uri));
        }
        let tcp = self.tcp(self.connect_timeout).await?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Some(Tls { connector, name }) = &self.tls else {
            return self.handshake(tcp, false).await;
        };
        let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| {
                format!(
                    "no TLS handshake within {} ms",
                    self.connect_timeout.as_millis()
                )
            })?
            .map_err(|e| format!("TLS handshake failed: {}", crate::causes::with_causes(&e)))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let sender = self.handshake(tls, h2).await?;
        if let Sender::H2(s) = &sender {
            *self.h2.lock().unwrap_or_else(PoisonError::into_inner) = Some(s.clone());
        }
        Ok(sender)
    }

    /// HTTP/1 (or HTTP/2) over `io`; its connection driven by a task the endpoint owns.
    async fn handshake<I>(&self, io: I, h2: bool) -> Result<Sender, String>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let with_causes = |e: hyper::Error| crate::causes::with_causes(&e);
        let (sender, driver): (
            Sender,
            Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) = if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await
                .map_err(with_causes)?;
            (Sender::H2(sender), Box::pin(drive(conn)))
        } else {
            let (sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(with_causes)?;
            (Sender::H1(sender), Box::pin(drive(conn)))
        };
        let mut drivers = self.drivers.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the drivers of connections that have ended.
        while drivers.try_join_next().is_some() {}
        drivers.spawn(driver);
        Ok(sender)
    }
}

/// Drives a connection until it ends.
async fn drive<C, E>(conn: C)
where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "upstream connection ended");
    }
}

/// An answer's body; its connection goes back to the endpoint once the body has ended.
#[derive(Debug)]
pub(super) struct PooledBody {
    inner: Incoming,
    back: Option<(Sender, Arc<Endpoint>)>,
}

impl PooledBody {
    fn new(inner: Incoming, sender: Sender, endpoint: Arc<Endpoint>) -> PooledBody {
        PooledBody {
            inner,
            back: Some((sender, endpoint)),
        }
    }

    fn release(&mut self) {
        if let Some((sender, endpoint)) = self.back.take() {
            endpoint.checkin(sender);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A broken answer: its connection is not reused.
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty answer is complete without being read; any other unread one is not,
        // and its connection closes with it.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An upstream that answers every request on a connection with an empty 200.
    async fn upstream() -> Uri {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = tcp.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if tcp.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}").parse().expect("uri")
    }

    fn alive() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    #[tokio::test]
    async fn an_endpoints_reaper_and_connection_drivers_end_with_it() {
        let uri = upstream().await;
        let before = alive();
        let endpoint = Endpoint::start(uri, Duration::from_secs(1), Duration::from_secs(60), None);
        let req = Request::get("/").body(Body::empty()).expect("request");
        let resp = endpoint.send(req).await.expect("answer");
        resp.into_body().collect().await.expect("body");
        // The reaper and the connection's driver (and the upstream's side of it).
        assert!(alive() >= before + 2, "{} tasks, {before} before", alive());
        drop(endpoint);
        let deadline = Instant::now() + Duration::from_secs(1);
        // The upstream's task for the connection ends when the gateway closes it.
        while alive() > before && Instant::now() < deadline {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            alive(),
            before,
            "tasks outlived their endpoint (the reaper ticks every 30 s)"
        );
    }
}
