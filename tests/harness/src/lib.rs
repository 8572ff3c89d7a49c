//! Test-only helpers shared by the whole workspace: an anvil chain on a free
//! loopback port ([`TestChain`]), a fresh Postgres database that is dropped
//! afterwards ([`TestDb`]) and a fresh SoftHSM2 token holding one secp256k1
//! key pair ([`TestToken`]), plus a TCP proxy that injects network faults in
//! front of a real endpoint ([`FaultProxy`]), a private Postgres server that a
//! test may restart ([`PgCluster`]), and a configured SplitSettlement
//! proxy ([`settlement`]).
//!
//! This crate owns test plumbing only: finding the local tool binaries, the
//! private SoftHSM2 configuration under `target/softhsm/`, and the process-wide
//! PKCS#11 context used by tests. It must never be a dependency of production
//! code paths (only `[dev-dependencies]`), never touch a database it did not
//! create, and never use the system SoftHSM2 token directory.
//!
//! Missing tools are typed [`Error`]s that name `./scripts/setup` as the fix.

pub mod anvil;
pub mod cluster;
mod error;
pub mod fault;
pub mod postgres;
pub mod settlement;
pub mod softhsm;

pub use anvil::TestChain;
pub use cluster::PgCluster;
pub use error::{Error, Result};
pub use fault::{FaultMode, FaultProxy};
pub use postgres::TestDb;
pub use softhsm::{TestToken, pkcs11};

use std::path::PathBuf;

/// The workspace root, known at compile time from this crate's location.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
