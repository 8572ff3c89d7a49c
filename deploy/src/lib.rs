//! Deployment and upgrade tooling.
//!
//! This crate owns the per-chain deployment configuration and manifests
//! (`deploy/deployments/<chain id>.json`), and later the multisig-guarded
//! upgrade flow and bytecode verification.
//!
//! It must never change a deployed system except through the multisig and
//! timelock, and never write a manifest for a chain other than the one the RPC
//! endpoint reports.

pub mod manifest;

pub use manifest::{Manifest, ManifestError};
