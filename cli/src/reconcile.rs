//! `settle reconcile`: one reconciliation run, reported on the terminal and as JSON and CSV files.

use std::path::PathBuf;

use clap::Args;

use crate::{config, serve};

/// Options of `settle reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// The configuration file.
    #[arg(long, env = "SETTLE_CONFIG", default_value = "settle.toml")]
    pub config: PathBuf,
    /// Folder for the JSON and CSV reports.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Compare against what is indexed now, without syncing the indexer first.
    #[arg(long)]
    pub no_sync: bool,
}

/// Runs once; an error (non-zero exit) when there are findings.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let settings = config::load(&args.config, std::env::var("SETTLE_DATABASE_URL").ok())?;
    let pool = serve::database(&settings).await?;
    let rpc = serve::rpc(&settings)?;
    if !args.no_sync {
        let indexer = settle_indexer::Indexer::new(
            pool.clone(),
            std::sync::Arc::clone(&rpc),
            settings.indexer.clone(),
        )?;
        let report = indexer.sync_once().await?;
        tracing::info!(
            indexed_to = report.indexed_to,
            "indexer synced before reconciling"
        );
    }
    let run = settle_indexer::reconcile::reconcile(
        &pool,
        &rpc,
        settings.file.chain.chain_id,
        settings.contract,
    )
    .await?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e}; pass --out to a writable folder",
            args.out.display()
        )
    })?;
    let json = args.out.join(format!("reconciliation-{}.json", run.id));
    let csv = args.out.join(format!("reconciliation-{}.csv", run.id));
    std::fs::write(&json, serde_json::to_vec_pretty(&run)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", json.display()))?;
    std::fs::write(&csv, run.to_csv())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", csv.display()))?;
    println!("{}", run.summary());
    for f in &run.findings {
        println!("  {}: {}", f.kind.as_str(), f.detail);
    }
    println!("reports: {} {}", json.display(), csv.display());
    if run.findings.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} reconciliation findings; see {}",
            run.findings.len(),
            json.display()
        )
    }
}
