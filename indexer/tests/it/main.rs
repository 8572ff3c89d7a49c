//! Indexer integration tests against a real anvil chain and a real Postgres database.

// Test arithmetic on small block counts and amounts that cannot overflow.
#![allow(clippy::arithmetic_side_effects)]

mod backfill;
mod crash;
mod env;
mod follow;
mod migrations;
mod query;
mod ranges;
mod reconcile;
mod reorgs;
mod rpc_limit;
mod throughput;
