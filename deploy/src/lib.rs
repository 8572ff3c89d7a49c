//! Deployment and upgrade tooling.
//!
//! This crate owns the per-chain deployment configuration
//! (`deploy/config/<name>.toml`, [`config`]), the deterministic CREATE2 plan of
//! a deployment ([`plan`]), the deployment itself ([`deploy`]: multisig,
//! timelock, implementation and proxy, wired and handed to the timelock), the
//! deployment manifests (`deploy/deployments/<chain id>.json`, [`manifest`]),
//! the owners' EIP-712 approvals of multisig operations ([`multisig`]),
//! which the multisig-guarded upgrade flow builds on, and the check that a
//! deployment runs the pinned sources' bytecode ([`verify`]).
//!
//! It must never change a deployed system except through the multisig and
//! timelock once the timelock owns it, and never write a manifest for a chain
//! other than the one the RPC endpoint reports. It holds no keys: signers are
//! handed in.

pub mod config;
pub mod deployment;
pub mod error;
pub mod manifest;
pub mod multisig;
pub mod outcome;
pub mod plan;
pub mod upgrade;
pub mod verify;

pub use config::{ConfigError, DeployConfig, KeySource};
pub use deployment::{DeployOptions, deploy};
pub use error::{Change, Changes, DeployError};
pub use manifest::{Manifest, ManifestError};
pub use outcome::{Outcome, Step, StepReport, StepStatus};
pub use plan::{CREATE2_FACTORY, Contract, Plan};
pub use upgrade::{Proposal, UpgradeError};
pub use verify::{Comparison, Runtime, Shipped, VerifyError, committed, compare_runtime};
