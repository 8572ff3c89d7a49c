//! Reads of the mirrored tables, for the API: a merchant's balances, payouts and withdrawals, the
//! settlements of a payment with everything needed to check them, the settled batches of a block
//! range; and, from the chain, the first block at or after a time.
//!
//! Every read is scoped to one deployment (chain and proxy). Reads that take more than one
//! statement run in one read-only `REPEATABLE READ` transaction, so they see one state of the
//! mirror: a range's rows and its checkpoint are committed together, so balances and the
//! checkpoint block they hold at always match.
//!
//! A `BatchSettled` credits each payee once per batch (the sum over the batch's payments). A
//! payout here is finer: one leg of one payment, its part recomputed from the signed packed
//! payments with the contract's split arithmetic ([`settle_contracts::split::split`]); a batch's
//! payouts to a payee sum to its credit.

use std::ops::ControlFlow;

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
};
use settle_contracts::{Leg, Payment, decode_payments, split::split};
use settle_relayer::{RpcError, RpcPool};
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use thiserror::Error;

/// Result alias of this module.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Why a read failed.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A chain read failed.
    #[error("rpc {op}: {source}")]
    Rpc {
        /// The call.
        op: &'static str,
        /// What went wrong.
        source: RpcError,
    },
    /// The node has no block it should have (at or below the indexed checkpoint).
    #[error("the node has no block {number}")]
    BlockMissing {
        /// The block asked for.
        number: u64,
    },
    /// A stored value is not what the schema promises.
    #[error("stored {what} is malformed: {value}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was found.
        value: String,
    },
}

fn corrupt(what: &'static str, value: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt {
        what,
        value: value.to_string(),
    }
}

/// One deployment: the proxy `contract` on `chain_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy.
    pub contract: Address,
}

impl Deployment {
    fn chain(&self) -> Result<i64> {
        i64::try_from(self.chain_id).map_err(|_| corrupt("chain id", self.chain_id))
    }
}

/// Where indexing of a contract stands: rows up to and including this block are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last indexed block.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
}

/// Blocks `from..=to` (inclusive), and optionally one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFilter {
    /// Only this token.
    pub token: Option<Address>,
    /// The first block.
    pub from_block: u64,
    /// The last block.
    pub to_block: u64,
}

impl BlockFilter {
    /// Every block, every token.
    pub const ALL: Self = Self {
        token: None,
        from_block: 0,
        to_block: u64::MAX,
    };

    /// The bounds as the database stores block numbers (beyond `i64` is beyond any block).
    fn bounds(&self) -> (i64, i64) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        (clamp(self.from_block), clamp(self.to_block))
    }

    fn token(&self) -> Option<Vec<u8>> {
        self.token.map(|t| t.to_vec())
    }
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, K> {
    /// At most the page size.
    pub items: Vec<T>,
    /// The key of the last item, when more follow: pass it as `before` for the next page.
    pub next: Option<K>,
}

/// Keeps `limit` items; the next key is the last kept one's when there were more.
fn page<T, K>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> K) -> Page<T, K> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

fn u64_of(row: &PgRow, column: &'static str) -> Result<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| corrupt(column, value))
}

fn b256_of(row: &PgRow, column: &'static str) -> Result<B256> {
    let bytes: &[u8] = row.try_get(column)?;
    B256::try_from(bytes).map_err(|_| corrupt(column, Bytes::copy_from_slice(bytes)))
}

fn address_of(row: &PgRow, column: &'static str) -> Result<Address> {
    let bytes: &[u8] = row.try_get(column)?;
    Address::try_from(bytes).map_err(|_| corrupt(column, Bytes::copy_from_slice(bytes)))
}

/// A `numeric` read as text.
fn u256_of(row: &PgRow, column: &'static str) -> Result<U256> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| corrupt(column, text))
}

fn u128_text(what: &'static str, text: &str) -> Result<u128> {
    text.parse().map_err(|_| corrupt(what, text))
}

fn position(value: usize, what: &'static str) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

// ---------------------------------------------------------------- balances

/// One token's internal balance of an account, rebuilt from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// The token (zero: the native coin).
    pub token: Address,
    /// The balance at the checkpoint.
    pub balance: U256,
}

/// An account's balances and the block they hold at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balances {
    /// The contract's checkpoint; `None` when it is not indexed yet.
    pub checkpoint: Option<Checkpoint>,
    /// Every token the account ever moved, by token.
    pub balances: Vec<Balance>,
}

/// The contract's checkpoint.
pub async fn checkpoint(pool: &PgPool, at: Deployment) -> Result<Option<Checkpoint>> {
    let mut conn = pool.acquire().await?;
    read_checkpoint(&mut conn, at).await
}

async fn read_checkpoint(
    conn: &mut sqlx::PgConnection,
    at: Deployment,
) -> Result<Option<Checkpoint>> {
    sqlx::query(
        "SELECT block_number, block_hash FROM indexer.checkpoints
         WHERE chain_id = $1 AND contract = $2",
    )
    .bind(at.chain()?)
    .bind(at.contract.to_vec())
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| {
        Ok(Checkpoint {
            block_number: u64_of(&row, "block_number")?,
            block_hash: b256_of(&row, "block_hash")?,
        })
    })
    .transpose()
}

/// `account`'s balances from `indexer.balances`, with the checkpoint they hold at (one snapshot).
pub async fn balances(pool: &PgPool, at: Deployment, account: Address) -> Result<Balances> {
    let mut tx = snapshot(pool).await?;
    let checkpoint = read_checkpoint(&mut tx, at).await?;
    let balances = sqlx::query(
        "SELECT token, balance::text AS balance FROM indexer.balances
         WHERE chain_id = $1 AND contract = $2 AND account = $3 ORDER BY token",
    )
    .bind(at.chain()?)
    .bind(at.contract.to_vec())
    .bind(account.to_vec())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| {
        Ok(Balance {
            token: address_of(row, "token")?,
            balance: u256_of(row, "balance")?,
        })
    })
    .collect::<Result<_>>()?;
    tx.commit().await?;
    Ok(Balances {
        checkpoint,
        balances,
    })
}

// ---------------------------------------------------------------- payouts

/// Where a payout sits: its batch's log, the payment's position in the batch and the leg's in the
/// payment. Ordered like the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PayoutKey {
    /// The `BatchSettled` block.
    pub block_number: u64,
    /// The `BatchSettled` log index.
    pub log_index: u64,
    /// The payment's position in the batch's packed payments.
    pub payment: u32,
    /// The leg's position in the payment.
    pub leg: u32,
}

/// One leg of one settled payment that credited a payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// Where it sits.
    pub key: PayoutKey,
    /// The block's hash.
    pub block_hash: B256,
    /// The settling transaction.
    pub tx_hash: B256,
    /// The batch.
    pub batch_id: B256,
    /// The token.
    pub token: Address,
    /// The on-chain payment id.
    pub payment_id: B256,
    /// The whole payment.
    pub payment_amount: u128,
    /// The leg's share, parts per million.
    pub share: u32,
    /// What the leg credited the payee.
    pub amount: u128,
}

/// A payment's legs with what each credited, as the contract computes it.
pub fn credited_legs(payment: &Payment) -> Result<Vec<(Leg, u128)>> {
    let shares: Vec<u32> = payment.legs.iter().map(|l| l.share).collect();
    let parts = split(payment.amount, &shares).map_err(|e| corrupt("payment split", e))?;
    Ok(payment.legs.iter().copied().zip(parts).collect())
}

/// Payouts to `payee`, newest first, `limit` (at least 1) per page, strictly before `before`.
pub async fn payouts(
    pool: &PgPool,
    at: Deployment,
    payee: Address,
    filter: &BlockFilter,
    before: Option<PayoutKey>,
    limit: usize,
) -> Result<Page<Payout, PayoutKey>> {
    let limit = limit.max(1);
    let chunk = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let (from_block, to_block) = filter.bounds();
    // Batches at or before the cursor's batch; after the first chunk, strictly before the last.
    let (mut bound_block, mut bound_log, mut inclusive) = match before {
        Some(key) => (
            i64::try_from(key.block_number).unwrap_or(i64::MAX),
            i64::try_from(key.log_index).unwrap_or(i64::MAX),
            true,
        ),
        None => (i64::MAX, i64::MAX, true),
    };
    let mut tx = snapshot(pool).await?;
    let mut items = Vec::new();
    'chunks: loop {
        let rows = sqlx::query(
            "SELECT b.block_number, b.log_index, b.block_hash, b.tx_hash, b.batch_id, b.token,
                    b.payments, c.position
             FROM indexer.credits c
             JOIN indexer.batches b USING (chain_id, block_hash, log_index)
             WHERE c.payee = $3 AND b.chain_id = $1 AND b.contract = $2
               AND ($4::bytea IS NULL OR b.token = $4)
               AND b.block_number BETWEEN $5 AND $6
               AND CASE WHEN $9 THEN (b.block_number, b.log_index) <= ($7, $8)
                        ELSE (b.block_number, b.log_index) < ($7, $8) END
             ORDER BY b.block_number DESC, b.log_index DESC
             LIMIT $10",
        )
        .bind(at.chain()?)
        .bind(at.contract.to_vec())
        .bind(payee.to_vec())
        .bind(filter.token())
        .bind(from_block)
        .bind(to_block)
        .bind(bound_block)
        .bind(bound_log)
        .bind(inclusive)
        .bind(chunk)
        .fetch_all(&mut *tx)
        .await?;
        let fetched = rows.len();
        for row in &rows {
            let block_number = u64_of(row, "block_number")?;
            let log_index = u64_of(row, "log_index")?;
            let payee_index: i32 = row.try_get("position")?;
            let payee_index =
                u16::try_from(payee_index).map_err(|_| corrupt("credit position", payee_index))?;
            let payments: &[u8] = row.try_get("payments")?;
            let payments = decode_payments(payments).map_err(|e| corrupt("batch payments", e))?;
            let (block_hash, tx_hash) = (b256_of(row, "block_hash")?, b256_of(row, "tx_hash")?);
            let (batch_id, token) = (b256_of(row, "batch_id")?, address_of(row, "token")?);
            for (payment_index, payment) in payments.iter().enumerate().rev() {
                let legs = credited_legs(payment)?;
                for (leg_index, (leg, amount)) in legs.iter().enumerate().rev() {
                    if leg.payee != payee_index {
                        continue;
                    }
                    let key = PayoutKey {
                        block_number,
                        log_index,
                        payment: position(payment_index, "payment position")?,
                        leg: position(leg_index, "leg position")?,
                    };
                    if before.is_some_and(|before| key >= before) {
                        continue;
                    }
                    items.push(Payout {
                        key,
                        block_hash,
                        tx_hash,
                        batch_id,
                        token,
                        payment_id: payment.payment_id,
                        payment_amount: payment.amount,
                        share: leg.share,
                        amount: *amount,
                    });
                    if items.len() > limit {
                        break 'chunks;
                    }
                }
            }
            bound_block = row.try_get("block_number")?;
            bound_log = row.try_get("log_index")?;
            inclusive = false;
        }
        if i64::try_from(fetched).unwrap_or(i64::MAX) < chunk {
            break;
        }
    }
    tx.commit().await?;
    Ok(page(items, limit, |p: &Payout| p.key))
}

// ---------------------------------------------------------------- withdrawals

/// Where a log sits. Ordered like the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogKey {
    /// The block.
    pub block_number: u64,
    /// The log's index in the block.
    pub log_index: u64,
}

/// How money left an internal balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutflowKind {
    /// `Withdrawn`: the account withdrew to a recipient.
    Withdrawn,
    /// `PushedOut`: the relayer pushed a credit out to the account, which opted in.
    PushedOut,
}

/// Money that left an account's internal balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// Where the event sits.
    pub key: LogKey,
    /// The block's hash.
    pub block_hash: B256,
    /// The transaction.
    pub tx_hash: B256,
    /// A withdrawal or a push.
    pub kind: OutflowKind,
    /// The token.
    pub token: Address,
    /// Who received it (the account itself for a push).
    pub recipient: Address,
    /// How much.
    pub amount: U256,
}

/// `account`'s withdrawals and the pushes out to it, newest first, `limit` (at least 1) per page,
/// strictly before `before`.
pub async fn withdrawals(
    pool: &PgPool,
    at: Deployment,
    account: Address,
    filter: &BlockFilter,
    before: Option<LogKey>,
    limit: usize,
) -> Result<Page<Withdrawal, LogKey>> {
    let limit = limit.max(1);
    let (from_block, to_block) = filter.bounds();
    let (bound_block, bound_log) = before.map_or((i64::MAX, i64::MAX), |key| {
        (
            i64::try_from(key.block_number).unwrap_or(i64::MAX),
            i64::try_from(key.log_index).unwrap_or(i64::MAX),
        )
    });
    let rows = sqlx::query(
        "SELECT * FROM (
             SELECT block_number, log_index, block_hash, tx_hash, 'withdrawn' AS kind, token,
                    recipient, amount::text AS amount
             FROM indexer.withdrawals
             WHERE chain_id = $1 AND contract = $2 AND account = $3
             UNION ALL
             SELECT block_number, log_index, block_hash, tx_hash, 'pushed_out', token,
                    account, amount::text
             FROM indexer.pushes
             WHERE chain_id = $1 AND contract = $2 AND account = $3 AND kind = 'pushed_out'
         ) AS outflows
         WHERE ($4::bytea IS NULL OR token = $4)
           AND block_number BETWEEN $5 AND $6
           AND (block_number, log_index) < ($7, $8)
         ORDER BY block_number DESC, log_index DESC
         LIMIT $9",
    )
    .bind(at.chain()?)
    .bind(at.contract.to_vec())
    .bind(account.to_vec())
    .bind(filter.token())
    .bind(from_block)
    .bind(to_block)
    .bind(bound_block)
    .bind(bound_log)
    .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let items = rows
        .iter()
        .map(|row| {
            let kind: &str = row.try_get("kind")?;
            Ok(Withdrawal {
                key: LogKey {
                    block_number: u64_of(row, "block_number")?,
                    log_index: u64_of(row, "log_index")?,
                },
                block_hash: b256_of(row, "block_hash")?,
                tx_hash: b256_of(row, "tx_hash")?,
                kind: match kind {
                    "withdrawn" => OutflowKind::Withdrawn,
                    "pushed_out" => OutflowKind::PushedOut,
                    other => return Err(corrupt("outflow kind", other)),
                },
                token: address_of(row, "token")?,
                recipient: address_of(row, "recipient")?,
                amount: u256_of(row, "amount")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, |w: &Withdrawal| w.key))
}

// ---------------------------------------------------------------- settled batches

/// One entry of a `BatchSettled` event's `credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// The payee (`Batch.payees` at this position).
    pub payee: Address,
    /// What the batch credited it.
    pub amount: u128,
}

/// A `BatchSettled` event as indexed, with its credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledBatch {
    /// The chain.
    pub chain_id: u64,
    /// The proxy that emitted it.
    pub contract: Address,
    /// Where the event sits.
    pub key: LogKey,
    /// The block's hash.
    pub block_hash: B256,
    /// The settling transaction.
    pub tx_hash: B256,
    /// The batch id.
    pub batch_id: B256,
    /// The authorised signer the contract recovered from the batch's signature.
    pub signer: Address,
    /// The token.
    pub token: Address,
    /// The batch's EIP-712 digest, as the contract computed it.
    pub digest: B256,
    /// Whose balance funded it.
    pub funder: Address,
    /// 0: from the funder's deposit; 1: pulled with the call.
    pub funding: u8,
    /// The replay nonce.
    pub nonce: U256,
    /// The sum of its payments.
    pub total: U256,
    /// The signed packed payments, exactly as emitted.
    pub payments: Bytes,
    /// Its credits, in `Batch.payees` order.
    pub credits: Vec<Credit>,
}

impl SettledBatch {
    /// The event's `credits` bytes, exactly as emitted: `abi.encodePacked(address, uint128)` per
    /// payee, in order.
    pub fn credits_packed(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.credits.len().saturating_mul(36));
        for credit in &self.credits {
            out.extend_from_slice(credit.payee.as_slice());
            out.extend_from_slice(&credit.amount.to_be_bytes());
        }
        out.into()
    }

    /// The payee a leg names.
    pub fn payee(&self, leg: &Leg) -> Result<Address> {
        self.credits
            .get(usize::from(leg.payee))
            .map(|c| c.payee)
            .ok_or_else(|| corrupt("leg payee index", leg.payee))
    }

    /// The packed payments, decoded.
    pub fn decoded_payments(&self) -> Result<Vec<Payment>> {
        decode_payments(&self.payments).map_err(|e| corrupt("batch payments", e))
    }
}

/// The columns [`settled_batch`] reads, from `indexer.batches b`.
const BATCH_COLUMNS: &str = "b.chain_id, b.contract, b.block_number, b.log_index, b.block_hash,
    b.tx_hash, b.batch_id, b.signer, b.token, b.digest, b.funder, b.funding,
    b.nonce::text AS nonce, b.total::text AS total, b.payments,
    (SELECT coalesce(array_agg(c.payee::bytea ORDER BY c.position), '{}')
     FROM indexer.credits c
     WHERE (c.chain_id, c.block_hash, c.log_index) = (b.chain_id, b.block_hash, b.log_index))
        AS credit_payees,
    (SELECT coalesce(array_agg(c.amount::text ORDER BY c.position), '{}')
     FROM indexer.credits c
     WHERE (c.chain_id, c.block_hash, c.log_index) = (b.chain_id, b.block_hash, b.log_index))
        AS credit_amounts";

fn settled_batch(row: &PgRow) -> Result<SettledBatch> {
    let payees: Vec<Vec<u8>> = row.try_get("credit_payees")?;
    let amounts: Vec<String> = row.try_get("credit_amounts")?;
    if payees.len() != amounts.len() {
        return Err(corrupt("credits", "payees and amounts differ in number"));
    }
    let credits = payees
        .iter()
        .zip(&amounts)
        .map(|(payee, amount)| {
            Ok(Credit {
                payee: Address::try_from(payee.as_slice())
                    .map_err(|_| corrupt("credit payee", Bytes::copy_from_slice(payee)))?,
                amount: u128_text("credit amount", amount)?,
            })
        })
        .collect::<Result<_>>()?;
    let funding: i16 = row.try_get("funding")?;
    let payments: Vec<u8> = row.try_get("payments")?;
    Ok(SettledBatch {
        chain_id: u64_of(row, "chain_id")?,
        contract: address_of(row, "contract")?,
        key: LogKey {
            block_number: u64_of(row, "block_number")?,
            log_index: u64_of(row, "log_index")?,
        },
        block_hash: b256_of(row, "block_hash")?,
        tx_hash: b256_of(row, "tx_hash")?,
        batch_id: b256_of(row, "batch_id")?,
        signer: address_of(row, "signer")?,
        token: address_of(row, "token")?,
        digest: b256_of(row, "digest")?,
        funder: address_of(row, "funder")?,
        funding: u8::try_from(funding).map_err(|_| corrupt("funding", funding))?,
        nonce: u256_of(row, "nonce")?,
        total: u256_of(row, "total")?,
        payments: payments.into(),
        credits,
    })
}

/// A payment as it settled: its batch and its position in the batch's packed payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettlement {
    /// The batch that settled it.
    pub batch: SettledBatch,
    /// The payment's position in `batch.payments`.
    pub position: u32,
}

/// Every settlement of the on-chain payment id `payment_id`, in chain order: usually one; more
/// when the same id was settled again (the contract does not forbid it; reconciliation reports it).
pub async fn payment_settlements(
    pool: &PgPool,
    at: Deployment,
    payment_id: B256,
) -> Result<Vec<PaymentSettlement>> {
    sqlx::query(&format!(
        "SELECT p.position AS payment_position, {BATCH_COLUMNS}
         FROM indexer.payments p
         JOIN indexer.batches b USING (chain_id, block_hash, log_index)
         WHERE p.payment_id = $3 AND b.chain_id = $1 AND b.contract = $2
         ORDER BY b.block_number, b.log_index, p.position"
    ))
    .bind(at.chain()?)
    .bind(at.contract.to_vec())
    .bind(payment_id.to_vec())
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        let position: i32 = row.try_get("payment_position")?;
        Ok(PaymentSettlement {
            batch: settled_batch(row)?,
            position: u32::try_from(position).map_err(|_| corrupt("payment position", position))?,
        })
    })
    .collect()
}

/// Batches read per statement by [`visit_settled_batches`].
const BATCH_CHUNK: i64 = 256;

/// Visits the batches settled in blocks `from_block..=to_block`, in chain order, until `visit`
/// breaks. They are read a chunk at a time, all in one snapshot, so that memory stays bounded by
/// what `visit` keeps. Returns whether `visit` broke.
pub async fn visit_settled_batches(
    pool: &PgPool,
    at: Deployment,
    from_block: u64,
    to_block: u64,
    mut visit: impl FnMut(&SettledBatch) -> Result<ControlFlow<()>>,
) -> Result<bool> {
    let (from_block, to_block) = BlockFilter {
        token: None,
        from_block,
        to_block,
    }
    .bounds();
    let mut tx = snapshot(pool).await?;
    // Strictly after this (block, log index); the first chunk starts before everything.
    let (mut after_block, mut after_log) = (-1i64, -1i64);
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS}
             FROM indexer.batches b
             WHERE b.chain_id = $1 AND b.contract = $2 AND b.block_number BETWEEN $3 AND $4
               AND (b.block_number, b.log_index) > ($5, $6)
             ORDER BY b.block_number, b.log_index
             LIMIT $7"
        ))
        .bind(at.chain()?)
        .bind(at.contract.to_vec())
        .bind(from_block)
        .bind(to_block)
        .bind(after_block)
        .bind(after_log)
        .bind(BATCH_CHUNK)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            if visit(&settled_batch(row)?)?.is_break() {
                tx.commit().await?;
                return Ok(true);
            }
            after_block = row.try_get("block_number")?;
            after_log = row.try_get("log_index")?;
        }
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < BATCH_CHUNK {
            break;
        }
    }
    tx.commit().await?;
    Ok(false)
}

// ---------------------------------------------------------------- block times, from the chain

/// The timestamp of block `number`, from the chain.
pub async fn block_timestamp(rpc: &RpcPool, number: u64) -> Result<u64> {
    let block = rpc
        .call("eth_getBlockByNumber", move |p| async move {
            p.get_block_by_number(number.into()).await
        })
        .await
        .map_err(|source| QueryError::Rpc {
            op: "eth_getBlockByNumber",
            source,
        })?;
    match block {
        Some(block) if block.header.number == number => Ok(block.header.timestamp),
        _ => Err(QueryError::BlockMissing { number }),
    }
}

/// The first block in `low..=high` whose timestamp is at or after `time` (Unix seconds), or
/// `high + 1` when there is none. Block times never decrease along the chain, so this is a binary
/// search: about `log2(high - low)` header reads.
pub async fn first_block_at_or_after(rpc: &RpcPool, time: u64, low: u64, high: u64) -> Result<u64> {
    let (mut low, mut high) = (low, high.saturating_add(1));
    while low < high {
        // low < high, so the midpoint is below high and the halves shrink.
        let middle = low.saturating_add(high.saturating_sub(low) / 2);
        if block_timestamp(rpc, middle).await? >= time {
            high = middle;
        } else {
            low = middle.saturating_add(1);
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_pack_as_the_event_emits_them() {
        let batch = SettledBatch {
            chain_id: 1,
            contract: Address::repeat_byte(1),
            key: LogKey {
                block_number: 1,
                log_index: 0,
            },
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            batch_id: B256::ZERO,
            signer: Address::ZERO,
            token: Address::ZERO,
            digest: B256::ZERO,
            funder: Address::ZERO,
            funding: 0,
            nonce: U256::ZERO,
            total: U256::from(3u8),
            payments: Bytes::new(),
            credits: vec![
                Credit {
                    payee: Address::repeat_byte(0xaa),
                    amount: 1,
                },
                Credit {
                    payee: Address::repeat_byte(0xbb),
                    amount: u128::MAX,
                },
            ],
        };
        let packed = batch.credits_packed();
        assert_eq!(packed.len(), 72);
        assert_eq!(&packed[..20], &[0xaa; 20]);
        assert_eq!(&packed[20..36], &1u128.to_be_bytes());
        assert_eq!(&packed[36..56], &[0xbb; 20]);
        assert_eq!(&packed[56..], &[0xff; 16]);
    }

    #[test]
    fn pages_keep_the_limit_and_name_the_last_key() {
        let full = page(vec![5, 4, 3], 2, |n: &i32| *n);
        assert_eq!(full.items, vec![5, 4]);
        assert_eq!(full.next, Some(4));
        let last = page(vec![5, 4], 2, |n: &i32| *n);
        assert_eq!(last.next, None);
    }
}
