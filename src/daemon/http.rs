//! `/healthz` and `/metrics` over plain HTTP/1.1, for ECS health checks and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Health;

/// Binds `addr` and serves until the runtime stops. Returns the bound address (port 0 picks
/// a free one).
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                // The request line and headers; a body is not expected.
                while read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
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
            });
        }
    });
    Ok(bound)
}
