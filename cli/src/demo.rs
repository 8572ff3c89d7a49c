//! The whole system on one machine, with a demo: what `./scripts/dev` runs.
//!
//! On top of anvil and Postgres ([`crate::dev::DevStack`]) it makes a fresh
//! `settle_dev` database, makes sure the SoftHSM2 token `settle-dev` holds a
//! batch key and a sender key, deploys the contracts through the deploy
//! library, writes `.settle/dev/settle.toml`, and runs relayer, indexer and
//! API in this process. Then it issues demo API keys and submits the demo
//! payments through the REST API. It waits until they are settled and
//! indexed, reconciles, and prints a summary. With `--exit` it stops there:
//! the exit status is 0 only if every payment settled and the reconciliation
//! is clean, and the last line is the summary as JSON.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use serde_json::{Value, json};
use settle_api::{Role, auth};
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::{
    config,
    dev::{DevArgs, DevStack},
    keys::{Hsm, PIN_ENV, TokenArgs},
    serve,
};

/// Its batch key.
pub const BATCH_KEY: &str = "batch-1";
/// Its sender key.
pub const SENDER_KEY: &str = "sender-1";
/// Merchants the demo pays.
const MERCHANTS: u32 = 50;
/// The platform's fee payee in the demo.
const PLATFORM: Address = Address::repeat_byte(0xc0);
/// A referrer in the demo.
const REFERRER: Address = Address::repeat_byte(0x7e);

/// The summary printed at the end (and as the last line with `--exit`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Payments submitted.
    pub requested: u64,
    /// Payments settled.
    pub settled: u64,
    /// Gas used by the relayer's transactions, per settled payment.
    pub gas_per_payment: u64,
    /// `clean` or the number of findings.
    pub reconciliation: String,
    /// The API.
    pub api: String,
    /// The chain.
    pub rpc: String,
    /// The contract.
    pub contract: String,
    /// Seconds from the first submission to everything indexed.
    pub seconds: f64,
}

fn demo_merchant(i: u32) -> Address {
    let mut bytes = [0u8; 20];
    bytes[0] = 0x3e;
    bytes[16..].copy_from_slice(&i.to_be_bytes());
    Address::from(bytes)
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = match base.rsplit_once('/') {
        Some((prefix, _))
            if prefix.contains("://")
                && prefix.len() > prefix.find("://").unwrap_or(0).saturating_add(3) =>
        {
            prefix
        }
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

pub(crate) async fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "--dev-database {name:?} must be lower-case letters, digits and underscores"
    );
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(with_database(admin_url, name))
}

pub(crate) struct TomlInputs<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) database_url: &'a str,
    pub(crate) rpc: &'a str,
    pub(crate) contract: Address,
    pub(crate) deployment_block: u64,
    pub(crate) module: &'a Path,
    pub(crate) token: &'a str,
    pub(crate) api_port: u16,
}

pub(crate) fn settle_toml(i: &TomlInputs<'_>) -> String {
    let TomlInputs {
        database_url,
        rpc,
        contract,
        deployment_block,
        token,
        api_port,
        ..
    } = *i;
    format!(
        r#"# Written by `settle dev`; `settle serve --config {dir}/settle.toml` runs the same system.
[database]
url = "{database_url}"

[chain]
chain_id = 31337
rpc = ["{rpc}"]
contract = "{contract}"
deployment_block = {deployment_block}

[hsm]
module = "{module}"
token = "{token}"
batch_keys = ["{BATCH_KEY}"]
sender_key = "{SENDER_KEY}"

[relayer]
max_payments = 500
max_wait_secs = 1
confirmations = 1
interval_ms = 200

[indexer]
confirmations = 0
poll_interval_ms = 200
reconcile_every_secs = 60

[api]
listen = "127.0.0.1:{api_port}"
rate_per_sec = 1000
burst = 2000

[intake]
max_payees = 8
tokens = [{{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000000000000000000000" }}]
default_tier = "standard"

[intake.tiers.standard]
max_payment = "1000000000000000000000"
daily_cap = "1000000000000000000000000"
"#,
        dir = i.dir.display(),
        module = i.module.display(),
    )
}

/// Deploys the contracts on the dev chain: anvil account 0 deploys, accounts 1 to 3 own the
/// multisig (2 of 3) behind a 60-second timelock, account 0 is the guardian, `signers` sign
/// batches and `tokens` are enabled (`Address::ZERO`: the native coin).
pub(crate) async fn deploy_dev(
    dir: &Path,
    rpc: &str,
    dev_keys: &[PrivateKeySigner],
    signers: &[Address],
    tokens: &[Address],
) -> anyhow::Result<settle_deploy::Manifest> {
    let dir = dir.join("deployments");
    // A fresh anvil every start: an old manifest describes a chain that is gone.
    let _ = std::fs::remove_dir_all(&dir);
    let deployer = dev_keys
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("anvil gave no development accounts"))?;
    let config = settle_deploy::config::DeployConfig {
        chain_id: 31337,
        salt: alloy::primitives::keccak256("settle-dev"),
        governance: settle_deploy::config::Governance {
            owners: dev_keys
                .iter()
                .skip(1)
                .take(3)
                .map(PrivateKeySigner::address)
                .collect(),
            threshold: 2,
            min_delay: 60,
            guardian: deployer.address(),
        },
        signers: signers.to_vec(),
        tokens: tokens
            .iter()
            .map(|&token| settle_deploy::config::TokenLimits {
                token,
                max_payment: 10u128.pow(21),
                daily_cap: 10u128.pow(24),
            })
            .collect(),
        deployer: settle_deploy::config::DeployerConfig::default(),
    };
    let outcome = settle_deploy::deploy(
        &config,
        rpc,
        deployer,
        &settle_deploy::DeployOptions::new(dir),
    )
    .await?;
    Ok(outcome.manifest)
}

/// Runs `settle dev`.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if std::env::var_os("SOFTHSM2_CONF").is_none() {
        anyhow::bail!(
            "SOFTHSM2_CONF is not set; run ./scripts/dev (it points it at .settle/softhsm) or export it"
        );
    }
    let stack = DevStack::start(&args).await?;
    let rpc_url = stack.rpc_endpoint();
    let database_url = fresh_database(&args.database_url, &args.dev_database).await?;
    let api_port = if args.api_port == 0 {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        args.api_port
    };
    say(&format!(
        "anvil      {rpc_url} (chain id {})",
        stack.chain_id()
    ));
    say(&format!(
        "postgres   {} (fresh database {})",
        crate::dev::redact(&database_url),
        args.dev_database
    ));

    // Keys in the HSM: made once, kept across runs.
    let (module, hsm) = dev_keys_on(&args.token, say)?;
    let batch_key = hsm.address_of(BATCH_KEY)?;
    let sender_key = hsm.address_of(SENDER_KEY)?;

    // Contracts.
    let dev_keys: Vec<PrivateKeySigner> = stack.signers().to_vec();
    let deployed = deploy_dev(
        &args.dir,
        &rpc_url,
        &dev_keys,
        &[batch_key],
        &[Address::ZERO],
    )
    .await?;
    say(&format!(
        "deployed   proxy {} (owner: timelock {}, multisig {} of {} owners, delay {} s)",
        deployed.settlement,
        deployed.timelock,
        deployed.threshold,
        deployed.owners.len(),
        deployed.min_delay
    ));
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(dev_keys[4].clone()))
        .connect_http(rpc_url.parse()?);
    let _: () = provider
        .raw_request(
            "anvil_setBalance".into(),
            (sender_key, U256::from(10u128.pow(22))),
        )
        .await?;
    let funder = dev_keys[4].address();
    let settlement = settle_contracts::SplitSettlement::new(deployed.settlement, &provider);
    let deposit = settlement
        .depositNative(funder)
        .value(U256::from(10u128.pow(21)))
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(deposit.status(), "the demo funder's deposit reverted");

    // The configuration, written for reuse, and the parts in this process.
    std::fs::create_dir_all(&args.dir)?;
    let path = args.dir.join("settle.toml");
    let text = settle_toml(&TomlInputs {
        dir: &args.dir,
        database_url: &database_url,
        rpc: &rpc_url,
        contract: deployed.settlement,
        deployment_block: deployed.deployed_block,
        module: &module,
        token: &args.token,
        api_port,
    });
    std::fs::write(&path, &text)?;
    let settings = config::parse(&path.display().to_string(), &text, None)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            crate::dev::shutdown().await;
            let _ = stop_tx.send(true);
        });
    }
    let api_url = format!("http://127.0.0.1:{api_port}");
    let parts = serve::run_parts(
        &settings,
        None,
        std::env::var(PIN_ENV).ok(),
        Arc::clone(&stop_tx),
        stop_rx.clone(),
    );
    let driver = async {
        let outcome = drive(&settings, &api_url, &rpc_url, funder, args.demo).await;
        if !args.exit && outcome.is_ok() {
            say("running; press Ctrl-C to stop");
        }
        if args.exit || outcome.is_err() {
            let _ = stop_tx.send(true);
        }
        outcome
    };
    let (served, summary) = tokio::join!(parts, driver);
    served?;
    let summary = summary?;
    drop(stack);
    if args.exit {
        println!("{}", serde_json::to_string(&summary)?);
        let clean = summary.settled == summary.requested && summary.reconciliation == "clean";
        anyhow::ensure!(
            clean,
            "not every payment settled, or reconciliation found problems"
        );
    } else {
        say("stopped");
    }
    Ok(())
}

/// Opens the token `token` (module from `SETTLE_PKCS11_MODULE`, PIN from `SETTLE_HSM_PIN`) and makes
/// the batch and sender keys the dev stack uses if they are missing, telling `tell` about each.
pub(crate) fn dev_keys_on(token: &str, tell: fn(&str)) -> anyhow::Result<(PathBuf, Hsm)> {
    let module = PathBuf::from(
        std::env::var("SETTLE_PKCS11_MODULE")
            .unwrap_or_else(|_| crate::keys::DEFAULT_MODULE.to_owned()),
    );
    let hsm = Hsm::open(
        &TokenArgs {
            token: token.to_owned(),
            module: module.clone(),
        },
        std::env::var(PIN_ENV).ok(),
    )?;
    let labels: Vec<String> = hsm.list()?.into_iter().map(|k| k.label).collect();
    for label in [BATCH_KEY, SENDER_KEY] {
        if !labels.iter().any(|l| l == label) {
            let address = hsm.create(label)?;
            tell(&format!("created HSM key {label} {address}"));
        }
    }
    Ok((module, hsm))
}

/// Polls `{api}/readyz` until it answers 200 (for up to 60 s); `alive` fails the wait early when
/// what serves the API has stopped.
pub(crate) async fn wait_ready(
    client: &reqwest::Client,
    api: &str,
    alive: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{api}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        alive()?;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the API did not become ready at {api}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn say(line: &str) {
    println!("settle dev: {line}");
}

/// Keys, the demo through the REST API, the wait, reconciliation and the summary.
async fn drive(
    settings: &config::Settings,
    api: &str,
    rpc: &str,
    funder: Address,
    demo: u64,
) -> anyhow::Result<Summary> {
    let client = reqwest::Client::new();
    wait_ready(&client, api, || Ok(())).await?;
    let pool = serve::database(settings).await?;
    let integrator = auth::create_key(&pool, Role::Integrator, "demo-shop").await?;
    let merchant =
        auth::create_key(&pool, Role::Merchant, &demo_merchant(0).to_checksum(None)).await?;
    let auditor = auth::create_key(&pool, Role::Auditor, "demo-auditor").await?;
    let other_merchant =
        auth::create_key(&pool, Role::Merchant, &demo_merchant(1).to_checksum(None)).await?;
    let admin = auth::create_key(&pool, Role::Admin, "demo-admin").await?;
    say(&format!("api        {api} (docs {api}/docs)"));
    say(&format!("web        {api}/ui/ (log in with a key below)"));
    say(&format!(
        "key        integrator demo-shop: {}",
        integrator.token
    ));
    say(&format!(
        "key        merchant {}: {}",
        demo_merchant(0).to_checksum(None),
        merchant.token
    ));
    say(&format!(
        "key        auditor demo-auditor: {}",
        auditor.token
    ));
    say(&format!(
        "key        merchant {}: {}",
        demo_merchant(1).to_checksum(None),
        other_merchant.token
    ));
    say(&format!("key        admin demo-admin: {}", admin.token));

    let submitted_at = Instant::now();
    let mut i = 0u64;
    while i < demo {
        let chunk: Vec<Value> = (i..demo.min(i.saturating_add(500)))
            .map(|n| {
                let m = u32::try_from(n.checked_rem(u64::from(MERCHANTS)).unwrap_or(0)).unwrap_or(0);
                json!({
                    "idempotency_key": format!("demo-{n}"),
                    "chain_id": 31337,
                    "token": Address::ZERO.to_checksum(None),
                    "funder": funder.to_checksum(None),
                    "amount": (1_000_000_000_000u64.saturating_add(n.saturating_mul(7_919))).to_string(),
                    "splits": [
                        {"payee": demo_merchant(m).to_checksum(None), "share": 900_000},
                        {"payee": PLATFORM.to_checksum(None), "share": 70_000},
                        {"payee": REFERRER.to_checksum(None), "share": 30_000},
                    ],
                })
            })
            .collect();
        let sent = u64::try_from(chunk.len()).unwrap_or(0);
        let response = client
            .post(format!("{api}/v1/payments/bulk"))
            .bearer_auth(&integrator.token)
            .json(&json!({ "payments": chunk }))
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "the bulk submission answered {status}: {}",
            response.text().await?
        );
        i = i.saturating_add(sent);
    }
    say(&format!(
        "submitted  {demo} split payments through POST /v1/payments/bulk"
    ));

    // Settled (the relayer's account) and indexed (the indexer's), then reconciled.
    let chain_id = settings.file.chain.chain_id;
    let rpc_pool = serve::rpc(settings)?;
    let deadline = Instant::now()
        .checked_add(Duration::from_secs(600))
        .unwrap_or_else(Instant::now);
    let (settled, gas) = loop {
        let snapshot =
            settle_relayer::metrics::collect(&pool, &rpc_pool, &[], U256::ZERO, (0, 0)).await?;
        let settled = snapshot.instructions.get("settled").copied().unwrap_or(0);
        let batches = snapshot.batches.get("settled").copied().unwrap_or(0);
        let indexed =
            settle_indexer::reconcile::indexed_batch_count(&pool, chain_id, settings.contract)
                .await?;
        if u64::try_from(settled).unwrap_or(0) >= demo && indexed >= batches {
            break (u64::try_from(settled).unwrap_or(0), snapshot.gas_used);
        }
        if Instant::now() > deadline {
            break (u64::try_from(settled).unwrap_or(0), snapshot.gas_used);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let run =
        settle_indexer::reconcile::reconcile(&pool, &rpc_pool, chain_id, settings.contract).await?;
    let summary = Summary {
        requested: demo,
        settled,
        gas_per_payment: u64::try_from(gas.checked_div(u128::from(settled.max(1))).unwrap_or(0))
            .unwrap_or(u64::MAX),
        reconciliation: if run.findings.is_empty() {
            "clean".to_owned()
        } else {
            format!("{} findings", run.findings.len())
        },
        api: api.to_owned(),
        rpc: rpc.to_owned(),
        contract: settings.contract.to_checksum(None),
        seconds: submitted_at.elapsed().as_secs_f64(),
    };
    say(&format!(
        "settled    {}/{} payments in {:.1} s, {} gas per payment",
        summary.settled, summary.requested, summary.seconds, summary.gas_per_payment
    ));
    say(&format!("reconcile  {}", run.summary()));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "settle_dev"),
            "postgres://postgres@127.0.0.1:5432/settle_dev"
        );
        assert_eq!(
            with_database("postgres://u:p@db/app?sslmode=disable", "settle_dev"),
            "postgres://u:p@db/settle_dev?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db", "settle_dev"),
            "postgres://db/settle_dev"
        );
    }
}
