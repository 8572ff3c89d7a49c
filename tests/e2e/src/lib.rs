//! End-to-end tests of settle live in `tests/`: they run relayer, indexer and API (the code of
//! `settle serve`, in this process or as the built `settle` binary) against real anvil, Postgres
//! and SoftHSM2 and drive them through the REST API.
//!
//! This library is what those tests share: starting the whole stack on a fresh chain, database
//! and token ([`Stack`]), generating and submitting payments while keeping the sums they must
//! credit ([`Ledger`]), governance through the multisig and timelock and anvil's chain controls
//! ([`chain`]), and the end-state checks every scenario ends with ([`Settlements`]): every
//! payment settled exactly once, balances equal to the expected sums, the mirror equal to the
//! chain, reconciliation clean.
//!
//! Test code only: it panics (with the reason) where a test would fail, and it must never be a
//! dependency of a production crate. It reads the relayer's and indexer's tables to wait and to
//! check, and never writes them.

pub mod chain;
pub mod checks;
pub mod payments;
pub mod stack;

pub use checks::Settlements;
pub use payments::Ledger;
pub use stack::{Options, Stack};

/// The chain id of every test chain (anvil's default).
pub const CHAIN_ID: u64 = 31337;
