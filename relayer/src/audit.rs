//! The signing audit log: every signature a relayer key makes, hash-chained.
//!
//! Entry `n` stores `entry_hash = keccak256(abi.encode(n, signer, digest,
//! purpose, reference, signed_at_us, prev_hash))` with `prev_hash` the entry
//! hash of `n - 1` (zero for the first). Appends run in the caller's
//! transaction (so a batch and the record of its signature commit together)
//! under one advisory lock, so sequence numbers stay contiguous. A trigger
//! refuses updates and deletes; [`verify`] finds what someone with the power
//! to bypass it changed, removed or re-linked.

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolValue,
};
use sqlx::{PgConnection, PgPool, Row};
use thiserror::Error;

/// Advisory lock key that serialises appends.
const APPEND_LOCK: i64 = 0x05e7_71ea_0d17;

/// What a signature was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A batch's EIP-712 digest.
    Batch,
    /// One of the relayer's own transactions.
    Transaction,
}

impl Purpose {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Transaction => "transaction",
        }
    }
}

/// One signature to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The signing key's address.
    pub signer: Address,
    /// What was signed.
    pub digest: B256,
    /// Why.
    pub purpose: Purpose,
    /// The batch id or transaction hash it belongs to.
    pub reference: String,
    /// When, in Unix microseconds.
    pub signed_at_us: i64,
}

/// Where the chain breaks, first break only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Break {
    /// Entry `seq` is missing (a gap in the sequence).
    #[error("entry {seq} is missing")]
    Missing {
        /// The missing sequence number.
        seq: i64,
    },
    /// Entry `seq`'s content does not match its hash.
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// Entry `seq` does not point at the previous entry's hash.
    #[error("entry {seq} does not link to entry {}", seq.saturating_sub(1))]
    Relinked {
        /// The entry.
        seq: i64,
    },
}

/// Why the log could not be written or read.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn entry_hash(seq: i64, entry: &Entry, prev: B256) -> B256 {
    keccak256(
        (
            seq,
            entry.signer,
            entry.digest,
            entry.purpose.as_str().to_owned(),
            entry.reference.clone(),
            entry.signed_at_us,
            prev,
        )
            .abi_encode(),
    )
}

/// Appends `entry` in the caller's transaction; returns its sequence number.
pub async fn append(conn: &mut PgConnection, entry: &Entry) -> Result<i64, AuditError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let last =
        sqlx::query("SELECT seq, entry_hash FROM relayer.signing_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = match last {
        Some(row) => {
            let seq: i64 = row.try_get(0)?;
            let hash: Vec<u8> = row.try_get(1)?;
            (
                seq.saturating_add(1),
                B256::try_from(hash.as_slice()).unwrap_or_default(),
            )
        }
        None => (1, B256::ZERO),
    };
    let hash = entry_hash(seq, entry, prev);
    sqlx::query(
        "INSERT INTO relayer.signing_log (seq, signer, digest, purpose, reference, signed_at_us, prev_hash, entry_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(entry.signer.as_slice())
    .bind(entry.digest.as_slice())
    .bind(entry.purpose.as_str())
    .bind(&entry.reference)
    .bind(entry.signed_at_us)
    .bind(prev.as_slice())
    .bind(hash.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// Walks the whole log; `Ok(Ok(n))` when all `n` entries chain, `Ok(Err(break))` at the first break.
pub async fn verify(pool: &PgPool) -> Result<Result<i64, Break>, AuditError> {
    let rows = sqlx::query(
        "SELECT seq, signer, digest, purpose, reference, signed_at_us, prev_hash, entry_hash
         FROM relayer.signing_log ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    let mut expected_seq: i64 = 1;
    let mut prev = B256::ZERO;
    for row in rows {
        let seq: i64 = row.try_get(0)?;
        if seq != expected_seq {
            return Ok(Err(Break::Missing { seq: expected_seq }));
        }
        let bytes = |i: usize| -> Result<Vec<u8>, sqlx::Error> { row.try_get(i) };
        let purpose: String = row.try_get(3)?;
        let (signer, digest, stored_prev, stored_hash) =
            (bytes(1)?, bytes(2)?, bytes(6)?, bytes(7)?);
        if stored_prev.as_slice() != prev.as_slice() {
            return Ok(Err(Break::Relinked { seq }));
        }
        let purpose = match purpose.as_str() {
            "batch" => Purpose::Batch,
            "transaction" => Purpose::Transaction,
            _ => return Ok(Err(Break::Altered { seq })),
        };
        let (Ok(signer), Ok(digest)) = (
            Address::try_from(signer.as_slice()),
            B256::try_from(digest.as_slice()),
        ) else {
            return Ok(Err(Break::Altered { seq }));
        };
        let entry = Entry {
            signer,
            digest,
            purpose,
            reference: row.try_get(4)?,
            signed_at_us: row.try_get(5)?,
        };
        let hash = entry_hash(seq, &entry, prev);
        if stored_hash.as_slice() != hash.as_slice() {
            return Ok(Err(Break::Altered { seq }));
        }
        prev = hash;
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(Ok(expected_seq.saturating_sub(1)))
}
