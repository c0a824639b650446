//! A tiny HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz`: enough
//! for Prometheus and the kubelet's probes, without a web framework.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Whether the process is ready (its watches are running).
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the process ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// The response to a request line's path.
fn respond(path: &str, registry: &Registry, health: &Health) -> (u16, &'static str, String) {
    match path.split('?').next().unwrap_or("") {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::render(registry),
        ),
        "/healthz" | "/livez" => (200, "text/plain", "ok\n".to_owned()),
        "/readyz" if health.is_ready() => (200, "text/plain", "ok\n".to_owned()),
        "/readyz" => (503, "text/plain", "not ready\n".to_owned()),
        _ => (404, "text/plain", "not found\n".to_owned()),
    }
}

/// Binds `addr`; returns the bound address and a future serving forever.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let fut = async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                // Read the request head (bodies are not expected).
                while len < buf.len() {
                    match conn.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (code, ctype, body) = respond(path, &registry, &health);
                let reason = match code {
                    200 => "OK",
                    404 => "Not Found",
                    _ => "Service Unavailable",
                };
                let resp = format!(
                    "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    };
    Ok((local, fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_probes() {
        let (m, registry) = crate::metrics::Metrics::agent();
        m.scheduled.inc();
        let health = Arc::new(Health::default());
        let (addr, fut) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::new(registry),
            health.clone(),
        )
        .await
        .expect("bind");
        tokio::spawn(fut);
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("cairn_agent_jobs_running"), "{metrics}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready();
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
