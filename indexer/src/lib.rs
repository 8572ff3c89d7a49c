//! The chain's mirror in Postgres.
//!
//! This crate owns following the chain (backfill and live), surviving reorgs,
//! the typed tables of contract events, and reconciliation of what the relayer
//! meant to settle with what the chain says.
//!
//! It must never write a row whose block it cannot tie to the canonical chain,
//! never skip or repeat an event across a crash, and never sign or submit
//! anything: it only reads the chain.

pub mod reorg;

pub use reorg::{BlockRef, ReorgError, ReorgWindow};
