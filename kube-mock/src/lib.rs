//! A scripted Kubernetes API server for tests, behind kube's mock client (tower-test): it answers every
//! request as the API server would in the common cases and records what was sent.
//!
//! - `GET` of a path in `lists` returns that list; any other `GET` fails the test;
//! - watch requests (`?watch=true`) are held open, as an idle watch;
//! - `POST`/`PATCH` are recorded and answered with the request body (events, status patches) or a minimal
//!   object of the right kind.
//!
//! The recorder finishes, returning every request, when the last clone of the client is dropped.

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower_test::mock;

/// One request the code under test sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Sent {
    /// `METHOD path`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A client wired to a recording API server; `lists` answers list requests by path.
pub fn start(lists: BTreeMap<String, Value>) -> (Client, JoinHandle<Vec<Sent>>) {
    let (client, server, _feed) = start_with_feed(lists);
    (client, server)
}

/// [`start`], plus a feed of every recorded request as it arrives (to wait for one without sleeping).
pub fn start_with_feed(
    lists: BTreeMap<String, Value>,
) -> (Client, JoinHandle<Vec<Sent>>, mpsc::UnboundedReceiver<Sent>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (tx, rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(handle, lists, tx));
    (Client::new(service, "default"), server, rx)
}

/// A Kubernetes list object.
pub fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// The query parameters of a server-side apply by `manager` with force.
pub fn apply_query(manager: &str) -> BTreeMap<String, String> {
    [("fieldManager", manager), ("force", "true")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn serve(
    mut handle: mock::Handle<Request<Body>, Response<Body>>,
    lists: BTreeMap<String, Value>,
    feed: mpsc::UnboundedSender<Sent>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut open_watches = Vec::new();
    while let Some((request, respond)) = handle.next_request().await {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        let path = parts.uri.path().to_owned();
        let query: BTreeMap<String, String> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        if query.get("watch").map(String::as_str) == Some("true") {
            open_watches.push(respond);
            continue;
        }
        let reply = if parts.method == http::Method::GET {
            lists
                .get(&path)
                .cloned()
                .unwrap_or_else(|| panic!("unexpected GET {path}"))
        } else if body.get("apiVersion").is_some() && body.get("kind").is_some() {
            // The applied object, made complete enough to decode as its kind.
            let mut reply = body.clone();
            if reply.get("metadata").is_none() {
                reply["metadata"] = json!({});
            }
            if reply.get("spec").is_none() && reply["kind"] != "Event" {
                reply["spec"] = if reply["kind"] == "IPAddressPool" {
                    json!({"addresses": []})
                } else {
                    json!({})
                };
            }
            reply
        } else {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {}})
        };
        let record = Sent {
            method: parts.method.to_string(),
            path,
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or_default().to_owned()),
            body,
        };
        let _ = feed.send(record.clone());
        sent.push(record);
        respond.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&reply).expect("JSON")))
                .expect("response"),
        );
    }
    sent
}
