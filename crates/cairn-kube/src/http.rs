//! `/metrics`, `/healthz` and `/readyz` for Prometheus and the kubelet's
//! probes, served by hyper's HTTP/1.1 server. It listens on every node, so
//! it holds up against clients that send nothing, send slowly or never read:
//! the request head must arrive within [`HEAD_TIMEOUT`], a connection lives
//! at most [`CONNECTION_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are
//! served at once (more wait to be accepted).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// How long a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is served, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

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

/// The response to a request for `path`.
fn respond(path: &str, registry: &Registry, health: &Health) -> (StatusCode, &'static str, String) {
    match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::render(registry),
        ),
        "/healthz" | "/livez" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if health.is_ready() => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    }
}

fn handle<B>(req: &Request<B>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    let (code, ctype, body) = respond(req.uri().path(), registry, health);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    if let Ok(v) = header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Binds `addr`; returns the bound address and a future serving forever.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let fut = async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let (registry, health) = (registry.clone(), health.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let resp = handle(&req, &registry, &health);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .serve_connection(TokioIo::new(conn), service);
                // Errors are the client's (a reset, a malformed request):
                // nothing to report.
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, served).await;
                drop(slot);
            });
        }
    };
    Ok((local, fut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
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
        assert!(
            get(addr, "/healthz?verbose=1")
                .await
                .starts_with("HTTP/1.1 200")
        );
    }

    /// A client that connects and sends nothing is disconnected once the
    /// head timeout passes (on tokio's paused clock, so no real waiting),
    /// and a malformed request is refused rather than answered.
    #[tokio::test(start_paused = true)]
    async fn silent_and_malformed_clients_are_disconnected() {
        let (_, registry) = crate::metrics::Metrics::agent();
        let (addr, fut) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::new(registry),
            Arc::new(Health::default()),
        )
        .await
        .expect("bind");
        tokio::spawn(fut);
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(3 * HEAD_TIMEOUT, silent.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "a silent client is still connected");

        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GARBAGE\r\n\r\n").await.expect("write");
        let mut out = String::new();
        let _ = tokio::time::timeout(3 * HEAD_TIMEOUT, c.read_to_string(&mut out)).await;
        assert!(!out.contains("200 OK"), "{out}");
    }
}
