//! Merchants: balances, payouts and withdrawals of one payee address, as the indexer mirrors them.
//!
//! A merchant key (its owner is the merchant's EIP-55 address) sees only its own address; another
//! address answers `not_found` whether or not it exists. Auditor and admin keys see any address.
//! Everything is read through `settle_indexer::query`, scoped to the deployment this API serves.

use alloy::{
    eips::{BlockId, RpcBlockHash},
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use settle_contracts::SplitSettlement;
use settle_indexer::query::{self, Checkpoint, OutflowKind};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{Principal, Role},
    extract::{Params, PathParams},
    listing::{self, RangeParams},
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

#[derive(OpenApi)]
#[openapi(tags((
    name = "merchants",
    description = "A payee's balances, payouts and withdrawals, mirrored from the chain's events (merchant keys see their own address only)"
)))]
struct MerchantsDoc;

/// The merchant routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(MerchantsDoc::openapi())
        .routes(routes!(balances))
        .routes(routes!(payouts))
        .routes(routes!(withdrawals))
}

/// The address in the path, if this key may see it: a merchant only its own (any other is
/// `not_found`, so that a key cannot probe which addresses exist).
fn visible_account(
    principal: &Principal,
    address: Result<PathParams<String>, ApiError>,
) -> Result<Address, ApiError> {
    principal.require(&[Role::Merchant, Role::Auditor])?;
    let PathParams(address) = address?;
    account_for(principal, &address)
}

/// `address` as an account this key may see (shared with the web UI): a merchant only its own.
pub(crate) fn account_for(principal: &Principal, address: &str) -> Result<Address, ApiError> {
    principal.require(&[Role::Merchant, Role::Auditor])?;
    let account = validate::address(address)?;
    if principal.role == Role::Merchant && validate::address(&principal.owner).ok() != Some(account)
    {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no merchant {address} for this key"),
        ));
    }
    Ok(account)
}

fn checksum(address: Address) -> String {
    address.to_checksum(None)
}

/// The indexer's position: the last block whose events are mirrored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IndexedBlock {
    /// Its number.
    pub block_number: u64,
    /// Its hash (`onchain` balances are read at exactly this block).
    pub block_hash: String,
}

impl From<Checkpoint> for IndexedBlock {
    fn from(c: Checkpoint) -> Self {
        Self {
            block_number: c.block_number,
            block_hash: c.block_hash.to_string(),
        }
    }
}

/// One token's balance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenBalance {
    /// The token (EIP-55; the zero address is the native coin).
    #[schema(example = "0x0000000000000000000000000000000000000000")]
    pub token: String,
    /// The internal balance rebuilt from events (deposits, credits, pushes, withdrawals), base
    /// units as a decimal string.
    #[schema(example = "1500000")]
    pub balance: String,
    /// With `verify=true`: `balanceOf(token, account)` read from the contract at the indexed block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onchain: Option<String>,
    /// With `verify=true`: whether `balance` equals `onchain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<bool>,
}

/// A merchant's internal balances in the settlement contract.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MerchantBalances {
    /// The merchant (EIP-55).
    pub address: String,
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy (EIP-55).
    pub contract: String,
    /// The block the balances hold at; null when nothing is indexed yet.
    pub indexed_block: Option<IndexedBlock>,
    /// Every token the address ever held, by token address.
    pub balances: Vec<TokenBalance>,
}

/// Options of `GET /v1/merchants/{address}/balances`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceParams {
    /// Also read `balanceOf` from the contract at the indexed block and compare.
    pub verify: Option<bool>,
}

/// `balanceOf(token, account)` on the contract, at exactly the block `at`.
async fn onchain_balance(
    state: &AppState,
    token: Address,
    account: Address,
    at: &Checkpoint,
) -> Result<U256, ApiError> {
    let request = TransactionRequest::default()
        .with_to(state.config().contract)
        .with_input(SplitSettlement::balanceOfCall { token, account }.abi_encode());
    let block = BlockId::Hash(RpcBlockHash {
        block_hash: at.block_hash,
        require_canonical: Some(true),
    });
    let answer = state
        .rpc()
        .call("eth_call balanceOf", |p| {
            let request = request.clone();
            async move { p.call(request).block(block).await }
        })
        .await
        .map_err(|source| {
            listing::query_error(query::QueryError::Rpc {
                op: "eth_call balanceOf",
                source,
            })
        })?;
    SplitSettlement::balanceOfCall::abi_decode_returns(&answer).map_err(|e| ApiError::internal(&e))
}

/// A merchant's balance per token, from the indexed events; with `verify=true` also `balanceOf` on
/// chain at the indexed block.
#[utoipa::path(get, path = "/v1/merchants/{address}/balances", tag = "merchants", security(("api_key" = [])),
    params(
        ("address" = String, Path, description = "The merchant's address, EIP-55 checksummed"),
        BalanceParams,
    ),
    responses(
        (status = 200, body = MerchantBalances),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: an unknown or malformed query parameter"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not a merchant, auditor or admin key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found`: a merchant key asking for another address"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_address`: the address is not EIP-55"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database or (with `verify`) the chain is out of reach"),
    ))]
pub async fn balances(
    State(state): State<AppState>,
    principal: Principal,
    address: Result<PathParams<String>, ApiError>,
    params: Result<Params<BalanceParams>, ApiError>,
) -> Result<Json<MerchantBalances>, ApiError> {
    let account = visible_account(&principal, address)?;
    let Params(params) = params?;
    let indexed = query::balances(state.pool(), listing::deployment(&state), account)
        .await
        .map_err(listing::query_error)?;
    let mut balances = Vec::with_capacity(indexed.balances.len());
    for balance in &indexed.balances {
        let onchain = match (&indexed.checkpoint, params.verify) {
            (Some(checkpoint), Some(true)) => {
                Some(onchain_balance(&state, balance.token, account, checkpoint).await?)
            }
            _ => None,
        };
        balances.push(TokenBalance {
            token: checksum(balance.token),
            balance: balance.balance.to_string(),
            onchain: onchain.map(|b| b.to_string()),
            matches: onchain.map(|b| b == balance.balance),
        });
    }
    Ok(Json(MerchantBalances {
        address: checksum(account),
        chain_id: state.config().chain_id,
        contract: checksum(state.config().contract),
        indexed_block: indexed.checkpoint.map(Into::into),
        balances,
    }))
}

/// Filters and paging of the payout and withdrawal listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only this token (EIP-55; the zero address is the native coin).
    pub token: Option<String>,
    /// Only blocks at or after this one.
    pub from_block: Option<u64>,
    /// Only blocks at or before this one.
    pub to_block: Option<u64>,
    /// Only blocks whose timestamp is at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from_time: Option<String>,
    /// Only blocks whose timestamp is before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to_time: Option<String>,
    /// Items per page (1 to the server's page size; default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl HistoryParams {
    fn range(&self) -> RangeParams<'_> {
        RangeParams {
            token: self.token.as_deref(),
            from_block: self.from_block,
            to_block: self.to_block,
            from_time: self.from_time.as_deref(),
            to_time: self.to_time.as_deref(),
        }
    }
}

/// One leg of one settled payment that credited the merchant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Payout {
    /// The on-chain payment id.
    pub payment_id: String,
    /// The batch that settled it.
    pub batch_id: String,
    /// The token (EIP-55).
    pub token: String,
    /// What this leg credited the merchant, base units as a decimal string (the contract's split:
    /// every leg but the first rounds down, the first takes the remainder).
    pub amount: String,
    /// The whole payment, base units as a decimal string.
    pub payment_amount: String,
    /// The leg's share, parts per million of the payment.
    pub share: u32,
    /// The `settleBatch` transaction.
    pub tx_hash: String,
    /// The block of the `BatchSettled` event.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: String,
    /// The `BatchSettled` event's index in the block.
    pub log_index: u64,
    /// The payment's position in the batch.
    pub payment_position: u32,
    /// The leg's position in the payment's split.
    pub leg_position: u32,
}

/// What a history listing (payouts, withdrawals) reads: whose, how many, from where, in which blocks.
struct History<C> {
    account: Address,
    limit: usize,
    before: Option<C>,
    filter: query::BlockFilter,
}

/// Checks the caller, the page size, the cursor (decoded by `cursor`) and the range of a history
/// listing; `None` when the range holds no block, so the page is empty.
async fn history<C>(
    state: &AppState,
    principal: &Principal,
    address: Result<PathParams<String>, ApiError>,
    params: Result<Params<HistoryParams>, ApiError>,
    cursor: fn(&str) -> Result<C, ApiError>,
) -> Result<Option<History<C>>, ApiError> {
    let account = visible_account(principal, address)?;
    let Params(params) = params?;
    let limit = listing::limit(params.limit, state.config().max_page)?;
    let before = params.cursor.as_deref().map(cursor).transpose()?;
    Ok(listing::block_filter(state, &params.range())
        .await?
        .map(|filter| History {
            account,
            limit,
            before,
            filter,
        }))
}

/// A page of payouts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutPage {
    /// Newest first.
    pub payouts: Vec<Payout>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Payouts to the merchant, newest first: one item per leg of a settled payment that names it, so
/// each links to its payment, batch, transaction, block and log.
#[utoipa::path(get, path = "/v1/merchants/{address}/payouts", tag = "merchants", security(("api_key" = [])),
    params(
        ("address" = String, Path, description = "The merchant's address, EIP-55 checksummed"),
        HistoryParams,
    ),
    responses(
        (status = 200, body = PayoutPage),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: a malformed filter, range, limit or cursor"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not a merchant, auditor or admin key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found`: a merchant key asking for another address"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_address`: the address or `token` is not EIP-55"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database or (for time filters) the chain is out of reach"),
    ))]
pub async fn payouts(
    State(state): State<AppState>,
    principal: Principal,
    address: Result<PathParams<String>, ApiError>,
    params: Result<Params<HistoryParams>, ApiError>,
) -> Result<Json<PayoutPage>, ApiError> {
    let Some(History {
        account,
        limit,
        before,
        filter,
    }) = history(
        &state,
        &principal,
        address,
        params,
        listing::parse_payout_cursor,
    )
    .await?
    else {
        return Ok(Json(PayoutPage {
            payouts: Vec::new(),
            next_cursor: None,
        }));
    };
    let page = query::payouts(
        state.pool(),
        listing::deployment(&state),
        account,
        &filter,
        before,
        limit,
    )
    .await
    .map_err(listing::query_error)?;
    Ok(Json(PayoutPage {
        payouts: page
            .items
            .iter()
            .map(|p| Payout {
                payment_id: p.payment_id.to_string(),
                batch_id: p.batch_id.to_string(),
                token: checksum(p.token),
                amount: p.amount.to_string(),
                payment_amount: p.payment_amount.to_string(),
                share: p.share,
                tx_hash: p.tx_hash.to_string(),
                block_number: p.key.block_number,
                block_hash: p.block_hash.to_string(),
                log_index: p.key.log_index,
                payment_position: p.key.payment,
                leg_position: p.key.leg,
            })
            .collect(),
        next_cursor: page.next.map(listing::payout_cursor),
    }))
}

/// How money left the merchant's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalKind {
    /// `Withdrawn`: the merchant withdrew to `recipient`.
    Withdrawn,
    /// `PushedOut`: a credit was pushed out to the merchant, who opted in to pushes.
    PushedOut,
}

/// Money that left the merchant's internal balance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Withdrawal {
    /// A withdrawal or a push.
    pub kind: WithdrawalKind,
    /// The token (EIP-55).
    pub token: String,
    /// Base units as a decimal string.
    pub amount: String,
    /// Who received it (EIP-55; the merchant itself for a push).
    pub recipient: String,
    /// The transaction.
    pub tx_hash: String,
    /// The event's block.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: String,
    /// The event's index in the block.
    pub log_index: u64,
}

/// A page of withdrawals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WithdrawalPage {
    /// Newest first.
    pub withdrawals: Vec<Withdrawal>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The merchant's withdrawals and the pushes out to it, newest first.
#[utoipa::path(get, path = "/v1/merchants/{address}/withdrawals", tag = "merchants", security(("api_key" = [])),
    params(
        ("address" = String, Path, description = "The merchant's address, EIP-55 checksummed"),
        HistoryParams,
    ),
    responses(
        (status = 200, body = WithdrawalPage),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: a malformed filter, range, limit or cursor"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not a merchant, auditor or admin key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found`: a merchant key asking for another address"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_address`: the address or `token` is not EIP-55"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database or (for time filters) the chain is out of reach"),
    ))]
pub async fn withdrawals(
    State(state): State<AppState>,
    principal: Principal,
    address: Result<PathParams<String>, ApiError>,
    params: Result<Params<HistoryParams>, ApiError>,
) -> Result<Json<WithdrawalPage>, ApiError> {
    let Some(History {
        account,
        limit,
        before,
        filter,
    }) = history(
        &state,
        &principal,
        address,
        params,
        listing::parse_withdrawal_cursor,
    )
    .await?
    else {
        return Ok(Json(WithdrawalPage {
            withdrawals: Vec::new(),
            next_cursor: None,
        }));
    };
    let page = query::withdrawals(
        state.pool(),
        listing::deployment(&state),
        account,
        &filter,
        before,
        limit,
    )
    .await
    .map_err(listing::query_error)?;
    Ok(Json(WithdrawalPage {
        withdrawals: page
            .items
            .iter()
            .map(|w| Withdrawal {
                kind: match w.kind {
                    OutflowKind::Withdrawn => WithdrawalKind::Withdrawn,
                    OutflowKind::PushedOut => WithdrawalKind::PushedOut,
                },
                token: checksum(w.token),
                amount: w.amount.to_string(),
                recipient: checksum(w.recipient),
                tx_hash: w.tx_hash.to_string(),
                block_number: w.key.block_number,
                block_hash: w.block_hash.to_string(),
                log_index: w.key.log_index,
            })
            .collect(),
        next_cursor: page.next.map(listing::withdrawal_cursor),
    }))
}
