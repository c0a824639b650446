//! Transient network faults below object_store's retry layer, for tests:
//! a fraction of HTTP requests answered with `503 Service Unavailable`
//! without reaching the server, plus added latency. object_store's own
//! retry logic must absorb them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
    ReqwestConnector,
};

/// Settings for [`FaultConnector`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpFaults {
    /// Fraction of requests (0.0–1.0) answered with 503.
    pub error_rate: f64,
    /// Delay added before every request.
    pub latency: Duration,
    /// Seed of the generator choosing which requests fail.
    pub seed: u64,
    /// After this many requests, every request is refused with 403
    /// (a permanent failure, which is not retried).
    pub fail_after: Option<u64>,
    /// After this many objects were stored (a whole `PUT`, or a multipart
    /// upload completed), every request is refused with 403: "the first
    /// pack is stored, every later one refused", whatever number of
    /// requests a pack takes.
    pub fail_after_objects: Option<u64>,
    /// Only requests whose path contains this count towards, and fail
    /// after, `fail_after` and `fail_after_objects` (e.g. `/data/` for
    /// pack uploads).
    pub fail_path: Option<String>,
}

impl HttpFaults {
    /// Parses `rate=0.05,latency-ms=20,seed=7,fail-after=100,fail-path=/data/`
    /// (and `fail-after-objects=N`; the test-only variable
    /// `CAIRN_TEST_HTTP_FAULTS`).
    pub fn parse(s: &str) -> Result<HttpFaults, String> {
        let mut f = HttpFaults::default();
        for kv in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?}: expected key=value"))?;
            let bad = || format!("{kv:?}: not a number");
            match k {
                "rate" => f.error_rate = v.parse().map_err(|_| bad())?,
                "latency-ms" => f.latency = Duration::from_millis(v.parse().map_err(|_| bad())?),
                "seed" => f.seed = v.parse().map_err(|_| bad())?,
                "fail-after" => f.fail_after = Some(v.parse().map_err(|_| bad())?),
                "fail-after-objects" => {
                    f.fail_after_objects = Some(v.parse().map_err(|_| bad())?);
                }
                "fail-path" => f.fail_path = Some(v.to_owned()),
                _ => {
                    return Err(format!(
                        "{k:?}: unknown (rate, latency-ms, seed, fail-after, fail-after-objects, fail-path)"
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// An [`HttpConnector`] that injects [`HttpFaults`] in front of the real client.
#[derive(Debug, Clone)]
pub struct FaultConnector {
    faults: HttpFaults,
    rng: Arc<Mutex<u64>>,
    injected: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// Objects stored under the fail path.
    objects: Arc<AtomicU64>,
}

impl FaultConnector {
    /// A connector injecting `faults`.
    pub fn new(faults: HttpFaults) -> Self {
        let seed = faults.seed;
        FaultConnector {
            faults,
            rng: Arc::new(Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)),
            injected: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
            objects: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

impl HttpConnector for FaultConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(FaultService {
            inner,
            connector: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct FaultService {
    inner: HttpClient,
    connector: FaultConnector,
}

impl FaultService {
    fn draw(&self) -> f64 {
        let mut x = self.connector.rng.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[async_trait]
impl HttpService for FaultService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let f = &self.connector.faults;
        if !f.latency.is_zero() {
            tokio::time::sleep(f.latency).await;
        }
        let counted = f
            .fail_path
            .as_deref()
            .is_none_or(|p| req.uri().path().contains(p));
        let n = if counted {
            self.connector.requests.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let stored = self.connector.objects.load(Ordering::Relaxed);
        let objects_done = counted && f.fail_after_objects.is_some_and(|limit| stored >= limit);
        if objects_done || counted && f.fail_after.is_some_and(|limit| n >= limit) {
            self.connector.injected.fetch_add(1, Ordering::Relaxed);
            return Ok(error_response(
                http::StatusCode::FORBIDDEN,
                b"<Error><Code>AccessDenied</Code><Message>injected permanent failure</Message></Error>",
            ));
        }
        if self.draw() < f.error_rate {
            self.connector.injected.fetch_add(1, Ordering::Relaxed);
            return Ok(error_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                b"<Error><Code>SlowDown</Code><Message>injected fault</Message></Error>",
            ));
        }
        let stores = counted && stores_an_object(&req);
        let resp = self.inner.execute(req).await?;
        if stores && resp.status().is_success() {
            self.connector.objects.fetch_add(1, Ordering::Relaxed);
        }
        Ok(resp)
    }
}

/// True for a request that stores a whole object: a `PUT` that is not a
/// part of a multipart upload, or the `POST` that completes one.
fn stores_an_object(req: &HttpRequest) -> bool {
    let query = req.uri().query().unwrap_or("");
    let in_upload = query.split('&').any(|kv| kv.starts_with("uploadId="));
    match *req.method() {
        http::Method::PUT => !in_upload,
        http::Method::POST => in_upload,
        _ => false,
    }
}

fn error_response(status: http::StatusCode, body: &'static [u8]) -> HttpResponse {
    let mut resp = http::Response::new(HttpResponseBody::from(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_puts_and_completed_uploads_store_objects_and_parts_do_not() {
        let req = |method: http::Method, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(object_store::client::HttpRequestBody::from(Bytes::new()))
                .expect("request")
        };
        let base = "http://127.0.0.1:1/b/data/ab/ab";
        assert!(stores_an_object(&req(http::Method::PUT, base)));
        assert!(!stores_an_object(&req(
            http::Method::POST,
            &format!("{base}?uploads")
        )));
        let part = format!("{base}?partNumber=1&uploadId=xyz");
        assert!(!stores_an_object(&req(http::Method::PUT, &part)));
        let complete = format!("{base}?uploadId=xyz");
        assert!(stores_an_object(&req(http::Method::POST, &complete)));
        assert!(!stores_an_object(&req(http::Method::DELETE, &complete)));
        assert!(!stores_an_object(&req(http::Method::GET, base)));
        assert_eq!(
            HttpFaults::parse("fail-after-objects=1,fail-path=/data/")
                .expect("parse")
                .fail_after_objects,
            Some(1)
        );
    }

    #[test]
    fn parses_the_test_variable() {
        let f = HttpFaults::parse("rate=0.05,latency-ms=20,seed=7,fail-after=100,fail-path=/data/")
            .expect("parse");
        assert_eq!(f.error_rate, 0.05);
        assert_eq!(f.latency, Duration::from_millis(20));
        assert_eq!((f.seed, f.fail_after), (7, Some(100)));
        assert_eq!(f.fail_path.as_deref(), Some("/data/"));
        assert!(HttpFaults::parse("rate=lots").is_err());
        assert!(HttpFaults::parse("colour=red").is_err());
    }
}
