//! The submitter: signed batches onto the chain, exactly once.
//!
//! Each call to [`Submitter::tick`] moves every batch and transaction of one
//! sender key as far as it can, one row transition at a time, each committed
//! before the next RPC call that depends on it:
//!
//! 1. **Broadcast** transactions that are signed and stored but not yet sent
//!    (a crash between storing and sending resends the very same bytes).
//! 2. **Watch** live transactions: a receipt makes one `mined`; one that is
//!    neither mined nor in the pool for `drop_after_blocks` is `dropped`, which
//!    frees its account nonce (the ledger rewinds to it).
//! 3. **Settle** batches: a mined transaction makes its batch `included`, and
//!    `settled` once `confirmations` deep on the canonical chain (a reorg sends
//!    it back to `submitted`). A revert is decoded into the contract's typed
//!    error and recorded; a batch whose transactions were all dropped is sent
//!    again; one stuck for `bump_after_blocks` is replaced with higher fees.
//! 4. **Send** new batches while fewer than `max_in_flight` are on their way.
//!    Before any batch is sent (again), the contract is asked whether its nonce
//!    is used: if so it already settled, and its transaction is found by its
//!    `BatchSettled` log instead of paying twice.
//!
//! The account nonce comes from a ledger row locked in the database
//! transaction that records the signed transaction: the lowest nonce at or
//! above the chain's that no live transaction of the sender holds. One sender
//! key is driven by one submitter at a time (a session advisory lock held on a
//! dedicated connection), and batches are claimed with `FOR UPDATE SKIP
//! LOCKED`, so two relayers on one database never send the same batch twice.

use std::collections::BTreeSet;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::{BlockNumberOrTag, eip2718::Encodable2718},
    network::{TransactionBuilder, TxSigner},
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::Provider,
    rpc::types::{Filter, TransactionRequest},
    sol_types::{SolCall, SolEvent, SolInterface},
};
use settle_contracts::{
    Batch,
    SplitSettlement::{self, SplitSettlementErrors},
};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use thiserror::Error;
use uuid::Uuid;

use crate::{
    audit::{self, AuditError, Entry, Purpose},
    hsm::HsmSigner,
    rpc::{RpcError, RpcPool},
};

/// Namespace of the advisory locks that give one submitter a sender key.
const SENDER_LOCK_NAMESPACE: i32 = 0x005e_771e;

/// How batches are submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitterConfig {
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy.
    pub contract: Address,
    /// Blocks (counting the one that includes it) before a batch counts as settled.
    pub confirmations: u64,
    /// Most batches on their way at once for this sender.
    pub max_in_flight: usize,
    /// Blocks a transaction may wait in the pool before it is replaced with higher fees.
    pub bump_after_blocks: u64,
    /// Fee increase of a replacement, in percent (nodes want at least 10).
    pub bump_percent: u64,
    /// Blocks a transaction may be missing from both pool and chain before it counts as dropped.
    pub drop_after_blocks: u64,
    /// Highest `maxFeePerGas` the relayer ever offers, in wei.
    pub max_fee_cap: u128,
    /// Gas limit margin over the estimate, in percent.
    pub gas_margin_percent: u64,
    /// First block searched for `BatchSettled` logs (the deployment block).
    pub logs_from_block: u64,
}

impl SubmitterConfig {
    /// Defaults for `chain_id` and `contract`: 1 confirmation, 16 in flight,
    /// bump by 15 % after 3 blocks, drop after 3 blocks, fee cap 1,000 gwei.
    pub const fn new(chain_id: u64, contract: Address) -> Self {
        Self {
            chain_id,
            contract,
            confirmations: 1,
            max_in_flight: 16,
            bump_after_blocks: 3,
            bump_percent: 15,
            drop_after_blocks: 3,
            max_fee_cap: 1_000_000_000_000,
            gas_margin_percent: 25,
            logs_from_block: 0,
        }
    }
}

/// Why a tick stopped early. Whatever it committed before stays; the next tick resumes.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No RPC endpoint answered, or a node refused a read.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// The sender key could not sign.
    #[error("signing a transaction: {0}")]
    Signing(#[from] alloy::signers::Error),
    /// The audit log could not record a signature.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// Another submitter holds this sender key.
    #[error(
        "sender {0} is already driven by another relayer on this database; give each instance its own sender key"
    )]
    SenderBusy(Address),
    /// A stored row does not hold what the schema promises.
    #[error("stored {what} is malformed: {value}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was found.
        value: String,
    },
    /// The chain returned something impossible (a block without a hash, a receipt without a block).
    #[error("the chain returned {0}")]
    Chain(&'static str),
}

fn corrupt(what: &'static str, value: impl std::fmt::Debug) -> SubmitError {
    SubmitError::Corrupt {
        what,
        value: format!("{value:?}"),
    }
}

/// What one tick did, counted by transition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Transactions signed and stored for a batch's first or renewed submission.
    pub signed: u32,
    /// Transactions handed to a node.
    pub broadcast: u32,
    /// Transactions seen in a block.
    pub mined: u32,
    /// Transactions found missing from pool and chain.
    pub dropped: u32,
    /// Replacements with higher fees.
    pub bumped: u32,
    /// Batches seen in a block.
    pub included: u32,
    /// Batches confirmed.
    pub settled: u32,
    /// Batches that reverted for good.
    pub failed: u32,
    /// Batches whose deadline passed unsettled (instructions re-queued).
    pub expired: u32,
    /// Batches found already settled on chain before a (re)send.
    pub found_settled: u32,
    /// Batches sent back from included to submitted by a reorg.
    pub reorged: u32,
    /// Batches whose transactions were all dropped, queued to be sent again.
    pub requeued: u32,
}

impl TickReport {
    /// Number of transitions made.
    pub const fn transitions(&self) -> u32 {
        self.signed
            .saturating_add(self.broadcast)
            .saturating_add(self.mined)
            .saturating_add(self.dropped)
            .saturating_add(self.bumped)
            .saturating_add(self.included)
            .saturating_add(self.settled)
            .saturating_add(self.failed)
            .saturating_add(self.expired)
            .saturating_add(self.found_settled)
            .saturating_add(self.reorged)
            .saturating_add(self.requeued)
    }
}

/// The latest block, as one tick sees it.
#[derive(Debug, Clone, Copy)]
struct Head {
    number: u64,
    timestamp: u64,
}

/// A revert, decoded where the contract's ABI knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// One of the contract's typed errors.
    Contract(SplitSettlementErrors),
    /// Revert data the ABI does not know, or a node message without data.
    Other(String),
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The variant wraps a struct of the same name: show the struct.
            Self::Contract(e) => {
                let debug = format!("{e:?}");
                let inner = debug
                    .split_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .unwrap_or(&debug);
                f.write_str(inner)
            }
            Self::Other(message) => write!(f, "revert: {message}"),
        }
    }
}

fn decode_revert(err: &RpcError) -> Option<Revert> {
    let RpcError::Node(alloy::transports::RpcError::ErrorResp(payload)) = err else {
        return None;
    };
    if let Some(data) = payload.as_revert_data() {
        return Some(
            SplitSettlementErrors::abi_decode(&data)
                .map_or_else(|_| Revert::Other(format!("data {data}")), Revert::Contract),
        );
    }
    let message = payload.message.to_lowercase();
    (message.contains("revert") || message.contains("execution"))
        .then(|| Revert::Other(payload.message.to_string()))
}

/// A live transaction attempt as stored.
#[derive(Debug, Clone)]
struct Attempt {
    id: Uuid,
    nonce: i64,
    hash: B256,
    status: String,
    sent_block: Option<i64>,
    max_fee: u128,
    priority_fee: u128,
}

/// An open batch as stored.
#[derive(Debug, Clone)]
struct OpenBatch {
    id: Uuid,
    batch_id: B256,
    signer: Address,
    nonce: U256,
    deadline: u64,
    status: String,
    block_number: Option<i64>,
    block_hash: Option<B256>,
}

fn b256(what: &'static str, bytes: &[u8]) -> Result<B256, SubmitError> {
    B256::try_from(bytes).map_err(|_| corrupt(what, bytes))
}

fn parse_u128(what: &'static str, text: &str) -> Result<u128, SubmitError> {
    text.parse().map_err(|_| corrupt(what, text))
}

fn to_i64(what: &'static str, value: u64) -> Result<i64, SubmitError> {
    i64::try_from(value).map_err(|_| corrupt(what, value))
}

/// `value` raised by `percent`, rounded up, plus one wei so a replacement is always strictly higher.
fn bumped(value: u128, percent: u64) -> u128 {
    let raised = value
        .saturating_mul(u128::from(percent.saturating_add(100)))
        .div_ceil(100);
    raised.saturating_add(1)
}

/// A new connection holding the sender's advisory lock, or [`SubmitError::SenderBusy`].
async fn take_lock(
    database_url: &str,
    key: i32,
    sender: Address,
) -> Result<PgConnection, SubmitError> {
    let mut lock = PgConnection::connect(database_url).await?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(SENDER_LOCK_NAMESPACE)
        .bind(key)
        .fetch_one(&mut lock)
        .await?;
    if taken {
        Ok(lock)
    } else {
        Err(SubmitError::SenderBusy(sender))
    }
}

/// Drives the batches and transactions of one sender key.
#[derive(Debug)]
pub struct Submitter<'a> {
    pool: PgPool,
    rpc: &'a RpcPool,
    sender: &'a HsmSigner,
    config: SubmitterConfig,
    /// Holds the sender's advisory lock for as long as the submitter lives; checked (and taken
    /// again on a new connection if the database dropped this one) before every tick.
    lock: tokio::sync::Mutex<PgConnection>,
    database_url: String,
    lock_key: i32,
}

impl<'a> Submitter<'a> {
    /// Takes the sender key for this process (refused with [`SubmitError::SenderBusy`] if another holds it).
    pub async fn start(
        pool: PgPool,
        database_url: &str,
        rpc: &'a RpcPool,
        sender: &'a HsmSigner,
        config: SubmitterConfig,
    ) -> Result<Self, SubmitError> {
        // The key: the low 32 bits of the sender address mixed with the chain id; collisions only serialise.
        let address = sender.address();
        let mut low = [0u8; 4];
        low.copy_from_slice(&address.as_slice()[16..20]);
        let key = i32::from_be_bytes(low) ^ (config.chain_id as i32);
        let lock = take_lock(database_url, key, address).await?;
        Ok(Self {
            pool,
            rpc,
            sender,
            config,
            lock: tokio::sync::Mutex::new(lock),
            database_url: database_url.to_owned(),
            lock_key: key,
        })
    }

    /// Makes sure this process still holds the sender's lock. A restarted or unreachable database
    /// drops the lock's connection, and the lock with it: then the lock is taken again on a new
    /// connection, and if another process took it meanwhile this one stops with
    /// [`SubmitError::SenderBusy`] instead of sending beside it.
    async fn hold_lock(&self) -> Result<(), SubmitError> {
        let mut lock = self.lock.lock().await;
        let alive = sqlx::query("SELECT 1").execute(&mut *lock).await.is_ok();
        if !alive {
            tracing::warn!(sender = %self.sender(), "lost the sender lock's connection; taking the lock again");
            *lock = take_lock(&self.database_url, self.lock_key, self.sender()).await?;
        }
        Ok(())
    }

    /// The sender key's address.
    pub fn sender(&self) -> Address {
        self.sender.address()
    }

    fn chain(&self) -> Result<i64, SubmitError> {
        to_i64("chain id", self.config.chain_id)
    }

    /// Moves everything as far as it goes now.
    pub async fn tick(&self) -> Result<TickReport, SubmitError> {
        self.tick_limited(u32::MAX).await
    }

    /// Like [`Self::tick`], but stops after `budget` transitions: a restart at that point is what a
    /// crash right after the last committed transition leaves behind.
    pub async fn tick_limited(&self, budget: u32) -> Result<TickReport, SubmitError> {
        let mut report = TickReport::default();
        self.hold_lock().await?;
        let head = self.head().await?;
        self.broadcast_stored(&head, &mut report, budget).await?;
        self.watch_transactions(&head, &mut report, budget).await?;
        self.settle_batches(&head, &mut report, budget).await?;
        self.send_new(&head, &mut report, budget).await?;
        Ok(report)
    }

    async fn head(&self) -> Result<Head, SubmitError> {
        let block = self
            .rpc
            .call("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(BlockNumberOrTag::Latest).await
            })
            .await?
            .ok_or(SubmitError::Chain("no latest block"))?;
        Ok(Head {
            number: block.header.number,
            timestamp: block.header.timestamp,
        })
    }

    async fn attempts(&self, statuses: &[&str]) -> Result<Vec<Attempt>, SubmitError> {
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        let rows = sqlx::query(
            "SELECT id, batch, nonce, hash, status, sent_block, max_fee::text, priority_fee::text
             FROM relayer.transactions WHERE chain_id = $1 AND sender = $2 AND status = ANY($3)
             ORDER BY nonce, created_at",
        )
        .bind(self.chain()?)
        .bind(self.sender().as_slice())
        .bind(&statuses)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hash: Vec<u8> = row.try_get(3)?;
                let max_fee: String = row.try_get(6)?;
                let priority_fee: String = row.try_get(7)?;
                Ok(Attempt {
                    id: row.try_get(0)?,
                    nonce: row.try_get(2)?,
                    hash: b256("transaction hash", &hash)?,
                    status: row.try_get(4)?,
                    sent_block: row.try_get(5)?,
                    max_fee: parse_u128("max fee", &max_fee)?,
                    priority_fee: parse_u128("priority fee", &priority_fee)?,
                })
            })
            .collect()
    }

    /// Step 1: send what was signed and stored but not yet handed to a node.
    async fn broadcast_stored(
        &self,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        for attempt in self.attempts(&["signed"]).await? {
            if report.transitions() >= budget {
                return Ok(());
            }
            self.broadcast(attempt.id, head, report).await?;
        }
        Ok(())
    }

    async fn broadcast(
        &self,
        attempt: Uuid,
        head: &Head,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM relayer.transactions WHERE id = $1")
            .bind(attempt)
            .fetch_one(&self.pool)
            .await?;
        let raw = Bytes::from(raw);
        let sent = self
            .rpc
            .call("eth_sendRawTransaction", |p| {
                let raw = raw.clone();
                async move { p.send_raw_transaction(&raw).await.map(|_| ()) }
            })
            .await;
        match sent {
            Ok(()) => {}
            Err(err) => match err.node_message() {
                // Already in a pool, or its nonce is taken (perhaps by this very transaction, mined
                // before a crash): watching it sorts out which.
                Some(m)
                    if m.contains("already known")
                        || m.contains("known transaction")
                        || m.contains("nonce too low")
                        || m.contains("underpriced") =>
                {
                    tracing::info!(%attempt, reason = %m, "broadcast answered; watching the transaction");
                }
                Some(m) => {
                    // Not sent (for example the sender lacks gas money): stays stored, tried next tick.
                    tracing::warn!(%attempt, reason = %m, "node refused the transaction; will retry");
                    return Ok(());
                }
                None => return Err(err.into()),
            },
        }
        sqlx::query(
            "UPDATE relayer.transactions SET status = 'pending', sent_block = $2, updated_at = now()
             WHERE id = $1 AND status = 'signed'",
        )
        .bind(attempt)
        .bind(to_i64("block", head.number)?)
        .execute(&self.pool)
        .await?;
        report.broadcast = report.broadcast.saturating_add(1);
        Ok(())
    }

    /// Step 2: receipts make transactions mined; absence from pool and chain makes them dropped.
    async fn watch_transactions(
        &self,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        for attempt in self.attempts(&["pending", "replaced"]).await? {
            if report.transitions() >= budget {
                return Ok(());
            }
            let hash = attempt.hash;
            let receipt = self
                .rpc
                .call("eth_getTransactionReceipt", |p| async move {
                    p.get_transaction_receipt(hash).await
                })
                .await?;
            if let Some(receipt) = receipt {
                let block = receipt
                    .block_number
                    .ok_or(SubmitError::Chain("a receipt without a block number"))?;
                sqlx::query(
                    "UPDATE relayer.transactions SET status = 'mined', mined_block = $2, gas_used = $3,
                         effective_gas_price = $4::numeric, updated_at = now() WHERE id = $1",
                )
                .bind(attempt.id)
                .bind(to_i64("block", block)?)
                .bind(to_i64("gas used", receipt.gas_used)?)
                .bind(receipt.effective_gas_price.to_string())
                .execute(&self.pool)
                .await?;
                report.mined = report.mined.saturating_add(1);
                continue;
            }
            let sent = u64::try_from(attempt.sent_block.unwrap_or(0)).unwrap_or(0);
            if head.number < sent.saturating_add(self.config.drop_after_blocks) {
                continue;
            }
            let in_pool = self
                .rpc
                .call("eth_getTransactionByHash", |p| async move {
                    p.get_transaction_by_hash(hash).await
                })
                .await?
                .is_some();
            if !in_pool {
                tracing::warn!(%hash, nonce = attempt.nonce, "transaction dropped from the pool; its nonce is free again");
                sqlx::query(
                    "UPDATE relayer.transactions SET status = 'dropped', updated_at = now() WHERE id = $1",
                )
                .bind(attempt.id)
                .execute(&self.pool)
                .await?;
                report.dropped = report.dropped.saturating_add(1);
            }
        }
        Ok(())
    }

    async fn open_batches(&self) -> Result<Vec<OpenBatch>, SubmitError> {
        let rows = sqlx::query(
            "SELECT id, batch_id, signer, nonce::text, deadline, status, block_number, block_hash
             FROM relayer.batches
             WHERE chain_id = $1 AND contract = $2 AND sender = $3 AND status IN ('submitted', 'included')
             ORDER BY created_at",
        )
        .bind(self.chain()?)
        .bind(self.config.contract.as_slice())
        .bind(self.sender().as_slice())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(open_batch).collect()
    }

    /// Step 3: batches follow their transactions.
    async fn settle_batches(
        &self,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        for batch in self.open_batches().await? {
            if report.transitions() >= budget {
                return Ok(());
            }
            if batch.status == "included" {
                self.confirm(&batch, head, report).await?;
            } else {
                self.follow(&batch, head, report, budget).await?;
            }
        }
        Ok(())
    }

    async fn confirm(
        &self,
        batch: &OpenBatch,
        head: &Head,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        let (Some(number), Some(hash)) = (batch.block_number, batch.block_hash) else {
            return Err(corrupt("included batch without a block", batch.id));
        };
        let number = u64::try_from(number).map_err(|_| corrupt("block number", number))?;
        let canonical = self
            .rpc
            .call("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(BlockNumberOrTag::Number(number))
                    .await
            })
            .await?
            .map(|b| b.header.hash);
        if canonical != Some(hash) {
            tracing::warn!(batch = %batch.id, number, "the block that included the batch was reorged out");
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "UPDATE relayer.batches SET status = 'submitted', tx_hash = NULL, block_number = NULL,
                     block_hash = NULL, updated_at = now() WHERE id = $1",
            )
            .bind(batch.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE relayer.transactions SET status = 'pending', mined_block = NULL, gas_used = NULL,
                     effective_gas_price = NULL, sent_block = $2, updated_at = now()
                 WHERE batch = $1 AND status = 'mined'",
            )
            .bind(batch.id)
            .bind(to_i64("block", head.number)?)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            report.reorged = report.reorged.saturating_add(1);
            return Ok(());
        }
        if head.number.saturating_add(1) < number.saturating_add(self.config.confirmations) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE relayer.batches SET status = 'settled', updated_at = now() WHERE id = $1 AND status = 'included'",
        )
        .bind(batch.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE relayer.instructions SET status = 'settled', updated_at = now() WHERE batch = $1",
        )
        .bind(batch.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        report.settled = report.settled.saturating_add(1);
        Ok(())
    }

    async fn follow(
        &self,
        batch: &OpenBatch,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        let rows = sqlx::query(
            "SELECT id, hash, status, mined_block, sent_block, nonce, max_fee::text, priority_fee::text
             FROM relayer.transactions WHERE batch = $1 AND sender = $2 AND status <> 'dropped'
             ORDER BY created_at",
        )
        .bind(batch.id)
        .bind(self.sender().as_slice())
        .fetch_all(&self.pool)
        .await?;
        let mut mined = None;
        let mut newest_live = None;
        for row in &rows {
            let status: String = row.try_get(2)?;
            let hash: Vec<u8> = row.try_get(1)?;
            let hash = b256("transaction hash", &hash)?;
            if status == "mined" {
                let block: Option<i64> = row.try_get(3)?;
                mined = Some((hash, block));
            } else {
                let max_fee: String = row.try_get(6)?;
                let priority_fee: String = row.try_get(7)?;
                newest_live = Some(Attempt {
                    id: row.try_get(0)?,
                    nonce: row.try_get(5)?,
                    hash,
                    status,
                    sent_block: row.try_get(4)?,
                    max_fee: parse_u128("max fee", &max_fee)?,
                    priority_fee: parse_u128("priority fee", &priority_fee)?,
                });
            }
        }

        if let Some((hash, _)) = mined {
            let receipt = self
                .rpc
                .call("eth_getTransactionReceipt", |p| async move {
                    p.get_transaction_receipt(hash).await
                })
                .await?;
            let Some(receipt) = receipt else {
                // Mined, then reorged out before we looked: watch it again.
                sqlx::query(
                    "UPDATE relayer.transactions SET status = 'pending', mined_block = NULL, sent_block = $2,
                         updated_at = now() WHERE batch = $1 AND status = 'mined'",
                )
                .bind(batch.id)
                .bind(to_i64("block", head.number)?)
                .execute(&self.pool)
                .await?;
                report.reorged = report.reorged.saturating_add(1);
                return Ok(());
            };
            let block = receipt
                .block_number
                .ok_or(SubmitError::Chain("a receipt without a block number"))?;
            let block_hash = receipt
                .block_hash
                .ok_or(SubmitError::Chain("a receipt without a block hash"))?;
            if receipt.status() {
                return self
                    .mark_included(batch.id, hash, block, block_hash, report)
                    .await;
            }
            // Reverted: replay it on the state its block left (which holds whatever ran before it in
            // that block; a reverted call changed nothing) to learn the typed error.
            let revert = self.replay(batch, block).await?;
            return self.on_revert(batch, revert, head, report).await;
        }

        let Some(live) = newest_live else {
            // Every transaction for it was dropped: find out whether it settled anyway, else send again.
            return self.resend_or_close(batch, head, report).await;
        };
        if live.status != "pending" {
            return Ok(());
        }
        let sent = u64::try_from(live.sent_block.unwrap_or(0)).unwrap_or(0);
        if head.number >= sent.saturating_add(self.config.bump_after_blocks) {
            self.bump(batch, &live, head, report, budget).await?;
        }
        Ok(())
    }

    async fn mark_included(
        &self,
        batch: Uuid,
        tx_hash: B256,
        block: u64,
        block_hash: B256,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE relayer.batches SET status = 'included', tx_hash = $2, block_number = $3, block_hash = $4,
                 error = NULL, updated_at = now() WHERE id = $1",
        )
        .bind(batch)
        .bind(tx_hash.as_slice())
        .bind(to_i64("block", block)?)
        .bind(block_hash.as_slice())
        .execute(&mut *tx)
        .await?;
        // The other attempts at that nonce can never be mined now.
        drop_live_attempts(&mut tx, batch).await?;
        tx.commit().await?;
        report.included = report.included.saturating_add(1);
        Ok(())
    }

    fn settle_call(&self, batch: &Batch, signature: &[u8]) -> Bytes {
        SplitSettlement::settleBatchCall {
            batch: batch.clone(),
            signature: Bytes::copy_from_slice(signature),
        }
        .abi_encode()
        .into()
    }

    fn request(&self, input: Bytes) -> TransactionRequest {
        TransactionRequest::default()
            .with_from(self.sender())
            .with_to(self.config.contract)
            .with_input(input)
    }

    async fn load_batch(&self, id: Uuid) -> Result<(Batch, Vec<u8>), SubmitError> {
        let row = sqlx::query(
            "SELECT batch_id, nonce::text, deadline, token, funder, funding, payees, payments, signature
             FROM relayer.batches WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let batch_id: Vec<u8> = row.try_get(0)?;
        let nonce: String = row.try_get(1)?;
        let deadline: i64 = row.try_get(2)?;
        let token: Vec<u8> = row.try_get(3)?;
        let funder: Vec<u8> = row.try_get(4)?;
        let funding: i16 = row.try_get(5)?;
        let payees: Vec<Vec<u8>> = row.try_get(6)?;
        let payments: Vec<u8> = row.try_get(7)?;
        let signature: Vec<u8> = row.try_get(8)?;
        let address =
            |what, bytes: &[u8]| Address::try_from(bytes).map_err(|_| corrupt(what, bytes));
        Ok((
            Batch {
                batchId: b256("batch id", &batch_id)?,
                nonce: U256::from_str_radix(&nonce, 10).map_err(|_| corrupt("nonce", &nonce))?,
                deadline: u64::try_from(deadline).map_err(|_| corrupt("deadline", deadline))?,
                token: address("token", &token)?,
                funder: address("funder", &funder)?,
                funding: u8::try_from(funding).map_err(|_| corrupt("funding", funding))?,
                payees: payees
                    .iter()
                    .map(|p| address("payee", p))
                    .collect::<Result<_, _>>()?,
                payments: payments.into(),
            },
            signature,
        ))
    }

    /// Runs the batch's call at `block` and returns the revert it produces.
    async fn replay(&self, batch: &OpenBatch, block: u64) -> Result<Revert, SubmitError> {
        let (full, signature) = self.load_batch(batch.id).await?;
        let request = self.request(self.settle_call(&full, &signature));
        let outcome = self
            .rpc
            .call("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(block.into()).await }
            })
            .await;
        match outcome {
            Ok(_) => Ok(Revert::Other(
                "reverted on chain; replaying it does not revert".to_owned(),
            )),
            Err(err) => decode_revert(&err).ok_or(SubmitError::Rpc(err)),
        }
    }

    async fn on_revert(
        &self,
        batch: &OpenBatch,
        revert: Revert,
        head: &Head,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        match &revert {
            Revert::Contract(SplitSettlementErrors::NonceAlreadyUsed(_)) => {
                self.resend_or_close(batch, head, report).await
            }
            Revert::Contract(SplitSettlementErrors::BatchExpired(_)) => {
                self.expire(batch.id, report).await
            }
            _ => {
                tracing::error!(batch = %batch.id, error = %revert, "batch reverted");
                self.fail(batch.id, &revert.to_string(), report).await
            }
        }
    }

    /// The batch can never settle: record why, and fail its instructions.
    async fn fail(
        &self,
        batch: Uuid,
        error: &str,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE relayer.batches SET status = 'failed', error = $2, updated_at = now() WHERE id = $1",
        )
        .bind(batch)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE relayer.instructions SET status = 'failed', updated_at = now() WHERE batch = $1",
        )
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        drop_live_attempts(&mut tx, batch).await?;
        tx.commit().await?;
        report.failed = report.failed.saturating_add(1);
        Ok(())
    }

    /// The exactly-once check: is the batch's nonce used on chain? Then find the settlement.
    async fn settled_on_chain(
        &self,
        batch: &OpenBatch,
    ) -> Result<Option<(B256, u64, B256)>, SubmitError> {
        let contract = self.config.contract;
        let (signer, nonce) = (batch.signer, batch.nonce);
        let used = self
            .rpc
            .call("isNonceUsed", |p| async move {
                let call = SplitSettlement::isNonceUsedCall { signer, nonce }.abi_encode();
                let request = TransactionRequest::default()
                    .with_to(contract)
                    .with_input(call);
                p.call(request).await
            })
            .await?;
        let used = SplitSettlement::isNonceUsedCall::abi_decode_returns(&used)
            .map_err(|_| SubmitError::Chain("an isNonceUsed answer that does not decode"))?;
        if !used {
            return Ok(None);
        }
        let filter = Filter::new()
            .address(contract)
            .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
            .topic1(batch.batch_id)
            .from_block(self.config.logs_from_block);
        let logs = self
            .rpc
            .call("eth_getLogs", |p| {
                let filter = filter.clone();
                async move { p.get_logs(&filter).await }
            })
            .await?;
        match logs.first() {
            Some(log) => Ok(Some((
                log.transaction_hash
                    .ok_or(SubmitError::Chain("a log without a transaction hash"))?,
                log.block_number
                    .ok_or(SubmitError::Chain("a log without a block number"))?,
                log.block_hash
                    .ok_or(SubmitError::Chain("a log without a block hash"))?,
            ))),
            // The nonce is used but not by this batch (invalidated, or another batch signed with it):
            // this batch can never settle.
            None => Ok(Some((B256::ZERO, 0, B256::ZERO))),
        }
    }

    /// A batch with no live transaction: settled already, expired, or sent again.
    async fn resend_or_close(
        &self,
        batch: &OpenBatch,
        head: &Head,
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        if let Some(found) = self.settled_on_chain(batch).await? {
            return self.close_found(batch, found, report).await;
        }
        if head.timestamp > batch.deadline {
            return self.expire(batch.id, report).await;
        }
        sqlx::query(
            "UPDATE relayer.batches SET status = 'signed', sender = NULL, updated_at = now() WHERE id = $1",
        )
        .bind(batch.id)
        .execute(&self.pool)
        .await?;
        report.requeued = report.requeued.saturating_add(1);
        Ok(())
    }

    async fn close_found(
        &self,
        batch: &OpenBatch,
        (tx_hash, block, block_hash): (B256, u64, B256),
        report: &mut TickReport,
    ) -> Result<(), SubmitError> {
        report.found_settled = report.found_settled.saturating_add(1);
        if tx_hash == B256::ZERO {
            let revert = format!(
                "nonce {} of signer {} is used on chain by another batch or an invalidation",
                batch.nonce, batch.signer
            );
            tracing::error!(batch = %batch.id, error = %revert, "batch can never settle");
            return self.fail(batch.id, &revert, report).await;
        }
        tracing::info!(batch = %batch.id, %tx_hash, "batch already settled on chain; not sending it again");
        self.mark_included(batch.id, tx_hash, block, block_hash, report)
            .await
    }

    /// The deadline passed unsettled: the batch can never settle, so its instructions go back to the queue.
    async fn expire(&self, batch: Uuid, report: &mut TickReport) -> Result<(), SubmitError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE relayer.batches SET status = 'expired', updated_at = now() WHERE id = $1",
        )
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE relayer.instructions SET status = 'accepted', batch = NULL, position = NULL, updated_at = now()
             WHERE batch = $1",
        )
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        drop_live_attempts(&mut tx, batch).await?;
        tx.commit().await?;
        report.expired = report.expired.saturating_add(1);
        Ok(())
    }

    /// Fees for a new transaction: the node's estimate, raised above any earlier attempt at the
    /// same nonce, capped.
    async fn fees(&self, floor: Option<(u128, u128)>) -> Result<(u128, u128), SubmitError> {
        let estimate = self
            .rpc
            .call("eth_feeHistory", |p| async move {
                p.estimate_eip1559_fees().await
            })
            .await?;
        let (mut max_fee, mut priority) =
            (estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas);
        if let Some((old_max, old_priority)) = floor {
            max_fee = max_fee.max(bumped(old_max, self.config.bump_percent));
            priority = priority.max(bumped(old_priority, self.config.bump_percent));
        }
        let cap = self.config.max_fee_cap;
        if max_fee > cap {
            tracing::warn!(max_fee, cap, "fee estimate above the cap; offering the cap");
        }
        let max_fee = max_fee.min(cap);
        Ok((max_fee, priority.min(max_fee)))
    }

    /// Replaces a stuck transaction with the same nonce and higher fees.
    async fn bump(
        &self,
        batch: &OpenBatch,
        live: &Attempt,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        let (max_fee, priority) = self.fees(Some((live.max_fee, live.priority_fee))).await?;
        if max_fee <= live.max_fee {
            tracing::warn!(batch = %batch.id, max_fee, "stuck at the fee cap; not bumping");
            return Ok(());
        }
        let gas_limit: i64 =
            sqlx::query_scalar("SELECT gas_limit FROM relayer.transactions WHERE id = $1")
                .bind(live.id)
                .fetch_one(&self.pool)
                .await?;
        let (full, signature) = self.load_batch(batch.id).await?;
        let input = self.settle_call(&full, &signature);
        let nonce = u64::try_from(live.nonce).map_err(|_| corrupt("nonce", live.nonce))?;
        let gas_limit = u64::try_from(gas_limit).map_err(|_| corrupt("gas limit", gas_limit))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE relayer.transactions SET status = 'replaced', updated_at = now() WHERE id = $1",
        )
        .bind(live.id)
        .execute(&mut *tx)
        .await?;
        let id = self
            .record_signed(
                &mut tx,
                batch.id,
                nonce,
                gas_limit,
                (max_fee, priority),
                input,
            )
            .await?;
        tx.commit().await?;
        tracing::info!(batch = %batch.id, nonce, old = live.max_fee, new = max_fee, "fee bump");
        report.bumped = report.bumped.saturating_add(1);
        if report.transitions() < budget {
            self.broadcast(id, head, report).await?;
        }
        Ok(())
    }

    /// Signs a `settleBatch` transaction with the sender key and records it (and its audit entry) in `tx`.
    async fn record_signed(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        batch: Uuid,
        nonce: u64,
        gas_limit: u64,
        (max_fee, priority): (u128, u128),
        input: Bytes,
    ) -> Result<Uuid, SubmitError> {
        let mut unsigned = TxEip1559 {
            chain_id: self.config.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
            to: TxKind::Call(self.config.contract),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let signing_hash = unsigned.signature_hash();
        let signature = self.sender.sign_transaction(&mut unsigned).await?;
        let signed = unsigned.into_signed(signature);
        let hash = *signed.hash();
        let raw = TxEnvelope::from(signed).encoded_2718();
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO relayer.transactions (id, batch, chain_id, sender, nonce, hash, raw, gas_limit, max_fee, priority_fee)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10::numeric)",
        )
        .bind(id)
        .bind(batch)
        .bind(self.chain()?)
        .bind(self.sender().as_slice())
        .bind(to_i64("nonce", nonce)?)
        .bind(hash.as_slice())
        .bind(raw)
        .bind(to_i64("gas limit", gas_limit)?)
        .bind(max_fee.to_string())
        .bind(priority.to_string())
        .execute(&mut **tx)
        .await?;
        audit::append(
            tx,
            &Entry {
                signer: self.sender(),
                digest: signing_hash,
                purpose: Purpose::Transaction,
                reference: hash.to_string(),
                signed_at_us: now_us(),
            },
        )
        .await?;
        Ok(id)
    }

    /// Step 4: claim signed batches and send them, while the in-flight window has room.
    async fn send_new(
        &self,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<(), SubmitError> {
        loop {
            if report.transitions() >= budget {
                return Ok(());
            }
            let in_flight: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM relayer.batches
                 WHERE chain_id = $1 AND contract = $2 AND sender = $3 AND status = 'submitted'",
            )
            .bind(self.chain()?)
            .bind(self.config.contract.as_slice())
            .bind(self.sender().as_slice())
            .fetch_one(&self.pool)
            .await?;
            if usize::try_from(in_flight).unwrap_or(usize::MAX) >= self.config.max_in_flight {
                return Ok(());
            }
            if !self.send_one(head, report, budget).await? {
                return Ok(());
            }
        }
    }

    /// Claims and sends the oldest signed batch; false when there is none.
    async fn send_one(
        &self,
        head: &Head,
        report: &mut TickReport,
        budget: u32,
    ) -> Result<bool, SubmitError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT id, batch_id, signer, nonce::text, deadline, status, block_number, block_hash
             FROM relayer.batches WHERE chain_id = $1 AND contract = $2 AND status = 'signed'
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.chain()?)
        .bind(self.config.contract.as_slice())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let batch = open_batch(&row)?;
        // Claim it for this sender first, so the closing paths below (which run outside this
        // transaction) see it as ours; they commit before this transaction is given up.
        if let Some(found) = self.settled_on_chain(&batch).await? {
            sqlx::query("UPDATE relayer.batches SET sender = $2 WHERE id = $1")
                .bind(batch.id)
                .bind(self.sender().as_slice())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.close_found(&batch, found, report).await?;
            return Ok(true);
        }
        if head.timestamp > batch.deadline {
            tx.commit().await?;
            self.expire(batch.id, report).await?;
            return Ok(true);
        }
        let (full, signature) = self.load_batch(batch.id).await?;
        let input = self.settle_call(&full, &signature);
        let request = self.request(input.clone());
        let estimate = self
            .rpc
            .call("eth_estimateGas", |p| {
                let request = request.clone();
                async move { p.estimate_gas(request).await }
            })
            .await;
        let gas = match estimate {
            Ok(gas) => gas,
            Err(err) => match decode_revert(&err) {
                Some(revert) => {
                    sqlx::query("UPDATE relayer.batches SET sender = $2 WHERE id = $1")
                        .bind(batch.id)
                        .bind(self.sender().as_slice())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.on_revert(&batch, revert, head, report).await?;
                    return Ok(true);
                }
                None => return Err(err.into()),
            },
        };
        let gas_limit = gas
            .saturating_mul(self.config.gas_margin_percent.saturating_add(100))
            .div_ceil(100);

        // Allocate the account nonce under the ledger row's lock, in the transaction that records it.
        let chain_nonce = {
            let sender = self.sender();
            self.rpc
                .call("eth_getTransactionCount", |p| async move {
                    p.get_transaction_count(sender).latest().await
                })
                .await?
        };
        let chain = self.chain()?;
        sqlx::query(
            "INSERT INTO relayer.sender_nonces (chain_id, sender, next) VALUES ($1, $2, $3)
             ON CONFLICT (chain_id, sender) DO NOTHING",
        )
        .bind(chain)
        .bind(self.sender().as_slice())
        .bind(to_i64("nonce", chain_nonce)?)
        .execute(&mut *tx)
        .await?;
        let next: i64 = sqlx::query_scalar(
            "SELECT next FROM relayer.sender_nonces WHERE chain_id = $1 AND sender = $2 FOR UPDATE",
        )
        .bind(chain)
        .bind(self.sender().as_slice())
        .fetch_one(&mut *tx)
        .await?;
        let live: BTreeSet<i64> = sqlx::query_scalar(
            "SELECT nonce FROM relayer.transactions
             WHERE chain_id = $1 AND sender = $2 AND status IN ('signed', 'pending', 'replaced') AND nonce >= $3",
        )
        .bind(chain)
        .bind(self.sender().as_slice())
        .bind(to_i64("nonce", chain_nonce)?)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let nonce = lowest_free(to_i64("nonce", chain_nonce)?, &live);
        if nonce < next {
            tracing::info!(nonce, ledger = next, "ledger rewinds to a freed nonce");
        }
        sqlx::query(
            "UPDATE relayer.sender_nonces SET next = GREATEST(next, $3) WHERE chain_id = $1 AND sender = $2",
        )
        .bind(chain)
        .bind(self.sender().as_slice())
        .bind(nonce.saturating_add(1))
        .execute(&mut *tx)
        .await?;
        // An earlier attempt at this nonce may still sit in some pool: outbid it.
        let floor = sqlx::query(
            "SELECT max(max_fee)::text, max(priority_fee)::text FROM relayer.transactions
             WHERE chain_id = $1 AND sender = $2 AND nonce = $3",
        )
        .bind(chain)
        .bind(self.sender().as_slice())
        .bind(nonce)
        .fetch_one(&mut *tx)
        .await?;
        let floor = match (
            floor.try_get::<Option<String>, _>(0)?,
            floor.try_get::<Option<String>, _>(1)?,
        ) {
            (Some(m), Some(p)) => {
                Some((parse_u128("max fee", &m)?, parse_u128("priority fee", &p)?))
            }
            _ => None,
        };
        let fees = self.fees(floor).await?;
        let nonce_u64 = u64::try_from(nonce).map_err(|_| corrupt("nonce", nonce))?;
        let id = self
            .record_signed(&mut tx, batch.id, nonce_u64, gas_limit, fees, input)
            .await?;
        sqlx::query(
            "UPDATE relayer.batches SET status = 'submitted', sender = $2, updated_at = now() WHERE id = $1",
        )
        .bind(batch.id)
        .bind(self.sender().as_slice())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE relayer.instructions SET status = 'submitted', updated_at = now() WHERE batch = $1",
        )
        .bind(batch.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        report.signed = report.signed.saturating_add(1);
        if report.transitions() < budget {
            self.broadcast(id, head, report).await?;
        }
        Ok(true)
    }
}

/// Marks every still-live transaction of `batch` dropped: the batch is closed (mined by another
/// attempt, failed or expired), so none of them may count as holding its nonce any longer.
async fn drop_live_attempts(
    tx: &mut Transaction<'_, Postgres>,
    batch: Uuid,
) -> Result<(), SubmitError> {
    sqlx::query(
        "UPDATE relayer.transactions SET status = 'dropped', updated_at = now()
         WHERE batch = $1 AND status IN ('signed', 'pending', 'replaced')",
    )
    .bind(batch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn open_batch(row: &sqlx::postgres::PgRow) -> Result<OpenBatch, SubmitError> {
    let batch_id: Vec<u8> = row.try_get(1)?;
    let signer: Vec<u8> = row.try_get(2)?;
    let nonce: String = row.try_get(3)?;
    let deadline: i64 = row.try_get(4)?;
    let block_hash: Option<Vec<u8>> = row.try_get(7)?;
    Ok(OpenBatch {
        id: row.try_get(0)?,
        batch_id: b256("batch id", &batch_id)?,
        signer: Address::try_from(signer.as_slice()).map_err(|_| corrupt("signer", &signer))?,
        nonce: U256::from_str_radix(&nonce, 10).map_err(|_| corrupt("nonce", &nonce))?,
        deadline: u64::try_from(deadline).unwrap_or(0),
        status: row.try_get(5)?,
        block_number: row.try_get(6)?,
        block_hash: block_hash.map(|h| b256("block hash", &h)).transpose()?,
    })
}

/// The lowest nonce at or above `from` that `taken` does not hold.
fn lowest_free(from: i64, taken: &BTreeSet<i64>) -> i64 {
    let mut candidate = from;
    for n in taken.range(from..) {
        if *n != candidate {
            break;
        }
        candidate = candidate.saturating_add(1);
    }
    candidate
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_fills_the_first_gap() {
        let taken: BTreeSet<i64> = [3, 4, 6].into_iter().collect();
        assert_eq!(lowest_free(3, &taken), 5);
        assert_eq!(lowest_free(5, &taken), 5);
        assert_eq!(lowest_free(0, &taken), 0);
        assert_eq!(lowest_free(6, &taken), 7);
        assert_eq!(lowest_free(7, &BTreeSet::new()), 7);
    }

    #[test]
    fn bump_is_strictly_higher_and_rounds_up() {
        assert_eq!(bumped(100, 15), 116);
        assert_eq!(bumped(1, 10), 3);
        assert_eq!(bumped(0, 10), 1);
    }

    #[test]
    fn contract_errors_display_as_their_struct() {
        let revert = Revert::Contract(SplitSettlementErrors::InsufficientBalance(
            settle_contracts::SplitSettlement::InsufficientBalance {
                token: Address::ZERO,
                account: Address::repeat_byte(1),
                needed: U256::from(10),
                available: U256::from(3),
            },
        ));
        assert_eq!(
            revert.to_string(),
            "InsufficientBalance { token: 0x0000000000000000000000000000000000000000, account: 0x0101010101010101010101010101010101010101, needed: 10, available: 3 }"
        );
    }
}
