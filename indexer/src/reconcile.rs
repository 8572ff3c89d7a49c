//! Reconciliation: what the relayer meant to settle, against what the indexer saw, against what
//! the chain holds.
//!
//! A run compares, at the indexer's checkpoint block:
//!
//! - `missing_onchain`: a batch the relayer sent whose deadline passed (by the checkpoint block's
//!   timestamp) with no settlement indexed;
//! - `unexpected_onchain`: an indexed settlement of a batch the relayer never signed;
//! - `amount_mismatch`: an indexed settlement whose total or payments differ from what was signed;
//! - `duplicate_payment`: one payment id settled in more than one batch;
//! - `balance_mismatch`: an indexed balance that differs from `balanceOf` on chain at the
//!   checkpoint block.
//!
//! The relayer's intentions are read through its library ([`settle_relayer::ledger`]), never its
//! tables. Runs and their findings are stored; a clean run has none.

use std::collections::{BTreeMap, BTreeSet};

use alloy::{
    eips::BlockId,
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use serde::Serialize;
use settle_contracts::SplitSettlement;
use settle_relayer::{
    RpcError, RpcPool,
    ledger::{LedgerError, intended_batches},
};
use sqlx::{PgPool, Row};
use thiserror::Error;
use uuid::Uuid;

/// What kind of disagreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Sent, deadline passed, not settled.
    MissingOnchain,
    /// Settled on chain, never signed by us.
    UnexpectedOnchain,
    /// Settled with other amounts than signed.
    AmountMismatch,
    /// A payment id settled more than once.
    DuplicatePayment,
    /// Indexed balance differs from the chain's.
    BalanceMismatch,
}

impl FindingKind {
    /// The stored and reported name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingOnchain => "missing_onchain",
            Self::UnexpectedOnchain => "unexpected_onchain",
            Self::AmountMismatch => "amount_mismatch",
            Self::DuplicatePayment => "duplicate_payment",
            Self::BalanceMismatch => "balance_mismatch",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::MissingOnchain,
            Self::UnexpectedOnchain,
            Self::AmountMismatch,
            Self::DuplicatePayment,
            Self::BalanceMismatch,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Its kind.
    pub kind: FindingKind,
    /// The batch concerned.
    pub batch_id: Option<B256>,
    /// The payment concerned.
    pub payment_id: Option<B256>,
    /// The token concerned.
    pub token: Option<Address>,
    /// The account concerned.
    pub account: Option<Address>,
    /// What we expected (an amount, a count).
    pub expected: Option<String>,
    /// What was found.
    pub actual: Option<String>,
    /// One readable sentence.
    pub detail: String,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Its id.
    pub id: Uuid,
    /// The chain.
    pub chain_id: u64,
    /// The contract.
    pub contract: Address,
    /// The indexed block compared at.
    pub checkpoint_block: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// What disagreed; empty when clean.
    pub findings: Vec<Finding>,
}

/// Why a run could not be made.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The relayer's ledger could not be read.
    #[error("relayer ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The chain could not be asked.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// Nothing is indexed for this contract yet.
    #[error(
        "contract {contract} on chain {chain_id} has no indexer checkpoint yet; run the indexer first"
    )]
    NotIndexed {
        /// The chain.
        chain_id: u64,
        /// The contract.
        contract: Address,
    },
    /// A stored value is malformed.
    #[error("stored {0} is malformed")]
    Corrupt(&'static str),
}

impl Run {
    /// Counts by kind.
    pub fn counts(&self) -> BTreeMap<FindingKind, usize> {
        let mut counts = BTreeMap::new();
        for f in &self.findings {
            let n = counts.entry(f.kind).or_insert(0usize);
            *n = n.saturating_add(1);
        }
        counts
    }

    /// A short summary for a terminal.
    pub fn summary(&self) -> String {
        if self.findings.is_empty() {
            return format!(
                "reconciliation {}: clean at block {} (contract {} on chain {})",
                self.id, self.checkpoint_block, self.contract, self.chain_id
            );
        }
        let kinds: Vec<String> = self
            .counts()
            .iter()
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        format!(
            "reconciliation {}: {} findings at block {} ({})",
            self.id,
            self.findings.len(),
            self.checkpoint_block,
            kinds.join(", ")
        )
    }

    /// The findings as CSV (header line first).
    pub fn to_csv(&self) -> String {
        let cell = |v: Option<String>| v.unwrap_or_default();
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut out =
            String::from("kind,batch_id,payment_id,token,account,expected,actual,detail\n");
        for f in &self.findings {
            let row = [
                f.kind.as_str().to_owned(),
                cell(f.batch_id.map(|b| b.to_string())),
                cell(f.payment_id.map(|b| b.to_string())),
                cell(f.token.map(|a| a.to_checksum(None))),
                cell(f.account.map(|a| a.to_checksum(None))),
                cell(f.expected.clone()),
                cell(f.actual.clone()),
                quote(&f.detail),
            ];
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }
}

struct IndexedBatch {
    batch_id: B256,
    total: u128,
    payments: Vec<(B256, u128)>,
}

fn b256(bytes: &[u8]) -> Result<B256, ReconcileError> {
    B256::try_from(bytes).map_err(|_| ReconcileError::Corrupt("32-byte value"))
}

fn address(bytes: &[u8]) -> Result<Address, ReconcileError> {
    Address::try_from(bytes).map_err(|_| ReconcileError::Corrupt("address"))
}

fn amount(text: &str) -> Result<u128, ReconcileError> {
    text.parse().map_err(|_| ReconcileError::Corrupt("amount"))
}

async fn indexed_batches(
    pool: &PgPool,
    chain: i64,
    contract: Address,
) -> Result<Vec<IndexedBatch>, ReconcileError> {
    let rows = sqlx::query(
        "SELECT b.batch_id, b.total::text, b.block_hash, b.log_index,
                coalesce(array_agg(p.payment_id::bytea ORDER BY p.position) FILTER (WHERE p.payment_id IS NOT NULL), '{}'::bytea[]),
                coalesce(array_agg(p.amount::text ORDER BY p.position) FILTER (WHERE p.payment_id IS NOT NULL), '{}')
         FROM indexer.batches b
         LEFT JOIN indexer.payments p USING (chain_id, block_hash, log_index)
         WHERE b.chain_id = $1 AND b.contract = $2
         GROUP BY b.batch_id, b.total, b.block_hash, b.log_index, b.block_number
         ORDER BY b.block_number, b.log_index",
    )
    .bind(chain)
    .bind(contract.as_slice())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let ids: Vec<Vec<u8>> = row.try_get(4)?;
            let amounts: Vec<String> = row.try_get(5)?;
            let batch_id: Vec<u8> = row.try_get(0)?;
            let total: String = row.try_get(1)?;
            Ok(IndexedBatch {
                batch_id: b256(&batch_id)?,
                total: amount(&total)?,
                payments: ids
                    .iter()
                    .zip(&amounts)
                    .map(|(id, a)| Ok((b256(id)?, amount(a)?)))
                    .collect::<Result<_, ReconcileError>>()?,
            })
        })
        .collect()
}

/// Runs one reconciliation of `contract` on `chain_id` and stores it.
pub async fn reconcile(
    pool: &PgPool,
    rpc: &RpcPool,
    chain_id: u64,
    contract: Address,
) -> Result<Run, ReconcileError> {
    let chain = i64::try_from(chain_id).map_err(|_| ReconcileError::Corrupt("chain id"))?;
    let started_at: String = sqlx::query_scalar(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .fetch_one(pool)
    .await?;
    let checkpoint: Option<i64> = sqlx::query_scalar(
        "SELECT block_number FROM indexer.checkpoints WHERE chain_id = $1 AND contract = $2",
    )
    .bind(chain)
    .bind(contract.as_slice())
    .fetch_optional(pool)
    .await?;
    let checkpoint = checkpoint.ok_or(ReconcileError::NotIndexed { chain_id, contract })?;
    let block = u64::try_from(checkpoint).map_err(|_| ReconcileError::Corrupt("checkpoint"))?;
    let header = rpc
        .call("eth_getBlockByNumber", |p| async move {
            p.get_block_by_number(block.into()).await
        })
        .await?;
    let checkpoint_time = header.map_or(0, |b| b.header.timestamp);

    let intended = intended_batches(pool, chain_id, contract).await?;
    let indexed = indexed_batches(pool, chain, contract).await?;
    let mut findings = Vec::new();

    let indexed_by_id: BTreeMap<B256, &IndexedBatch> =
        indexed.iter().map(|b| (b.batch_id, b)).collect();
    let intended_ids: BTreeSet<B256> = intended.iter().map(|b| b.batch_id).collect();
    for batch in &intended {
        let sent = matches!(batch.status.as_str(), "submitted" | "included" | "settled");
        match indexed_by_id.get(&batch.batch_id) {
            None if sent && batch.deadline < checkpoint_time => findings.push(Finding {
                kind: FindingKind::MissingOnchain,
                batch_id: Some(batch.batch_id),
                payment_id: None,
                token: Some(batch.token),
                account: Some(batch.funder),
                expected: Some(batch.total.to_string()),
                actual: None,
                detail: format!(
                    "batch {} was {} by the relayer, its deadline {} passed (block {block} is at {checkpoint_time}), and no settlement is indexed",
                    batch.batch_id, batch.status, batch.deadline
                ),
            }),
            None => {}
            Some(seen) => {
                let signed: Vec<(B256, u128)> = batch.payments.iter().map(|p| (p.payment_id, p.amount)).collect();
                if seen.total != batch.total || seen.payments != signed {
                    findings.push(Finding {
                        kind: FindingKind::AmountMismatch,
                        batch_id: Some(batch.batch_id),
                        payment_id: None,
                        token: Some(batch.token),
                        account: Some(batch.funder),
                        expected: Some(batch.total.to_string()),
                        actual: Some(seen.total.to_string()),
                        detail: format!(
                            "batch {} settled {} in {} payments; the relayer signed {} in {}",
                            batch.batch_id,
                            seen.total,
                            seen.payments.len(),
                            batch.total,
                            signed.len()
                        ),
                    });
                }
            }
        }
    }
    for seen in &indexed {
        if !intended_ids.contains(&seen.batch_id) {
            findings.push(Finding {
                kind: FindingKind::UnexpectedOnchain,
                batch_id: Some(seen.batch_id),
                payment_id: None,
                token: None,
                account: None,
                expected: None,
                actual: Some(seen.total.to_string()),
                detail: format!(
                    "batch {} settled {} on chain but the relayer never signed it",
                    seen.batch_id, seen.total
                ),
            });
        }
    }
    let mut by_payment: BTreeMap<B256, Vec<B256>> = BTreeMap::new();
    for seen in &indexed {
        for (payment_id, _) in &seen.payments {
            by_payment
                .entry(*payment_id)
                .or_default()
                .push(seen.batch_id);
        }
    }
    for (payment_id, batches) in by_payment.iter().filter(|(_, b)| b.len() > 1) {
        findings.push(Finding {
            kind: FindingKind::DuplicatePayment,
            batch_id: batches.first().copied(),
            payment_id: Some(*payment_id),
            token: None,
            account: None,
            expected: Some("1".to_owned()),
            actual: Some(batches.len().to_string()),
            detail: format!(
                "payment {payment_id} settled {} times, in batches {}",
                batches.len(),
                batches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }

    let balances = sqlx::query(
        "SELECT token, account, balance::text FROM indexer.balances
         WHERE chain_id = $1 AND contract = $2 ORDER BY token, account",
    )
    .bind(chain)
    .bind(contract.as_slice())
    .fetch_all(pool)
    .await?;
    for row in &balances {
        let token_bytes: Vec<u8> = row.try_get(0)?;
        let account_bytes: Vec<u8> = row.try_get(1)?;
        let indexed_text: String = row.try_get(2)?;
        let (token, account) = (address(&token_bytes)?, address(&account_bytes)?);
        let call = SplitSettlement::balanceOfCall { token, account }.abi_encode();
        let answer = rpc
            .call("balanceOf", |p| {
                let request = TransactionRequest::default()
                    .with_to(contract)
                    .with_input(call.clone());
                async move { p.call(request).block(BlockId::number(block)).await }
            })
            .await?;
        let onchain = SplitSettlement::balanceOfCall::abi_decode_returns(&answer)
            .map_err(|_| ReconcileError::Corrupt("balanceOf answer"))?;
        let indexed_value = U256::from_str_radix(indexed_text.trim_start_matches('-'), 10)
            .ok()
            .filter(|_| !indexed_text.starts_with('-'));
        if indexed_value != Some(onchain) {
            findings.push(Finding {
                kind: FindingKind::BalanceMismatch,
                batch_id: None,
                payment_id: None,
                token: Some(token),
                account: Some(account),
                expected: Some(onchain.to_string()),
                actual: Some(indexed_text.clone()),
                detail: format!(
                    "indexed balance of {} in token {} is {indexed_text}; balanceOf at block {block} is {onchain}",
                    account.to_checksum(None),
                    token.to_checksum(None)
                ),
            });
        }
    }

    store(pool, chain_id, contract, block, started_at, findings).await
}

async fn store(
    pool: &PgPool,
    chain_id: u64,
    contract: Address,
    block: u64,
    started_at: String,
    findings: Vec<Finding>,
) -> Result<Run, ReconcileError> {
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    let finished_at: String = sqlx::query_scalar(
        "INSERT INTO indexer.reconciliation_runs (id, chain_id, contract, checkpoint_block, started_at, finished_at, findings)
         VALUES ($1, $2, $3, $4, $5::timestamptz, now(), $6)
         RETURNING to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .bind(id)
    .bind(i64::try_from(chain_id).map_err(|_| ReconcileError::Corrupt("chain id"))?)
    .bind(contract.as_slice())
    .bind(i64::try_from(block).map_err(|_| ReconcileError::Corrupt("block"))?)
    .bind(&started_at)
    .bind(i32::try_from(findings.len()).unwrap_or(i32::MAX))
    .fetch_one(&mut *tx)
    .await?;
    for (position, f) in findings.iter().enumerate() {
        sqlx::query(
            "INSERT INTO indexer.reconciliation_findings
                 (run_id, position, kind, batch_id, payment_id, token, account, expected, actual, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(f.kind.as_str())
        .bind(f.batch_id.map(|b| b.to_vec()))
        .bind(f.payment_id.map(|b| b.to_vec()))
        .bind(f.token.map(|a| a.to_vec()))
        .bind(f.account.map(|a| a.to_vec()))
        .bind(&f.expected)
        .bind(&f.actual)
        .bind(&f.detail)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Run {
        id,
        chain_id,
        contract,
        checkpoint_block: block,
        started_at,
        finished_at,
        findings,
    })
}

/// The most recent runs (without their findings' details), newest first.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<Run>, ReconcileError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM indexer.reconciliation_runs ORDER BY started_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(run) = load_run(pool, id).await? {
            runs.push(run);
        }
    }
    Ok(runs)
}

/// One stored run with its findings.
pub async fn load_run(pool: &PgPool, id: Uuid) -> Result<Option<Run>, ReconcileError> {
    let Some(row) = sqlx::query(
        "SELECT chain_id, contract, checkpoint_block,
                to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
         FROM indexer.reconciliation_runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let chain: i64 = row.try_get(0)?;
    let contract: Vec<u8> = row.try_get(1)?;
    let block: i64 = row.try_get(2)?;
    let findings = sqlx::query(
        "SELECT kind, batch_id, payment_id, token, account, expected, actual, detail
         FROM indexer.reconciliation_findings WHERE run_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|f| {
        let kind: String = f.try_get(0)?;
        let opt = |i: usize| -> Result<Option<Vec<u8>>, ReconcileError> { Ok(f.try_get(i)?) };
        Ok(Finding {
            kind: FindingKind::parse(&kind).ok_or(ReconcileError::Corrupt("finding kind"))?,
            batch_id: opt(1)?.map(|b| b256(&b)).transpose()?,
            payment_id: opt(2)?.map(|b| b256(&b)).transpose()?,
            token: opt(3)?.map(|a| address(&a)).transpose()?,
            account: opt(4)?.map(|a| address(&a)).transpose()?,
            expected: f.try_get(5)?,
            actual: f.try_get(6)?,
            detail: f.try_get(7)?,
        })
    })
    .collect::<Result<Vec<_>, ReconcileError>>()?;
    Ok(Some(Run {
        id,
        chain_id: u64::try_from(chain).map_err(|_| ReconcileError::Corrupt("chain id"))?,
        contract: address(&contract)?,
        checkpoint_block: u64::try_from(block).map_err(|_| ReconcileError::Corrupt("block"))?,
        started_at: row.try_get(3)?,
        finished_at: row.try_get(4)?,
        findings,
    }))
}

/// How many `BatchSettled` events are indexed for `contract` on `chain_id`.
pub async fn indexed_batch_count(
    pool: &PgPool,
    chain_id: u64,
    contract: Address,
) -> Result<i64, ReconcileError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM indexer.batches WHERE chain_id = $1 AND contract = $2",
    )
    .bind(i64::try_from(chain_id).map_err(|_| ReconcileError::Corrupt("chain id"))?)
    .bind(contract.as_slice())
    .fetch_one(pool)
    .await?)
}
