//! The relayer: from accepted payment instructions to settled batches.
//!
//! This crate owns intake, batching, signing through the HSM and transaction
//! submission with its nonce ledger (growing issue by issue). Today it holds
//! the PKCS#11 signer ([`hsm`]), the durable intake ([`intake`]), the
//! batcher that persists signed batches ([`batcher`]) and the hash-chained
//! log of every signature ([`audit`]), the health-ranked RPC endpoints
//! ([`rpc`]), the submitter that gets signed batches mined exactly once
//! ([`submitter`]), key generation on the token with the registry of
//! which key signs for each contract ([`keys`]), and the reads (and the
//! cancel) that the API makes on instructions and batches ([`query`]).
//!
//! It must never hold key material in memory (keys stay in the HSM; only
//! labels are configured), never acknowledge an instruction before it is
//! durable, and never sign the same batch nonce twice.

pub mod audit;
pub mod batcher;
pub mod hsm;
pub mod intake;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod query;
pub mod rpc;
pub mod service;
pub mod submitter;

pub use batcher::{BatchError, Batcher, BatcherConfig, SignedBatch};
pub use hsm::{HsmError, HsmSigner};
pub use intake::{Accepted, Intake, IntakeConfig, IntakeError, IntegratorLimits, NewInstruction};
pub use rpc::{RpcConfig, RpcError, RpcPool};
pub use submitter::{Revert, SubmitError, Submitter, SubmitterConfig, TickReport};
