//! The batcher: accepted instructions in, a signed batch persisted out.
//!
//! One call claims the oldest pending group (same chain, token and funder) with
//! `FOR UPDATE SKIP LOCKED`, so several relayer processes never claim the same
//! instructions. It builds the batch, allocates the signer's next batch nonce,
//! signs the EIP-712 digest in the HSM and records batch, signature and the
//! instructions' new status in the same database transaction. A crash before
//! the commit leaves the instructions pending and the nonce unallocated; the
//! signature made for that attempt is never stored or sent.

use std::collections::{BTreeSet, HashMap};

use alloy::{
    primitives::{Address, B256, FixedBytes, Signature, U256, keccak256},
    sol_types::SolValue,
};
use settle_contracts::{Batch, Leg, Payment, PaymentError, digest::batch_digest, encode_payments};
use sqlx::{PgPool, Row};
use thiserror::Error;
use uuid::Uuid;

use crate::{
    audit::{self, AuditError, Entry, Purpose},
    hsm::{HsmError, HsmSigner},
};

/// Funding mode of the batches this batcher builds: the funder's deposited balance.
pub const FUNDING_DEPOSIT: u8 = 0;

/// How batches are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// The chain.
    pub chain_id: u64,
    /// The SplitSettlement proxy.
    pub contract: Address,
    /// Most payments in one batch.
    pub max_payments: usize,
    /// Seconds from signing until the batch expires.
    pub deadline_secs: u64,
    /// Seconds the oldest pending instruction may wait for a batch to fill; a full batch goes at once.
    pub max_wait_secs: u64,
    /// Most gas a batch may need, by [`estimate_gas`]; payments beyond it wait for the next batch.
    pub gas_ceiling: u64,
}

impl BatcherConfig {
    /// Defaults: 500 payments, one hour to the deadline, no waiting, a 15,000,000 gas ceiling.
    pub const fn new(chain_id: u64, contract: Address) -> Self {
        Self {
            chain_id,
            contract,
            max_payments: 500,
            deadline_secs: 3600,
            max_wait_secs: 0,
            gas_ceiling: 15_000_000,
        }
    }
}

/// Gas of a `settleBatch` call with `payments` payments, `legs` legs in all and `payees` distinct
/// payees, assuming every payee is credited for the first time (a cold, zero-to-non-zero slot): an
/// upper bound that keeps a batch under the ceiling whatever the payees' history. The constants sit
/// above the figures measured in `docs/gas.md`.
pub const fn estimate_gas(payments: u64, legs: u64, payees: u64) -> u64 {
    const BASE: u64 = 80_000;
    const PER_PAYMENT: u64 = 2_000;
    const PER_LEG: u64 = 1_500;
    const PER_PAYEE: u64 = 25_000;
    BASE.saturating_add(payments.saturating_mul(PER_PAYMENT))
        .saturating_add(legs.saturating_mul(PER_LEG))
        .saturating_add(payees.saturating_mul(PER_PAYEE))
}

/// Why a batch could not be built.
#[derive(Debug, Error)]
pub enum BatchError {
    /// The database failed; nothing was recorded.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The HSM could not sign; nothing was recorded.
    #[error("signing: {0}")]
    Hsm(#[from] HsmError),
    /// The signature could not be recorded in the audit log.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The payments could not be packed.
    #[error("packing payments: {0}")]
    Payments(#[from] PaymentError),
    /// A stored row does not hold what the schema promises.
    #[error("stored {what} is malformed: {value}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was found.
        value: String,
    },
}

/// A batch as signed and recorded.
#[derive(Debug, Clone)]
pub struct SignedBatch {
    /// Our id.
    pub id: Uuid,
    /// The batch as the contract takes it.
    pub batch: Batch,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// The HSM's signature over the digest.
    pub signature: Signature,
    /// The instructions in it, in payment order.
    pub instructions: Vec<Uuid>,
    /// Sum of the payments.
    pub total: u128,
}

/// Builds and signs batches.
#[derive(Debug)]
pub struct Batcher<'a> {
    pool: PgPool,
    config: BatcherConfig,
    signer: &'a HsmSigner,
}

fn corrupt(what: &'static str, value: impl std::fmt::Debug) -> BatchError {
    BatchError::Corrupt {
        what,
        value: format!("{value:?}"),
    }
}

fn address(what: &'static str, bytes: &[u8]) -> Result<Address, BatchError> {
    Address::try_from(bytes).map_err(|_| corrupt(what, bytes))
}

impl<'a> Batcher<'a> {
    /// A batcher over the relayer's schema, signing with `signer`.
    pub const fn new(pool: PgPool, config: BatcherConfig, signer: &'a HsmSigner) -> Self {
        Self {
            pool,
            config,
            signer,
        }
    }

    /// Claims, builds, signs and records the next batch; `None` when nothing is pending.
    /// `now` is the current Unix time in seconds (the deadline counts from it).
    pub async fn sign_next(&self, now: u64) -> Result<Option<SignedBatch>, BatchError> {
        let chain = i64::try_from(self.config.chain_id)
            .map_err(|_| corrupt("chain id", self.config.chain_id))?;
        let limit = i64::try_from(self.config.max_payments.clamp(1, 10_000)).unwrap_or(10_000);
        let mut tx = self.pool.begin().await?;

        let Some(head) = sqlx::query(
            "SELECT token, funder, now() - created_at >= make_interval(secs => $2) FROM relayer.instructions
             WHERE status = 'accepted' AND chain_id = $1
             ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(chain)
        .bind(self.config.max_wait_secs as f64)
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let waited_enough: bool = head.try_get(2)?;
        let token_bytes: Vec<u8> = head.try_get(0)?;
        let funder_bytes: Vec<u8> = head.try_get(1)?;
        let token = address("token", &token_bytes)?;
        let funder = address("funder", &funder_bytes)?;

        let claimed = sqlx::query(
            "SELECT id, payment_id, amount::text FROM relayer.instructions
             WHERE status = 'accepted' AND chain_id = $1 AND token = $2 AND funder = $3
             ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED",
        )
        .bind(chain)
        .bind(&token_bytes)
        .bind(&funder_bytes)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if !waited_enough && claimed.len() < self.config.max_payments {
            // Not full and not old enough: let it fill. The claim is released now, not whenever the
            // pool next uses this connection (a dropped transaction rolls back lazily).
            tx.rollback().await?;
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(claimed.len());
        let mut heads = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let id: Uuid = row.try_get(0)?;
            let payment_id: Vec<u8> = row.try_get(1)?;
            let amount: String = row.try_get(2)?;
            let payment_id = B256::try_from(payment_id.as_slice())
                .map_err(|_| corrupt("payment id", &payment_id))?;
            let amount: u128 = amount.parse().map_err(|_| corrupt("amount", &amount))?;
            ids.push(id);
            heads.push((payment_id, amount));
        }

        let mut legs: HashMap<Uuid, Vec<(Address, u32)>> = HashMap::new();
        for row in sqlx::query(
            "SELECT instruction_id, payee, share FROM relayer.instruction_legs
             WHERE instruction_id = ANY($1) ORDER BY instruction_id, position",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
            let id: Uuid = row.try_get(0)?;
            let payee: Vec<u8> = row.try_get(1)?;
            let share: i32 = row.try_get(2)?;
            let share = u32::try_from(share).map_err(|_| corrupt("share", share))?;
            legs.entry(id)
                .or_default()
                .push((address("payee", &payee)?, share));
        }

        // Keep the longest prefix that fits under the gas ceiling (at least one payment); the rest
        // stays accepted for the next batch.
        let mut seen = BTreeSet::new();
        let mut legs_total: u64 = 0;
        let mut fits = 0usize;
        for id in &ids {
            let split = legs.get(id).map_or(&[][..], Vec::as_slice);
            for (payee, _) in split {
                seen.insert(*payee);
            }
            legs_total = legs_total.saturating_add(split.len() as u64);
            let payments = fits.saturating_add(1) as u64;
            if fits > 0
                && estimate_gas(payments, legs_total, seen.len() as u64) > self.config.gas_ceiling
            {
                break;
            }
            fits = fits.saturating_add(1);
        }
        ids.truncate(fits);
        heads.truncate(fits);
        legs.retain(|id, _| ids.contains(id));

        // Payees once each, ascending, as the contract requires; legs name them by index.
        let payees: Vec<Address> = legs
            .values()
            .flatten()
            .map(|(payee, _)| *payee)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index: HashMap<Address, u16> = payees
            .iter()
            .enumerate()
            .map(|(i, p)| {
                u16::try_from(i)
                    .map(|i| (*p, i))
                    .map_err(|_| corrupt("payee count", payees.len()))
            })
            .collect::<Result<_, _>>()?;
        let mut payments = Vec::with_capacity(ids.len());
        let mut total: u128 = 0;
        for (id, (payment_id, amount)) in ids.iter().zip(&heads) {
            let split = legs
                .get(id)
                .ok_or_else(|| corrupt("legs of instruction", id))?;
            let legs = split
                .iter()
                .map(|(payee, share)| {
                    Ok(Leg {
                        payee: *index.get(payee).ok_or_else(|| corrupt("payee", payee))?,
                        share: *share,
                    })
                })
                .collect::<Result<Vec<_>, BatchError>>()?;
            total = total
                .checked_add(*amount)
                .ok_or_else(|| corrupt("batch total", total))?;
            payments.push(Payment {
                payment_id: *payment_id,
                amount: *amount,
                legs,
            });
        }

        let signer = self.signer.address();
        let nonce: String = sqlx::query_scalar(
            "INSERT INTO relayer.batch_nonces (chain_id, contract, signer, next) VALUES ($1, $2, $3, 1)
             ON CONFLICT (chain_id, contract, signer) DO UPDATE SET next = relayer.batch_nonces.next + 1
             RETURNING (next - 1)::text",
        )
        .bind(chain)
        .bind(self.config.contract.as_slice())
        .bind(signer.as_slice())
        .fetch_one(&mut *tx)
        .await?;
        let nonce = U256::from_str_radix(&nonce, 10).map_err(|_| corrupt("nonce", &nonce))?;
        let batch_id = keccak256(
            (
                U256::from(self.config.chain_id),
                self.config.contract,
                signer,
                nonce,
            )
                .abi_encode(),
        );
        let deadline = now.saturating_add(self.config.deadline_secs);
        let batch = Batch {
            batchId: FixedBytes(batch_id.0),
            nonce,
            deadline,
            token,
            funder,
            funding: FUNDING_DEPOSIT,
            payees: payees.clone(),
            payments: encode_payments(&payments)?,
        };
        let digest = batch_digest(&batch, self.config.chain_id, self.config.contract);
        // A PKCS#11 sign takes well under a millisecond; it runs inline rather than on a blocking thread.
        let signature = self.signer.sign_prehash(&digest)?;

        let id = Uuid::new_v4();
        let payee_bytes: Vec<Vec<u8>> = payees.iter().map(|p| p.to_vec()).collect();
        sqlx::query(
            "INSERT INTO relayer.batches (id, batch_id, chain_id, contract, token, funder, funding, signer, nonce,
                 deadline, payees, payments, total, digest, signature)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, $11, $12, $13::numeric, $14, $15)",
        )
        .bind(id)
        .bind(batch_id.as_slice())
        .bind(chain)
        .bind(self.config.contract.as_slice())
        .bind(&token_bytes)
        .bind(&funder_bytes)
        .bind(i16::from(FUNDING_DEPOSIT))
        .bind(signer.as_slice())
        .bind(nonce.to_string())
        .bind(i64::try_from(deadline).unwrap_or(i64::MAX))
        .bind(&payee_bytes)
        .bind(batch.payments.to_vec())
        .bind(total.to_string())
        .bind(digest.as_slice())
        .bind(signature.as_bytes().to_vec())
        .execute(&mut *tx)
        .await?;
        let signed_at_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        audit::append(
            &mut tx,
            &Entry {
                signer,
                digest,
                purpose: Purpose::Batch,
                reference: id.to_string(),
                signed_at_us,
            },
        )
        .await?;
        let positions: Vec<i32> = (0..ids.len())
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        sqlx::query(
            "UPDATE relayer.instructions AS i SET status = 'signed', batch = $1, position = p.position, updated_at = now()
             FROM unnest($2::uuid[], $3::integer[]) AS p(id, position) WHERE i.id = p.id",
        )
        .bind(id)
        .bind(&ids)
        .bind(&positions)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(batch = %id, %nonce, payments = ids.len(), total, "batch signed");
        for (instruction, (payment_id, _)) in ids.iter().zip(&heads) {
            tracing::debug!(%payment_id, %instruction, batch = %id, "payment batched");
        }
        Ok(Some(SignedBatch {
            id,
            batch,
            digest,
            signature,
            instructions: ids,
            total,
        }))
    }
}
