//! Reads (and the one write, cancelling) that the API makes on instructions and batches.
//!
//! The API never touches the relayer's tables; it calls these functions. They
//! answer typed values, scoped to one integrator where the caller asks for it,
//! so that a payment of another integrator is simply not found.
//!
//! Cancelling is a single `UPDATE ... WHERE status = 'accepted'`: the batcher
//! claims instructions with `FOR UPDATE SKIP LOCKED`, so either the cancel
//! lands first (and the batcher no longer sees the row as pending) or it waits
//! for the batcher's commit, re-reads the row and finds it no longer accepted.
//!
//! Status changes are recorded by a trigger (migration 100006) and read here as
//! a feed: [`status_changes`] answers only changes whose writing transaction is
//! older than every transaction still running, so a reader that advances its
//! cursor past a change never misses one committed later.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256};
use settle_contracts::decode_payments;
use sqlx::{
    PgPool, Row,
    postgres::PgRow,
    types::chrono::{DateTime, Utc},
};
use thiserror::Error;
use uuid::Uuid;

use crate::intake::{InstructionLeg, InstructionStatus};

/// Why a read failed.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value is not what the schema promises.
    #[error("stored {what} is malformed: {value}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was found.
        value: String,
    },
}

/// Why an instruction could not be cancelled.
#[derive(Debug, Error)]
pub enum CancelError {
    /// No such instruction (for this integrator).
    #[error("no such instruction")]
    NotFound,
    /// It is already in a batch (or final), so it can no longer be withdrawn.
    #[error("the instruction is {}; only accepted instructions can be cancelled", status.as_str())]
    NotCancellable {
        /// Its status now.
        status: InstructionStatus,
    },
    /// The read around the cancel failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl From<sqlx::Error> for CancelError {
    fn from(e: sqlx::Error) -> Self {
        Self::Query(QueryError::Database(e))
    }
}

fn corrupt(what: &'static str, value: impl std::fmt::Debug) -> QueryError {
    QueryError::Corrupt {
        what,
        value: format!("{value:?}"),
    }
}

/// Whose instructions a read may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every integrator's (auditors, admins, the relayer itself).
    All,
    /// Only this integrator's.
    Integrator(&'a str),
}

impl<'a> Scope<'a> {
    const fn integrator(self) -> Option<&'a str> {
        match self {
            Self::All => None,
            Self::Integrator(name) => Some(name),
        }
    }
}

/// The status of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Signed and stored, not yet sent.
    Signed,
    /// A transaction carries it.
    Submitted,
    /// Mined, not yet deep enough.
    Included,
    /// Mined and `confirmations` deep.
    Settled,
    /// Reverted for good; the typed error is recorded.
    Failed,
    /// Its deadline passed unsettled; its instructions went back to the queue.
    Expired,
}

impl BatchStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Submitted => "submitted",
            Self::Included => "included",
            Self::Settled => "settled",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Signed,
            Self::Submitted,
            Self::Included,
            Self::Settled,
            Self::Failed,
            Self::Expired,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

/// The batch an instruction is in, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef {
    /// Our id of the batch.
    pub id: Uuid,
    /// The on-chain batch id.
    pub batch_id: B256,
    /// The batch's status.
    pub status: BatchStatus,
    /// The instruction's position among the batch's payments.
    pub position: Option<u32>,
    /// The transaction that carried it, once mined.
    pub tx_hash: Option<B256>,
    /// The block that included it.
    pub block_number: Option<u64>,
    /// Why it failed (the contract's typed error), if it did.
    pub error: Option<String>,
}

/// An instruction with its split and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Our id.
    pub id: Uuid,
    /// Arrival order.
    pub seq: i64,
    /// Whose it is.
    pub integrator: String,
    /// The integrator's idempotency key.
    pub idempotency_key: String,
    /// The on-chain payment id.
    pub payment_id: B256,
    /// The chain.
    pub chain_id: u64,
    /// The token (`Address::ZERO` for the native coin).
    pub token: Address,
    /// Whose deposit funds it.
    pub funder: Address,
    /// Amount in base units.
    pub amount: u128,
    /// Its status.
    pub status: InstructionStatus,
    /// Its split, leg 0 first (leg 0 takes the rounding remainder).
    pub legs: Vec<InstructionLeg>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// Its batch, once it is in one.
    pub batch: Option<BatchRef>,
}

/// The columns [`instruction_row`] reads, in its order.
macro_rules! instruction_columns {
    () => {
        "i.id, i.seq, i.integrator, i.idempotency_key, i.payment_id, i.chain_id,
        i.token, i.funder, i.amount::text, i.status, i.created_at, i.updated_at, i.position,
        b.id, b.batch_id, b.status, b.tx_hash, b.block_number, b.error"
    };
}

/// Where an instruction and its batch are read from.
macro_rules! instruction_from {
    () => {
        " FROM relayer.instructions i LEFT JOIN relayer.batches b ON b.id = i.batch"
    };
}

const SELECT_INSTRUCTION: &str = concat!("SELECT ", instruction_columns!(), instruction_from!());

/// One instruction with its legs as two arrays in position order: one round trip.
const SELECT_ONE_INSTRUCTION: &str = concat!(
    "SELECT ",
    instruction_columns!(),
    ", (SELECT array_agg(l.payee ORDER BY l.position) FROM relayer.instruction_legs l
         WHERE l.instruction_id = i.id) AS payees,
       (SELECT array_agg(l.share ORDER BY l.position) FROM relayer.instruction_legs l
         WHERE l.instruction_id = i.id) AS shares",
    instruction_from!(),
    " WHERE i.id = $1 AND ($2::text IS NULL OR i.integrator = $2)"
);

fn address(what: &'static str, bytes: &[u8]) -> Result<Address, QueryError> {
    Address::try_from(bytes).map_err(|_| corrupt(what, bytes))
}

fn b256(what: &'static str, bytes: &[u8]) -> Result<B256, QueryError> {
    B256::try_from(bytes).map_err(|_| corrupt(what, bytes))
}

fn unsigned(what: &'static str, value: i64) -> Result<u64, QueryError> {
    u64::try_from(value).map_err(|_| corrupt(what, value))
}

fn instruction_status(text: &str) -> Result<InstructionStatus, QueryError> {
    InstructionStatus::parse(text).ok_or_else(|| corrupt("instruction status", text))
}

/// An instruction row without its legs.
fn instruction_row(row: &PgRow) -> Result<Instruction, QueryError> {
    let amount: String = row.try_get(8)?;
    let status: String = row.try_get(9)?;
    let position: Option<i32> = row.try_get(12)?;
    let batch = match row.try_get::<Option<Uuid>, _>(13)? {
        None => None,
        Some(id) => {
            let batch_id: Vec<u8> = row.try_get(14)?;
            let status: String = row.try_get(15)?;
            let tx_hash: Option<Vec<u8>> = row.try_get(16)?;
            let block_number: Option<i64> = row.try_get(17)?;
            Some(BatchRef {
                id,
                batch_id: b256("batch id", &batch_id)?,
                status: BatchStatus::parse(&status)
                    .ok_or_else(|| corrupt("batch status", &status))?,
                position: position
                    .map(|p| u32::try_from(p).map_err(|_| corrupt("position", p)))
                    .transpose()?,
                tx_hash: tx_hash.map(|h| b256("tx hash", &h)).transpose()?,
                block_number: block_number
                    .map(|n| unsigned("block number", n))
                    .transpose()?,
                error: row.try_get(18)?,
            })
        }
    };
    Ok(Instruction {
        id: row.try_get(0)?,
        seq: row.try_get(1)?,
        integrator: row.try_get(2)?,
        idempotency_key: row.try_get(3)?,
        payment_id: b256("payment id", &row.try_get::<Vec<u8>, _>(4)?)?,
        chain_id: unsigned("chain id", row.try_get(5)?)?,
        token: address("token", &row.try_get::<Vec<u8>, _>(6)?)?,
        funder: address("funder", &row.try_get::<Vec<u8>, _>(7)?)?,
        amount: amount.parse().map_err(|_| corrupt("amount", &amount))?,
        status: instruction_status(&status)?,
        legs: Vec::new(),
        created_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
        batch,
    })
}

/// Fills in the legs of `instructions` with one query.
async fn with_legs(
    pool: &PgPool,
    mut instructions: Vec<Instruction>,
) -> Result<Vec<Instruction>, QueryError> {
    if instructions.is_empty() {
        return Ok(instructions);
    }
    let ids: Vec<Uuid> = instructions.iter().map(|i| i.id).collect();
    let mut legs: HashMap<Uuid, Vec<InstructionLeg>> = HashMap::with_capacity(ids.len());
    for row in sqlx::query(
        "SELECT instruction_id, payee, share FROM relayer.instruction_legs
         WHERE instruction_id = ANY($1) ORDER BY instruction_id, position",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?
    {
        let id: Uuid = row.try_get(0)?;
        let payee: Vec<u8> = row.try_get(1)?;
        let share: i32 = row.try_get(2)?;
        legs.entry(id).or_default().push(InstructionLeg {
            payee: address("payee", &payee)?,
            share: u32::try_from(share).map_err(|_| corrupt("share", share))?,
        });
    }
    for instruction in &mut instructions {
        instruction.legs = legs.remove(&instruction.id).unwrap_or_default();
    }
    Ok(instructions)
}

/// One instruction, if it exists and `scope` may see it.
pub async fn instruction(
    pool: &PgPool,
    scope: Scope<'_>,
    id: Uuid,
) -> Result<Option<Instruction>, QueryError> {
    let row = sqlx::query(SELECT_ONE_INSTRUCTION)
        .bind(id)
        .bind(scope.integrator())
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut instruction = instruction_row(&row)?;
    let payees: Option<Vec<Vec<u8>>> = row.try_get("payees")?;
    let shares: Option<Vec<i32>> = row.try_get("shares")?;
    let (payees, shares) = (payees.unwrap_or_default(), shares.unwrap_or_default());
    if payees.len() != shares.len() {
        return Err(corrupt(
            "legs",
            format!("{} payees, {} shares", payees.len(), shares.len()),
        ));
    }
    instruction.legs = payees
        .iter()
        .zip(shares)
        .map(|(payee, share)| {
            Ok(InstructionLeg {
                payee: address("payee", payee)?,
                share: u32::try_from(share).map_err(|_| corrupt("share", share))?,
            })
        })
        .collect::<Result<_, QueryError>>()?;
    Ok(Some(instruction))
}

/// The instructions with these ids, in the order given; ids that do not exist are left out.
pub async fn instructions(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Instruction>, QueryError> {
    let rows = sqlx::query(&format!("{SELECT_INSTRUCTION} WHERE i.id = ANY($1)"))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut found: HashMap<Uuid, Instruction> = rows
        .iter()
        .map(|row| instruction_row(row).map(|i| (i.id, i)))
        .collect::<Result<_, _>>()?;
    let ordered = ids.iter().filter_map(|id| found.remove(id)).collect();
    with_legs(pool, ordered).await
}

/// Which instructions a listing answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Whose.
    pub scope: Scope<'a>,
    /// Only this status.
    pub status: Option<InstructionStatus>,
    /// Only those that pay this payee (in any leg).
    pub payee: Option<Address>,
    /// Accepted at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Accepted before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Where the next page of a listing starts: after the instruction with this arrival number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// The `seq` of the last instruction of the previous page.
    pub last_seq: i64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Newest first.
    pub items: Vec<Instruction>,
    /// Where the next page starts, when there is one.
    pub next: Option<ListCursor>,
}

/// Instructions matching `filter`, newest first, `limit` (at least 1) per page, after `cursor`.
///
/// Paging is by keyset on the arrival number, so a page never skips or repeats an instruction
/// because others arrived in between.
pub async fn list(
    pool: &PgPool,
    filter: &Filter<'_>,
    cursor: Option<ListCursor>,
    limit: u32,
) -> Result<Page, QueryError> {
    let limit = limit.max(1);
    let rows = sqlx::query(&format!(
        "{SELECT_INSTRUCTION}
         WHERE ($1::text IS NULL OR i.integrator = $1)
           AND ($2::text IS NULL OR i.status = $2)
           AND ($3::bytea IS NULL OR EXISTS (
                SELECT 1 FROM relayer.instruction_legs l WHERE l.instruction_id = i.id AND l.payee = $3))
           AND ($4::timestamptz IS NULL OR i.created_at >= $4)
           AND ($5::timestamptz IS NULL OR i.created_at < $5)
           AND ($6::bigint IS NULL OR i.seq < $6)
         ORDER BY i.seq DESC
         LIMIT $7"
    ))
    .bind(filter.scope.integrator())
    .bind(filter.status.map(InstructionStatus::as_str))
    .bind(filter.payee.map(|p| p.to_vec()))
    .bind(filter.from)
    .bind(filter.to)
    .bind(cursor.map(|c| c.last_seq))
    .bind(i64::from(limit).saturating_add(1))
    .fetch_all(pool)
    .await?;
    let mut items = rows
        .iter()
        .map(instruction_row)
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more {
        items.last().map(|i| ListCursor { last_seq: i.seq })
    } else {
        None
    };
    Ok(Page {
        items: with_legs(pool, items).await?,
        next,
    })
}

/// Cancels an instruction that is still only accepted, and answers it as it is now.
///
/// Cancelling one already cancelled answers it unchanged (a retried cancel is not an error). One
/// that is in a batch or final is [`CancelError::NotCancellable`]; one that does not exist in
/// `scope` is [`CancelError::NotFound`].
pub async fn cancel(pool: &PgPool, scope: Scope<'_>, id: Uuid) -> Result<Instruction, CancelError> {
    let cancelled = sqlx::query(
        "UPDATE relayer.instructions SET status = 'cancelled', updated_at = now()
         WHERE id = $1 AND ($2::text IS NULL OR integrator = $2) AND status = 'accepted'
         RETURNING id",
    )
    .bind(id)
    .bind(scope.integrator())
    .fetch_optional(pool)
    .await?;
    let now = instruction(pool, scope, id)
        .await?
        .ok_or(CancelError::NotFound)?;
    if cancelled.is_some() {
        tracing::info!(instruction = %id, payment_id = %now.payment_id, "instruction cancelled");
        return Ok(now);
    }
    match now.status {
        InstructionStatus::Cancelled => Ok(now),
        status => Err(CancelError::NotCancellable { status }),
    }
}

/// Which batch: our id or the on-chain batch id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKey {
    /// Our id.
    Id(Uuid),
    /// The on-chain `batchId`.
    BatchId(B256),
}

/// A batch with its on-chain record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Our id.
    pub id: Uuid,
    /// The on-chain batch id.
    pub batch_id: B256,
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy it settles on.
    pub contract: Address,
    /// The token.
    pub token: Address,
    /// Whose deposit funds it.
    pub funder: Address,
    /// The key that signed it.
    pub signer: Address,
    /// The signer's batch nonce.
    pub nonce: U256,
    /// Unix seconds after which it can no longer settle.
    pub deadline: u64,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// Its status.
    pub status: BatchStatus,
    /// The sender key whose transaction carries it.
    pub sender: Option<Address>,
    /// The transaction that settled it (once mined).
    pub tx_hash: Option<B256>,
    /// The block that included it.
    pub block_number: Option<u64>,
    /// That block's hash.
    pub block_hash: Option<B256>,
    /// Gas the mined transaction used.
    pub gas_used: Option<u64>,
    /// What each unit of that gas cost, in wei.
    pub effective_gas_price: Option<u128>,
    /// Why it failed (the contract's typed error), if it did.
    pub error: Option<String>,
    /// How many payments it carries.
    pub payments: usize,
    /// Their sum.
    pub total: u128,
    /// When it was signed.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// A batch, if it exists and `scope` may see it (an integrator sees the batches that carry at least
/// one of its instructions).
pub async fn batch(
    pool: &PgPool,
    key: BatchKey,
    scope: Scope<'_>,
) -> Result<Option<BatchRecord>, QueryError> {
    let (id, batch_id) = match key {
        BatchKey::Id(id) => (Some(id), None),
        BatchKey::BatchId(batch_id) => (None, Some(batch_id.to_vec())),
    };
    let row = sqlx::query(
        "SELECT b.id, b.batch_id, b.chain_id, b.contract, b.token, b.funder, b.signer, b.nonce::text,
                b.deadline, b.digest, b.status, b.sender, b.tx_hash, b.block_number, b.block_hash,
                t.gas_used, t.effective_gas_price::text, b.error, b.payments, b.total::text,
                b.created_at, b.updated_at
         FROM relayer.batches b
         LEFT JOIN LATERAL (
             SELECT gas_used, effective_gas_price FROM relayer.transactions
             WHERE batch = b.id AND status = 'mined' ORDER BY updated_at DESC LIMIT 1
         ) t ON true
         WHERE ($1::uuid IS NULL OR b.id = $1) AND ($2::bytea IS NULL OR b.batch_id = $2)
           AND ($3::text IS NULL OR EXISTS (
                SELECT 1 FROM relayer.instructions i WHERE i.batch = b.id AND i.integrator = $3))",
    )
    .bind(id)
    .bind(batch_id)
    .bind(scope.integrator())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let bytes = |i: usize| -> Result<Vec<u8>, QueryError> { Ok(row.try_get(i)?) };
    let optional_bytes = |i: usize| -> Result<Option<Vec<u8>>, QueryError> { Ok(row.try_get(i)?) };
    let nonce: String = row.try_get(7)?;
    let status: String = row.try_get(10)?;
    let effective_gas_price: Option<String> = row.try_get(16)?;
    let total: String = row.try_get(19)?;
    let payments = decode_payments(&bytes(18)?).map_err(|e| corrupt("batch payments", e))?;
    Ok(Some(BatchRecord {
        id: row.try_get(0)?,
        batch_id: b256("batch id", &bytes(1)?)?,
        chain_id: unsigned("chain id", row.try_get(2)?)?,
        contract: address("contract", &bytes(3)?)?,
        token: address("token", &bytes(4)?)?,
        funder: address("funder", &bytes(5)?)?,
        signer: address("signer", &bytes(6)?)?,
        nonce: U256::from_str_radix(&nonce, 10).map_err(|_| corrupt("nonce", &nonce))?,
        deadline: unsigned("deadline", row.try_get(8)?)?,
        digest: b256("digest", &bytes(9)?)?,
        status: BatchStatus::parse(&status).ok_or_else(|| corrupt("batch status", &status))?,
        sender: optional_bytes(11)?
            .map(|b| address("sender", &b))
            .transpose()?,
        tx_hash: optional_bytes(12)?
            .map(|b| b256("tx hash", &b))
            .transpose()?,
        block_number: row
            .try_get::<Option<i64>, _>(13)?
            .map(|n| unsigned("block number", n))
            .transpose()?,
        block_hash: optional_bytes(14)?
            .map(|b| b256("block hash", &b))
            .transpose()?,
        gas_used: row
            .try_get::<Option<i64>, _>(15)?
            .map(|n| unsigned("gas used", n))
            .transpose()?,
        effective_gas_price: effective_gas_price
            .map(|p| p.parse().map_err(|_| corrupt("gas price", &p)))
            .transpose()?,
        error: row.try_get(17)?,
        payments: payments.len(),
        total: total.parse().map_err(|_| corrupt("total", &total))?,
        created_at: row.try_get(20)?,
        updated_at: row.try_get(21)?,
    }))
}

/// A position in the feed of status changes; the default is its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ChangeCursor {
    /// The writing transaction of the last change read.
    pub xid: i64,
    /// Its number.
    pub seq: i64,
}

/// One status transition of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// Where the feed stands after this change.
    pub cursor: ChangeCursor,
    /// The instruction.
    pub instruction: Uuid,
    /// Whose it is.
    pub integrator: String,
    /// The status before.
    pub from: InstructionStatus,
    /// The status after.
    pub to: InstructionStatus,
    /// When it changed.
    pub changed_at: DateTime<Utc>,
}

/// Up to `limit` status changes after `cursor`, in the order they are to be read.
///
/// Only changes of transactions older than every transaction still running are answered: any
/// change that is not answered yet will sort after the last one answered, so advancing a cursor
/// to the last change answered never skips one. A long-running transaction anywhere on the server
/// delays the feed (it does not lose anything).
pub async fn status_changes<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    cursor: ChangeCursor,
    limit: u32,
) -> Result<Vec<StatusChange>, QueryError> {
    let rows = sqlx::query(
        "SELECT xid, seq, instruction_id, integrator, old_status, new_status, changed_at
         FROM relayer.instruction_changes
         WHERE (xid, seq) > ($1, $2)
           AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
         ORDER BY xid, seq
         LIMIT $3",
    )
    .bind(cursor.xid)
    .bind(cursor.seq)
    .bind(i64::from(limit.max(1)))
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| {
            let from: String = row.try_get(4)?;
            let to: String = row.try_get(5)?;
            Ok(StatusChange {
                cursor: ChangeCursor {
                    xid: row.try_get(0)?,
                    seq: row.try_get(1)?,
                },
                instruction: row.try_get(2)?,
                integrator: row.try_get(3)?,
                from: instruction_status(&from)?,
                to: instruction_status(&to)?,
                changed_at: row.try_get(6)?,
            })
        })
        .collect()
}

/// The instructions `scope` may see whose idempotency key is `key` or whose on-chain payment id is
/// `payment_id`, newest first (at most 50: a key is unique per integrator, an id nearly so).
pub async fn find_instructions(
    pool: &PgPool,
    scope: Scope<'_>,
    key: Option<&str>,
    payment_id: Option<B256>,
) -> Result<Vec<Instruction>, QueryError> {
    let rows = sqlx::query(&format!(
        "{SELECT_INSTRUCTION}
         WHERE ($1::text IS NULL OR i.integrator = $1)
           AND (i.idempotency_key = $2 OR i.payment_id = $3)
         ORDER BY i.seq DESC
         LIMIT 50"
    ))
    .bind(scope.integrator())
    .bind(key)
    .bind(payment_id.map(|p| p.to_vec()))
    .fetch_all(pool)
    .await?;
    let items = rows
        .iter()
        .map(instruction_row)
        .collect::<Result<Vec<_>, _>>()?;
    with_legs(pool, items).await
}

/// Every status change of one instruction, oldest first (the feed's rows for it).
pub async fn instruction_history(
    pool: &PgPool,
    id: Uuid,
) -> Result<Vec<(InstructionStatus, InstructionStatus, DateTime<Utc>)>, QueryError> {
    let rows = sqlx::query(
        "SELECT old_status, new_status, changed_at FROM relayer.instruction_changes
         WHERE instruction_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let from: String = row.try_get(0)?;
            let to: String = row.try_get(1)?;
            Ok((
                instruction_status(&from)?,
                instruction_status(&to)?,
                row.try_get(2)?,
            ))
        })
        .collect()
}

/// Instructions that became settled in each of the `minutes` whole minutes up to now, oldest
/// first (a minute without any is 0).
pub async fn settled_per_minute(
    pool: &PgPool,
    minutes: u32,
) -> Result<Vec<(DateTime<Utc>, i64)>, QueryError> {
    let rows = sqlx::query(
        "SELECT m.minute, count(c.seq)
         FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                              date_trunc('minute', now()), interval '1 minute') AS m(minute)
         LEFT JOIN relayer.instruction_changes c
           ON c.new_status = 'settled' AND date_trunc('minute', c.changed_at) = m.minute
         GROUP BY m.minute ORDER BY m.minute",
    )
    .bind(i32::try_from(minutes.max(1)).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}
