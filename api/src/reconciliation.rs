//! Reconciliation runs and their findings, for auditors.

use axum::{Json, extract::State};
use serde::Serialize;
use settle_indexer::reconcile::{self, Run};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{Principal, Role},
    extract::PathParams,
    problem::{ApiError, ErrorCode, Problem},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(tags((
    name = "reconciliation",
    description = "What the relayer meant to settle, against what was indexed, against the chain's balances"
)))]
struct ReconciliationDoc;

/// The reconciliation routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ReconciliationDoc::openapi())
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
}

/// One finding.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FindingView {
    /// `missing_onchain`, `unexpected_onchain`, `amount_mismatch`, `duplicate_payment` or `balance_mismatch`.
    pub kind: String,
    /// The batch concerned (0x…32 bytes).
    pub batch_id: Option<String>,
    /// The payment concerned (0x…32 bytes).
    pub payment_id: Option<String>,
    /// The token concerned (EIP-55).
    pub token: Option<String>,
    /// The account concerned (EIP-55).
    pub account: Option<String>,
    /// What was expected (an amount or a count, decimal).
    pub expected: Option<String>,
    /// What was found.
    pub actual: Option<String>,
    /// One readable sentence.
    pub detail: String,
}

/// One run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run's id.
    pub id: Uuid,
    /// The chain.
    pub chain_id: u64,
    /// The contract (EIP-55).
    pub contract: String,
    /// The indexed block the comparison was made at.
    pub checkpoint_block: u64,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC).
    pub finished_at: String,
    /// Number of findings; 0 is a clean run.
    pub finding_count: usize,
    /// The findings.
    pub findings: Vec<FindingView>,
}

/// Recent runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunList {
    /// Newest first, at most 50.
    pub runs: Vec<RunView>,
}

pub(crate) fn view(run: Run) -> RunView {
    RunView {
        id: run.id,
        chain_id: run.chain_id,
        contract: run.contract.to_checksum(None),
        checkpoint_block: run.checkpoint_block,
        started_at: run.started_at,
        finished_at: run.finished_at,
        finding_count: run.findings.len(),
        findings: run
            .findings
            .into_iter()
            .map(|f| FindingView {
                kind: f.kind.as_str().to_owned(),
                batch_id: f.batch_id.map(|b| b.to_string()),
                payment_id: f.payment_id.map(|b| b.to_string()),
                token: f.token.map(|a| a.to_checksum(None)),
                account: f.account.map(|a| a.to_checksum(None)),
                expected: f.expected,
                actual: f.actual,
                detail: f.detail,
            })
            .collect(),
    }
}

pub(crate) fn unavailable(e: &reconcile::ReconcileError) -> ApiError {
    tracing::error!(error = %e, "reconciliation runs unreadable");
    ApiError::new(
        ErrorCode::Unavailable,
        "reconciliation runs cannot be read right now; try again later",
    )
}

/// The 50 most recent reconciliation runs with their findings.
#[utoipa::path(get, path = "/v1/reconciliation/runs", tag = "reconciliation", security(("api_key" = [])), responses(
    (status = 200, body = RunList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_runs(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<RunList>, ApiError> {
    principal.require(&[Role::Auditor])?;
    let runs = reconcile::recent_runs(state.pool(), 50)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(RunList {
        runs: runs.into_iter().map(view).collect(),
    }))
}

/// One reconciliation run with its findings.
#[utoipa::path(get, path = "/v1/reconciliation/runs/{id}", tag = "reconciliation", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, body = RunView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_run(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(id): PathParams<Uuid>,
) -> Result<Json<RunView>, ApiError> {
    principal.require(&[Role::Auditor])?;
    reconcile::load_run(state.pool(), id)
        .await
        .map_err(|e| unavailable(&e))?
        .map(|run| Json(view(run)))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no reconciliation run {id}")))
}
