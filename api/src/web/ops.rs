//! The operations page (admin keys): batches in flight, the relayer's sender keys with their
//! nonces and balances, the indexer's lag behind the chain head, the RPC endpoints, and settled
//! payments per minute over the last hour as a chart.

use alloy::providers::Provider;
use askama::Template;
use axum::{extract::State, response::Response};
use settle_indexer::query as indexed;
use settle_relayer::{metrics, query};

use super::{Nav, UiError, UiUser, chart, decimal, render};
use crate::{listing, problem::ApiError, problem::ErrorCode, state::AppState};

/// One sender key.
#[derive(Debug)]
struct Sender {
    address: String,
    balance_wei: String,
    balance: String,
    low: bool,
    nonce: u64,
    pending_nonce: u64,
}

/// One RPC endpoint.
#[derive(Debug)]
struct Endpoint {
    url: String,
    calls: u64,
    failures: u64,
    latency_ms: String,
    resting: bool,
}

#[derive(Template)]
#[template(path = "ops.html")]
struct OpsPage {
    nav: Nav,
    in_flight: i64,
    queue: i64,
    batches: Vec<(String, i64)>,
    instructions: Vec<(String, i64)>,
    senders: Vec<Sender>,
    head: u64,
    indexed: Option<u64>,
    lag: Option<u64>,
    endpoints: Vec<Endpoint>,
    settled_last_hour: u64,
    chart: String,
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what} unreadable for the operations page");
    ApiError::new(
        ErrorCode::Unavailable,
        format!("{what} cannot be read right now; try again later"),
    )
}

/// `GET /ui/ops`.
pub(crate) async fn page(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
) -> Result<Response, UiError> {
    let result: Result<_, UiError> = async {
        principal.require(&[])?;
        let config = state.config();
        let snapshot = metrics::collect(
            state.pool(),
            state.rpc(),
            &config.senders,
            config.low_balance_wei,
            state.signing_stats(),
        )
        .await
        .map_err(|e| unavailable("the relayer's state", &e))?;
        let mut senders = Vec::with_capacity(snapshot.senders.len());
        for s in &snapshot.senders {
            let address = s.sender;
            let nonce = state
                .rpc()
                .call("eth_getTransactionCount", |p| async move {
                    p.get_transaction_count(address).await
                })
                .await
                .map_err(|e| unavailable("a sender's nonce", &e))?;
            let pending_nonce = state
                .rpc()
                .call("eth_getTransactionCount", |p| async move {
                    p.get_transaction_count(address).pending().await
                })
                .await
                .map_err(|e| unavailable("a sender's nonce", &e))?;
            senders.push(Sender {
                address: address.to_checksum(None),
                balance_wei: s.balance.to_string(),
                balance: decimal(&s.balance.to_string(), 18),
                low: s.low,
                nonce,
                pending_nonce,
            });
        }
        let head = state
            .rpc()
            .call(
                "eth_blockNumber",
                |p| async move { p.get_block_number().await },
            )
            .await
            .map_err(|e| unavailable("the chain head", &e))?;
        let checkpoint = indexed::checkpoint(state.pool(), listing::deployment(&state))
            .await
            .map_err(listing::query_error)?;
        let per_minute = query::settled_per_minute(state.pool(), 60)
            .await
            .map_err(|e| unavailable("settled payments per minute", &e))?;
        Ok((snapshot, senders, head, checkpoint, per_minute))
    }
    .await;
    let (snapshot, senders, head, checkpoint, per_minute) =
        result.map_err(|e| e.with_nav(&principal))?;
    let count = |name: &str| snapshot.batches.get(name).copied().unwrap_or(0);
    let in_flight = count("signed")
        .saturating_add(count("submitted"))
        .saturating_add(count("included"));
    let points: Vec<(String, u64)> = per_minute
        .iter()
        .map(|(minute, n)| {
            (
                minute.format("%H:%M UTC").to_string(),
                u64::try_from(*n).unwrap_or(0),
            )
        })
        .collect();
    let settled_last_hour = points
        .iter()
        .map(|(_, n)| *n)
        .fold(0u64, u64::saturating_add);
    let indexed = checkpoint.map(|c| c.block_number);
    Ok(render(&OpsPage {
        nav: Nav::new(&principal, "/ui/ops"),
        in_flight,
        queue: snapshot.queue_depth(),
        batches: snapshot.batches.clone().into_iter().collect(),
        instructions: snapshot.instructions.clone().into_iter().collect(),
        senders,
        head,
        indexed,
        lag: indexed.map(|i| head.saturating_sub(i)),
        endpoints: state
            .rpc()
            .health()
            .into_iter()
            .map(|h| Endpoint {
                url: h.url,
                calls: h.calls,
                failures: h.failures,
                latency_ms: decimal(&h.latency_us.to_string(), 3),
                resting: h.resting,
            })
            .collect(),
        settled_last_hour,
        chart: chart::bars("Payments settled per minute over the last hour", &points),
    }))
}
