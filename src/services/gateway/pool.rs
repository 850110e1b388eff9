//! Keep-alive HTTP/1 connections to each upstream URL (and the context server).
//!
//! A connection is taken from its endpoint's idle list for one request and given back when
//! that request's answer has been read to the end, so a connection in the list is free (or
//! about to be, once its task has seen the end of the answer). Compared with a general
//! client this skips the pool key hashing, the connect-or-checkout race and the task that
//! waits for a busy connection to free up: on this gateway's hot path that was about a
//! sixth of the instructions a request costs.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Endpoint {
    /// An endpoint for `uri` (`http://host:port[/prefix]`). Inside a runtime, a task
    /// closes its idle connections once they are `idle_timeout` old; it ends with the
    /// endpoint.
    pub(super) fn start(
        uri: Uri,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Endpoint> {
        let endpoint = Arc::new(Endpoint::new(uri, connect_timeout, idle_timeout));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&endpoint);
            let period = (idle_timeout / 2).max(Duration::from_millis(10));
            rt.spawn(async move {
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
        }
        endpoint
    }

    fn new(uri: Uri, connect_timeout: Duration, idle_timeout: Duration) -> Endpoint {
        let (host, port) = match uri.authority() {
            Some(a) => (
                a.host().trim_matches(['[', ']']).to_string(),
                a.port_u16().unwrap_or(80),
            ),
            None => (String::new(), 80),
        };
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
                None => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(crate::causes::with_causes(&e));
            }
            match sender.try_send_request(req).await {
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

    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Idle { sender, since }) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < self.idle_timeout {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
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

    async fn connect(&self) -> Result<SendRequest<Body>, String> {
        let tcp = self.tcp(self.connect_timeout).await?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (sender, conn) = Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| crate::causes::with_causes(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// An answer's body; its connection goes back to the endpoint once the body has ended.
#[derive(Debug)]
pub(super) struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<Body>, Arc<Endpoint>)>,
}

impl PooledBody {
    fn new(inner: Incoming, sender: SendRequest<Body>, endpoint: Arc<Endpoint>) -> PooledBody {
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
