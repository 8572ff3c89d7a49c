//! The whole system on a fresh anvil chain, Postgres database and SoftHSM2 token.
//!
//! [`Stack::start`] deploys the contracts as `settle deploy` does (a 2-of-3 multisig behind a
//! timelock of 60 s owns the proxy), funds a funder's deposit, writes a `settle.toml` and starts
//! the API and the indexer in this process (the code of `settle serve`). The relayer runs in this
//! process too, or, with [`Options::relayer_process`], as the built `settle` binary
//! (`settle serve --only relayer`) that the test starts and kills ([`Stack::spawn_relayer`]).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use serde_json::{Value, json};
use settle_api::{Role, auth};
use settle_contracts::SplitSettlement;
use settle_testkit::{FaultProxy, PgCluster, TestChain, TestDb, TestToken, pkcs11, softhsm};
use sqlx::PgPool;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    CHAIN_ID,
    payments::{CHUNK, INTEGRATORS, Ledger, MERCHANTS, integrator_of, payment_json},
};

/// Label of the sender key on the token.
pub const SENDER_KEY: &str = "sender-1";

/// How long any wait for the system may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(150);

/// What a scenario needs of the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Labels of the batch keys created on the token and opened by the relayer; the first is
    /// authorised at deployment and becomes the active key.
    pub batch_keys: Vec<&'static str>,
    /// `relayer.max_payments`.
    pub max_payments: usize,
    /// `relayer.max_in_flight`.
    pub max_in_flight: usize,
    /// `relayer.confirmations`.
    pub confirmations: u64,
    /// Relayer and indexer reach anvil through a [`FaultProxy`] ([`Stack::proxy`]).
    pub fault_proxy: bool,
    /// The database lives on a private Postgres server ([`Stack::cluster`]) that the test may
    /// restart, not on the machine's shared one.
    pub private_postgres: bool,
    /// The relayer is not started in this process; the test runs it as the `settle` binary.
    pub relayer_process: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_keys: vec!["batch-1"],
            max_payments: 25,
            max_in_flight: 4,
            confirmations: 1,
            fault_proxy: false,
            private_postgres: false,
            relayer_process: false,
        }
    }
}

/// A batch key on the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    /// Its label.
    pub label: &'static str,
    /// Its address.
    pub address: Address,
}

/// Parts of `settle serve` running in this process.
#[derive(Debug)]
struct InProcess {
    stop: Arc<watch::Sender<bool>>,
    parts: Vec<JoinHandle<Result<(), String>>>,
}

/// A running system; see the module documentation.
#[derive(Debug)]
pub struct Stack {
    /// The chain.
    pub chain: TestChain,
    /// The token holding every key.
    pub token: TestToken,
    /// The deployment.
    pub manifest: settle_deploy::Manifest,
    /// Where the manifest was written.
    pub manifest_path: PathBuf,
    /// The settlement proxy.
    pub contract: Address,
    /// Whose deposit funds every payment (anvil account 4).
    pub funder: Address,
    /// The batch keys, in [`Options::batch_keys`] order.
    pub batch_keys: Vec<BatchKey>,
    /// The relayer's sender key.
    pub sender: Address,
    /// The configuration every part runs with.
    pub settings: settle::config::Settings,
    /// The configuration file (for the `settle` binary).
    pub config_path: PathBuf,
    /// The database, for the test's own reads.
    pub pool: PgPool,
    /// The API's base URL.
    pub api: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// One API key per entry of [`INTEGRATORS`].
    pub integrator_keys: Vec<String>,
    /// An auditor's API key.
    pub auditor_key: String,
    /// The merchants payments rotate through: five anvil accounts (they can withdraw), then more.
    pub merchants: Vec<Address>,
    proxy: Option<FaultProxy>,
    relayer: Option<Child>,
    in_process: InProcess,
    db: Option<TestDb>,
    // Dropped after the database: the server must outlive the pools.
    cluster: Option<PgCluster>,
    dir: tempfile::TempDir,
}

fn config(
    db: &str,
    rpc: &str,
    contract: Address,
    block: u64,
    token: &TestToken,
    options: &Options,
    port: u16,
) -> String {
    let keys = options
        .batch_keys
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[database]
url = "{db}"

[chain]
chain_id = {CHAIN_ID}
rpc = ["{rpc}"]
contract = "{contract}"
deployment_block = {block}
rpc_timeout_ms = 1000

[hsm]
module = "{module}"
token = "{label}"
batch_keys = [{keys}]
sender_key = "{SENDER_KEY}"

[relayer]
max_payments = {max_payments}
max_wait_secs = 0
interval_ms = 50
confirmations = {confirmations}
max_in_flight = {max_in_flight}
drop_after_blocks = 2

[indexer]
confirmations = 0
poll_interval_ms = 100
reconcile_every_secs = 0

[api]
listen = "127.0.0.1:{port}"
rate_per_sec = 100000
burst = 100000

[intake]
max_payees = 4
tokens = [{{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000000000000000000" }}]
default_tier = "open"

[intake.tiers.open]
max_payment = "1000000000000000000"
daily_cap = "1000000000000000000000"
"#,
        module = token.module_path().display(),
        label = token.token_label(),
        max_payments = options.max_payments,
        confirmations = options.confirmations,
        max_in_flight = options.max_in_flight,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// The built `settle` binary: next to the directory of this test executable
/// (`target/<profile>/deps/..`), or `$SETTLE_BIN`.
///
/// `cargo nextest run --workspace` builds it (the cli's own tests need it); a run of this crate
/// alone (`-p settle-e2e`) does not, so build it first with `cargo build -p settle`.
pub fn settle_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SETTLE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile.join("settle");
    assert!(
        path.is_file(),
        "{} is missing; build it first with `cargo build -p settle` (or set SETTLE_BIN)",
        path.display()
    );
    path
}

impl Stack {
    /// Starts everything; returns once the API answers `/readyz`.
    pub async fn start(options: Options) -> Self {
        let chain = TestChain::start().expect("anvil");
        let cluster = options
            .private_postgres
            .then(|| PgCluster::start().expect("private Postgres"));
        let db = match &cluster {
            Some(cluster) => TestDb::create_at(&cluster.admin_url()).await,
            None => TestDb::create().await,
        }
        .expect("database");
        let token = TestToken::create().expect("token");
        let pkcs11 = pkcs11().expect("pkcs11");
        let generate = |label: &str| {
            settle_relayer::keys::generate_key(pkcs11, token.token_label(), token.user_pin(), label)
                .expect("key")
        };
        let batch_keys: Vec<BatchKey> = options
            .batch_keys
            .iter()
            .map(|&label| BatchKey {
                label,
                address: generate(label),
            })
            .collect();
        let sender = generate(SENDER_KEY);
        settle_testkit::settlement::fund(&chain, sender)
            .await
            .expect("funded");

        let dir = tempfile::tempdir().expect("tempdir");
        let deploy = settle_deploy::DeployConfig {
            chain_id: CHAIN_ID,
            salt: keccak256("e2e"),
            governance: settle_deploy::config::Governance {
                owners: chain.addresses()[1..4].to_vec(),
                threshold: 2,
                min_delay: 60,
                guardian: chain.addresses()[0],
            },
            signers: vec![batch_keys[0].address],
            tokens: vec![settle_deploy::config::TokenLimits {
                token: Address::ZERO,
                max_payment: 10u128.pow(18),
                daily_cap: 10u128.pow(24),
            }],
            deployer: settle_deploy::config::DeployerConfig::default(),
        };
        let manifests = dir.path().join("deployments");
        let manifest = settle_deploy::deploy(
            &deploy,
            &chain.endpoint(),
            chain.signers()[0].clone(),
            &settle_deploy::DeployOptions::new(&manifests),
        )
        .await
        .expect("deployed")
        .manifest;
        let contract = manifest.settlement;
        let funder = chain.addresses()[4];
        let deposited = SplitSettlement::new(contract, wallet(&chain, 4))
            .depositNative(funder)
            .value(U256::from(10u128.pow(20)))
            .send()
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        assert!(deposited.status());

        let proxy = if options.fault_proxy {
            let upstream = format!("127.0.0.1:{}", chain.port())
                .parse()
                .expect("address");
            Some(FaultProxy::start(upstream).await.expect("proxy"))
        } else {
            None
        };
        let rpc = proxy
            .as_ref()
            .map_or_else(|| chain.endpoint(), FaultProxy::url);
        let port = free_port();
        let text = config(
            db.url(),
            &rpc,
            contract,
            manifest.deployed_block,
            &token,
            &options,
            port,
        );
        let config_path = dir.path().join("settle.toml");
        std::fs::write(&config_path, &text).expect("config written");
        let settings = settle::config::parse("e2e.toml", &text, None).expect("valid config");

        let pool = settle::serve::database(&settings).await.expect("migrated");
        let in_process = InProcess::start(
            &settings,
            token.user_pin(),
            if options.relayer_process {
                vec![settle::serve::Part::Indexer, settle::serve::Part::Api]
            } else {
                vec![]
            },
        );
        let api = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client
            .get(format!("{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(started.elapsed() < PATIENCE, "the API never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut integrator_keys = Vec::new();
        for name in INTEGRATORS {
            integrator_keys.push(
                auth::create_key(&pool, Role::Integrator, name)
                    .await
                    .expect("key")
                    .token,
            );
        }
        let auditor_key = auth::create_key(&pool, Role::Auditor, "e2e")
            .await
            .expect("key")
            .token;
        let merchants = chain.addresses()[5..10]
            .iter()
            .copied()
            .chain(
                (0u8..45)
                    .map(|i| Address::repeat_byte(i.checked_add(0x20).expect("small")))
                    .take(usize::try_from(MERCHANTS).expect("small").saturating_sub(5)),
            )
            .collect();
        Self {
            chain,
            token,
            manifest_path: settle_deploy::Manifest::path_for(&manifests, CHAIN_ID),
            manifest,
            contract,
            funder,
            batch_keys,
            sender,
            settings,
            config_path,
            pool,
            api,
            client,
            integrator_keys,
            auditor_key,
            merchants,
            proxy,
            relayer: None,
            in_process,
            db: Some(db),
            cluster,
            dir,
        }
    }

    /// The fault proxy between relayer/indexer and anvil ([`Options::fault_proxy`]).
    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("started with fault_proxy")
    }

    /// The private Postgres server ([`Options::private_postgres`]).
    pub fn cluster(&self) -> &PgCluster {
        self.cluster
            .as_ref()
            .expect("started with private_postgres")
    }

    /// An RPC pool as the parts have it (through the proxy, if any).
    pub fn rpc(&self) -> Arc<settle_relayer::RpcPool> {
        settle::serve::rpc(&self.settings).expect("rpc")
    }

    /// A provider signing as anvil account `index`, straight to anvil.
    pub fn wallet(&self, index: usize) -> DynProvider {
        wallet(&self.chain, index)
    }

    /// Whether the in-process parts are all still running.
    pub fn in_process_running(&self) -> bool {
        self.in_process.parts.iter().all(|p| !p.is_finished())
    }

    /// Submits payments `range` through `POST /v1/payments/bulk`, each integrator its own
    /// payments in chunks of [`CHUNK`], and books them in `ledger`. A 5xx answer (a dependency
    /// restarting) is retried: the idempotency keys make a retry safe.
    pub async fn submit(&self, ledger: &mut Ledger, range: std::ops::Range<u64>) {
        let merchant = |n: u64| {
            self.merchants
                [usize::try_from(n.checked_rem(MERCHANTS).expect("nonzero")).expect("small")]
        };
        for (integrator, key) in self.integrator_keys.iter().enumerate() {
            let mine: Vec<u64> = range
                .clone()
                .filter(|&n| integrator_of(n) == integrator)
                .collect();
            for chunk in mine.chunks(CHUNK) {
                let body = json!({
                    "payments": chunk
                        .iter()
                        .map(|&n| payment_json(n, self.funder, merchant(n)))
                        .collect::<Vec<_>>()
                });
                let answer = self.post_bulk(key, &body).await;
                let payments = answer["payments"].as_array().expect("payments");
                assert_eq!(payments.len(), chunk.len(), "{answer}");
                for (&n, payment) in chunk.iter().zip(payments) {
                    assert_eq!(payment["idempotency_key"], format!("order-{n}"));
                    let id: B256 = payment["payment_id"]
                        .as_str()
                        .expect("payment_id")
                        .parse()
                        .expect("32 bytes");
                    ledger.book(n, id, merchant(n));
                }
            }
        }
    }

    async fn post_bulk(&self, key: &str, body: &Value) -> Value {
        let started = Instant::now();
        loop {
            let response = self
                .client
                .post(format!("{}/v1/payments/bulk", self.api))
                .bearer_auth(key)
                .json(body)
                .send()
                .await
                .expect("answered");
            let status = response.status();
            let text = response.text().await.expect("body");
            if status.as_u16() == 201 || status.as_u16() == 200 {
                return serde_json::from_str(&text).expect("json");
            }
            assert!(
                status.is_server_error() && started.elapsed() < PATIENCE,
                "bulk submission: {status} {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET` an API path as the auditor; panics unless it succeeds.
    pub async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.api);
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.auditor_key)
            .send()
            .await
            .expect("answered");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{url}: {status} {body}");
        body
    }

    /// Starts `settle serve --only relayer` (the built binary) on this stack's configuration.
    pub fn spawn_relayer(&mut self) {
        assert!(self.relayer.is_none(), "a relayer process is running");
        let log = self.dir.path().join("relayer.log");
        let child = Command::new(settle_binary())
            .args(["serve", "--only", "relayer", "--config"])
            .arg(&self.config_path)
            .env(
                softhsm::CONF_ENV,
                std::env::var_os(softhsm::CONF_ENV)
                    .expect("SOFTHSM2_CONF is set by .cargo/config.toml"),
            )
            .env("SETTLE_HSM_PIN", self.token.user_pin())
            .env_remove("SETTLE_DATABASE_URL")
            .env("SETTLE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            )
            .spawn()
            .expect("settle serve starts");
        self.relayer = Some(child);
    }

    /// SIGKILLs the relayer process and reaps it; answers how it ended.
    pub fn kill_relayer(&mut self) -> ExitStatus {
        let mut child = self.relayer.take().expect("a relayer process");
        assert!(
            child.try_wait().expect("status").is_none(),
            "the relayer process exited before it was killed:\n{}",
            self.relayer_log()
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped")
    }

    /// What the relayer process wrote to stderr so far.
    pub fn relayer_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relayer.log")).unwrap_or_default()
    }

    /// Counts rows of `sql` (a `SELECT count(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Waits until `done` answers true, failing the test after [`PATIENCE`] with `what`.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !done().await {
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}; relayer statuses {:?}; relayer process log:\n{}",
                self.statuses().await,
                self.relayer_log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `sql` counts at least `at_least`.
    pub async fn wait_count(&self, sql: &str, at_least: i64) {
        self.wait_until(&format!("{sql} >= {at_least}"), || async {
            self.count(sql).await >= at_least
        })
        .await;
    }

    /// Instructions by status, as the relayer has them.
    pub async fn statuses(&self) -> std::collections::BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT status, count(*) FROM relayer.instructions GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .map(|rows| rows.into_iter().collect())
        .unwrap_or_default()
    }

    /// Stops the in-process parts (each must stop cleanly) and any relayer process, and drops
    /// the database.
    pub async fn finish(mut self) {
        if let Some(mut child) = self.relayer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.in_process.stop.send_replace(true);
        for part in std::mem::take(&mut self.in_process.parts) {
            part.await.expect("joined").expect("stopped cleanly");
        }
        self.pool.close().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await.expect("cleanup");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = self.relayer.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.in_process.stop.send_replace(true);
    }
}

impl InProcess {
    /// Runs `parts` of `settle serve`, each on its own `run_parts` (all of them when empty).
    fn start(
        settings: &settle::config::Settings,
        pin: &str,
        parts: Vec<settle::serve::Part>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        let only: Vec<Option<settle::serve::Part>> = if parts.is_empty() {
            vec![None]
        } else {
            parts.into_iter().map(Some).collect()
        };
        let parts = only
            .into_iter()
            .map(|only| {
                let (stop, stop_rx) = (Arc::clone(&stop), stop_rx.clone());
                let (settings, pin) = (settings.clone(), pin.to_owned());
                tokio::spawn(async move {
                    settle::serve::run_parts(&settings, only, Some(pin), stop, stop_rx)
                        .await
                        .map_err(|e| format!("{e:#}"))
                })
            })
            .collect();
        Self { stop, parts }
    }
}

fn wallet(chain: &TestChain, index: usize) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[index].clone()))
        .connect_http(chain.endpoint_url())
        .erased()
}
