//! A JSON-RPC proxy in front of anvil that refuses `eth_getLogs` over more than a given number of
//! blocks, as hosted nodes do, and forwards everything else unchanged. anvil itself has no limit.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy::transports::http::reqwest;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// No `eth_getLogs` at all.
pub(crate) const REFUSE_ALL: u64 = u64::MAX;

struct Shared {
    upstream: String,
    client: reqwest::Client,
    /// Largest `toBlock - fromBlock` answered; [`REFUSE_ALL`] refuses every `eth_getLogs`.
    max_span: AtomicU64,
    refused: AtomicU64,
    answered: AtomicU64,
}

/// A running proxy; stops when dropped.
pub(crate) struct RpcLimitProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

fn block(value: &Value) -> Option<u64> {
    u64::from_str_radix(value.as_str()?.strip_prefix("0x")?, 16).ok()
}

async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["method"] == "eth_getLogs" {
        let filter = &request["params"][0];
        let span = block(&filter["toBlock"])
            .zip(block(&filter["fromBlock"]))
            .map(|(to, from)| to.saturating_sub(from));
        let max = shared.max_span.load(Ordering::SeqCst);
        if max == REFUSE_ALL || span.is_none_or(|s| s > max) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let error = json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": -32005, "message": format!("query exceeds max block range {max}")},
            });
            return (
                [(header::CONTENT_TYPE, "application/json")],
                error.to_string(),
            )
                .into_response();
        }
        shared.answered.fetch_add(1, Ordering::SeqCst);
    }
    let forwarded = shared
        .client
        .post(&shared.upstream)
        .header(header::CONTENT_TYPE.as_str(), "application/json")
        .body(body.to_vec())
        .send()
        .await;
    match forwarded {
        Ok(reply) => match reply.bytes().await {
            Ok(bytes) => {
                ([(header::CONTENT_TYPE, "application/json")], bytes.to_vec()).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        },
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

impl RpcLimitProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an HTTP JSON-RPC URL).
    pub(crate) async fn start(upstream: String, max_span: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared {
            upstream,
            client: reqwest::Client::new(),
            max_span: AtomicU64::new(max_span),
            refused: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("proxy serves");
        });
        Self { url, shared, task }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `eth_getLogs` calls refused.
    pub(crate) fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// `eth_getLogs` calls forwarded.
    pub(crate) fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }
}

impl Drop for RpcLimitProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
