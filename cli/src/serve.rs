//! `settle serve`: the long-running parts, configured by `settle.toml`.
//!
//! Today it runs the relayer (batching, HSM signing, submission); the indexer
//! and the API join it as they land. It stops cleanly on Ctrl-C or SIGTERM;
//! killed any other way, the next start resumes from the database.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use settle_relayer::{
    RpcConfig, RpcPool,
    intake::MIGRATOR,
    keys::{KeyRegistry, KeyRole},
    service::Relayer,
};
use sqlx::postgres::PgPoolOptions;

use crate::{
    config,
    keys::{Hsm, PIN_ENV, TokenArgs},
};

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Batching, signing and submission.
    Relayer,
}

/// Options of `settle serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, env = "SETTLE_CONFIG", default_value = "settle.toml")]
    pub config: PathBuf,
    /// Run only this part (default: every part that exists).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = config::load(&args.config, std::env::var("SETTLE_DATABASE_URL").ok())?;
    let file = &settings.file;
    let hsm = Hsm::open(
        &TokenArgs {
            token: file.hsm.token.clone(),
            module: PathBuf::from(&file.hsm.module),
        },
        std::env::var(PIN_ENV).ok(),
    )?;
    let batch_keys = file
        .hsm
        .batch_keys
        .iter()
        .map(|label| hsm.signer(label, file.hsm.sessions))
        .collect::<Result<Vec<_>, _>>()?;
    let sender = hsm.signer(&file.hsm.sender_key, file.hsm.sessions)?;

    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&settings.database_url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Postgres at {}: {e}; check database.url or SETTLE_DATABASE_URL",
                crate::dev::redact(&settings.database_url)
            )
        })?;
    MIGRATOR.run(&pool).await?;
    let rpc = RpcPool::new(
        &file.chain.rpc,
        RpcConfig {
            timeout: settings.rpc_timeout,
            ..RpcConfig::default()
        },
    )?;

    // A fresh database has no active batch key yet: the first configured one starts the registry.
    let registry = KeyRegistry::new(pool.clone());
    let (chain_id, contract) = (file.chain.chain_id, settings.contract);
    if registry
        .active(chain_id, contract, KeyRole::Batch)
        .await?
        .is_none()
        && let (Some(label), Some(key)) = (file.hsm.batch_keys.first(), batch_keys.first())
    {
        registry
            .activate(chain_id, contract, KeyRole::Batch, label, key.address())
            .await?;
        tracing::info!(%label, address = %key.address(), "registered the first batch key");
    }

    let relayer = Relayer::start(
        pool.clone(),
        &settings.database_url,
        &rpc,
        batch_keys.iter().collect(),
        &sender,
        settings.relayer,
    )
    .await?;
    tracing::info!(
        chain_id,
        %contract,
        sender = %sender.address(),
        only = ?args.only,
        "relayer running"
    );
    relayer.run(crate::dev::shutdown()).await;
    tracing::info!("stopped");
    Ok(())
}
