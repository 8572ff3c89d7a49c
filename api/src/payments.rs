//! Payments: submit one or many, read, list and cancel.
//!
//! A payment is a relayer instruction seen through the API: submitting goes
//! through `Intake::submit` (durable before we answer), reading and cancelling
//! through `settle_relayer::query`. An integrator sees only its own payments
//! (another integrator's is `not_found`, never `forbidden`); auditors and
//! admins see all.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use settle_contracts::split::{SplitError, split};
use settle_relayer::{
    intake::{
        InstructionLeg, InstructionStatus, IntakeError, InvalidInstruction, LimitKind, MAX_KEY_LEN,
        NewInstruction,
    },
    query::{self, CancelError, Filter, Instruction, ListCursor, Scope},
};
use sqlx::types::chrono::{DateTime, Utc};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{Principal, Role},
    batches::BatchState,
    extract::{Body, Params, PathParams},
    page::{self, Listing},
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

/// The request header carrying a submission's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set on an answer that replays an earlier identical submission.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Most payments in one bulk request.
pub const MAX_BULK: usize = 1_000;

/// The payment routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_payment, list_payments))
        .routes(routes!(create_payments_bulk))
        .routes(routes!(get_payment))
        .routes(routes!(cancel_payment))
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Durable, waiting for a batch; may still be cancelled.
    Accepted,
    /// In a batch not yet signed.
    Batched,
    /// In a signed batch.
    Signed,
    /// In a submitted transaction.
    Submitted,
    /// Settled on-chain: the payees are credited.
    Settled,
    /// Cancelled before it was batched.
    Cancelled,
    /// Its batch failed for good (see `batch.error`).
    Failed,
}

impl From<InstructionStatus> for PaymentStatus {
    fn from(status: InstructionStatus) -> Self {
        match status {
            InstructionStatus::Accepted => Self::Accepted,
            InstructionStatus::Batched => Self::Batched,
            InstructionStatus::Signed => Self::Signed,
            InstructionStatus::Submitted => Self::Submitted,
            InstructionStatus::Settled => Self::Settled,
            InstructionStatus::Cancelled => Self::Cancelled,
            InstructionStatus::Failed => Self::Failed,
        }
    }
}

impl From<PaymentStatus> for InstructionStatus {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::Accepted => Self::Accepted,
            PaymentStatus::Batched => Self::Batched,
            PaymentStatus::Signed => Self::Signed,
            PaymentStatus::Submitted => Self::Submitted,
            PaymentStatus::Settled => Self::Settled,
            PaymentStatus::Cancelled => Self::Cancelled,
            PaymentStatus::Failed => Self::Failed,
        }
    }
}

/// One payee of a new payment.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSplit {
    /// Who receives this part (EIP-55).
    #[schema(example = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")]
    pub payee: String,
    /// Parts per million of the amount; the shares sum to 1,000,000 and the first split takes the
    /// rounding remainder.
    #[schema(example = 900_000)]
    pub share: u32,
}

/// A payment to submit. The idempotency key travels in the `Idempotency-Key` header.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// The chain to settle on.
    #[schema(example = 31337)]
    pub chain_id: u64,
    /// The token (EIP-55; the zero address is the native coin).
    #[schema(example = "0x0000000000000000000000000000000000000000")]
    pub token: String,
    /// Whose deposit funds the payment (EIP-55).
    #[schema(example = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")]
    pub funder: String,
    /// Amount in base units, a decimal integer string.
    #[schema(example = "1500000")]
    pub amount: String,
    /// How the amount is split.
    pub splits: Vec<NewSplit>,
}

/// One payment of a bulk submission, with its own idempotency key.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBulkPayment {
    /// The integrator's idempotency key for this payment (1 to 255 bytes).
    #[schema(example = "order-1042")]
    pub idempotency_key: String,
    /// The chain to settle on.
    #[schema(example = 31337)]
    pub chain_id: u64,
    /// The token (EIP-55; the zero address is the native coin).
    pub token: String,
    /// Whose deposit funds the payment (EIP-55).
    pub funder: String,
    /// Amount in base units, a decimal integer string.
    #[schema(example = "1500000")]
    pub amount: String,
    /// How the amount is split.
    pub splits: Vec<NewSplit>,
}

/// Many payments, accepted all together or not at all.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBulk {
    /// At most 1,000 payments.
    pub payments: Vec<NewBulkPayment>,
}

/// One payee of a payment, with what it is credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Split {
    /// Who receives this part.
    pub payee: String,
    /// Parts per million.
    pub share: u32,
    /// What the payee is credited when the payment settles, in base units.
    #[schema(example = "1350000")]
    pub credit: String,
}

/// The batch a payment is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentBatch {
    /// Our id of the batch (`GET /v1/batches/{id}`).
    pub id: Uuid,
    /// The on-chain batch id.
    pub batch_id: String,
    /// The batch's status.
    pub status: BatchState,
    /// The payment's position in the batch.
    pub position: Option<u32>,
    /// The transaction that carried the batch, once mined.
    pub tx_hash: Option<String>,
    /// The block that included it.
    pub block_number: Option<u64>,
    /// Why the batch failed (the contract's typed error), if it did.
    pub error: Option<String>,
}

/// A payment and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    /// Our id.
    pub id: Uuid,
    /// The on-chain payment id: keccak256(abi.encode(integrator, idempotency key)).
    pub payment_id: String,
    /// The integrator that submitted it.
    pub integrator: String,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The chain.
    pub chain_id: u64,
    /// The token.
    pub token: String,
    /// Whose deposit funds it.
    pub funder: String,
    /// Amount in base units.
    pub amount: String,
    /// The split, with each payee's credit.
    pub splits: Vec<Split>,
    /// When it was accepted (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its status last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Its batch and transaction, once it is in one.
    pub batch: Option<PaymentBatch>,
}

/// A time as the API writes it: RFC 3339 in UTC with microseconds.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Payment {
    /// The API's view of a relayer instruction.
    pub fn from_instruction(i: &Instruction) -> Result<Self, SplitError> {
        let shares: Vec<u32> = i.legs.iter().map(|l| l.share).collect();
        let credits = split(i.amount, &shares)?;
        Ok(Self {
            id: i.id,
            payment_id: i.payment_id.to_string(),
            integrator: i.integrator.clone(),
            idempotency_key: i.idempotency_key.clone(),
            status: i.status.into(),
            chain_id: i.chain_id,
            token: i.token.to_checksum(None),
            funder: i.funder.to_checksum(None),
            amount: i.amount.to_string(),
            splits: i
                .legs
                .iter()
                .zip(credits)
                .map(|(leg, credit)| Split {
                    payee: leg.payee.to_checksum(None),
                    share: leg.share,
                    credit: credit.to_string(),
                })
                .collect(),
            created_at: time(&i.created_at),
            updated_at: time(&i.updated_at),
            batch: i.batch.as_ref().map(|b| PaymentBatch {
                id: b.id,
                batch_id: b.batch_id.to_string(),
                status: b.status.into(),
                position: b.position,
                tx_hash: b.tx_hash.map(|h| h.to_string()),
                block_number: b.block_number,
                error: b.error.clone(),
            }),
        })
    }
}

fn view(i: &Instruction) -> Result<Payment, ApiError> {
    Payment::from_instruction(i).map_err(|e| ApiError::internal(&e))
}

/// Whose payments the caller may see: an integrator its own, auditors and admins all.
pub(crate) fn read_scope(principal: &Principal) -> Result<Scope<'_>, ApiError> {
    match principal.role {
        Role::Integrator => Ok(Scope::Integrator(&principal.owner)),
        Role::Auditor | Role::Admin => Ok(Scope::All),
        Role::Merchant => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this route is for integrator, auditor or admin keys; this key's role is merchant",
        )),
    }
}

/// The integrator a submission is for: only integrator keys submit (an admin key acts for no
/// integrator).
pub(crate) fn submitting_integrator(principal: &Principal) -> Result<&str, ApiError> {
    if principal.role == Role::Integrator {
        Ok(&principal.owner)
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this route is for integrator keys; this key's role is {}",
                principal.role
            ),
        ))
    }
}

fn rejection<T>(body: Result<Body<T>, ApiError>) -> Result<T, ApiError> {
    body.map(|Body(value)| value)
}

/// The `Idempotency-Key` header.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::IdempotencyKeyMissing,
            "send an `Idempotency-Key` header (1 to 255 visible ASCII characters, unique per payment) so a retried request cannot pay twice",
        )
    };
    let value = headers.get(IDEMPOTENCY_KEY).ok_or_else(missing)?;
    let text = value
        .to_str()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "the `Idempotency-Key` header must be visible ASCII",
            )
        })?
        .trim();
    if text.is_empty() {
        return Err(missing());
    }
    if text.len() > MAX_KEY_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "the `Idempotency-Key` header is {} bytes; at most {MAX_KEY_LEN} are allowed",
                text.len()
            ),
        ));
    }
    Ok(text.to_owned())
}

/// The fields of a payment, wherever they came from.
struct Fields<'a> {
    chain_id: u64,
    token: &'a str,
    funder: &'a str,
    amount: &'a str,
    splits: &'a [NewSplit],
}

fn field_address(
    at: &str,
    field: &str,
    text: &str,
) -> Result<alloy::primitives::Address, ApiError> {
    validate::address(text)
        .map_err(|e| ApiError::new(e.code(), format!("`{at}{field}`: {}", e.detail())))
}

/// A request's payment as an intake instruction; `at` prefixes field names in errors.
fn instruction(key: String, f: &Fields<'_>, at: &str) -> Result<NewInstruction, ApiError> {
    let token = field_address(at, "token", f.token)?;
    let funder = field_address(at, "funder", f.funder)?;
    let amount = validate::amount(&format!("{at}amount"), f.amount)?;
    let legs = f
        .splits
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(InstructionLeg {
                payee: field_address(at, &format!("splits[{i}].payee"), &s.payee)?,
                share: s.share,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(NewInstruction {
        idempotency_key: key,
        chain_id: f.chain_id,
        token,
        funder,
        amount,
        legs,
    })
}

/// The problem for an instruction that intake refused; `at` names it within the request.
fn invalid(at: &str, reason: &InvalidInstruction) -> ApiError {
    let (code, hint) = match reason {
        InvalidInstruction::BadKey => (ErrorCode::InvalidParameter, ""),
        InvalidInstruction::RepeatedKey(_) => (
            ErrorCode::IdempotencyConflict,
            "; each payment needs its own key",
        ),
        InvalidInstruction::ZeroAmount => (ErrorCode::InvalidAmount, ""),
        InvalidInstruction::UnknownToken { .. } => (
            ErrorCode::UnknownToken,
            "; ask the operator which tokens are accepted",
        ),
        InvalidInstruction::AboveTokenMax { .. } => (
            ErrorCode::LimitExceeded,
            " (the token's per-payment limit); split it into smaller payments",
        ),
        InvalidInstruction::NoLegs => (
            ErrorCode::SharesMismatch,
            "; send at least one split whose shares sum to 1000000",
        ),
        InvalidInstruction::TooManyPayees { .. } => (ErrorCode::TooManyPayees, ""),
        InvalidInstruction::ZeroPayee { .. } => (
            ErrorCode::InvalidAddress,
            "; credits to it could never be withdrawn",
        ),
        InvalidInstruction::DuplicatePayee { .. } => (
            ErrorCode::DuplicatePayee,
            "; merge its shares into one split",
        ),
        InvalidInstruction::ZeroShare { .. } => (
            ErrorCode::SharesMismatch,
            "; every share must be at least 1",
        ),
        InvalidInstruction::SharesMismatch { .. } => {
            (ErrorCode::SharesMismatch, " (shares are parts per million)")
        }
    };
    ApiError::new(code, format!("{at}{reason}{hint}"))
}

/// The problem for a refused submission; `at` names an instruction by its index.
fn intake_error(e: IntakeError, at: impl Fn(usize) -> String) -> ApiError {
    match e {
        IntakeError::Invalid { index, reason } => invalid(&at(index), &reason),
        IntakeError::IdempotencyConflict { index, key } => ApiError::new(
            ErrorCode::IdempotencyConflict,
            format!(
                "{}the idempotency key {key:?} was used before with a different request; use a new key for a new payment",
                at(index)
            ),
        ),
        IntakeError::OverLimit {
            index,
            kind: LimitKind::SinglePayment,
            requested,
            available,
        } => ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "{}the amount {requested} is above this integrator's single-payment limit of {available}",
                at(index)
            ),
        ),
        IntakeError::OverLimit {
            index,
            kind: LimitKind::DailyCap,
            requested,
            available,
        } => ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "{}the amount {requested} exceeds this integrator's rolling 24-hour cap for this token; {available} remains",
                at(index)
            ),
        ),
        IntakeError::Database(e) => ApiError::database(&e),
        e @ IntakeError::CorruptAmount(_) => ApiError::internal(&e),
    }
}

fn query_error(e: query::QueryError) -> ApiError {
    match e {
        query::QueryError::Database(e) => ApiError::database(&e),
        other => ApiError::internal(&other),
    }
}

/// The payment `id` as `scope` sees it.
async fn fetch(state: &AppState, scope: Scope<'_>, id: Uuid) -> Result<Payment, ApiError> {
    let instruction = query::instruction(state.pool(), scope, id)
        .await
        .map_err(query_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no payment {id}")))?;
    view(&instruction)
}

/// Submits one payment; an identical retry with the same `Idempotency-Key` answers the same payment.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("api_key" = [])),
    params(("Idempotency-Key" = String, Header, description = "Unique per payment (1 to 255 visible ASCII characters); a retry with the same key and body answers the original payment")),
    request_body = NewPayment,
    responses(
        (status = 201, body = Payment, description = "Accepted: durable and queued for settlement"),
        (status = 200, body = Payment, description = "An identical earlier submission, answered again", headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`malformed_body`, `unknown_field`, `wrong_type`, `idempotency_key_missing`, `invalid_parameter` (a bad `Idempotency-Key`)"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an integrator key"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "`idempotency_conflict`: the key was used with another body"),
        (status = 413, body = crate::problem::Problem, content_type = "application/problem+json", description = "`body_too_large`"),
        (status = 415, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unsupported_media_type`"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_amount`, `invalid_address`, `shares_mismatch`, `duplicate_payee`, `too_many_payees`, `unknown_token`, `limit_exceeded`"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`: the database is not reachable"),
    ))]
pub async fn create_payment(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Body<NewPayment>, ApiError>,
) -> Result<Response, ApiError> {
    let integrator = submitting_integrator(&principal)?;
    let key = idempotency_key(&headers)?;
    let body = rejection(body)?;
    let new = instruction(
        key,
        &Fields {
            chain_id: body.chain_id,
            token: &body.token,
            funder: &body.funder,
            amount: &body.amount,
            splits: &body.splits,
        },
        "",
    )?;
    let accepted = state
        .intake()
        .submit(integrator, &state.limits_for(integrator), &[new])
        .await
        .map_err(|e| intake_error(e, |_| String::new()))?;
    let accepted = accepted.first().ok_or_else(|| {
        ApiError::internal(&std::io::Error::other("intake answered no instruction"))
    })?;
    let payment = fetch(&state, Scope::Integrator(integrator), accepted.id).await?;
    if accepted.replayed {
        let mut response = (StatusCode::OK, Json(payment)).into_response();
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        Ok(response)
    } else {
        Ok((StatusCode::CREATED, Json(payment)).into_response())
    }
}

/// The answer to a bulk submission.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkAccepted {
    /// The payments, in the order sent.
    pub payments: Vec<Payment>,
    /// How many were new.
    pub created: usize,
    /// How many answered an identical earlier submission.
    pub replayed: usize,
}

/// Submits up to 1,000 payments at once: all are accepted (or replayed) or none is.
#[utoipa::path(post, path = "/v1/payments/bulk", tag = "payments", security(("api_key" = [])),
    request_body = NewBulk,
    responses(
        (status = 201, body = BulkAccepted, description = "Accepted; at least one payment is new"),
        (status = 200, body = BulkAccepted, description = "Every payment answers an identical earlier submission"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`malformed_body`, `unknown_field`, `wrong_type`, `idempotency_key_missing` (an empty key), `invalid_parameter` (a key over 255 bytes)"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an integrator key"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "`idempotency_conflict`: a key was used with another body, or twice in this request"),
        (status = 413, body = crate::problem::Problem, content_type = "application/problem+json", description = "`body_too_large`: send fewer payments per request"),
        (status = 415, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unsupported_media_type`"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_amount`, `invalid_address`, `shares_mismatch`, `duplicate_payee`, `too_many_payees`, `unknown_token`, `limit_exceeded` (also: more than 1,000 payments); the detail names the payment by index"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn create_payments_bulk(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Body<NewBulk>, ApiError>,
) -> Result<Response, ApiError> {
    let integrator = submitting_integrator(&principal)?;
    let body = rejection(body)?;
    if body.payments.len() > MAX_BULK {
        return Err(ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "{} payments in one request; at most {MAX_BULK} are allowed, send the rest in another request",
                body.payments.len()
            ),
        ));
    }
    let mut instructions = Vec::with_capacity(body.payments.len());
    for (index, p) in body.payments.into_iter().enumerate() {
        let at = format!("payments[{index}].");
        if p.idempotency_key.is_empty() {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyMissing,
                format!("`{at}idempotency_key` is empty; give each payment its own key"),
            ));
        }
        if p.idempotency_key.chars().any(char::is_control) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("`{at}idempotency_key` contains control characters; use printable text"),
            ));
        }
        instructions.push(instruction(
            p.idempotency_key,
            &Fields {
                chain_id: p.chain_id,
                token: &p.token,
                funder: &p.funder,
                amount: &p.amount,
                splits: &p.splits,
            },
            &at,
        )?);
    }
    let accepted = state
        .intake()
        .submit(integrator, &state.limits_for(integrator), &instructions)
        .await
        .map_err(|e| intake_error(e, |index| format!("payments[{index}]: ")))?;
    let ids: Vec<Uuid> = accepted.iter().map(|a| a.id).collect();
    let found = query::instructions(state.pool(), &ids)
        .await
        .map_err(query_error)?;
    if found.len() != ids.len() {
        return Err(ApiError::internal(&std::io::Error::other(
            "accepted instructions are not readable",
        )));
    }
    let payments = found.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let replayed = accepted.iter().filter(|a| a.replayed).count();
    let created = accepted.len().saturating_sub(replayed);
    let status = if created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(BulkAccepted {
            payments,
            created,
            replayed,
        }),
    )
        .into_response())
}

/// One payment.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, body = Payment),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: the id is not a UUID"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: a merchant key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found` (also another integrator's payment)"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn get_payment(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<PathParams<Uuid>, ApiError>,
) -> Result<Json<Payment>, ApiError> {
    let scope = read_scope(&principal)?;
    let PathParams(id) = id?;
    Ok(Json(fetch(&state, scope, id).await?))
}

/// Filters and paging of `GET /v1/payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only payments in this status.
    #[param(inline)]
    pub status: Option<PaymentStatus>,
    /// Only payments that pay this merchant (EIP-55) in one of their splits.
    pub merchant: Option<String>,
    /// Only payments accepted at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only payments accepted before this time (RFC 3339).
    pub to: Option<String>,
    /// Payments per page (1 to the server's page size; default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of payments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentPage {
    /// Newest first.
    pub payments: Vec<Payment>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Payments, newest first, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, body = PaymentPage),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: a malformed filter, limit or cursor"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: a merchant key"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn list_payments(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Params<ListParams>, ApiError>,
) -> Result<Json<PaymentPage>, ApiError> {
    let scope = read_scope(&principal)?;
    let Params(params) = params?;
    let bad = |detail: String| ApiError::new(ErrorCode::InvalidParameter, detail);
    let payee = params
        .merchant
        .as_deref()
        .map(|m| validate::address(m).map_err(|e| bad(format!("`merchant`: {}", e.detail()))))
        .transpose()?;
    let from = params
        .from
        .as_deref()
        .map(|t| validate::timestamp("from", t))
        .transpose()?;
    let to = params
        .to
        .as_deref()
        .map(|t| validate::timestamp("to", t))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(bad(format!(
            "`from` ({}) must be before `to` ({})",
            time(&from),
            time(&to)
        )));
    }
    let limit = page::limit(params.limit, state.config().max_page)?;
    let cursor = params
        .cursor
        .as_deref()
        .map(|c| page::decode(Listing::Payments, c).map(|last_seq| ListCursor { last_seq }))
        .transpose()?;
    let filter = Filter {
        scope,
        status: params.status.map(Into::into),
        payee,
        from,
        to,
    };
    let page = query::list(state.pool(), &filter, cursor, limit)
        .await
        .map_err(query_error)?;
    Ok(Json(PaymentPage {
        payments: page.items.iter().map(view).collect::<Result<_, _>>()?,
        next_cursor: page
            .next
            .map(|c| page::encode(Listing::Payments, c.last_seq)),
    }))
}

/// Cancels a payment that is not yet in a batch; cancelling a cancelled payment answers it again.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, body = Payment, description = "Cancelled"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: the id is not a UUID"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an integrator (or admin) key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found` (also another integrator's payment)"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_cancellable`: the payment is already in a batch, or final"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn cancel_payment(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<PathParams<Uuid>, ApiError>,
) -> Result<Json<Payment>, ApiError> {
    principal.require(&[Role::Integrator])?;
    let scope = read_scope(&principal)?;
    let PathParams(id) = id?;
    match query::cancel(state.pool(), scope, id).await {
        Ok(instruction) => Ok(Json(view(&instruction)?)),
        Err(CancelError::NotFound) => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no payment {id}"),
        )),
        Err(CancelError::NotCancellable { status }) => Err(ApiError::new(
            ErrorCode::NotCancellable,
            format!(
                "payment {id} is {}; only an accepted payment (not yet in a batch) can be cancelled",
                status.as_str()
            ),
        )),
        Err(CancelError::Query(e)) => Err(query_error(e)),
    }
}
