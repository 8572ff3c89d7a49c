//! Why a deployment run stopped, and the changes it leaves to the multisig.

use std::{fmt, path::PathBuf};

use alloy::{
    primitives::{Address, B256, TxHash, U256},
    providers::PendingTransactionError,
    transports::TransportError,
};
use thiserror::Error;

use crate::{
    ManifestError,
    config::TokenLimits,
    outcome::{Step, TokenDisplay},
    plan::{CREATE2_FACTORY, Contract},
};

/// A difference between the configuration and a deployment that only the multisig may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The multisig's owners differ.
    Owners {
        /// The owners on chain.
        deployed: Vec<Address>,
        /// The owners configured.
        configured: Vec<Address>,
    },
    /// The multisig's threshold differs.
    Threshold {
        /// On chain.
        deployed: U256,
        /// Configured.
        configured: u64,
    },
    /// The timelock's minimum delay differs.
    Delay {
        /// On chain, in seconds.
        deployed: U256,
        /// Configured, in seconds.
        configured: u64,
    },
    /// The multisig no longer holds every timelock role it was given.
    Roles {
        /// The multisig.
        multisig: Address,
    },
    /// A configured batch signer is not authorised.
    Signer(Address),
    /// A configured token is not enabled with these limits.
    Token {
        /// The configured limits.
        configured: TokenLimits,
        /// Whether it is enabled on chain.
        enabled: bool,
        /// The on-chain maximum payment.
        max_payment: u128,
        /// The on-chain daily cap.
        daily_cap: u128,
    },
    /// The guardian differs.
    Guardian {
        /// On chain.
        deployed: Address,
        /// Configured.
        configured: Address,
    },
    /// The proxy runs code other than this build's implementation.
    Implementation {
        /// The implementation the proxy points at.
        deployed: Address,
        /// Where this build's implementation would be.
        built: Address,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Owners {
                deployed,
                configured,
            } => write!(
                f,
                "owners are {} on chain, {} in the config",
                List(deployed),
                List(configured)
            ),
            Self::Threshold {
                deployed,
                configured,
            } => write!(
                f,
                "threshold is {deployed} on chain, {configured} in the config"
            ),
            Self::Delay {
                deployed,
                configured,
            } => write!(
                f,
                "timelock delay is {deployed} s on chain, {configured} s in the config"
            ),
            Self::Roles { multisig } => write!(
                f,
                "the multisig {multisig} no longer holds the timelock's proposer, executor and canceller roles"
            ),
            Self::Signer(signer) => write!(f, "batch signer {signer} is not authorised"),
            Self::Token {
                configured,
                enabled,
                max_payment,
                daily_cap,
            } => write!(
                f,
                "{} is configured, on chain it is {} with max payment {max_payment}, daily cap {daily_cap}",
                TokenDisplay(configured),
                if *enabled { "enabled" } else { "not enabled" }
            ),
            Self::Guardian {
                deployed,
                configured,
            } => write!(
                f,
                "guardian is {deployed} on chain, {configured} in the config"
            ),
            Self::Implementation { deployed, built } => write!(
                f,
                "the proxy runs the implementation {deployed}, not this build's ({built})"
            ),
        }
    }
}

struct List<'a>(&'a [Address]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str("]")
    }
}

/// The changes of a [`DeployError::NeedsMultisig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes(pub Vec<Change>);

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, change) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{change}")?;
        }
        Ok(())
    }
}

/// Why a deployment run stopped.
#[derive(Debug, Error)]
pub enum DeployError {
    /// The RPC URL does not parse.
    #[error("RPC endpoint {0:?} is not a valid URL; use http(s)://host:port")]
    BadUrl(String),
    /// An RPC call failed.
    #[error("RPC call {what} failed: {source}; check the endpoint")]
    Rpc {
        /// What was asked.
        what: &'static str,
        /// The transport's failure.
        source: TransportError,
    },
    /// A contract view call failed.
    #[error("reading {what} from {address} failed: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// The contract.
        address: Address,
        /// The call's failure.
        source: Box<alloy::contract::Error>,
    },
    /// The endpoint serves another chain than the configuration's.
    #[error(
        "the config is for chain {configured} but the RPC endpoint serves chain {served}; point --rpc at chain {configured} or use that chain's config"
    )]
    WrongChain {
        /// `chain_id` in the config.
        configured: u64,
        /// The endpoint's chain id.
        served: u64,
    },
    /// The deployer key is not the configured deployer.
    #[error(
        "the deployer key is {signer}, but the config's deployer.address is {configured}; use that key (the proxy's address depends on it)"
    )]
    WrongDeployer {
        /// `deployer.address` in the config.
        configured: Address,
        /// The key's address.
        signer: Address,
    },
    /// The chain has no deterministic deployment proxy.
    #[error(
        "no code at the CREATE2 deployer {CREATE2_FACTORY} on chain {chain_id}; deploy the deterministic deployment proxy (github.com/Arachnid/deterministic-deployment-proxy) there first"
    )]
    NoFactory {
        /// The chain.
        chain_id: u64,
    },
    /// Something else sits at the factory's address.
    #[error(
        "the code at {CREATE2_FACTORY} on chain {chain_id} is not the deterministic deployment proxy; addresses would not be what settle computes"
    )]
    FactoryMismatch {
        /// The chain.
        chain_id: u64,
    },
    /// A contract's address holds other code than this build's.
    #[error(
        "the code at {address} is not this build's {contract}; check that contracts/artifacts are the ones it was deployed from"
    )]
    UnexpectedCode {
        /// The contract expected.
        contract: Contract,
        /// Its address.
        address: Address,
    },
    /// The factory transaction succeeded but the contract is not where CREATE2 says.
    #[error(
        "transaction {tx} succeeded but {contract} is not at its CREATE2 address {address}; the factory at {CREATE2_FACTORY} does not create where settle computes"
    )]
    NotCreated {
        /// The contract.
        contract: Contract,
        /// Its predicted address.
        address: Address,
        /// The factory transaction.
        tx: TxHash,
    },
    /// A transaction could not be sent (its gas estimate reverted, the node refused it, ...).
    #[error("cannot send \"{step}\": {source}")]
    Send {
        /// The step.
        step: Box<Step>,
        /// The failure.
        source: TransportError,
    },
    /// No receipt came back.
    #[error(
        "no receipt for \"{step}\": {source}; the transaction may still be mined, run deploy again to resume"
    )]
    Receipt {
        /// The step.
        step: Box<Step>,
        /// The failure.
        source: PendingTransactionError,
    },
    /// A transaction reverted.
    #[error("\"{step}\" reverted in transaction {tx}")]
    Reverted {
        /// The step.
        step: Box<Step>,
        /// The transaction.
        tx: TxHash,
    },
    /// A manifest could not be read or written.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest records another live deployment than the one this config describes.
    #[error(
        "{path} records the deployment at {recorded} (salt {recorded_salt}, deployer {recorded_deployer}), but this config and key deploy to {planned}; use the recorded salt and deployer, or move the manifest away to deploy a second system"
    )]
    ManifestConflict {
        /// The manifest.
        path: PathBuf,
        /// The recorded proxy.
        recorded: Address,
        /// The recorded salt.
        recorded_salt: B256,
        /// The recorded deployer.
        recorded_deployer: Address,
        /// The proxy this run would create.
        planned: Address,
    },
    /// A recorded deployment was left half-wired with another build.
    #[error(
        "the deployment at {proxy} was left unfinished (still owned by the deployer) with another build of SplitSettlement; finish it with the build it was started with, or move the manifest away to deploy afresh"
    )]
    UnfinishedDeployment {
        /// The proxy.
        proxy: Address,
    },
    /// The proxy's owner is neither the deployer nor a known timelock.
    #[error(
        "the proxy {proxy} is owned by {owner}, which is neither the deployer nor the timelock of this config or of the manifest; check the manifest and the config"
    )]
    UnknownOwner {
        /// The proxy.
        proxy: Address,
        /// Its owner.
        owner: Address,
    },
    /// The configuration asks for changes to a deployment the timelock owns.
    #[error(
        "the deployment at {proxy} is governed by the timelock {timelock}; {count} change(s) must go through the multisig {multisig} (settle upgrade propose/approve/execute): {changes}",
        count = changes.0.len()
    )]
    NeedsMultisig {
        /// The proxy.
        proxy: Address,
        /// The multisig that must approve.
        multisig: Address,
        /// The timelock that owns the proxy.
        timelock: Address,
        /// What differs.
        changes: Changes,
    },
    /// The proxy's creation block could not be found.
    #[error(
        "cannot find the block the proxy {proxy} was created in (no Upgraded event); restore the deployment manifest"
    )]
    DeploymentBlockUnknown {
        /// The proxy.
        proxy: Address,
    },
}
