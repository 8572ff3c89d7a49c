//! The chain's mirror in Postgres.
//!
//! This crate owns following the chain (backfill and live), surviving reorgs,
//! the typed tables of contract events (schema `indexer`, migrations 2xxxxx),
//! and reconciliation of what the relayer meant to settle with what the chain says.
//! `indexer.balances` rebuilds every internal balance from events alone and must
//! equal `balanceOf` on chain.
//!
//! It must never write a row whose block it cannot tie to the canonical chain,
//! never skip or repeat an event across a crash, and never sign or submit
//! anything: it only reads the chain. Rows and checkpoints of a range are one
//! transaction; a reorg's rollback is one transaction; a reorg deeper than the
//! window stops the indexer and writes nothing.
//!
//! ```text
//! sync: head ─▶ window head still canonical? ─no─▶ fork point ─▶ roll back (1 txn)
//!                         │yes
//!                         ▼
//!        eth_getLogs(from..to, all contracts)  (range halves on failure, doubles on success)
//!                         ▼
//!        headers of recent blocks ─▶ logs, headers and window agree? ─no─▶ read again
//!                         │yes
//!                         ▼
//!        rows + window blocks + checkpoints  (1 txn)
//! ```

pub mod config;
pub mod error;
pub mod events;
pub mod follower;
pub mod metrics;
pub mod query;
pub mod reconcile;
pub mod reorg;
pub mod store;

pub use config::IndexerConfig;
pub use error::{IndexerError, LogProblem, Result};
pub use events::EventCounts;
pub use follower::{Indexer, Reorg, SyncReport};
pub use metrics::Metrics;
pub use reorg::BlockRef;
pub use store::{MIGRATOR, migrate};

/// Every table with a row per event (or per payment or credit of one), parents first.
pub const EVENT_ROW_TABLES: [&str; 8] = [
    "batches",
    "payments",
    "credits",
    "deposits",
    "withdrawals",
    "pushes",
    "signer_changes",
    "governance",
];
