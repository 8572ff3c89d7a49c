//! Intake: payment instructions in, durable in Postgres before the caller hears back.
//!
//! Each instruction carries an idempotency key per integrator. Submitting the
//! same key with the same body returns the original result; the same key with
//! another body is a conflict. A call with several instructions is atomic:
//! every instruction is accepted (or replayed), or none is and the error names
//! the first offending one by index.
//!
//! Per-integrator limits (single payment maximum and a rolling 24-hour cap per
//! chain and token) are checked under a per-integrator advisory lock, so two
//! concurrent calls cannot both squeeze under the cap.

use std::collections::{HashMap, HashSet};

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolValue,
};
use settle_contracts::split::SCALE;
use sqlx::{PgPool, Row};
use thiserror::Error;
use uuid::Uuid;

/// The relayer's migrations (schema `relayer`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    // The indexer's and the api's migrations share sqlx's table; they are not ours to miss.
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// Longest idempotency key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// One leg of an instruction's split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstructionLeg {
    /// Who receives this leg.
    pub payee: Address,
    /// Parts per million of the amount; the first leg takes the rounding remainder.
    pub share: u32,
}

/// A payment instruction as an integrator submits it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewInstruction {
    /// The integrator's idempotency key for this payment.
    pub idempotency_key: String,
    /// The chain to settle on.
    pub chain_id: u64,
    /// The token (`Address::ZERO` for the native coin).
    pub token: Address,
    /// Whose deposit funds the payment.
    pub funder: Address,
    /// Amount in token base units.
    pub amount: u128,
    /// How the amount is split.
    pub legs: Vec<InstructionLeg>,
}

/// A token the relayer settles, with its per-payment maximum (mirrors the contract's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRule {
    /// The chain.
    pub chain_id: u64,
    /// The token.
    pub token: Address,
    /// Largest single payment.
    pub max_payment: u128,
}

/// What intake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// Known chains and tokens.
    pub tokens: Vec<TokenRule>,
    /// Most payees one payment may have (at most 255, the packed format's limit).
    pub max_payees: usize,
}

/// An integrator's limits (its tier), tighter than the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegratorLimits {
    /// Largest single payment.
    pub max_payment: u128,
    /// Most accepted in any 24 hours, per chain and token.
    pub daily_cap: u128,
}

/// Why an instruction is invalid on its own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidInstruction {
    /// The idempotency key is empty or longer than [`MAX_KEY_LEN`] bytes.
    #[error("the idempotency key must be 1 to {MAX_KEY_LEN} bytes")]
    BadKey,
    /// The same idempotency key appears twice in one call.
    #[error("idempotency key {0:?} appears twice in this request")]
    RepeatedKey(String),
    /// The amount is zero.
    #[error("the amount must be a positive integer")]
    ZeroAmount,
    /// The chain and token pair is not one the relayer settles.
    #[error("token {token} on chain {chain_id} is not supported")]
    UnknownToken {
        /// The chain.
        chain_id: u64,
        /// The token.
        token: Address,
    },
    /// The amount is above the token's per-payment maximum.
    #[error("amount {amount} is above the token's maximum of {max}")]
    AboveTokenMax {
        /// The amount.
        amount: u128,
        /// The maximum.
        max: u128,
    },
    /// There are no legs.
    #[error("the split has no payees")]
    NoLegs,
    /// More payees than allowed.
    #[error("{count} payees; at most {max} are allowed per payment")]
    TooManyPayees {
        /// How many were given.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A payee is the zero address.
    #[error("leg {leg}: the payee is the zero address")]
    ZeroPayee {
        /// Index of the leg.
        leg: usize,
    },
    /// A payee appears twice.
    #[error("leg {leg}: payee {payee} appears twice")]
    DuplicatePayee {
        /// Index of the second occurrence.
        leg: usize,
        /// The payee.
        payee: Address,
    },
    /// A share is zero.
    #[error("leg {leg}: the share is zero")]
    ZeroShare {
        /// Index of the leg.
        leg: usize,
    },
    /// The shares do not sum to the scale.
    #[error("shares sum to {sum}, not {SCALE}")]
    SharesMismatch {
        /// What they sum to.
        sum: u64,
    },
}

/// Which integrator limit an instruction exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The single payment maximum.
    SinglePayment,
    /// The rolling 24-hour cap for the chain and token.
    DailyCap,
}

/// Why a submission was refused. Nothing of a refused call is stored.
#[derive(Debug, Error)]
pub enum IntakeError {
    /// An instruction is invalid.
    #[error("instruction {index}: {reason}")]
    Invalid {
        /// Its position in the call.
        index: usize,
        /// What is wrong.
        reason: InvalidInstruction,
    },
    /// The idempotency key was used before with a different body.
    #[error(
        "instruction {index}: idempotency key {key:?} was used before with a different request"
    )]
    IdempotencyConflict {
        /// Its position in the call.
        index: usize,
        /// The key.
        key: String,
    },
    /// The instruction would exceed one of the integrator's limits.
    #[error(
        "instruction {index}: {requested} exceeds the integrator's {kind:?} limit (room left: {available})"
    )]
    OverLimit {
        /// Its position in the call.
        index: usize,
        /// Which limit.
        kind: LimitKind,
        /// What the instruction (with the earlier ones of this call) needs.
        requested: u128,
        /// What the limit still allows.
        available: u128,
    },
    /// The database failed; nothing was stored.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored amount is not a valid integer (the schema's checks should make this impossible).
    #[error("stored amount {0:?} is not an integer below 2^128")]
    CorruptAmount(String),
}

/// The status of an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionStatus {
    /// Durable, waiting for a batch.
    Accepted,
    /// In a batch not yet signed.
    Batched,
    /// In a signed batch.
    Signed,
    /// In a submitted transaction.
    Submitted,
    /// Settled on-chain.
    Settled,
    /// Cancelled before signing.
    Cancelled,
    /// Failed for good.
    Failed,
}

impl InstructionStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [Self; 7] = [
        Self::Accepted,
        Self::Batched,
        Self::Signed,
        Self::Submitted,
        Self::Settled,
        Self::Cancelled,
        Self::Failed,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Batched => "batched",
            Self::Signed => "signed",
            Self::Submitted => "submitted",
            Self::Settled => "settled",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "batched" => Self::Batched,
            "signed" => Self::Signed,
            "submitted" => Self::Submitted,
            "settled" => Self::Settled,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// The answer for one instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Our id for the instruction.
    pub id: Uuid,
    /// The payment id the batch carries on-chain.
    pub payment_id: B256,
    /// Its status now.
    pub status: InstructionStatus,
    /// Whether this answers an earlier submission of the same key and body.
    pub replayed: bool,
}

/// The intake service over the relayer's schema.
#[derive(Debug, Clone)]
pub struct Intake {
    pool: PgPool,
    config: IntakeConfig,
}

impl Intake {
    /// An intake on `pool` (migrated with [`MIGRATOR`]).
    pub const fn new(pool: PgPool, config: IntakeConfig) -> Self {
        Self { pool, config }
    }

    /// The on-chain payment id of an integrator's idempotency key.
    pub fn payment_id(integrator: &str, idempotency_key: &str) -> B256 {
        keccak256((integrator.to_owned(), idempotency_key.to_owned()).abi_encode())
    }

    /// Checks one instruction on its own.
    pub fn validate(&self, instruction: &NewInstruction) -> Result<(), InvalidInstruction> {
        let key_len = instruction.idempotency_key.len();
        if key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(InvalidInstruction::BadKey);
        }
        if instruction.amount == 0 {
            return Err(InvalidInstruction::ZeroAmount);
        }
        let rule = self
            .config
            .tokens
            .iter()
            .find(|r| r.chain_id == instruction.chain_id && r.token == instruction.token)
            .ok_or(InvalidInstruction::UnknownToken {
                chain_id: instruction.chain_id,
                token: instruction.token,
            })?;
        if instruction.amount > rule.max_payment {
            return Err(InvalidInstruction::AboveTokenMax {
                amount: instruction.amount,
                max: rule.max_payment,
            });
        }
        let count = instruction.legs.len();
        if count == 0 {
            return Err(InvalidInstruction::NoLegs);
        }
        let max = self
            .config
            .max_payees
            .min(settle_contracts::payment::MAX_LEGS);
        if count > max {
            return Err(InvalidInstruction::TooManyPayees { count, max });
        }
        let mut seen = HashSet::with_capacity(count);
        let mut sum: u64 = 0;
        for (leg, l) in instruction.legs.iter().enumerate() {
            if l.payee == Address::ZERO {
                return Err(InvalidInstruction::ZeroPayee { leg });
            }
            if !seen.insert(l.payee) {
                return Err(InvalidInstruction::DuplicatePayee {
                    leg,
                    payee: l.payee,
                });
            }
            if l.share == 0 {
                return Err(InvalidInstruction::ZeroShare { leg });
            }
            sum = sum.saturating_add(u64::from(l.share));
        }
        if sum != u64::from(SCALE) {
            return Err(InvalidInstruction::SharesMismatch { sum });
        }
        Ok(())
    }

    /// Submits instructions for `integrator`: all are durable (or replayed) when this returns `Ok`.
    pub async fn submit(
        &self,
        integrator: &str,
        limits: &IntegratorLimits,
        instructions: &[NewInstruction],
    ) -> Result<Vec<Accepted>, IntakeError> {
        let mut keys = HashSet::with_capacity(instructions.len());
        for (index, instruction) in instructions.iter().enumerate() {
            self.validate(instruction)
                .map_err(|reason| IntakeError::Invalid { index, reason })?;
            if !keys.insert(instruction.idempotency_key.as_str()) {
                let reason = InvalidInstruction::RepeatedKey(instruction.idempotency_key.clone());
                return Err(IntakeError::Invalid { index, reason });
            }
        }

        let mut tx = self.pool.begin().await?;
        // Serialises this integrator's submissions: the cap check and the insert see one another.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(integrator)
            .execute(&mut *tx)
            .await?;

        let key_list: Vec<&str> = instructions
            .iter()
            .map(|i| i.idempotency_key.as_str())
            .collect();
        let existing: HashMap<String, (Uuid, Vec<u8>, Vec<u8>, String)> = sqlx::query(
            "SELECT idempotency_key, id, request_hash, payment_id, status FROM relayer.instructions
             WHERE integrator = $1 AND idempotency_key = ANY($2)",
        )
        .bind(integrator)
        .bind(&key_list)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>(0)?,
                (
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                ),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;

        let mut results = Vec::with_capacity(instructions.len());
        let mut fresh = Vec::new();
        let mut pending: HashMap<(u64, Address), u128> = HashMap::new();
        for (index, instruction) in instructions.iter().enumerate() {
            let hash = request_hash(instruction);
            if let Some((id, stored_hash, payment_id, status)) =
                existing.get(&instruction.idempotency_key)
            {
                if stored_hash.as_slice() != hash.as_slice() {
                    return Err(IntakeError::IdempotencyConflict {
                        index,
                        key: instruction.idempotency_key.clone(),
                    });
                }
                results.push(Accepted {
                    id: *id,
                    payment_id: B256::try_from(payment_id.as_slice()).unwrap_or_default(),
                    status: InstructionStatus::parse(status).unwrap_or(InstructionStatus::Failed),
                    replayed: true,
                });
                continue;
            }
            if instruction.amount > limits.max_payment {
                return Err(IntakeError::OverLimit {
                    index,
                    kind: LimitKind::SinglePayment,
                    requested: instruction.amount,
                    available: limits.max_payment,
                });
            }
            let pair = (instruction.chain_id, instruction.token);
            let used = match pending.get(&pair) {
                Some(&used) => used,
                None => recent_total(&mut tx, integrator, pair).await?,
            };
            let requested = used.saturating_add(instruction.amount);
            if requested > limits.daily_cap {
                return Err(IntakeError::OverLimit {
                    index,
                    kind: LimitKind::DailyCap,
                    requested: instruction.amount,
                    available: limits.daily_cap.saturating_sub(used),
                });
            }
            pending.insert(pair, requested);
            let accepted = Accepted {
                id: Uuid::new_v4(),
                payment_id: Self::payment_id(integrator, &instruction.idempotency_key),
                status: InstructionStatus::Accepted,
                replayed: false,
            };
            fresh.push((instruction, hash, accepted.clone()));
            results.push(accepted);
        }

        insert(&mut tx, integrator, &fresh).await?;
        tx.commit().await?;
        Ok(results)
    }
}

/// keccak256 of the instruction's canonical encoding (everything but the key).
fn request_hash(instruction: &NewInstruction) -> B256 {
    let legs: Vec<(Address, u32)> = instruction
        .legs
        .iter()
        .map(|l| (l.payee, l.share))
        .collect();
    keccak256(
        (
            instruction.chain_id,
            instruction.token,
            instruction.funder,
            instruction.amount,
            legs,
        )
            .abi_encode(),
    )
}

/// What the integrator had accepted in the last 24 hours on this chain and token.
async fn recent_total(
    tx: &mut sqlx::PgConnection,
    integrator: &str,
    (chain_id, token): (u64, Address),
) -> Result<u128, IntakeError> {
    let total: String = sqlx::query_scalar(
        "SELECT coalesce(sum(amount), 0)::text FROM relayer.instructions
         WHERE integrator = $1 AND chain_id = $2 AND token = $3
           AND created_at > now() - interval '24 hours' AND status <> 'cancelled'",
    )
    .bind(integrator)
    .bind(chain_id_param(chain_id))
    .bind(token.as_slice())
    .fetch_one(tx)
    .await?;
    total.parse().map_err(|_| IntakeError::CorruptAmount(total))
}

/// Chain ids are stored as `bigint`; ids above `i64::MAX` do not exist in practice and saturate.
fn chain_id_param(chain_id: u64) -> i64 {
    i64::try_from(chain_id).unwrap_or(i64::MAX)
}

/// Inserts the new instructions and their legs with two bulk statements.
async fn insert(
    tx: &mut sqlx::PgConnection,
    integrator: &str,
    fresh: &[(&NewInstruction, B256, Accepted)],
) -> Result<(), sqlx::Error> {
    if fresh.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(fresh.len());
    let mut keys = Vec::with_capacity(fresh.len());
    let mut hashes = Vec::with_capacity(fresh.len());
    let mut payment_ids = Vec::with_capacity(fresh.len());
    let mut chains = Vec::with_capacity(fresh.len());
    let mut tokens = Vec::with_capacity(fresh.len());
    let mut funders = Vec::with_capacity(fresh.len());
    let mut amounts = Vec::with_capacity(fresh.len());
    let (mut leg_ids, mut positions, mut payees, mut shares) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (instruction, hash, accepted) in fresh {
        ids.push(accepted.id);
        keys.push(instruction.idempotency_key.as_str());
        hashes.push(hash.to_vec());
        payment_ids.push(accepted.payment_id.to_vec());
        chains.push(chain_id_param(instruction.chain_id));
        tokens.push(instruction.token.to_vec());
        funders.push(instruction.funder.to_vec());
        amounts.push(instruction.amount.to_string());
        for (position, leg) in instruction.legs.iter().enumerate() {
            leg_ids.push(accepted.id);
            // At most 255 legs (validated), so positions fit i16; shares are at most SCALE.
            positions.push(i16::try_from(position).unwrap_or(i16::MAX));
            payees.push(leg.payee.to_vec());
            shares.push(i32::try_from(leg.share).unwrap_or(i32::MAX));
        }
    }
    sqlx::query(
        "INSERT INTO relayer.instructions
             (id, integrator, idempotency_key, request_hash, payment_id, chain_id, token, funder, amount)
         SELECT id, $1, key, hash, pid, chain, token, funder, amount::numeric
         FROM unnest($2::uuid[], $3::text[], $4::bytea[], $5::bytea[], $6::bigint[], $7::bytea[], $8::bytea[], $9::text[])
              WITH ORDINALITY AS t(id, key, hash, pid, chain, token, funder, amount, ord)
         ORDER BY ord",
    )
    .bind(integrator)
    .bind(&ids)
    .bind(&keys)
    .bind(&hashes)
    .bind(&payment_ids)
    .bind(&chains)
    .bind(&tokens)
    .bind(&funders)
    .bind(&amounts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO relayer.instruction_legs (instruction_id, position, payee, share)
         SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::bytea[], $4::integer[])",
    )
    .bind(&leg_ids)
    .bind(&positions)
    .bind(&payees)
    .bind(&shares)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
