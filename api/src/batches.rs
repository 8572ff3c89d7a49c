//! Batches: what was signed, and its record on chain.

use alloy::providers::Provider;
use axum::{Json, extract::State};
use serde::Serialize;
use settle_relayer::query::{self, BatchKey, BatchRecord, BatchStatus};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{Principal, Role},
    extract::PathParams,
    payments::{read_scope, time},
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

/// The batch routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_batch))
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Signed and stored, not yet sent.
    Signed,
    /// A transaction carries it.
    Submitted,
    /// Mined, not yet deep enough to count as settled.
    Included,
    /// Mined and deep enough: its payments are settled.
    Settled,
    /// Reverted for good (see `error`).
    Failed,
    /// Its deadline passed before it settled; its payments went back to the queue.
    Expired,
}

impl From<BatchStatus> for BatchState {
    fn from(status: BatchStatus) -> Self {
        match status {
            BatchStatus::Signed => Self::Signed,
            BatchStatus::Submitted => Self::Submitted,
            BatchStatus::Included => Self::Included,
            BatchStatus::Settled => Self::Settled,
            BatchStatus::Failed => Self::Failed,
            BatchStatus::Expired => Self::Expired,
        }
    }
}

/// A batch and its on-chain record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Batch {
    /// Our id.
    pub id: Uuid,
    /// The on-chain batch id.
    pub batch_id: String,
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement contract it settles on.
    pub contract: String,
    /// The token.
    pub token: String,
    /// Whose deposit funds it.
    pub funder: String,
    /// The authorised key that signed it.
    pub signer: String,
    /// The signer's batch nonce (decimal).
    pub nonce: String,
    /// Unix seconds after which it can no longer settle.
    pub deadline: u64,
    /// The EIP-712 digest the signer signed.
    pub digest: String,
    /// Where it stands.
    pub status: BatchState,
    /// The key whose transaction carries it.
    pub sender: Option<String>,
    /// The transaction that carried it, once mined.
    pub tx_hash: Option<String>,
    /// The block that included it.
    pub block_number: Option<u64>,
    /// That block's hash.
    pub block_hash: Option<String>,
    /// Blocks on top of (and counting) the including block, read from the chain now.
    pub confirmations: Option<u64>,
    /// Gas the transaction used.
    pub gas_used: Option<u64>,
    /// Wei per gas paid (decimal).
    pub effective_gas_price: Option<String>,
    /// Why it failed: the contract's typed error, if it did.
    pub error: Option<String>,
    /// How many payments it carries.
    pub payment_count: usize,
    /// Their sum, in base units.
    pub total: String,
    /// When it was signed.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its status last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl Batch {
    fn new(b: &BatchRecord, confirmations: Option<u64>) -> Self {
        Self {
            id: b.id,
            batch_id: b.batch_id.to_string(),
            chain_id: b.chain_id,
            contract: b.contract.to_checksum(None),
            token: b.token.to_checksum(None),
            funder: b.funder.to_checksum(None),
            signer: b.signer.to_checksum(None),
            nonce: b.nonce.to_string(),
            deadline: b.deadline,
            digest: b.digest.to_string(),
            status: b.status.into(),
            sender: b.sender.map(|s| s.to_checksum(None)),
            tx_hash: b.tx_hash.map(|h| h.to_string()),
            block_number: b.block_number,
            block_hash: b.block_hash.map(|h| h.to_string()),
            confirmations,
            gas_used: b.gas_used,
            effective_gas_price: b.effective_gas_price.map(|p| p.to_string()),
            error: b.error.clone(),
            payment_count: b.payments,
            total: b.total.to_string(),
            created_at: time(&b.created_at),
            updated_at: time(&b.updated_at),
        }
    }
}

/// Our uuid or the on-chain batch id.
fn batch_key(text: &str) -> Result<BatchKey, ApiError> {
    if let Ok(id) = Uuid::parse_str(text) {
        return Ok(BatchKey::Id(id));
    }
    if text.starts_with("0x") && text.len() == 66 {
        return validate::bytes32("id", text).map(BatchKey::BatchId);
    }
    Err(ApiError::new(
        ErrorCode::InvalidParameter,
        format!(
            "`id` = {text:?} is neither a batch's UUID nor an on-chain batch id (0x and 64 hex digits)"
        ),
    ))
}

/// One batch with its on-chain record; `confirmations` is read from the chain.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches", security(("api_key" = [])),
    params(("id" = String, Path, description = "The batch's UUID, or its on-chain batch id (0x and 64 hex digits)")),
    responses(
        (status = 200, body = Batch),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: neither a UUID nor a batch id"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: a merchant key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found` (also a batch that carries none of this integrator's payments)"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database or the chain is not reachable"),
    ))]
pub async fn get_batch(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<PathParams<String>, ApiError>,
) -> Result<Json<Batch>, ApiError> {
    principal.require(&[Role::Integrator, Role::Auditor])?;
    let scope = read_scope(&principal)?;
    let PathParams(id) = id?;
    let key = batch_key(&id)?;
    let record = query::batch(state.pool(), key, scope)
        .await
        .map_err(|e| match e {
            query::QueryError::Database(e) => ApiError::database(&e),
            other => ApiError::internal(&other),
        })?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no batch {id}")))?;
    // Only batches on the chain this API follows can be measured against its head.
    let confirmations = match record.block_number {
        Some(block) if record.chain_id == state.config().chain_id => {
            let latest = state
                .rpc()
                .call(
                    "eth_blockNumber",
                    |p| async move { p.get_block_number().await },
                )
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "chain unreachable for confirmations");
                    ApiError::new(
                        ErrorCode::Unavailable,
                        "the chain is not reachable right now, so confirmations cannot be counted; retry shortly",
                    )
                    .retry_after(1)
                })?;
            Some(latest.saturating_add(1).saturating_sub(block))
        }
        _ => None,
    };
    Ok(Json(Batch::new(&record, confirmations)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_named_by_uuid_or_on_chain_id() {
        let id = Uuid::new_v4();
        assert_eq!(batch_key(&id.to_string()).expect("uuid"), BatchKey::Id(id));
        let on_chain = format!("0x{}", "ab".repeat(32));
        assert!(matches!(
            batch_key(&on_chain).expect("batch id"),
            BatchKey::BatchId(_)
        ));
        for bad in [
            "",
            "42",
            "0x1234",
            "not-a-uuid",
            &format!("0x{}", "zz".repeat(32)),
        ] {
            assert_eq!(
                batch_key(bad).expect_err(bad).code(),
                ErrorCode::InvalidParameter
            );
        }
    }
}
