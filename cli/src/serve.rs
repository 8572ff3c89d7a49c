//! `settle serve`: the long-running parts, configured by `settle.toml`.
//!
//! It runs the relayer (batching, HSM signing, submission), the indexer (with
//! a reconciliation run every `indexer.reconcile_every_secs`) and the REST
//! API in one process, or one of them alone with `--only`. It stops cleanly on
//! Ctrl-C or SIGTERM; killed any other way, the next start resumes from the
//! database.

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, ValueEnum};
use settle_relayer::{
    HsmSigner, RpcConfig, RpcPool,
    keys::{KeyRegistry, KeyRole},
    service::Relayer,
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::sync::watch;

use crate::{
    config::{self, Settings},
    keys::{Hsm, PIN_ENV, TokenArgs},
};

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Batching, signing and submission.
    Relayer,
    /// Chain following and reconciliation.
    Indexer,
    /// The REST API.
    Api,
}

/// Options of `settle serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, env = "SETTLE_CONFIG", default_value = "settle.toml")]
    pub config: PathBuf,
    /// Run only this part (default: all of them).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

/// Connects to Postgres and runs every part's migrations.
pub async fn database(settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // While the server is unreachable, a request waits this long for a connection, not 30 s.
        .acquire_timeout(Duration::from_secs(5))
        .connect(&settings.database_url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Postgres at {}: {e}; check database.url or SETTLE_DATABASE_URL",
                crate::dev::redact(&settings.database_url)
            )
        })?;
    settle_relayer::intake::MIGRATOR.run(&pool).await?;
    settle_indexer::migrate(&pool).await?;
    settle_api::MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// The chain's endpoints as configured.
pub fn rpc(settings: &Settings) -> anyhow::Result<Arc<RpcPool>> {
    Ok(Arc::new(RpcPool::new(
        &settings.file.chain.rpc,
        RpcConfig {
            timeout: settings.rpc_timeout,
            ..RpcConfig::default()
        },
    )?))
}

/// The API's configuration from the file's.
pub fn api_config(
    settings: &Settings,
    senders: Vec<alloy::primitives::Address>,
) -> settle_api::ApiConfig {
    let api = &settings.file.api;
    settle_api::ApiConfig {
        chain_id: settings.file.chain.chain_id,
        contract: settings.contract,
        intake: settings.intake.clone(),
        limits: settings.limits.clone(),
        default_limits: settings.default_limits,
        rate_per_sec: api.rate_per_sec,
        burst: api.burst,
        max_body_bytes: api.max_body_bytes,
        max_page: api.max_page,
        senders,
        low_balance_wei: settings.low_balance_wei,
    }
}

/// Waits until the watch says stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn run_relayer(
    settings: &Settings,
    pool: &PgPool,
    rpc: &RpcPool,
    keys: &(Vec<HsmSigner>, HsmSigner),
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (batch_keys, sender) = keys;
    // A fresh database has no active batch key yet: the first configured one starts the registry.
    let registry = KeyRegistry::new(pool.clone());
    let (chain_id, contract) = (settings.file.chain.chain_id, settings.contract);
    if registry
        .active(chain_id, contract, KeyRole::Batch)
        .await?
        .is_none()
        && let (Some(label), Some(key)) = (settings.file.hsm.batch_keys.first(), batch_keys.first())
    {
        registry
            .activate(chain_id, contract, KeyRole::Batch, label, key.address())
            .await?;
        tracing::info!(%label, address = %key.address(), "registered the first batch key");
    }
    let relayer = Relayer::start(
        pool.clone(),
        &settings.database_url,
        rpc,
        batch_keys.iter().collect(),
        sender,
        settings.relayer,
    )
    .await?;
    tracing::info!(chain_id, %contract, sender = %sender.address(), "relayer running");
    relayer.run(stopped(stop)).await?;
    Ok(())
}

async fn run_indexer(
    settings: &Settings,
    pool: &PgPool,
    rpc: Arc<RpcPool>,
    indexer: &settle_indexer::Indexer,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let every = settings.file.indexer.reconcile_every_secs;
    let reconciler = async {
        if every == 0 {
            return;
        }
        let mut stop = stop.clone();
        loop {
            tokio::select! {
                () = stopped(stop.clone()) => return,
                () = tokio::time::sleep(Duration::from_secs(every)) => {}
            }
            match settle_indexer::reconcile::reconcile(
                pool,
                &rpc,
                settings.file.chain.chain_id,
                settings.contract,
            )
            .await
            {
                Ok(run) if run.findings.is_empty() => tracing::info!("{}", run.summary()),
                Ok(run) => tracing::warn!("{}", run.summary()),
                Err(e) => tracing::warn!(error = %e, "reconciliation could not run"),
            }
            if *stop.borrow_and_update() {
                return;
            }
        }
    };
    tracing::info!(chain_id = settings.file.chain.chain_id, contract = %settings.contract, "indexer running");
    let (followed, ()) = tokio::join!(indexer.run(stopped(stop.clone())), reconciler);
    followed?;
    Ok(())
}

async fn run_api(
    settings: &Settings,
    pool: &PgPool,
    rpc: Arc<RpcPool>,
    keys: Option<Arc<(Vec<HsmSigner>, HsmSigner)>>,
    indexers: Vec<Arc<settle_indexer::Indexer>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; free the port or set api.listen",
                settings.listen
            )
        })?;
    tracing::info!(listen = %settings.listen, "api serving");
    let senders = keys
        .as_ref()
        .map(|k| vec![k.1.address()])
        .unwrap_or_default();
    // Readiness asks the sender key to sign a fixed digest; metrics add up every key's signatures.
    let probe: Option<settle_api::state::HsmProbe> = keys.clone().map(|k| {
        Arc::new(move || {
            k.1.sign_prehash(&alloy::primitives::B256::repeat_byte(0x5e))
                .map(|_| ())
                .map_err(|e| format!("the sender key cannot sign: {e}"))
        }) as settle_api::state::HsmProbe
    });
    let signing: Option<settle_api::state::SigningStats> = keys.map(|k| {
        Arc::new(move || {
            k.0.iter()
                .chain(std::iter::once(&k.1))
                .fold((0u64, 0u64), |(n, us), key| {
                    let (kn, kus) = key.signing_stats();
                    (n.saturating_add(kn), us.saturating_add(kus))
                })
        }) as settle_api::state::SigningStats
    });
    let extra: Option<settle_api::state::ExtraMetrics> = (!indexers.is_empty()).then(|| {
        Arc::new(move || {
            let all: Vec<_> = indexers.iter().map(|i| i.metrics()).collect();
            settle_indexer::Metrics::render_all(&all)
        }) as settle_api::state::ExtraMetrics
    });
    let state = settle_api::AppState::new(pool.clone(), rpc, api_config(settings, senders), probe)
        .with_metrics(signing, extra);
    // Webhook deliveries run beside the server and stop with it.
    let (served, delivered) = tokio::join!(
        settle_api::serve(listener, state.clone(), stopped(stop.clone())),
        settle_api::webhooks::run(state, stopped(stop)),
    );
    served?;
    delivered?;
    Ok(())
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = config::load(&args.config, std::env::var("SETTLE_DATABASE_URL").ok())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            crate::dev::shutdown().await;
            let _ = stop_tx.send(true);
        });
    }
    run_parts(
        &settings,
        args.only,
        std::env::var(PIN_ENV).ok(),
        stop_tx,
        stop_rx,
    )
    .await
}

/// Runs the parts `only` names (all when `None`) until `stop` turns true; a failing part sets it.
/// `pin` is the HSM user PIN (needed when the relayer runs).
pub async fn run_parts(
    settings: &Settings,
    only: Option<Part>,
    pin: Option<String>,
    stop_tx: Arc<watch::Sender<bool>>,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let wants = |part| only.is_none_or(|o| o == part);
    let file = &settings.file;
    let keys: Option<Arc<(Vec<HsmSigner>, HsmSigner)>> = if wants(Part::Relayer) {
        let hsm = Hsm::open(
            &TokenArgs {
                token: file.hsm.token.clone(),
                module: PathBuf::from(&file.hsm.module),
            },
            pin,
        )?;
        let batch_keys = file
            .hsm
            .batch_keys
            .iter()
            .map(|label| hsm.signer(label, file.hsm.sessions))
            .collect::<Result<Vec<_>, _>>()?;
        Some(Arc::new((
            batch_keys,
            hsm.signer(&file.hsm.sender_key, file.hsm.sessions)?,
        )))
    } else {
        None
    };
    let pool = database(settings).await?;
    let rpc = rpc(settings)?;
    let indexer = if wants(Part::Indexer) {
        Some(Arc::new(settle_indexer::Indexer::new(
            pool.clone(),
            Arc::clone(&rpc),
            settings.indexer.clone(),
        )?))
    } else {
        None
    };
    // `[[indexer.chains]]`: one more indexer per chain, each on its own endpoints.
    let mut others = Vec::new();
    if wants(Part::Indexer) {
        for (config, urls) in &settings.other_chains {
            let endpoints = Arc::new(RpcPool::new(
                urls,
                RpcConfig {
                    timeout: settings.rpc_timeout,
                    ..RpcConfig::default()
                },
            )?);
            others.push(Arc::new(settle_indexer::Indexer::new(
                pool.clone(),
                endpoints,
                config.clone(),
            )?));
        }
    }
    // A part that fails stops the others, so the process exits with its error.
    let stop_all = |result: anyhow::Result<()>| {
        if result.is_err() {
            let _ = stop_tx.send(true);
        }
        result
    };
    let relayer = async {
        stop_all(match &keys {
            Some(keys) => run_relayer(settings, &pool, &rpc, keys, stop_rx.clone()).await,
            None => Ok(()),
        })
    };
    let indexing = async {
        let main = async {
            stop_all(match &indexer {
                Some(indexer) => {
                    run_indexer(settings, &pool, Arc::clone(&rpc), indexer, stop_rx.clone()).await
                }
                None => Ok(()),
            })
        };
        // A chain that fails stops the process too: its error names the chain.
        let followers = futures_util::future::try_join_all(others.iter().map(|other| {
            let stop = stop_rx.clone();
            async move {
                tracing::info!(chain_id = other.chain_id(), "indexer running");
                stop_all(
                    other
                        .run(stopped(stop))
                        .await
                        .map_err(|e| anyhow::anyhow!("indexing chain {}: {e}", other.chain_id())),
                )
            }
        }));
        let (main, followers) = tokio::join!(main, followers);
        main.and(followers.map(|_| ()))
    };
    let api = async {
        stop_all(if wants(Part::Api) {
            run_api(
                settings,
                &pool,
                Arc::clone(&rpc),
                keys.clone(),
                indexer.iter().chain(&others).cloned().collect(),
                stop_rx.clone(),
            )
            .await
        } else {
            Ok(())
        })
    };
    let (r, i, a) = tokio::join!(relayer, indexing, api);
    r?;
    i?;
    a?;
    tracing::info!("stopped");
    Ok(())
}
