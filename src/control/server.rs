//! The socket side: accepts connections, hands requests to the dispatcher, writes answers.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Message, Request};

/// A request waiting for the dispatcher's answer.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Answer>,
}

/// The dispatcher's answer: messages to write, and (for `subscribe`) the sequence number
/// of the last broadcast message they include, so none is written twice.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// Broadcast messages up to this number are already in `messages`.
    pub seq: u64,
}

impl From<Message> for Answer {
    fn from(m: Message) -> Answer {
        Answer {
            messages: vec![m],
            seq: 0,
        }
    }
}

/// A broadcast message with its sequence number.
pub(crate) type Numbered = (u64, Message);

/// Binds the socket at `path`, replacing a stale one (the caller holds the project lock,
/// so no live supervisor owns it).
pub(crate) fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    // Its owner's only, whatever the umask (and each connection's uid is checked too).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Serves connections until `stop`.
pub(crate) async fn serve(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming>,
    events: broadcast::Sender<Numbered>,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(handle(stream, requests.clone(), events.subscribe(), stop.clone()));
                }
                Err(err) => tracing::warn!(%err, "control socket accept failed"),
            },
            () = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Give answers in flight (a `down` reply) a moment to be written.
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

async fn handle(
    stream: UnixStream,
    requests: mpsc::Sender<Incoming>,
    mut events: broadcast::Receiver<Numbered>,
    stop: CancellationToken,
) {
    // Only the user who runs the stack may act on it (SO_PEERCRED), whatever the socket's
    // mode or folder allow.
    let me = nix::unistd::geteuid().as_raw();
    let peer = stream.peer_cred().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    // Root may act, as it may signal the processes anyway.
    if peer.as_ref().map_or(true, |uid| *uid != me && *uid != 0) {
        let who = peer.map_or_else(
            |_| "an unknown user".to_string(),
            |uid| format!("uid {uid}"),
        );
        tracing::warn!(peer = %who, "control connection refused: not the stack's owner");
        let message = format!(
            "permission denied: this stack belongs to uid {me}, and {who} may not control it"
        );
        let _ = send(&mut write, &Message::Error { message }).await;
        return;
    }
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(err) => {
            let _ = send(
                &mut write,
                &Message::Error {
                    message: format!("bad request: {err}"),
                },
            )
            .await;
            return;
        }
    };
    let subscribe = matches!(request, Request::Subscribe);
    let (tx, rx) = oneshot::channel();
    if requests
        .send(Incoming { request, reply: tx })
        .await
        .is_err()
    {
        return;
    }
    let Ok(answer) = rx.await else { return };
    for m in &answer.messages {
        if send(&mut write, m).await.is_err() {
            return;
        }
    }
    if !subscribe {
        return;
    }
    loop {
        tokio::select! {
            msg = events.recv() => match msg {
                Ok((seq, _)) if seq <= answer.seq => {}
                Ok((_, m)) => {
                    if send(&mut write, &m).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = stop.cancelled() => return,
        }
    }
}

async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, m: &Message) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}
