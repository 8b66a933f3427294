//! The answer to a connection over the cap: a `503`, written without
//! reading the request, then a short lingering close so that the client
//! reads it (closing a socket with unread input would reset it).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Refused connections kept open at once to let their client read the
/// answer; beyond it, the answer is written if the socket takes it at once,
/// and the connection is closed.
pub(super) const MAX_LINGERING: usize = 256;

/// How long a refused connection lingers, at most.
const LINGER: Duration = Duration::from_secs(1);

/// The whole answer, bytes on the wire.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"error":"too many connections; try again shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers `stream` with the 503 and closes it, in a task of `tasks` when
/// a lingering slot is free.
pub(super) fn refuse(stream: TcpStream, lingering: &Arc<Semaphore>, tasks: &mut JoinSet<()>) {
    match Arc::clone(lingering).try_acquire_owned() {
        Ok(permit) => {
            tasks.spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(LINGER, answer(stream)).await;
            });
        }
        Err(_) => {
            let _ = stream.try_write(&REFUSAL);
        }
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(&REFUSAL).await?;
    stream.shutdown().await?;
    // Drain what the client sent until it closes (bounded by LINGER).
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
