//! `settle upgrade`: upgrade the settlement proxy through the multisig and the timelock.
//!
//! `propose` writes a proposal file holding both multisig operations (the timelock schedule and,
//! for after the delay, its execution); each owner runs `approve` on it, offline if they like;
//! anyone runs `execute`, once to schedule and once more after the delay. Keys come from an
//! environment variable or a PKCS#11 token, never from a flag value. The work is
//! [`settle_deploy::upgrade`]; this parses, loads keys and prints.

use std::path::{Path, PathBuf};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use clap::{Args, Subcommand};
use settle_deploy::{
    Manifest, ManifestError, Proposal, UpgradeError,
    config::is_env_name,
    upgrade::{self, Executed, LayoutError, TimelockState},
};
use thiserror::Error;

use crate::keys::{DEFAULT_MODULE, Hsm, KeysError, MODULE_ENV, PIN_ENV, TokenArgs};

/// The committed artifact whose storage layout a new one must keep.
const ARTIFACT: &str = "contracts/artifacts/SplitSettlement.json";

/// Options of `settle upgrade`.
#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// The step.
    #[command(subcommand)]
    pub command: UpgradeCommand,
}

/// The steps of an upgrade.
#[derive(Debug, Clone, Subcommand)]
pub enum UpgradeCommand {
    /// Check a new implementation and write a proposal file for the owners to sign.
    Propose(ProposeArgs),
    /// Sign a proposal with an owner's key and add the signature to the file.
    Approve(ApproveArgs),
    /// Send the next step: the timelock schedule, or, after the delay, the upgrade.
    Execute(ExecuteArgs),
    /// Show signatures, the timelock's state and the proxy's implementation.
    Status(StatusArgs),
}

/// Options of `settle upgrade propose`.
#[derive(Debug, Clone, Args)]
pub struct ProposeArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The deployment manifest, e.g. deploy/deployments/31337.json.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The new SplitSettlement implementation (already deployed).
    #[arg(long, value_name = "ADDRESS")]
    pub implementation: Address,
    /// The new build's solc storage layout (an artifact or a `storageLayout` object), checked
    /// against the committed artifact's.
    #[arg(long, value_name = "FILE")]
    pub new_layout: Option<PathBuf>,
    /// The committed artifact the new layout is compared with.
    #[arg(long, value_name = "FILE", default_value = ARTIFACT)]
    pub old_layout: PathBuf,
    /// Where to write the proposal.
    #[arg(long, value_name = "FILE", default_value = "proposal.json")]
    pub out: PathBuf,
}

/// Options of `settle upgrade approve`.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// The proposal file; the signature is added to it.
    #[arg(long, value_name = "FILE")]
    pub proposal: PathBuf,
    /// Environment variable holding the owner's hex private key (development chains only).
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "owner_hsm_token",
        required_unless_present = "owner_hsm_token"
    )]
    pub owner_key_env: Option<String>,
    /// Label of the PKCS#11 token holding the owner's key (user PIN from SETTLE_HSM_PIN).
    #[arg(long, value_name = "TOKEN", requires = "owner_hsm_label")]
    pub owner_hsm_token: Option<String>,
    /// Label of the owner's key pair on that token.
    #[arg(long, value_name = "KEY", requires = "owner_hsm_token")]
    pub owner_hsm_label: Option<String>,
    /// The PKCS#11 module (shared library), for an HSM key.
    #[arg(long, env = MODULE_ENV, default_value = DEFAULT_MODULE)]
    pub module: PathBuf,
}

/// Options of `settle upgrade execute`.
#[derive(Debug, Clone, Args)]
pub struct ExecuteArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The approved proposal file.
    #[arg(long, value_name = "FILE")]
    pub proposal: PathBuf,
    /// Environment variable holding the hex private key that pays for the transaction.
    #[arg(long, value_name = "VAR")]
    pub sender_key_env: String,
}

/// Options of `settle upgrade status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The proposal file.
    #[arg(long, value_name = "FILE")]
    pub proposal: PathBuf,
}

/// Why `settle upgrade` stopped.
#[derive(Debug, Error)]
pub enum UpgradeCommandError {
    /// A key flag names no environment variable.
    #[error(
        "{flag} {name:?} is not an environment variable name; pass the variable's name, not the key"
    )]
    BadKeyEnvName {
        /// The flag.
        flag: &'static str,
        /// What was given.
        name: String,
    },
    /// The key's environment variable is not set.
    #[error("${0} is not set; export the hex private key in it")]
    KeyEnvNotSet(String),
    /// The key's environment variable holds no private key.
    #[error("${0} does not hold a hex private key (64 hex digits, 0x optional)")]
    KeyEnvInvalid(String),
    /// The HSM key could not be opened.
    #[error("{0}")]
    Hsm(KeysError),
    /// The manifest is unusable.
    #[error("{0}")]
    Manifest(ManifestError),
    /// A layout file could not be read.
    #[error("{path}: {reason}")]
    LayoutFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The upgrade step failed.
    #[error("{0}")]
    Upgrade(UpgradeError),
}

impl From<UpgradeError> for UpgradeCommandError {
    fn from(e: UpgradeError) -> Self {
        Self::Upgrade(e)
    }
}

impl From<LayoutError> for UpgradeCommandError {
    fn from(e: LayoutError) -> Self {
        Self::Upgrade(UpgradeError::Layout(e))
    }
}

/// A local signer from the hex key in `$var`.
fn env_signer(
    flag: &'static str,
    var: &str,
    value: Option<String>,
) -> Result<PrivateKeySigner, UpgradeCommandError> {
    if !is_env_name(var) {
        return Err(UpgradeCommandError::BadKeyEnvName {
            flag,
            name: var.to_owned(),
        });
    }
    let value = value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| UpgradeCommandError::KeyEnvNotSet(var.to_owned()))?;
    value
        .trim()
        .parse()
        .map_err(|_| UpgradeCommandError::KeyEnvInvalid(var.to_owned()))
}

fn read_json(path: &Path) -> Result<serde_json::Value, UpgradeCommandError> {
    let text = std::fs::read_to_string(path).map_err(|e| UpgradeCommandError::LayoutFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| UpgradeCommandError::LayoutFile {
        path: path.to_owned(),
        reason: format!("not JSON: {e}"),
    })
}

/// Reads the chain id a manifest claims, to check it against the endpoint.
fn manifest_chain(path: &Path) -> Result<u64, UpgradeCommandError> {
    let parse = |source| {
        UpgradeCommandError::Manifest(ManifestError::Parse {
            path: path.to_owned(),
            source,
        })
    };
    let text = std::fs::read_to_string(path).map_err(|source| {
        UpgradeCommandError::Manifest(ManifestError::Io {
            path: path.to_owned(),
            source,
        })
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(parse)?;
    serde_json::from_value(value.get("chainId").cloned().unwrap_or_default()).map_err(parse)
}

async fn propose(args: ProposeArgs) -> Result<(), UpgradeCommandError> {
    if let Some(new) = &args.new_layout {
        upgrade::check_layout(
            &read_json(&args.old_layout)?,
            &args.old_layout,
            &read_json(new)?,
            new,
        )?;
    }
    let chain_id = manifest_chain(&args.manifest)?;
    let manifest =
        Manifest::read(&args.manifest, chain_id).map_err(UpgradeCommandError::Manifest)?;
    let provider = upgrade::connect(&args.rpc)?;
    let proposal =
        upgrade::propose(&provider, &manifest, &args.manifest, args.implementation).await?;
    proposal.write(&args.out)?;
    println!(
        "proposed: upgrade proxy {} from {} to {} (version {}) on chain {}",
        proposal.proxy,
        proposal.previous_implementation,
        proposal.implementation,
        proposal.version.as_deref().unwrap_or("unknown"),
        proposal.chain_id
    );
    println!(
        "{} of the owners must run `settle upgrade approve --proposal {}`; proposal {} written",
        proposal.threshold,
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

async fn approve(args: ApproveArgs) -> Result<(), UpgradeCommandError> {
    let mut proposal = Proposal::read(&args.proposal)?;
    let owner = match (
        &args.owner_key_env,
        &args.owner_hsm_token,
        &args.owner_hsm_label,
    ) {
        (Some(var), _, _) => {
            let signer = env_signer("--owner-key-env", var, std::env::var(var).ok())?;
            proposal.approve(&signer).await?;
            signer.address()
        }
        (None, Some(token), Some(label)) => {
            let hsm = Hsm::open(
                &TokenArgs {
                    token: token.clone(),
                    module: args.module.clone(),
                },
                std::env::var(PIN_ENV).ok(),
            )
            .map_err(UpgradeCommandError::Hsm)?;
            let signer = hsm.signer(label, 1).map_err(UpgradeCommandError::Hsm)?;
            proposal.approve(&signer).await?;
            alloy::signers::Signer::address(&signer)
        }
        // clap requires one of the two sources.
        _ => return Err(UpgradeCommandError::KeyEnvNotSet("--owner-key-env".into())),
    };
    proposal.write(&args.proposal)?;
    println!(
        "approved by {owner}: {} of {} signature(s); proposal {} updated",
        proposal.schedule.signatures.len(),
        proposal.threshold,
        args.proposal.display()
    );
    Ok(())
}

async fn execute(args: ExecuteArgs) -> Result<(), UpgradeCommandError> {
    let proposal = Proposal::read(&args.proposal)?;
    let sender = env_signer(
        "--sender-key-env",
        &args.sender_key_env,
        std::env::var(&args.sender_key_env).ok(),
    )?;
    let provider = upgrade::connect_sender(&args.rpc, sender)?;
    match upgrade::execute(&provider, &proposal).await? {
        Executed::Scheduled { tx, ready_at } => println!(
            "scheduled in transaction {tx}; run `settle upgrade execute` again from {}",
            upgrade::utc(ready_at)
        ),
        Executed::Upgraded { tx } => println!(
            "upgraded: proxy {} runs {} (transaction {tx})",
            proposal.proxy, proposal.implementation
        ),
    }
    Ok(())
}

async fn status(args: StatusArgs) -> Result<(), UpgradeCommandError> {
    let proposal = Proposal::read(&args.proposal)?;
    let provider = upgrade::connect(&args.rpc)?;
    let status = upgrade::status(&provider, &proposal).await?;
    println!(
        "upgrade of proxy {} to {} on chain {}",
        proposal.proxy, proposal.implementation, proposal.chain_id
    );
    println!(
        "signatures: {}/{} (schedule), {}/{} (execute)",
        status.schedule_signatures, status.threshold, status.execute_signatures, status.threshold
    );
    let timelock = match status.timelock {
        TimelockState::Unscheduled => "not scheduled".to_owned(),
        TimelockState::Scheduled { ready_at } if ready_at <= status.now => {
            format!("scheduled, ready since {}", upgrade::utc(ready_at))
        }
        TimelockState::Scheduled { ready_at } => format!(
            "scheduled, ready at {}, in {} s",
            upgrade::utc(ready_at),
            ready_at.saturating_sub(status.now)
        ),
        TimelockState::Done => "executed".to_owned(),
    };
    println!("timelock: {timelock}");
    println!("proxy implementation: {}", status.implementation);
    Ok(())
}

/// Runs `settle upgrade`.
pub async fn run(args: UpgradeArgs) -> anyhow::Result<()> {
    match args.command {
        UpgradeCommand::Propose(args) => propose(args).await?,
        UpgradeCommand::Approve(args) => approve(args).await?,
        UpgradeCommand::Execute(args) => execute(args).await?,
        UpgradeCommand::Status(args) => status(args).await?,
    }
    Ok(())
}
