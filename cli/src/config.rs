//! `settle.toml`: the configuration of a running settle process.
//!
//! Everything is checked when the file is read, so a mistake stops the
//! process at start with one line naming the key and the fix, never later in
//! the middle of settling. Secrets are not in the file: the HSM PIN comes from
//! `SETTLE_HSM_PIN`, and the database URL may come from `SETTLE_DATABASE_URL`.
//! Amounts are decimal strings of base units (TOML integers stop at 2^63).

use std::{path::Path, time::Duration};

use alloy::primitives::{Address, U256};
use serde::Deserialize;
use settle_relayer::{
    BatcherConfig, IntakeConfig, IntegratorLimits, SubmitterConfig, intake::TokenRule,
    service::RelayerConfig,
};
use thiserror::Error;

/// Why the configuration cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}; pass --config PATH to an existing settle.toml")]
    Read {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {reason}")]
    Parse {
        /// The path.
        path: String,
        /// The parser's message (names the key and line).
        reason: String,
    },
    /// A value is out of range or malformed.
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        /// The path.
        path: String,
        /// The key.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Postgres.
    #[serde(default)]
    pub database: DatabaseSection,
    /// The chain and its contract.
    pub chain: ChainSection,
    /// The PKCS#11 token and key labels.
    pub hsm: HsmSection,
    /// Batching and submission.
    #[serde(default)]
    pub relayer: RelayerSection,
    /// What instructions are accepted.
    pub intake: IntakeSection,
    /// Following the chain.
    #[serde(default)]
    pub indexer: IndexerSection,
    /// The REST API.
    #[serde(default)]
    pub api: ApiSection,
}

/// `[indexer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexerSection {
    /// Blocks behind the head the indexer stays.
    pub confirmations: u64,
    /// Blocks kept to find a reorg's fork point.
    pub reorg_window: u64,
    /// Blocks per `eth_getLogs` at start.
    pub initial_range: u64,
    /// Most blocks per `eth_getLogs`.
    pub max_range: u64,
    /// Milliseconds between syncs once caught up.
    pub poll_interval_ms: u64,
    /// Seconds between reconciliation runs in `settle serve` (0: never).
    pub reconcile_every_secs: u64,
    /// More settlement contracts on `[chain]` to index (the relayer's is always indexed).
    pub contracts: Vec<String>,
    /// Other chains this process indexes too, `[[indexer.chains]]` (reconciliation and the
    /// relayer stay on `[chain]`).
    pub chains: Vec<IndexedChain>,
}

/// `[[indexer.chains]]`: another chain whose settlement contracts are indexed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedChain {
    /// EIP-155 chain id; must differ from `[chain]`'s and every other entry's.
    pub chain_id: u64,
    /// JSON-RPC endpoints, best first.
    pub rpc: Vec<String>,
    /// The settlement proxies to index.
    pub contracts: Vec<String>,
    /// The block the earliest of them was deployed in.
    pub deployment_block: u64,
    /// Blocks behind the head (default: `indexer.confirmations`).
    pub confirmations: Option<u64>,
}

impl Default for IndexerSection {
    fn default() -> Self {
        Self {
            confirmations: 1,
            reorg_window: 128,
            initial_range: 500,
            max_range: 5_000,
            poll_interval_ms: 1_000,
            reconcile_every_secs: 300,
            contracts: Vec::new(),
            chains: Vec::new(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address to listen on.
    pub listen: String,
    /// Requests per second per key.
    pub rate_per_sec: u64,
    /// Burst per key.
    pub burst: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most items per page.
    pub max_page: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            rate_per_sec: 50,
            burst: 200,
            max_body_bytes: 4 * 1024 * 1024,
            max_page: 500,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// Connection URL; `SETTLE_DATABASE_URL` wins when set.
    pub url: Option<String>,
}

/// `[chain]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// JSON-RPC endpoints, tried by health.
    pub rpc: Vec<String>,
    /// The SplitSettlement proxy.
    pub contract: String,
    /// Block the proxy was deployed in.
    #[serde(default)]
    pub deployment_block: u64,
    /// Milliseconds one RPC call may take before the next endpoint is tried.
    #[serde(default = "defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
}

/// `[hsm]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    /// The PKCS#11 module (shared library).
    #[serde(default = "defaults::module")]
    pub module: String,
    /// Token label.
    pub token: String,
    /// Labels of the batch keys this process may sign with (the key registry picks the active one).
    pub batch_keys: Vec<String>,
    /// Label of the key that sends the relayer's transactions.
    pub sender_key: String,
    /// Sessions per key.
    #[serde(default = "defaults::sessions")]
    pub sessions: usize,
}

/// `[relayer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayerSection {
    /// Most payments per batch.
    pub max_payments: usize,
    /// Seconds a partial batch may wait to fill.
    pub max_wait_secs: u64,
    /// Most gas per batch.
    pub gas_ceiling: u64,
    /// Seconds from signing to a batch's deadline.
    pub deadline_secs: u64,
    /// Blocks before a batch counts as settled.
    pub confirmations: u64,
    /// Batches on their way at once.
    pub max_in_flight: usize,
    /// Blocks before a stuck transaction is replaced.
    pub bump_after_blocks: u64,
    /// Fee increase per replacement, percent.
    pub bump_percent: u64,
    /// Blocks before a vanished transaction counts as dropped.
    pub drop_after_blocks: u64,
    /// Highest maxFeePerGas offered, wei (decimal string).
    pub max_fee_cap_wei: String,
    /// Sender balance below which a warning is logged, wei (decimal string).
    pub low_balance_wei: String,
    /// Milliseconds between relayer steps.
    pub interval_ms: u64,
}

impl Default for RelayerSection {
    fn default() -> Self {
        Self {
            max_payments: 500,
            max_wait_secs: 2,
            gas_ceiling: 15_000_000,
            deadline_secs: 3600,
            confirmations: 1,
            max_in_flight: 16,
            bump_after_blocks: 3,
            bump_percent: 15,
            drop_after_blocks: 3,
            max_fee_cap_wei: "1000000000000".to_owned(),
            low_balance_wei: "100000000000000000".to_owned(),
            interval_ms: 500,
        }
    }
}

/// `[intake]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSection {
    /// Most payees in one payment.
    #[serde(default = "defaults::max_payees")]
    pub max_payees: usize,
    /// Accepted tokens.
    pub tokens: Vec<TokenEntry>,
    /// Limit tiers by name.
    pub tiers: std::collections::BTreeMap<String, TierEntry>,
    /// Integrators and their tier.
    #[serde(default)]
    pub integrators: std::collections::BTreeMap<String, String>,
    /// Tier of integrators not listed.
    pub default_tier: String,
}

/// `[[intake.tokens]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Token address (the zero address for the native coin).
    pub address: String,
    /// Largest single payment, base units (decimal string).
    pub max_payment: String,
}

/// `[intake.tiers.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierEntry {
    /// Largest single payment, base units.
    pub max_payment: String,
    /// Rolling 24-hour cap, base units.
    pub daily_cap: String,
}

mod defaults {
    pub(super) fn module() -> String {
        "/usr/lib/softhsm/libsofthsm2.so".to_owned()
    }
    pub(super) const fn sessions() -> usize {
        4
    }
    pub(super) const fn max_payees() -> usize {
        16
    }
    pub(super) const fn rpc_timeout_ms() -> u64 {
        5_000
    }
}

/// The configuration, checked and in the libraries' types.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The raw file.
    pub file: Config,
    /// Database URL (environment first).
    pub database_url: String,
    /// The contract.
    pub contract: Address,
    /// The relayer.
    pub relayer: RelayerConfig,
    /// Intake rules.
    pub intake: IntakeConfig,
    /// Limits per integrator, and for the others.
    pub limits: std::collections::BTreeMap<String, IntegratorLimits>,
    /// Limits of integrators not listed.
    pub default_limits: IntegratorLimits,
    /// Sender balance warning threshold.
    pub low_balance_wei: U256,
    /// RPC timeout.
    pub rpc_timeout: Duration,
    /// The indexer.
    pub indexer: settle_indexer::IndexerConfig,
    /// The indexers of `[[indexer.chains]]`, each with its endpoints.
    pub other_chains: Vec<(settle_indexer::IndexerConfig, Vec<String>)>,
    /// Where the API listens.
    pub listen: std::net::SocketAddr,
}

impl Settings {
    /// Limits for `integrator`.
    pub fn limits_for(&self, integrator: &str) -> IntegratorLimits {
        self.limits
            .get(integrator)
            .copied()
            .unwrap_or(self.default_limits)
    }
}

/// Parses an address strictly (see [`crate::keys::parse_address`]); the error is the problem, for a key.
pub fn parse_address(text: &str) -> Result<Address, String> {
    crate::keys::parse_address("address", text).map_err(|e| match e {
        crate::keys::KeysError::BadAddress { problem, .. } => format!("= {text:?}: {problem}"),
        other => other.to_string(),
    })
}

fn amount(path: &str, key: &str, text: &str) -> Result<u128, ConfigError> {
    text.parse::<u128>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            problem: format!(
                "= {text:?} is not a positive integer of base units; write digits only, in quotes"
            ),
        })
}

/// Parses a list of contract addresses; the first bad one is reported under `key`.
fn contracts_of<'a>(
    texts: impl Iterator<Item = &'a String>,
    key: &str,
    invalid: &impl Fn(&str, String) -> ConfigError,
) -> Result<Vec<Address>, ConfigError> {
    let mut out = Vec::new();
    for text in texts {
        let address = parse_address(text).map_err(|e| invalid(key, e))?;
        if !out.contains(&address) {
            out.push(address);
        }
    }
    Ok(out)
}

fn positive(path: &str, key: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            problem: "must be at least 1".to_owned(),
        });
    }
    Ok(value)
}

/// Reads and checks `path`; `database_url_env` (the environment's URL) wins over the file's.
pub fn load(path: &Path, database_url_env: Option<String>) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    parse(&shown, &text, database_url_env)
}

/// Checks the text of a configuration file (named `path` in errors).
pub fn parse(
    path: &str,
    text: &str,
    database_url_env: Option<String>,
) -> Result<Settings, ConfigError> {
    let file: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        reason: e
            .to_string()
            .lines()
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_owned(),
    })?;
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let database_url = database_url_env
        .or_else(|| file.database.url.clone())
        .ok_or_else(|| {
            invalid(
                "database.url",
                "is missing; set it or export SETTLE_DATABASE_URL".to_owned(),
            )
        })?;
    let contract = parse_address(&file.chain.contract).map_err(|e| invalid("chain.contract", e))?;
    if file.chain.rpc.is_empty() {
        return Err(invalid(
            "chain.rpc",
            "is empty; list at least one JSON-RPC URL".to_owned(),
        ));
    }
    positive(path, "chain.chain_id", file.chain.chain_id)?;
    if file.hsm.batch_keys.is_empty() {
        return Err(invalid(
            "hsm.batch_keys",
            "is empty; list the label of at least one batch key".to_owned(),
        ));
    }
    let r = &file.relayer;
    let relayer = RelayerConfig {
        batcher: BatcherConfig {
            max_payments: usize::try_from(positive(
                path,
                "relayer.max_payments",
                r.max_payments as u64,
            )?)
            .unwrap_or(1),
            deadline_secs: positive(path, "relayer.deadline_secs", r.deadline_secs)?,
            max_wait_secs: r.max_wait_secs,
            gas_ceiling: positive(path, "relayer.gas_ceiling", r.gas_ceiling)?,
            ..BatcherConfig::new(file.chain.chain_id, contract)
        },
        submitter: SubmitterConfig {
            confirmations: positive(path, "relayer.confirmations", r.confirmations)?,
            max_in_flight: usize::try_from(positive(
                path,
                "relayer.max_in_flight",
                r.max_in_flight as u64,
            )?)
            .unwrap_or(1),
            bump_after_blocks: positive(path, "relayer.bump_after_blocks", r.bump_after_blocks)?,
            bump_percent: if r.bump_percent < 10 {
                return Err(invalid(
                    "relayer.bump_percent",
                    format!(
                        "= {} is below 10; nodes refuse replacements under +10%",
                        r.bump_percent
                    ),
                ));
            } else {
                r.bump_percent
            },
            drop_after_blocks: positive(path, "relayer.drop_after_blocks", r.drop_after_blocks)?,
            max_fee_cap: amount(path, "relayer.max_fee_cap_wei", &r.max_fee_cap_wei)?,
            logs_from_block: file.chain.deployment_block,
            ..SubmitterConfig::new(file.chain.chain_id, contract)
        },
        interval: Duration::from_millis(positive(path, "relayer.interval_ms", r.interval_ms)?),
        max_batches_per_step: 16,
    };
    let low_balance_wei = U256::from(amount(path, "relayer.low_balance_wei", &r.low_balance_wei)?);
    let mut tokens = Vec::with_capacity(file.intake.tokens.len());
    for (i, t) in file.intake.tokens.iter().enumerate() {
        tokens.push(TokenRule {
            chain_id: file.chain.chain_id,
            token: parse_address(&t.address)
                .map_err(|e| invalid(&format!("intake.tokens[{i}].address"), e))?,
            max_payment: amount(
                path,
                &format!("intake.tokens[{i}].max_payment"),
                &t.max_payment,
            )?,
        });
    }
    let mut tiers = std::collections::BTreeMap::new();
    for (name, tier) in &file.intake.tiers {
        tiers.insert(
            name.clone(),
            IntegratorLimits {
                max_payment: amount(
                    path,
                    &format!("intake.tiers.{name}.max_payment"),
                    &tier.max_payment,
                )?,
                daily_cap: amount(
                    path,
                    &format!("intake.tiers.{name}.daily_cap"),
                    &tier.daily_cap,
                )?,
            },
        );
    }
    let tier = |key: String, name: &str| {
        tiers.get(name).copied().ok_or_else(|| {
            invalid(
                &key,
                format!("names tier {name:?}, which [intake.tiers] does not define"),
            )
        })
    };
    let default_limits = tier("intake.default_tier".to_owned(), &file.intake.default_tier)?;
    let mut limits = std::collections::BTreeMap::new();
    for (integrator, name) in &file.intake.integrators {
        limits.insert(
            integrator.clone(),
            tier(format!("intake.integrators.{integrator}"), name)?,
        );
    }
    let ix = &file.indexer;
    let indexer = settle_indexer::IndexerConfig {
        confirmations: ix.confirmations,
        reorg_window: positive(path, "indexer.reorg_window", ix.reorg_window)?,
        initial_range: positive(path, "indexer.initial_range", ix.initial_range)?,
        max_range: positive(path, "indexer.max_range", ix.max_range)?,
        poll_interval: Duration::from_millis(positive(
            path,
            "indexer.poll_interval_ms",
            ix.poll_interval_ms,
        )?),
        ..settle_indexer::IndexerConfig::new(
            file.chain.chain_id,
            contracts_of(
                std::iter::once(&file.chain.contract).chain(&ix.contracts),
                "indexer.contracts",
                &invalid,
            )?,
            file.chain.deployment_block,
        )
    };
    indexer
        .validate()
        .map_err(|e| invalid("indexer", e.to_string()))?;
    let mut other_chains = Vec::with_capacity(ix.chains.len());
    let mut chain_ids = vec![file.chain.chain_id];
    for (i, chain) in ix.chains.iter().enumerate() {
        let key = format!("indexer.chains[{i}]");
        if chain_ids.contains(&chain.chain_id) {
            return Err(invalid(
                &format!("{key}.chain_id"),
                format!(
                    "= {} is indexed twice; give each chain one entry (and [chain] its own)",
                    chain.chain_id
                ),
            ));
        }
        chain_ids.push(chain.chain_id);
        if chain.rpc.is_empty() {
            return Err(invalid(
                &format!("{key}.rpc"),
                "is empty; list at least one JSON-RPC URL".to_owned(),
            ));
        }
        if chain.contracts.is_empty() {
            return Err(invalid(
                &format!("{key}.contracts"),
                "is empty; list the settlement proxies to index".to_owned(),
            ));
        }
        let config = settle_indexer::IndexerConfig {
            confirmations: chain.confirmations.unwrap_or(indexer.confirmations),
            reorg_window: indexer.reorg_window,
            initial_range: indexer.initial_range,
            max_range: indexer.max_range,
            poll_interval: indexer.poll_interval,
            ..settle_indexer::IndexerConfig::new(
                chain.chain_id,
                contracts_of(
                    chain.contracts.iter(),
                    &format!("{key}.contracts"),
                    &invalid,
                )?,
                chain.deployment_block,
            )
        };
        config
            .validate()
            .map_err(|e| invalid(&key, e.to_string()))?;
        other_chains.push((config, chain.rpc.clone()));
    }
    let listen = file.api.listen.parse().map_err(|_| {
        invalid(
            "api.listen",
            format!(
                "= {:?} is not host:port, e.g. \"127.0.0.1:8080\"",
                file.api.listen
            ),
        )
    })?;
    Ok(Settings {
        indexer,
        other_chains,
        listen,
        database_url,
        contract,
        relayer,
        intake: IntakeConfig {
            tokens,
            max_payees: file.intake.max_payees,
        },
        limits,
        default_limits,
        low_balance_wei,
        rpc_timeout: Duration::from_millis(positive(
            path,
            "chain.rpc_timeout_ms",
            file.chain.rpc_timeout_ms,
        )?),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/postgres"

[chain]
chain_id = 31337
rpc = ["http://127.0.0.1:8545"]
contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

[hsm]
token = "settle-dev"
batch_keys = ["batch-1"]
sender_key = "sender-1"

[relayer]
max_payments = 200
max_wait_secs = 1
gas_ceiling = 12000000
deadline_secs = 600
confirmations = 2
max_in_flight = 8
bump_after_blocks = 3
bump_percent = 12
drop_after_blocks = 4
max_fee_cap_wei = "500000000000"
low_balance_wei = "1000000000000000000"
interval_ms = 250

[intake]
max_payees = 8
tokens = [{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000000000000000000000" }]
default_tier = "standard"
integrators = { shop = "large" }

[intake.tiers.standard]
max_payment = "1000000"
daily_cap = "100000000"

[intake.tiers.large]
max_payment = "1000000000000000000000"
daily_cap = "340282366920938463463374607431768211455"
"#;

    #[test]
    fn a_full_file_maps_onto_the_libraries() {
        let s = parse("settle.toml", GOOD, None).expect("valid");
        assert_eq!(s.relayer.batcher.max_payments, 200);
        assert_eq!(s.relayer.submitter.confirmations, 2);
        assert_eq!(s.relayer.submitter.max_fee_cap, 500_000_000_000);
        assert_eq!(s.relayer.interval, Duration::from_millis(250));
        assert_eq!(s.limits_for("shop").daily_cap, u128::MAX);
        assert_eq!(s.limits_for("anyone").max_payment, 1_000_000);
        assert_eq!(s.intake.tokens[0].max_payment, 10u128.pow(21));
        let env = parse(
            "settle.toml",
            GOOD,
            Some("postgres://elsewhere/db".to_owned()),
        )
        .expect("valid");
        assert_eq!(env.database_url, "postgres://elsewhere/db");
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        let cases = [
            (
                GOOD.replace(
                    "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                    "0x5fbDB2315678afecb367f032d93F642f64180aa3",
                ),
                "settle.toml: `chain.contract` = \"0x5fbDB2315678afecb367f032d93F642f64180aa3\": the mixed-case address fails its EIP-55 checksum; check it for typos",
            ),
            (
                GOOD.replace("max_payment = \"1000000\"", "max_payment = \"1e6\""),
                "settle.toml: `intake.tiers.standard.max_payment` = \"1e6\" is not a positive integer of base units; write digits only, in quotes",
            ),
            (
                GOOD.replace("bump_percent = 12", "bump_percent = 5"),
                "settle.toml: `relayer.bump_percent` = 5 is below 10; nodes refuse replacements under +10%",
            ),
            (
                GOOD.replace("shop = \"large\"", "shop = \"huge\""),
                "settle.toml: `intake.integrators.shop` names tier \"huge\", which [intake.tiers] does not define",
            ),
            (
                GOOD.replace("confirmations = 2", "confirmations = 0"),
                "settle.toml: `relayer.confirmations` must be at least 1",
            ),
        ];
        for (text, message) in cases {
            let err = parse("settle.toml", &text, None).expect_err("invalid");
            assert_eq!(err.to_string(), message);
        }
        let unknown = parse(
            "settle.toml",
            &GOOD.replace("interval_ms = 250", "interval_ms = 250\nspeed = 3"),
            None,
        )
        .expect_err("unknown key");
        assert!(
            unknown.to_string().contains("unknown field `speed`"),
            "{unknown}"
        );
    }
    /// `[indexer] contracts` and `[[indexer.chains]]`: one indexer config per chain.
    #[test]
    fn other_chains_and_contracts_get_their_own_indexers() {
        let more = format!(
            "{GOOD}\n[indexer]\ncontracts = [\"0x00000000000000000000000000000000000000aa\"]\n\n[[indexer.chains]]\nchain_id = 10\nrpc = [\"http://127.0.0.1:9545\"]\ncontracts = [\"0x00000000000000000000000000000000000000bb\"]\ndeployment_block = 7\nconfirmations = 12\n"
        );
        let s = parse("settle.toml", &more, None).expect("valid");
        assert_eq!(
            s.indexer.contracts,
            vec![
                parse_address("0x5FbDB2315678afecb367f032d93F642f64180aa3").expect("address"),
                Address::with_last_byte(0xaa),
            ]
        );
        assert_eq!(s.other_chains.len(), 1);
        let (other, rpc) = &s.other_chains[0];
        assert_eq!(other.chain_id, 10);
        assert_eq!(other.contracts, vec![Address::with_last_byte(0xbb)]);
        assert_eq!(other.from_block, 7);
        assert_eq!(other.confirmations, 12);
        assert_eq!(other.reorg_window, s.indexer.reorg_window);
        assert_eq!(rpc, &vec!["http://127.0.0.1:9545".to_owned()]);

        let twice = more.replace("chain_id = 10", "chain_id = 31337");
        assert_eq!(
            parse("settle.toml", &twice, None)
                .expect_err("twice")
                .to_string(),
            "settle.toml: `indexer.chains[0].chain_id` = 31337 is indexed twice; give each chain one entry (and [chain] its own)"
        );
        let no_rpc = more.replace("rpc = [\"http://127.0.0.1:9545\"]", "rpc = []");
        assert_eq!(
            parse("settle.toml", &no_rpc, None)
                .expect_err("no rpc")
                .to_string(),
            "settle.toml: `indexer.chains[0].rpc` is empty; list at least one JSON-RPC URL"
        );
        let bad = more.replace("0x00000000000000000000000000000000000000bb", "0xbb");
        let err = parse("settle.toml", &bad, None)
            .expect_err("bad address")
            .to_string();
        assert!(
            err.starts_with("settle.toml: `indexer.chains[0].contracts` = \"0xbb\""),
            "{err}"
        );
    }
}
