//! The relayer as a running service: batch, sign with the active key, submit, repeat.
//!
//! Which key signs batches is decided by the key registry ([`KeyRegistry`]),
//! not by configuration: every step asks for the active batch key of the
//! contract and signs with it. A rotation is therefore:
//!
//! 1. generate the new key in the HSM (`settle keys create`) and authorise it
//!    on chain through governance (`setSigner(new, true)`);
//! 2. activate it in the registry: new batches are signed by it, the old key
//!    becomes retiring, and batches it signed that are still in flight settle
//!    as usual (both keys are authorised on chain);
//! 3. once [`retire_batch_key`] finds nothing of the old key in flight and the
//!    chain no longer authorises it (`setSigner(old, false)` through
//!    governance), the old key is retired.

use std::{future::Future, time::Duration};

use alloy::{
    network::TransactionBuilder, primitives::Address, providers::Provider,
    rpc::types::TransactionRequest, sol_types::SolCall,
};
use settle_contracts::SplitSettlement;
use sqlx::PgPool;
use thiserror::Error;

use crate::{
    batcher::{BatchError, Batcher, BatcherConfig},
    hsm::HsmSigner,
    keys::{KeyError, KeyRegistry, KeyRole},
    rpc::{RpcError, RpcPool},
    submitter::{SubmitError, Submitter, SubmitterConfig, TickReport},
};

/// How the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayerConfig {
    /// Batch building.
    pub batcher: BatcherConfig,
    /// Submission.
    pub submitter: SubmitterConfig,
    /// Pause between steps.
    pub interval: Duration,
    /// Most batches signed in one step.
    pub max_batches_per_step: usize,
}

/// Why a step failed. Whatever it committed stays; the next step resumes.
#[derive(Debug, Error)]
pub enum RelayerError {
    /// Building or signing a batch failed.
    #[error("batching: {0}")]
    Batch(#[from] BatchError),
    /// Submission failed.
    #[error("submission: {0}")]
    Submit(#[from] SubmitError),
    /// The key registry failed.
    #[error("key registry: {0}")]
    Keys(#[from] KeyError),
    /// No batch key is active for the contract.
    #[error(
        "no active batch key for contract {contract} on chain {chain_id}; activate one with `settle keys rotate`"
    )]
    NoActiveKey {
        /// The chain.
        chain_id: u64,
        /// The contract.
        contract: Address,
    },
    /// The registry's active key is not among the keys this process opened.
    #[error(
        "the active batch key {label:?} ({address}) is not opened by this relayer; add it to its keys"
    )]
    KeyNotLoaded {
        /// Its label.
        label: String,
        /// Its address.
        address: Address,
    },
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Batches signed.
    pub batches_signed: u32,
    /// What the submitter did.
    pub submitted: TickReport,
}

/// A relayer: its batch keys, its sender and its submitter.
#[derive(Debug)]
pub struct Relayer<'a> {
    pool: PgPool,
    registry: KeyRegistry,
    batch_keys: Vec<&'a HsmSigner>,
    submitter: Submitter<'a>,
    config: RelayerConfig,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<'a> Relayer<'a> {
    /// Takes the sender key (see [`Submitter::start`]) and the batch keys this process may sign with.
    pub async fn start(
        pool: PgPool,
        database_url: &str,
        rpc: &'a RpcPool,
        batch_keys: Vec<&'a HsmSigner>,
        sender: &'a HsmSigner,
        config: RelayerConfig,
    ) -> Result<Self, RelayerError> {
        let submitter =
            Submitter::start(pool.clone(), database_url, rpc, sender, config.submitter).await?;
        Ok(Self {
            registry: KeyRegistry::new(pool.clone()),
            pool,
            batch_keys,
            submitter,
            config,
        })
    }

    /// The key that signs new batches now.
    pub async fn active_batch_key(&self) -> Result<&'a HsmSigner, RelayerError> {
        let (chain_id, contract) = (self.config.batcher.chain_id, self.config.batcher.contract);
        let active = self
            .registry
            .active(chain_id, contract, KeyRole::Batch)
            .await?
            .ok_or(RelayerError::NoActiveKey { chain_id, contract })?;
        self.batch_keys
            .iter()
            .copied()
            .find(|k| k.address() == active.address)
            .ok_or(RelayerError::KeyNotLoaded {
                label: active.label,
                address: active.address,
            })
    }

    /// Signs what is pending with the active key, then moves submission along.
    pub async fn step(&self) -> Result<StepReport, RelayerError> {
        let mut report = StepReport::default();
        let signer = self.active_batch_key().await?;
        let batcher = Batcher::new(self.pool.clone(), self.config.batcher, signer);
        for _ in 0..self.config.max_batches_per_step {
            if batcher.sign_next(unix_now()).await?.is_none() {
                break;
            }
            report.batches_signed = report.batches_signed.saturating_add(1);
        }
        report.submitted = self.submitter.tick().await?;
        Ok(report)
    }

    /// Steps every `interval` until `shutdown` resolves. A failed step is logged and retried on the
    /// next; nothing is lost by it. The one error it returns is final: another process took this
    /// sender key (after the database dropped this one's lock), so this one must stop sending.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), RelayerError> {
        tokio::pin!(shutdown);
        loop {
            match self.step().await {
                Ok(report) if report.batches_signed > 0 || report.submitted.transitions() > 0 => {
                    tracing::debug!(?report, "relayer step");
                }
                Ok(_) => {}
                Err(err @ RelayerError::Submit(SubmitError::SenderBusy(_))) => return Err(err),
                Err(err) => tracing::warn!(error = %err, "relayer step failed; retrying"),
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}

/// Why a retiring key cannot be retired yet.
#[derive(Debug, Error)]
pub enum RotationError {
    /// Batches it signed are not final yet.
    #[error(
        "{0} batches signed by the old key are still in flight; wait until they settle or expire"
    )]
    StillInFlight(i64),
    /// The contract still accepts the key.
    #[error(
        "the contract still authorises {0}; remove it through governance (setSigner(key, false)) first"
    )]
    StillAuthorised(Address),
    /// The registry refused.
    #[error("key registry: {0}")]
    Keys(#[from] KeyError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The chain could not be asked.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
}

/// Retires the retiring batch key `old` once nothing it signed is in flight and the chain no
/// longer authorises it.
pub async fn retire_batch_key(
    pool: &PgPool,
    rpc: &RpcPool,
    chain_id: u64,
    contract: Address,
    old: Address,
) -> Result<(), RotationError> {
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM relayer.batches
         WHERE chain_id = $1 AND contract = $2 AND signer = $3 AND status IN ('signed', 'submitted', 'included')",
    )
    .bind(i64::try_from(chain_id).map_err(|_| KeyError::ChainIdOutOfRange(chain_id))?)
    .bind(contract.as_slice())
    .bind(old.as_slice())
    .fetch_one(pool)
    .await?;
    if in_flight > 0 {
        return Err(RotationError::StillInFlight(in_flight));
    }
    let answer = rpc
        .call("isSigner", |p| async move {
            let request = TransactionRequest::default()
                .with_to(contract)
                .with_input(SplitSettlement::isSignerCall { signer: old }.abi_encode());
            p.call(request).await
        })
        .await?;
    let authorised = SplitSettlement::isSignerCall::abi_decode_returns(&answer).unwrap_or(true);
    if authorised {
        return Err(RotationError::StillAuthorised(old));
    }
    KeyRegistry::new(pool.clone())
        .retire(chain_id, contract, KeyRole::Batch, old)
        .await?;
    Ok(())
}
