//! The `settle` command's library: parsing, configuration and the commands.
//!
//! It wires the other crates together and owns nothing of its own: no
//! settlement logic, no schema, no keys. Commands validate their
//! configuration up front and fail with one line that names the problem and
//! the fix.

pub mod audit;
pub mod bench;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod dev;
pub mod keys;
pub mod reconcile;
pub mod serve;
pub mod upgrade;

use clap::{Parser, Subcommand};

/// The settle command line.
#[derive(Debug, Parser)]
#[command(
    name = "settle",
    version,
    about = "Split-payment settlement: contracts, relayer, indexer and API"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on this machine with a demo, until Ctrl-C (or `--exit`).
    Dev(dev::DevArgs),
    /// Deploy the contracts a config describes (again: nothing to do), and write the manifest.
    Deploy(deploy::DeployArgs),
    /// Manage the relayer's keys on the HSM and check the signing log.
    Keys(keys::KeysArgs),
    /// Run the relayer, the indexer and the API (or one of them) from settle.toml.
    Serve(serve::ServeArgs),
    /// Reconcile once: relayer intentions vs indexed events vs chain balances; non-zero exit on findings.
    Reconcile(reconcile::ReconcileArgs),
    /// Upgrade the settlement proxy through the multisig and the timelock: propose, approve, execute, status.
    Upgrade(upgrade::UpgradeArgs),
    /// Audit a live deployment: verify-deployment compares its bytecode with the pinned sources.
    Audit(audit::AuditArgs),
    /// Measure gas, indexer, API, end-to-end and signing against ceilings measured in the same run.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Reconcile(args) => reconcile::run(args).await,
        Command::Upgrade(args) => upgrade::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
