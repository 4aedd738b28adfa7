//! A local RFC 8935 SET receiver for tests and benchmarks (feature `testing`): it verifies each
//! pushed SET with the subscriber's key and records its claims and arrival time, over plain
//! HTTP or HTTPS.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// One accepted SET: its verified claims and when it arrived (after the receiver's delay).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub claims: Value,
    pub at: Instant,
}

/// What the receiver accepted, in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<Arrival>>>);

impl Received {
    pub fn claims(&self) -> Vec<Value> {
        self.arrivals().into_iter().map(|arrival| arrival.claims).collect()
    }
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the receiver answers.
#[derive(Clone)]
pub struct Behaviour {
    /// The subscriber's HS256 key; a SET that does not verify is answered 400 `invalid_key`.
    pub secret: Vec<u8>,
    /// Time taken per request before answering (a slow subscriber).
    pub delay: Duration,
    /// Answer 400 (RFC 8935 `invalid_request`) for SETs whose `jti` is listed.
    pub refuse: Vec<String>,
}

impl Behaviour {
    pub fn accepting(secret: &[u8]) -> Self {
        Behaviour { secret: secret.to_vec(), delay: Duration::ZERO, refuse: Vec::new() }
    }
}

/// Starts a plain-HTTP receiver on `addr` (port 0 for any) answering 202 to each valid SET;
/// returns its address.
pub async fn start_receiver(addr: SocketAddr, behaviour: Behaviour, received: Received) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.expect("receiver binds");
    let local = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(serve(stream, behaviour.clone(), received.clone()));
        }
    });
    local
}

/// As [`start_receiver`], over TLS with the given certificate (DER) and PKCS#8 key (DER).
pub async fn start_tls_receiver(
    addr: SocketAddr,
    behaviour: Behaviour,
    received: Received,
    certificate_der: Vec<u8>,
    pkcs8_key_der: Vec<u8>,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificate_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_key_der)),
        )
        .expect("certificate and key match");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(addr).await.expect("receiver binds");
    let local = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (acceptor, behaviour, received) = (acceptor.clone(), behaviour.clone(), received.clone());
            tokio::spawn(async move {
                // A failed handshake (e.g. a client that does not trust the certificate) just
                // ends this connection.
                if let Ok(stream) = acceptor.accept(stream).await {
                    serve(stream, behaviour, received).await;
                }
            });
        }
    });
    local
}

async fn serve(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    behaviour: Behaviour,
    received: Received,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (behaviour, received) = (behaviour.clone(), received.clone());
        async move { Ok::<_, hyper::Error>(handle(request, behaviour, received).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

async fn handle(
    request: Request<Incoming>,
    behaviour: Behaviour,
    received: Received,
) -> Response<Full<Bytes>> {
    let content_type = request.headers().get("content-type").cloned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    tokio::time::sleep(behaviour.delay).await;
    let answer = |status: StatusCode, body: &str| {
        let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
        *response.status_mut() = status;
        response
    };
    if content_type.as_ref().and_then(|v| v.to_str().ok()) != Some("application/secevent+jwt") {
        return answer(StatusCode::BAD_REQUEST, r#"{"err":"invalid_request","description":"content type"}"#);
    }
    let token = String::from_utf8_lossy(&body);
    match crate::set::verify(&token, &behaviour.secret) {
        Ok(claims) => {
            if behaviour.refuse.iter().any(|jti| claims["jti"] == *jti) {
                return answer(
                    StatusCode::BAD_REQUEST,
                    r#"{"err":"invalid_request","description":"refused"}"#,
                );
            }
            let arrival = Arrival { claims, at: Instant::now() };
            received.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(arrival);
            answer(StatusCode::ACCEPTED, "")
        }
        Err(_) => answer(StatusCode::BAD_REQUEST, r#"{"err":"invalid_key"}"#),
    }
}

/// The resource a SET is about (`/Users/<id>`) and the version it carries (`W/"<n>"` → n).
pub fn subject_and_version(claims: &Value) -> (String, Option<u64>) {
    let uri = claims["sub_id"]["uri"].as_str().unwrap_or_default().to_owned();
    let version = claims["events"]
        .as_object()
        .and_then(|events| events.values().next())
        .and_then(|event| event["version"].as_str())
        .and_then(|version| version.trim_start_matches("W/\"").trim_end_matches('"').parse().ok());
    (uri, version)
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
