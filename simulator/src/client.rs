//! HTTP to the target SCIM server: bearer auth, rate pacing, a global bound on requests in
//! flight, IdP-like retries, and timing of every request into [`Metrics`].
//!
//! Retries follow what Entra and Okta do (E20): 429 and 503 are retried after `Retry-After`
//! (seconds or an HTTP date, capped), other statuses are final. Transport errors (connection
//! reset, timeout) are retried with backoff too: an IdP cannot tell them from a throttle. All
//! retries are bounded.

use crate::metrics::Metrics;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

/// The longest `Retry-After` honoured; a server asking for more gets retried after this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Backoff when a 429/503 has no `Retry-After`, or after a transport error: doubled per try.
const BASE_BACKOFF: Duration = Duration::from_millis(250);

/// Spaces requests evenly at a fixed rate over all tasks.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(requests_per_second: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / requests_per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next free slot. A slow server does not accumulate a burst of slots to
    /// catch up with: a late slot starts from now.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// Operation name in the report (`user.create`, `group.patch.members`, ...).
    pub op: &'static str,
    pub method: Method,
    /// Path under the base URL, with its query string (`/Users?filter=...`).
    pub path: String,
    pub body: Option<&'a Value>,
    pub content_type: &'static str,
    /// Non-2xx statuses that are an expected answer here (409 on create, 404 on probing an
    /// optional endpoint): returned as `Ok` and not counted as errors.
    pub accept: &'a [u16],
}

impl<'a> Call<'a> {
    pub fn new(op: &'static str, method: Method, path: impl Into<String>) -> Self {
        Call { op, method, path: path.into(), body: None, content_type: "application/scim+json", accept: &[] }
    }

    pub fn get(op: &'static str, path: impl Into<String>) -> Self {
        Call::new(op, Method::GET, path)
    }

    pub fn with_body(mut self, body: &'a Value, content_type: &'static str) -> Self {
        self.body = Some(body);
        self.content_type = content_type;
        self
    }

    pub fn accepting(mut self, statuses: &'a [u16]) -> Self {
        self.accept = statuses;
        self
    }
}

/// A 2xx (or accepted) answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// JSON body; `Null` when empty, a string when not JSON.
    pub body: Value,
    pub latency: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request that did not get an acceptable answer.
#[derive(Debug, Clone)]
pub enum CallError {
    Status { status: u16, body: Value },
    Transport(String),
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            CallError::Transport(message) => write!(f, "transport error: {message}"),
        }
    }
}

/// The SCIM client of one run. Cheap to clone.
#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    base: String,
    /// A query string the base URL carried (Entra's `?aadOptscim062020`, E21), appended to
    /// every request.
    base_query: Option<String>,
    token: Arc<str>,
    metrics: Arc<Metrics>,
    pacer: Option<Arc<Pacer>>,
    permits: Arc<Semaphore>,
    max_retries: u32,
    load: bool,
}

pub struct ClientOptions {
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub max_retries: u32,
}

impl ScimClient {
    pub fn new(
        base_url: &str,
        token: &str,
        metrics: Arc<Metrics>,
        options: &ClientOptions,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .pool_max_idle_per_host(options.concurrency)
            .user_agent(concat!("scimflow-simulate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (base, base_query) = match base_url.split_once('?') {
            Some((base, query)) if !query.is_empty() => (base, Some(query.to_owned())),
            Some((base, _)) => (base, None),
            None => (base_url, None),
        };
        Ok(ScimClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            base_query,
            token: token.into(),
            metrics,
            pacer: options.rate.map(|rate| Arc::new(Pacer::new(rate))),
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            max_retries: options.max_retries,
            load: true,
        })
    }

    /// The same connection pool and concurrency bound, without pacing, and not counted as
    /// load: verification reads the final state as fast as the bound allows.
    pub fn for_verification(&self) -> Self {
        ScimClient { pacer: None, load: false, ..self.clone() }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn url(&self, path: &str) -> String {
        let mut url = format!("{}{}", self.base, path);
        if let Some(query) = &self.base_query {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str(query);
        }
        url
    }

    /// Sends `call`, retrying 429/503/transport errors, and records the final answer.
    pub async fn send(&self, call: Call<'_>) -> Result<Reply, CallError> {
        let url = self.url(&call.path);
        let body_text = call.body.map(|body| body.to_string());
        let mut attempt = 0;
        loop {
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
            let outcome = {
                let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
                self.attempt(&call, &url, body_text.as_deref()).await
            };
            let retry_wait = match &outcome {
                Ok((status, headers, _, _)) if *status == 429 || *status == 503 => {
                    Some(retry_after(headers).unwrap_or(BASE_BACKOFF * 2u32.pow(attempt.min(6))))
                }
                Ok(_) => None,
                Err(_) => Some(BASE_BACKOFF * 2u32.pow(attempt.min(6))),
            };
            if let Some(wait) = retry_wait
                && attempt < self.max_retries
            {
                self.metrics.record_retry(outcome.as_ref().ok().map(|(status, ..)| *status));
                attempt += 1;
                tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
                continue;
            }
            return self.finish(&call, body_text.as_deref(), outcome);
        }
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, HeaderMap, String, Duration), String> {
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(&*self.token)
            .header("Accept", "application/scim+json, application/json");
        if let Some(body) = body {
            request = request.header("Content-Type", call.content_type).body(body.to_owned());
        }
        let started = Instant::now();
        let response = request.send().await.map_err(|error| error_chain(&error))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|error| error_chain(&error))?;
        Ok((status, headers, text, started.elapsed()))
    }

    fn finish(
        &self,
        call: &Call<'_>,
        body: Option<&str>,
        outcome: Result<(u16, HeaderMap, String, Duration), String>,
    ) -> Result<Reply, CallError> {
        match outcome {
            Ok((status, headers, text, latency)) => {
                let accepted = (200..300).contains(&status) || call.accept.contains(&status);
                self.metrics.record(call.op, Some(status), latency, !accepted, self.load);
                if !accepted {
                    self.metrics.record_error_sample(
                        call.op,
                        call.method.as_str(),
                        &call.path,
                        body,
                        Some(status),
                        &text,
                    );
                }
                let json = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                };
                if accepted {
                    Ok(Reply { status, headers, body: json, latency })
                } else {
                    Err(CallError::Status { status, body: json })
                }
            }
            Err(message) => {
                self.metrics.record(call.op, None, Duration::ZERO, true, self.load);
                self.metrics.record_error_sample(
                    call.op,
                    call.method.as_str(),
                    &call.path,
                    body,
                    None,
                    &message,
                );
                Err(CallError::Transport(message))
            }
        }
    }
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("Retry-After", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a past date means now");
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert("Retry-After", later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
    }

    #[test]
    fn base_url_query_is_kept() {
        let options =
            ClientOptions { concurrency: 1, rate: None, timeout: Duration::from_secs(1), max_retries: 0 };
        let metrics = Arc::new(Metrics::new());
        let client =
            ScimClient::new("http://h/scim/v2/?aadOptscim062020", "t", metrics.clone(), &options).unwrap();
        assert_eq!(client.url("/Users"), "http://h/scim/v2/Users?aadOptscim062020");
        assert_eq!(client.url("/Users?filter=x"), "http://h/scim/v2/Users?filter=x&aadOptscim062020");
        let plain = ScimClient::new("http://h/scim/v2/", "t", metrics, &options).unwrap();
        assert_eq!(plain.url("/Groups/1"), "http://h/scim/v2/Groups/1");
    }

    /// A one-trick HTTP server: answers the first `throttled` requests with 429 (and
    /// `Retry-After: 0`), the rest with 200 and a small JSON body. Returns its base URL.
    async fn throttling_server(throttled: usize) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let served = served.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let read = socket.read(&mut buffer).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                    }
                    let answer = if served.fetch_add(1, Ordering::SeqCst) < throttled {
                        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    } else {
                        let body = r#"{"ok":true}"#;
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    socket.write_all(answer.as_bytes()).await.unwrap();
                });
            }
        });
        format!("http://{address}/scim/v2")
    }

    fn client(base: &str, max_retries: u32) -> ScimClient {
        let options =
            ClientOptions { concurrency: 2, rate: None, timeout: Duration::from_secs(5), max_retries };
        ScimClient::new(base, "token", Arc::new(Metrics::new()), &options).unwrap()
    }

    #[tokio::test]
    async fn throttled_requests_are_retried_after_retry_after() {
        let client = client(&throttling_server(2).await, 3);
        let reply = client.send(Call::get("user.get", "/Users/1")).await.unwrap();
        assert_eq!((reply.status, reply.body["ok"].as_bool()), (200, Some(true)));
        let metrics = client.metrics();
        assert_eq!(metrics.total_retries(), 2);
        assert_eq!(metrics.retry_statuses()["429"], 2);
        let ops = metrics.ops();
        assert_eq!(ops["user.get"].statuses.len(), 1, "only the final answer is recorded");
        assert_eq!(ops["user.get"].errors, 0);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let client = client(&throttling_server(10).await, 2);
        let error = client.send(Call::get("user.get", "/Users/1")).await.unwrap_err();
        assert_eq!(error.status(), Some(429));
        assert_eq!(client.metrics().total_retries(), 2);
        assert_eq!(client.metrics().load_totals(), (1, 1), "a throttle that never ends is an error");
        assert_eq!(client.metrics().error_samples()[0].path, "/Users/1");
    }

    #[tokio::test]
    async fn accepted_statuses_are_not_errors() {
        let client = client(&throttling_server(1).await, 0);
        let reply = client.send(Call::get("user.create", "/Users").accepting(&[429])).await.unwrap();
        assert_eq!(reply.status, 429);
        assert_eq!(client.metrics().load_totals(), (1, 0));
    }

    #[tokio::test]
    async fn pacer_spaces_requests() {
        let pacer = Pacer::new(100.0);
        let started = Instant::now();
        for _ in 0..6 {
            pacer.wait().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(45), "{:?}", started.elapsed());
    }
}
