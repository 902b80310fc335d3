//! `/healthz` and `/metrics` over plain HTTP/1.1, for ECS health checks and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Health;

/// Connections served at once; more wait in the kernel's backlog until one ends.
pub const MAX_CONNECTIONS: usize = 128;

/// How long a client has to send its request: Prometheus and the health check send theirs at
/// once, so a connection that says nothing for this long is closed.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a whole exchange may take, the answer included.
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Binds `addr` and serves until the runtime stops. Returns the bound address (port 0 picks
/// a free one). Idle or slow clients cannot hold the listener: each connection has
/// [`REQUEST_TIMEOUT`] to ask and [`CLIENT_TIMEOUT`] to be done, and at most
/// [`MAX_CONNECTIONS`] are served at once (so hundreds of idle connections delay a health
/// check by a few seconds at most, and never exhaust file descriptors).
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("health listener: accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = tokio::time::timeout(CLIENT_TIMEOUT, answer(&mut stream, &health)).await;
            });
        }
    });
    Ok(bound)
}

/// Reads one request from `stream` and answers it.
async fn answer(stream: &mut tokio::net::TcpStream, health: &Health) {
    let mut buf = vec![0u8; 4096];
    let mut read = 0;
    // The request line and headers; a body is not expected.
    let request = async {
        while read < buf.len() {
            match stream.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .is_err()
    {
        return;
    }
    let request = String::from_utf8_lossy(&buf[..read]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = match path {
        "/healthz" => match health.problem() {
            None => ("200 OK", "text/plain", "ok\n".to_string()),
            Some(p) => ("503 Service Unavailable", "text/plain", format!("{p}\n")),
        },
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4",
            health.metrics.render(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /healthz or /metrics\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
