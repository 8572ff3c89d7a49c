//! `settle audit`: checks an auditor runs against a live deployment.
//!
//! `verify-deployment` compiles the pinned sources (the shipped job of `scripts/artifacts`, with
//! `contracts/foundry.toml`'s settings and the solcjs shim it pins) and compares the runtime code
//! of the implementation the proxy's ERC-1967 slot names, of the proxy itself and of the
//! manifest's multisig with `eth_getCode`, immutables masked and metadata ignored. It prints one
//! line per contract and fails on any mismatch. The work is [`settle_deploy::verify`].

use std::{path::PathBuf, time::Instant};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::http::reqwest::Url,
};
use clap::{Args, Subcommand};
use settle_deploy::{
    Manifest, ManifestError,
    verify::{self, Target, VerifyError},
};
use thiserror::Error;

/// Options of `settle audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The check.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The audit checks.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Compile the pinned sources and compare the deployed runtime bytecode with them.
    VerifyDeployment(VerifyDeploymentArgs),
}

/// Options of `settle audit verify-deployment`.
#[derive(Debug, Clone, Args)]
pub struct VerifyDeploymentArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The deployment manifest (deploy/deployments/<chain id>.json): its proxy and multisig are
    /// checked, and its chain id must be the endpoint's.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "settlement",
        required_unless_present = "settlement"
    )]
    pub manifest: Option<PathBuf>,
    /// The SplitSettlement proxy, without a manifest (the multisig is then not checked).
    #[arg(long, value_name = "ADDRESS")]
    pub settlement: Option<Address>,
    /// The Foundry project with the pinned sources and foundry.toml.
    #[arg(long, value_name = "DIR", default_value = "contracts")]
    pub contracts: PathBuf,
    /// Where compiler output is cached, keyed by compiler, settings and sources
    /// (default: settle-verify in the system's temporary directory).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Always compile; neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Why `settle audit` stopped.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The manifest is unusable.
    #[error("{0}")]
    Manifest(ManifestError),
    /// Verification could not run.
    #[error("{0}")]
    Verify(VerifyError),
    /// Neither a manifest nor a proxy was named (clap normally refuses this first).
    #[error("name the deployment: pass --manifest FILE or --settlement ADDRESS")]
    NoTarget,
    /// The chain runs other code than the pinned sources compile to.
    #[error(
        "{failed} of {checked} contract(s) differ from the pinned sources; this deployment does not run the code in {contracts}"
    )]
    Mismatch {
        /// Contracts that differ.
        failed: usize,
        /// Contracts checked.
        checked: usize,
        /// The sources compared with.
        contracts: String,
    },
}

impl From<VerifyError> for AuditError {
    fn from(e: VerifyError) -> Self {
        Self::Verify(e)
    }
}

fn read_manifest(path: &PathBuf) -> Result<Manifest, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        AuditError::Manifest(ManifestError::Io {
            path: path.clone(),
            source,
        })
    })?;
    serde_json::from_str(&text).map_err(|source| {
        AuditError::Manifest(ManifestError::Parse {
            path: path.clone(),
            source,
        })
    })
}

fn connect(rpc: &str) -> Result<DynProvider, AuditError> {
    let url: Url = rpc
        .parse()
        .map_err(|_| VerifyError::BadUrl(rpc.to_owned()))?;
    Ok(ProviderBuilder::new().connect_http(url).erased())
}

async fn verify_deployment(args: VerifyDeploymentArgs) -> Result<(), AuditError> {
    let provider = connect(&args.rpc)?;
    let target = match (&args.manifest, args.settlement) {
        (Some(path), _) => {
            let manifest = read_manifest(path)?;
            verify::check_chain(&provider, path, manifest.chain_id).await?;
            Target::from_manifest(&manifest)
        }
        (None, Some(proxy)) => Target {
            proxy,
            multisig: None,
        },
        (None, None) => return Err(AuditError::NoTarget),
    };
    // The chain first: a wrong address fails before the compile.
    let onchain = verify::fetch(&provider, &target).await?;

    let cache_dir = match (args.no_cache, args.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => Some(std::env::temp_dir().join("settle-verify")),
    };
    let started = Instant::now();
    let compiled = verify::compile(&args.contracts, cache_dir.as_deref())?;
    let how = match (&cache_dir, compiled.cached) {
        (Some(dir), true) => format!("from the cache in {}", dir.display()),
        _ => format!("in {:.1} s", started.elapsed().as_secs_f64()),
    };
    println!(
        "compiled {} with solc {} {how}",
        args.contracts.display(),
        compiled.solc_version
    );

    let checks = onchain.check(&compiled)?;
    for check in &checks {
        println!("{check}");
    }
    if target.multisig.is_none() {
        println!("SettleMultisig not checked: pass --manifest to name the multisig");
    }
    let failed = checks.iter().filter(|c| !c.comparison.is_match()).count();
    if failed > 0 {
        return Err(AuditError::Mismatch {
            failed,
            checked: checks.len(),
            contracts: args.contracts.display().to_string(),
        });
    }
    Ok(())
}

/// Runs `settle audit`.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::VerifyDeployment(args) => verify_deployment(args).await?,
    }
    Ok(())
}
