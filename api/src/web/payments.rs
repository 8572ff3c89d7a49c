//! The integrator's pages: payments with their status, search by id or idempotency key, and one
//! payment's timeline (accepted, batched, signed, submitted, mined, confirmed, indexed).
//!
//! An integrator sees its own payments (another's is a 404 page); auditors and admins see all;
//! merchants are refused, as in the API (`payments::read_scope`).

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;
use settle_indexer::query as indexed;
use settle_relayer::{
    intake::InstructionStatus,
    query::{self, Filter, Instruction, ListCursor},
};
use sqlx::types::chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{Nav, UiError, UiUser, bad_parameter, decimal, encode_query, given, not_found, render};
use crate::{
    auth::Role,
    listing, page,
    page::Listing,
    payments::{Payment, read_scope},
    problem::ApiError,
    state::AppState,
    validate,
};

/// Statuses offered by the filter.
const STATUSES: [&str; 7] = [
    "accepted",
    "batched",
    "signed",
    "submitted",
    "settled",
    "cancelled",
    "failed",
];

/// The list's form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

/// One row of the list.
#[derive(Debug)]
struct Row {
    id: Uuid,
    idempotency_key: String,
    payment_id: String,
    integrator: String,
    status: String,
    amount: String,
    readable: String,
    created_at: String,
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn row(i: &Instruction) -> Row {
    Row {
        id: i.id,
        idempotency_key: i.idempotency_key.clone(),
        payment_id: i.payment_id.to_string(),
        integrator: i.integrator.clone(),
        status: i.status.as_str().to_owned(),
        amount: i.amount.to_string(),
        readable: decimal(&i.amount.to_string(), 18),
        created_at: time(&i.created_at),
    }
}

#[derive(Template)]
#[template(path = "payments.html")]
struct ListPage {
    nav: Nav,
    statuses: Vec<(&'static str, bool)>,
    status: String,
    q: String,
    rows: Vec<Row>,
    searched: bool,
    all_integrators: bool,
    next: Option<String>,
}

/// `GET /ui/payments`.
pub(crate) async fn list(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Query(form): Query<ListQuery>,
) -> Result<Response, UiError> {
    let result: Result<_, UiError> = async {
        let scope = read_scope(&principal)?;
        let status = given(form.status.as_deref())
            .map(|s| {
                InstructionStatus::parse(s)
                    .ok_or_else(|| bad_parameter(format!("`status` = {s:?} is not a status")))
            })
            .transpose()?;
        if let Some(q) = given(form.q.as_deref()) {
            let found = if let Ok(id) = Uuid::parse_str(q) {
                query::instruction(state.pool(), scope, id)
                    .await
                    .map_err(|e| ApiError::internal(&e))?
                    .into_iter()
                    .collect()
            } else if q.len() == 66 && q.starts_with("0x") {
                let payment_id = validate::bytes32("q", q)?;
                query::find_instructions(state.pool(), scope, None, Some(payment_id))
                    .await
                    .map_err(|e| ApiError::internal(&e))?
            } else {
                query::find_instructions(state.pool(), scope, Some(q), None)
                    .await
                    .map_err(|e| ApiError::internal(&e))?
            };
            return Ok((found, None, true));
        }
        let cursor = given(form.cursor.as_deref())
            .map(|c| page::decode(Listing::Payments, c))
            .transpose()?
            .map(|last_seq| ListCursor { last_seq });
        let filter = Filter {
            scope,
            status,
            payee: None,
            from: None,
            to: None,
        };
        let limit = page::limit(None, state.config().max_page)?;
        let listed = query::list(state.pool(), &filter, cursor, limit)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let next = listed
            .next
            .map(|c| page::encode(Listing::Payments, c.last_seq));
        Ok((listed.items, next, false))
    }
    .await;
    let (items, next, searched) = result.map_err(|e| e.with_nav(&principal))?;
    let status = given(form.status.as_deref()).unwrap_or_default().to_owned();
    let next = next.map(|c| {
        format!(
            "/ui/payments?status={}&cursor={}",
            encode_query(&status),
            encode_query(&c)
        )
    });
    Ok(render(&ListPage {
        nav: Nav::new(&principal, "/ui/payments"),
        statuses: STATUSES.iter().map(|s| (*s, *s == status)).collect(),
        status,
        q: form.q.unwrap_or_default(),
        rows: items.iter().map(row).collect(),
        searched,
        all_integrators: principal.role != Role::Integrator,
        next,
    }))
}

/// One step of a payment's way to settlement.
#[derive(Debug)]
struct Step {
    name: &'static str,
    done: bool,
    time: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "payment.html")]
struct DetailPage {
    nav: Nav,
    payment: Payment,
    status: &'static str,
    readable: String,
    steps: Vec<Step>,
    may_audit: bool,
}

/// How far a status is along the way (cancelled and failed stop where they are).
const fn rank(status: InstructionStatus) -> u8 {
    match status {
        InstructionStatus::Accepted | InstructionStatus::Cancelled => 0,
        InstructionStatus::Batched | InstructionStatus::Failed => 1,
        InstructionStatus::Signed => 2,
        InstructionStatus::Submitted => 3,
        InstructionStatus::Settled => 5,
    }
}

/// `GET /ui/payments/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let result: Result<_, UiError> = async {
        let scope = read_scope(&principal)?;
        let id = Uuid::parse_str(&id)
            .map_err(|_| bad_parameter(format!("{id:?} is not a payment id (a UUID)")))?;
        let instruction = query::instruction(state.pool(), scope, id)
            .await
            .map_err(|e| ApiError::internal(&e))?
            .ok_or_else(|| not_found(format!("no payment {id} for this key")))?;
        let history = query::instruction_history(state.pool(), id)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let mined_at = match instruction.batch.as_ref().and_then(|b| b.block_number) {
            Some(number) => Some((
                number,
                indexed::block_timestamp(state.rpc(), number)
                    .await
                    .map_err(listing::query_error)?,
            )),
            None => None,
        };
        let settlements = indexed::payment_settlements(
            state.pool(),
            listing::deployment(&state),
            instruction.payment_id,
        )
        .await
        .map_err(listing::query_error)?;
        Ok((instruction, history, mined_at, settlements))
    }
    .await;
    let (instruction, history, mined_at, settlements) =
        result.map_err(|e| e.with_nav(&principal))?;
    let reached = rank(instruction.status);
    let changed = |to: InstructionStatus| {
        history
            .iter()
            .rev()
            .find(|(_, t, _)| *t == to)
            .map(|(_, _, at)| time(at))
    };
    let step = |name, status: InstructionStatus, detail: String| {
        let at = changed(status);
        Step {
            name,
            done: at.is_some() || reached >= rank(status),
            time: at.unwrap_or_default(),
            detail,
        }
    };
    let batch = instruction.batch.as_ref();
    let mut steps = vec![
        Step {
            name: "Accepted",
            done: true,
            time: time(&instruction.created_at),
            detail: format!("idempotency key {}", instruction.idempotency_key),
        },
        step(
            "Batched",
            InstructionStatus::Batched,
            batch.map_or_else(String::new, |b| format!("batch {}", b.batch_id)),
        ),
        step(
            "Signed",
            InstructionStatus::Signed,
            String::from("EIP-712 digest signed in the HSM"),
        ),
        step(
            "Submitted",
            InstructionStatus::Submitted,
            batch
                .and_then(|b| b.tx_hash)
                .map_or_else(String::new, |h| format!("transaction {h}")),
        ),
    ];
    steps.push(Step {
        name: "Mined",
        done: mined_at.is_some(),
        time: mined_at
            .and_then(|(_, ts)| i64::try_from(ts).ok())
            .and_then(|ts| Utc.timestamp_opt(ts, 0).single())
            .map(|t| time(&t))
            .unwrap_or_default(),
        detail: mined_at.map_or_else(String::new, |(n, _)| format!("block {n} (block time)")),
    });
    steps.push(step(
        "Confirmed",
        InstructionStatus::Settled,
        String::from("deep enough to count as settled"),
    ));
    steps.push(Step {
        name: "Indexed",
        done: !settlements.is_empty(),
        time: String::new(),
        detail: settlements.first().map_or_else(String::new, |s| {
            format!(
                "BatchSettled at block {}, log {}, mirrored by the indexer",
                s.batch.key.block_number, s.batch.key.log_index
            )
        }),
    });
    if matches!(
        instruction.status,
        InstructionStatus::Cancelled | InstructionStatus::Failed
    ) {
        steps.push(Step {
            name: if instruction.status == InstructionStatus::Cancelled {
                "Cancelled"
            } else {
                "Failed"
            },
            done: true,
            time: changed(instruction.status).unwrap_or_default(),
            detail: batch.and_then(|b| b.error.clone()).unwrap_or_default(),
        });
    }
    let payment = Payment::from_instruction(&instruction)
        .map_err(|e| UiError::from(ApiError::internal(&e)).with_nav(&principal))?;
    Ok(render(&DetailPage {
        nav: Nav::new(&principal, "/ui/payments"),
        readable: decimal(&payment.amount, 18),
        status: instruction.status.as_str(),
        payment,
        steps,
        may_audit: principal.require(&[Role::Auditor]).is_ok(),
    }))
}
