//! The client side: `ps`, `down`, `restart`… and `up -d` talk to a running supervisor.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

use super::{Message, Request};

/// A connection to a supervisor.
pub(crate) struct Connection {
    lines: Lines<BufReader<OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

/// Connects and sends `request`.
pub(crate) async fn open(socket: &Path, request: &Request) -> std::io::Result<Connection> {
    let stream = tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(socket))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the supervisor does not answer",
            )
        })??;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    Ok(Connection {
        lines: BufReader::new(read).lines(),
        _write: write,
    })
}

impl Connection {
    /// The next message; `None` when the supervisor closed the connection.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Message>> {
        match self.lines.next_line().await? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line)
                .map(Some)
                .map_err(std::io::Error::other),
        }
    }
}

/// Sends one request and waits for its answer.
pub(crate) async fn call(socket: &Path, request: &Request) -> std::io::Result<Message> {
    let mut conn = open(socket, request).await?;
    conn.next().await?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the supervisor closed the connection",
        )
    })
}
