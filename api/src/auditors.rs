//! Auditors: the evidence behind a settled payment, and exports of settled payments.
//!
//! Evidence is what an auditor needs to check a payment on the chain without trusting us: where
//! its `BatchSettled` event is, what the event says (digest, recovered signer, the packed payments
//! and credits, byte for byte), the payment's split decoded from those bytes with its credits
//! recomputed by the contract's arithmetic, and the `cast` commands that read the same facts from
//! any node. Everything is read through `settle_indexer::query`.

use std::{fmt::Write as _, ops::ControlFlow};

use alloy::sol_types::SolEvent;
use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use settle_contracts::SplitSettlement;
use settle_indexer::query::{self, PaymentSettlement, SettledBatch};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{Principal, Role},
    extract::{Params, PathParams},
    listing,
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

/// Most rows one export answers; a larger range is refused (split it).
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// The first line of `settled.csv`.
pub const CSV_HEADER: &str =
    "payment_id,batch_id,tx_hash,block_number,token,amount,payee,share,credited";

#[derive(OpenApi)]
#[openapi(tags((
    name = "auditors",
    description = "Evidence to check settled payments on chain without trusting this service, and exports"
)))]
struct AuditorsDoc;

/// The auditor routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(AuditorsDoc::openapi())
        .routes(routes!(evidence))
        .routes(routes!(settled_csv))
}

/// One leg of the payment's split, with what it credited.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvidenceLeg {
    /// The payee (EIP-55): `Batch.payees[leg.payee]`, i.e. the address at the leg's index in
    /// `credits`.
    pub payee: String,
    /// Parts per million of the payment.
    pub share: u32,
    /// What this leg credited, recomputed from `amount` and the shares with the contract's split
    /// (every leg but the first rounds down, the first takes the remainder), base units as a
    /// decimal string.
    pub credited: String,
}

/// `cast` (Foundry) commands that read the evidence from a node of the auditor's choice. Set `RPC`
/// to its URL first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyCommands {
    /// The transaction's receipt: its status, block and the `BatchSettled` log.
    #[schema(example = "cast receipt 0x… --rpc-url $RPC")]
    pub receipt: String,
    /// The `BatchSettled` log, by its signature (topic 0) and batch id (topic 1), in its block.
    pub logs: String,
    /// Whether `signer` is an authorised signer of the contract at the settlement's block.
    pub signer: String,
    /// The `settleBatch` calldata: the whole signed batch (with its deadline, which the event does
    /// not carry) and the signature, to decode with `cast decode-calldata` and check `digest`.
    pub transaction: String,
}

/// One settlement of the payment: its `BatchSettled` event, as emitted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettlementEvidence {
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy that emitted the event (EIP-55).
    pub contract: String,
    /// The batch id (the event's topic 1).
    pub batch_id: String,
    /// The batch's EIP-712 digest as the contract computed it (domain `SplitSettlement`, version
    /// `1`, this chain and contract). The signature itself is not in the event: the contract
    /// recovered `signer` from the signature over this digest and checked that it is authorised
    /// before it emitted the event, so the event carries the digest and the recovered signer. The
    /// signature is in the transaction's calldata (`verify.transaction`).
    pub digest: String,
    /// The authorised signer the contract recovered (EIP-55; the event's topic 2).
    pub signer: String,
    /// The token (EIP-55; the zero address is the native coin).
    pub token: String,
    /// Whose balance funded the batch (EIP-55).
    pub funder: String,
    /// 0: drawn from the funder's deposit; 1: pulled with the call.
    pub funding: u8,
    /// The batch's replay nonce, as a decimal string.
    pub nonce: String,
    /// The batch's total, base units as a decimal string.
    pub total: String,
    /// The `settleBatch` transaction.
    pub tx_hash: String,
    /// The block of the event.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: String,
    /// The index of the `BatchSettled` log in the block.
    pub log_index: u64,
    /// The event's `payments`: the signed packed payments, exactly as emitted (hex). Each is
    /// `bytes32 paymentId | uint128 amount | uint8 legCount | legCount x (uint16 payee | uint32 share)`.
    pub payments: String,
    /// The event's `credits`, exactly as emitted (hex): per payee of the batch, in order,
    /// `address payee | uint128 amount` (36 bytes), what the whole batch credited it.
    pub credits: String,
    /// The payment's position in `payments`.
    pub position: u32,
    /// The payment's amount, base units as a decimal string.
    pub amount: String,
    /// The payment's split, decoded from `payments`, with each leg's credit recomputed.
    pub split: Vec<EvidenceLeg>,
    /// Commands that read all this from the chain.
    pub verify: VerifyCommands,
}

/// The evidence of one on-chain payment id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// The on-chain payment id.
    pub payment_id: String,
    /// Every settlement of this id, in chain order: one, unless the same id was settled again
    /// (the contract does not refuse that; reconciliation reports it as a duplicate).
    pub settlements: Vec<SettlementEvidence>,
}

/// The `cast` commands for one settlement.
pub fn verify_commands(batch: &SettledBatch) -> VerifyCommands {
    let contract = batch.contract.to_checksum(None);
    let block = batch.key.block_number;
    VerifyCommands {
        receipt: format!("cast receipt {} --rpc-url $RPC", batch.tx_hash),
        logs: format!(
            "cast logs --from-block {block} --to-block {block} --address {contract} {} {} --rpc-url $RPC",
            SplitSettlement::BatchSettled::SIGNATURE_HASH,
            batch.batch_id
        ),
        signer: format!(
            "cast call {contract} \"isSigner(address)(bool)\" {} --block {block} --rpc-url $RPC",
            batch.signer.to_checksum(None)
        ),
        transaction: format!("cast tx {} input --rpc-url $RPC", batch.tx_hash),
    }
}

fn settlement_evidence(settlement: &PaymentSettlement) -> Result<SettlementEvidence, ApiError> {
    let batch = &settlement.batch;
    let corrupt = |e: query::QueryError| ApiError::internal(&e);
    let payments = batch.decoded_payments().map_err(corrupt)?;
    let payment = usize::try_from(settlement.position)
        .ok()
        .and_then(|i| payments.get(i))
        .ok_or_else(|| {
            ApiError::internal(&query::QueryError::Corrupt {
                what: "payment position",
                value: settlement.position.to_string(),
            })
        })?;
    let split = query::credited_legs(payment)
        .map_err(corrupt)?
        .iter()
        .map(|(leg, credited)| {
            Ok(EvidenceLeg {
                payee: batch.payee(leg).map_err(corrupt)?.to_checksum(None),
                share: leg.share,
                credited: credited.to_string(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(SettlementEvidence {
        chain_id: batch.chain_id,
        contract: batch.contract.to_checksum(None),
        batch_id: batch.batch_id.to_string(),
        digest: batch.digest.to_string(),
        signer: batch.signer.to_checksum(None),
        token: batch.token.to_checksum(None),
        funder: batch.funder.to_checksum(None),
        funding: batch.funding,
        nonce: batch.nonce.to_string(),
        total: batch.total.to_string(),
        tx_hash: batch.tx_hash.to_string(),
        block_number: batch.key.block_number,
        block_hash: batch.block_hash.to_string(),
        log_index: batch.key.log_index,
        payments: batch.payments.to_string(),
        credits: batch.credits_packed().to_string(),
        position: settlement.position,
        amount: payment.amount.to_string(),
        split,
        verify: verify_commands(batch),
    })
}

/// Everything needed to verify a settled payment on chain without trusting this service.
#[utoipa::path(get, path = "/v1/payments/{payment_id}/evidence", tag = "auditors", security(("api_key" = [])),
    params(("payment_id" = String, Path, description = "The on-chain payment id: 0x and 64 hex digits")),
    responses(
        (status = 200, body = Evidence),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: the id is not 0x and 64 hex digits"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an auditor or admin key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found`: no settlement of this payment id is indexed"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn evidence(
    State(state): State<AppState>,
    principal: Principal,
    payment_id: Result<PathParams<String>, ApiError>,
) -> Result<Json<Evidence>, ApiError> {
    principal.require(&[Role::Auditor])?;
    let PathParams(text) = payment_id?;
    if !text.starts_with("0x") {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`payment_id` = {text:?} is not 0x and 64 hex digits"),
        ));
    }
    let payment_id = validate::bytes32("payment_id", &text)?;
    evidence_of(&state, payment_id).await.map(Json)
}

/// The evidence of `payment_id` (shared by the JSON route and the web UI's evidence page).
pub(crate) async fn evidence_of(
    state: &AppState,
    payment_id: alloy::primitives::B256,
) -> Result<Evidence, ApiError> {
    let settlements =
        query::payment_settlements(state.pool(), listing::deployment(state), payment_id)
            .await
            .map_err(listing::query_error)?;
    if settlements.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no settlement of payment {payment_id} is indexed"),
        ));
    }
    Ok(Evidence {
        payment_id: payment_id.to_string(),
        settlements: settlements
            .iter()
            .map(settlement_evidence)
            .collect::<Result<_, _>>()?,
    })
}

/// The range of `GET /v1/exports/settled.csv`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Payments settled in blocks whose timestamp is at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: String,
    /// Payments settled in blocks whose timestamp is before this time (RFC 3339); at most the
    /// indexed block's time, so that the export is complete and the same when asked again.
    #[param(format = DateTime)]
    pub to: String,
}

/// `settled.csv` being written: the header, then one line per leg of every payment of the
/// batches added, in the order added.
#[derive(Debug)]
pub struct SettledCsv {
    text: String,
    rows: usize,
    max_rows: usize,
}

impl SettledCsv {
    /// A CSV of at most `max_rows` rows.
    pub fn new(max_rows: usize) -> Self {
        let mut text = String::from(CSV_HEADER);
        text.push_str("\r\n");
        Self {
            text,
            rows: 0,
            max_rows,
        }
    }

    /// Adds `batch`'s rows; breaks (and the CSV is incomplete) once there would be more than
    /// `max_rows`.
    pub fn add(&mut self, batch: &SettledBatch) -> Result<ControlFlow<()>, query::QueryError> {
        let token = batch.token.to_checksum(None);
        for payment in batch.decoded_payments()? {
            for (leg, credited) in query::credited_legs(&payment)? {
                if self.rows >= self.max_rows {
                    return Ok(ControlFlow::Break(()));
                }
                self.rows = self.rows.saturating_add(1);
                let _ = write!(
                    self.text,
                    "{},{},{},{},{token},{},{},{},{credited}\r\n",
                    payment.payment_id,
                    batch.batch_id,
                    batch.tx_hash,
                    batch.key.block_number,
                    payment.amount,
                    batch.payee(&leg)?.to_checksum(None),
                    leg.share,
                );
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// The settled payments of a time range as CSV (RFC 4180, CRLF lines): one row per leg, in chain
/// order, with `payment_id, batch_id, tx_hash, block_number, token, amount` (of the payment),
/// `payee, share` (parts per million) and `credited` (what the leg credited).
#[utoipa::path(get, path = "/v1/exports/settled.csv", tag = "auditors", security(("api_key" = [])),
    params(ExportParams),
    responses(
        (status = 200, body = String, content_type = "text/csv", description = "The header line, then one line per leg"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: a missing or malformed time, `from` not before `to`, `to` after the indexed block's time, or more than 100,000 rows (split the range)"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an auditor or admin key"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database or the chain is out of reach"),
    ))]
pub async fn settled_csv(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Params<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Auditor])?;
    let Params(params) = params?;
    let invalid = |detail: String| ApiError::new(ErrorCode::InvalidParameter, detail);
    let from = validate::timestamp("from", &params.from)?;
    let to = validate::timestamp("to", &params.to)?;
    if from >= to {
        return Err(invalid(format!(
            "`from` ({}) must be before `to` ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    let at = listing::deployment(&state);
    let checkpoint = query::checkpoint(state.pool(), at)
        .await
        .map_err(listing::query_error)?
        .ok_or_else(|| {
            invalid("nothing is indexed yet, so no range can be exported completely".to_owned())
        })?;
    let indexed_time = query::block_timestamp(state.rpc(), checkpoint.block_number)
        .await
        .map_err(listing::query_error)?;
    let (from_second, to_second) = (listing::ceil_seconds(&from), listing::ceil_seconds(&to));
    if to_second > indexed_time {
        return Err(invalid(format!(
            "`to` ({}) is after the indexed block {} (timestamp {indexed_time}); later blocks could still fall in the range, so ask for a range that ends by then",
            to.to_rfc3339(),
            checkpoint.block_number
        )));
    }
    let high = checkpoint.block_number;
    let first = query::first_block_at_or_after(state.rpc(), from_second, 0, high)
        .await
        .map_err(listing::query_error)?;
    let after = query::first_block_at_or_after(state.rpc(), to_second, 0, high)
        .await
        .map_err(listing::query_error)?;
    let mut csv = SettledCsv::new(MAX_EXPORT_ROWS);
    if let Some(last) = after.checked_sub(1)
        && first <= last
    {
        let too_many =
            query::visit_settled_batches(state.pool(), at, first, last, |batch| csv.add(batch))
                .await
                .map_err(listing::query_error)?;
        if too_many {
            return Err(invalid(format!(
                "the range holds more than {MAX_EXPORT_ROWS} rows; split it into shorter ranges"
            )));
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"settled.csv\"",
            ),
        ],
        csv.finish(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};
    use settle_contracts::{Leg, Payment, encode_payments};
    use settle_indexer::query::{Credit, LogKey};

    use super::*;

    fn batch() -> SettledBatch {
        let payments = encode_payments(&[
            Payment {
                payment_id: B256::repeat_byte(1),
                amount: 7,
                legs: vec![
                    Leg {
                        payee: 1,
                        share: 500_000,
                    },
                    Leg {
                        payee: 0,
                        share: 500_000,
                    },
                ],
            },
            Payment {
                payment_id: B256::repeat_byte(2),
                amount: 5,
                legs: vec![Leg {
                    payee: 0,
                    share: 1_000_000,
                }],
            },
        ])
        .expect("encodes");
        SettledBatch {
            chain_id: 1,
            contract: Address::repeat_byte(0xcc),
            key: LogKey {
                block_number: 9,
                log_index: 2,
            },
            block_hash: B256::repeat_byte(0xbb),
            tx_hash: B256::repeat_byte(0xee),
            batch_id: B256::repeat_byte(0xba),
            signer: Address::repeat_byte(0x51),
            token: Address::ZERO,
            digest: B256::repeat_byte(0xd1),
            funder: Address::repeat_byte(0xf0),
            funding: 0,
            nonce: U256::from(1u8),
            total: U256::from(12u8),
            payments,
            credits: vec![
                Credit {
                    payee: Address::repeat_byte(0xa0),
                    amount: 8,
                },
                Credit {
                    payee: Address::repeat_byte(0xa1),
                    amount: 4,
                },
            ],
        }
    }

    #[test]
    fn csv_rows_are_legs_in_order_and_capped() {
        let batch = batch();
        let (id1, id2) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let (a0, a1) = (
            Address::repeat_byte(0xa0).to_checksum(None),
            Address::repeat_byte(0xa1).to_checksum(None),
        );
        let prefix = format!(
            "{},{},9,{}",
            batch.batch_id,
            batch.tx_hash,
            Address::ZERO.to_checksum(None)
        );
        let full = format!(
            "{CSV_HEADER}\r\n{id1},{prefix},7,{a1},500000,4\r\n{id1},{prefix},7,{a0},500000,3\r\n{id2},{prefix},5,{a0},1000000,5\r\n"
        );
        let mut csv = SettledCsv::new(3);
        assert_eq!(csv.add(&batch).expect("decodes"), ControlFlow::Continue(()));
        assert_eq!(csv.finish(), full);
        let mut capped = SettledCsv::new(2);
        assert_eq!(capped.add(&batch).expect("decodes"), ControlFlow::Break(()));
        assert_eq!(SettledCsv::new(0).finish(), format!("{CSV_HEADER}\r\n"));
    }

    #[test]
    fn cast_commands_name_the_transaction_log_and_signer() {
        let batch = batch();
        let verify = verify_commands(&batch);
        let contract = batch.contract.to_checksum(None);
        assert_eq!(
            verify.receipt,
            format!("cast receipt 0x{} --rpc-url $RPC", "ee".repeat(32))
        );
        assert_eq!(
            verify.logs,
            format!(
                "cast logs --from-block 9 --to-block 9 --address {contract} {} 0x{} --rpc-url $RPC",
                SplitSettlement::BatchSettled::SIGNATURE_HASH,
                "ba".repeat(32)
            )
        );
        assert_eq!(
            verify.signer,
            format!(
                "cast call {contract} \"isSigner(address)(bool)\" {} --block 9 --rpc-url $RPC",
                Address::repeat_byte(0x51).to_checksum(None)
            )
        );
    }
}
