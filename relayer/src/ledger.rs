//! What the relayer meant to settle, for readers outside the relayer.
//!
//! Reconciliation (in the indexer) and the API read the relayer's intentions
//! through these functions, never through its tables: a batch as signed, its
//! payments as packed, and where the relayer believes it stands.

use alloy::primitives::{Address, B256};
use settle_contracts::{PaymentError, decode_payments};
use sqlx::{PgPool, Row};
use thiserror::Error;
use uuid::Uuid;

/// Why the ledger could not be read.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored batch does not decode.
    #[error("stored batch {batch} does not decode: {reason}")]
    Corrupt {
        /// Our id of the batch.
        batch: Uuid,
        /// Why.
        reason: String,
    },
    /// The chain id does not fit the database.
    #[error("chain id {0} is out of range")]
    ChainId(u64),
}

/// One payment of an intended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntendedPayment {
    /// The on-chain payment id.
    pub payment_id: B256,
    /// Its amount.
    pub amount: u128,
}

/// A batch the relayer signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntendedBatch {
    /// Our id.
    pub id: Uuid,
    /// The on-chain batch id.
    pub batch_id: B256,
    /// The key that signed it.
    pub signer: Address,
    /// The token.
    pub token: Address,
    /// The funder.
    pub funder: Address,
    /// Its deadline, Unix seconds.
    pub deadline: u64,
    /// Sum of its payments.
    pub total: u128,
    /// `signed`, `submitted`, `included`, `settled`, `failed` or `expired`.
    pub status: String,
    /// The transaction the relayer believes settled it.
    pub tx_hash: Option<B256>,
    /// Its payments in order.
    pub payments: Vec<IntendedPayment>,
}

fn corrupt(batch: Uuid, reason: impl std::fmt::Display) -> LedgerError {
    LedgerError::Corrupt {
        batch,
        reason: reason.to_string(),
    }
}

/// Every batch the relayer signed for `contract` on `chain_id`, oldest first.
pub async fn intended_batches(
    pool: &PgPool,
    chain_id: u64,
    contract: Address,
) -> Result<Vec<IntendedBatch>, LedgerError> {
    let chain = i64::try_from(chain_id).map_err(|_| LedgerError::ChainId(chain_id))?;
    let rows = sqlx::query(
        "SELECT id, batch_id, signer, token, funder, deadline, total::text, status, tx_hash, payments
         FROM relayer.batches WHERE chain_id = $1 AND contract = $2 ORDER BY created_at, id",
    )
    .bind(chain)
    .bind(contract.as_slice())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get(0)?;
            let bytes = |i: usize| -> Result<Vec<u8>, LedgerError> { Ok(row.try_get(i)?) };
            let address = |i: usize| -> Result<Address, LedgerError> {
                let b = bytes(i)?;
                Address::try_from(b.as_slice())
                    .map_err(|_| corrupt(id, "an address is not 20 bytes"))
            };
            let batch_id = B256::try_from(bytes(1)?.as_slice())
                .map_err(|_| corrupt(id, "batch id is not 32 bytes"))?;
            let total: String = row.try_get(6)?;
            let deadline: i64 = row.try_get(5)?;
            let tx_hash: Option<Vec<u8>> = row.try_get(8)?;
            let payments = decode_payments(&bytes(9)?)
                .map_err(|e: PaymentError| corrupt(id, e))?
                .into_iter()
                .map(|p| IntendedPayment {
                    payment_id: p.payment_id,
                    amount: p.amount,
                })
                .collect();
            Ok(IntendedBatch {
                id,
                batch_id,
                signer: address(2)?,
                token: address(3)?,
                funder: address(4)?,
                deadline: u64::try_from(deadline).map_err(|_| corrupt(id, "negative deadline"))?,
                total: total
                    .parse()
                    .map_err(|_| corrupt(id, "total is not an integer"))?,
                status: row.try_get(7)?,
                tx_hash: tx_hash
                    .map(|h| {
                        B256::try_from(h.as_slice())
                            .map_err(|_| corrupt(id, "tx hash is not 32 bytes"))
                    })
                    .transpose()?,
                payments,
            })
        })
        .collect()
}
