//! Test helpers: an in-memory change source, change builders, and a local SET receiver.
#![allow(dead_code)]

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use scimflow_core::ResourceKind;
use scimflow_core::change::{Change, ChangeBody};
use scimflow_fanout::source::{ChangeSource, SourceError, SourceRecord};
use scimflow_proto as pb;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A source fed by the test; `commit` counts how far the runner got.
pub struct ChannelSource {
    pub receiver: mpsc::UnboundedReceiver<pb::ChangeEnvelope>,
    next_offset: u64,
}

pub fn channel_source() -> (mpsc::UnboundedSender<pb::ChangeEnvelope>, Box<dyn ChangeSource>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, Box::new(ChannelSource { receiver, next_offset: 0 }))
}

#[async_trait]
impl ChangeSource for ChannelSource {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceRecord>, SourceError> {
        let mut batch = Vec::new();
        if let Ok(Some(envelope)) = tokio::time::timeout(wait, self.receiver.recv()).await {
            batch.push(envelope);
            while batch.len() < max {
                match self.receiver.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
        }
        Ok(batch
            .into_iter()
            .map(|envelope| {
                self.next_offset += 1;
                SourceRecord { partition: 0, offset: self.next_offset - 1, envelope: Some(envelope) }
            })
            .collect())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// An upsert of user `id` at `version`, as the projector would publish it.
pub fn user_upsert(tenant: &str, id: &str, version: u64, user_name: &str) -> pb::ChangeEnvelope {
    let resource = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id, "userName": user_name, "active": true, "title": "secret title",
        "meta": {"resourceType": "User", "version": format!("W/\"{version}\"")}
    });
    let change = Change {
        kind: ResourceKind::User,
        resource_id: id.into(),
        version,
        occurred_at_ms: now_ms(),
        body: ChangeBody::Upserted { resource, created: version == 1 },
    };
    change.to_proto(tenant, &format!("cmd-{id}-{version}"), 0, "trace")
}

pub fn user_delete(tenant: &str, id: &str, version: u64) -> pb::ChangeEnvelope {
    let change = Change {
        kind: ResourceKind::User,
        resource_id: id.into(),
        version,
        occurred_at_ms: now_ms(),
        body: ChangeBody::Deleted,
    };
    change.to_proto(tenant, &format!("cmd-{id}-{version}"), 0, "trace")
}

/// What the receiver saw: the verified claims of each accepted SET, in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<Value>>>);

impl Received {
    pub fn claims(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// How the receiver answers.
#[derive(Clone)]
pub struct Behaviour {
    pub secret: Vec<u8>,
    pub delay: Duration,
    /// Answer 400 (RFC 8935 "invalid_request") for SETs whose jti is listed.
    pub refuse: Vec<String>,
}

/// Starts an RFC 8935 receiver on `addr` (port 0 for any) that verifies each SET and answers
/// 202; returns its address.
pub async fn start_receiver(addr: SocketAddr, behaviour: Behaviour, received: Received) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (behaviour, received) = (behaviour.clone(), received.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (behaviour, received) = (behaviour.clone(), received.clone());
                    async move { Ok::<_, hyper::Error>(handle(request, behaviour, received).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    local
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
        Response::builder().status(status).body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    };
    if content_type.as_ref().and_then(|v| v.to_str().ok()) != Some("application/secevent+jwt") {
        return answer(StatusCode::BAD_REQUEST, r#"{"err":"invalid_request","description":"content type"}"#);
    }
    let token = String::from_utf8_lossy(&body);
    match scimflow_fanout::set::verify(&token, &behaviour.secret) {
        Ok(claims) => {
            if behaviour.refuse.iter().any(|jti| claims["jti"] == *jti) {
                return answer(
                    StatusCode::BAD_REQUEST,
                    r#"{"err":"invalid_request","description":"refused"}"#,
                );
            }
            received.0.lock().unwrap().push(claims);
            answer(StatusCode::ACCEPTED, "")
        }
        Err(_) => answer(StatusCode::BAD_REQUEST, r#"{"err":"invalid_key"}"#),
    }
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
