//! `settle bench`: the performance report, each figure next to a ceiling measured in the same run.
//!
//! Every section starts what it needs itself (its own anvil, its own fresh database on the
//! configured Postgres server, the SoftHSM2 token made by `scripts/setup`), so one section's
//! data never slows another. Absolute times on a shared machine drift; the ratios against a
//! ceiling measured minutes apart on the same machine are what to compare between runs.
//!
//! The sections:
//! - [`gas`]: gas of real `settleBatch` transactions on anvil (receipts, so base cost and
//!   calldata included) against a naive one-`transfer`-per-payee contract and the EVM floor;
//! - [`indexer`]: credits indexed per second against `COPY` of the same rows into copies of
//!   the same tables;
//! - [`api`]: GET payment by id under load against `pgbench -S` on the same database, and the
//!   bulk intake rate;
//! - [`e2e`]: payments per second from API intake to indexed settlement, and per-stage latency;
//! - [`signing`]: signatures per second through our PKCS#11 signer against bare `cryptoki` on
//!   the same token, and in-process `k256` for context.
//!
//! It never asserts a speed: it reports, and says where a target is missed and by how much.

mod api;
mod e2e;
mod env;
mod gas;
mod indexer;
mod plot;
mod signing;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use clap::Args;
use serde_json::Value;

pub use env::BenchEnv;

/// Options of `settle bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Smaller sizes (100,000 indexed credits, fewer gas sizes, shorter loads): under 5 minutes.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object with every figure (the names are in docs/benchmarks.md) as the last line.
    #[arg(long)]
    pub json: bool,
    /// Only these sections (comma separated: gas, indexer, api, e2e, signing).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Where the plots (PNG) go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Postgres server URL; each section makes its own fresh `settle_bench_*` database there.
    #[arg(
        long,
        env = "SETTLE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Prefix of the databases the sections make afresh (`<prefix>_gas`, `<prefix>_api`, ...).
    #[arg(long, default_value = "settle_bench")]
    pub database_prefix: String,
    /// The anvil binary (default: the one scripts/setup installs).
    #[arg(long, env = "SETTLE_ANVIL")]
    pub anvil: Option<PathBuf>,
    /// The SoftHSM2 token holding the keys (made by scripts/setup; keys are made if missing).
    #[arg(long, env = "SETTLE_DEV_TOKEN", default_value = "settle-dev")]
    pub token: String,
}

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Section {
    /// Gas per credit and per payment.
    Gas,
    /// Indexer throughput against COPY.
    Indexer,
    /// API GET latency and throughput against pgbench, and bulk intake.
    Api,
    /// End to end: intake to indexed settlement.
    E2e,
    /// PKCS#11 signing against bare cryptoki and k256.
    Signing,
}

impl Section {
    const ALL: [Self; 5] = [
        Self::Gas,
        Self::Signing,
        Self::Api,
        Self::E2e,
        Self::Indexer,
    ];
}

/// Every figure of a run, by its stable name, plus the notes on targets.
#[derive(Debug, Default)]
pub struct Report {
    figures: BTreeMap<String, Value>,
    notes: Vec<String>,
}

impl Report {
    /// Records a figure.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    /// A recorded number.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.figures.get(name).and_then(Value::as_f64)
    }

    /// Records a line for the summary (a target met or missed, and why).
    pub fn note(&mut self, line: String) {
        eprintln!("settle bench: {line}");
        self.notes.push(line);
    }

    /// Compares `name` with a target and notes the result: `at_most` targets are ceilings,
    /// otherwise floors.
    fn target(&mut self, name: &str, target: f64, at_most: bool, why_missed: &str) {
        let Some(value) = self.number(name) else {
            return;
        };
        let met = if at_most {
            value <= target
        } else {
            value >= target
        };
        let line = if met {
            format!(
                "target met: {name} = {} ({} {target})",
                round(value),
                if at_most { "≤" } else { "≥" }
            )
        } else {
            let by = if at_most {
                value - target
            } else {
                target - value
            };
            format!(
                "target MISSED: {name} = {} against {} {target}, by {} ({:.1}%); {why_missed}",
                round(value),
                if at_most { "≤" } else { "≥" },
                round(by),
                by / target * 100.0
            )
        };
        self.note(line);
    }

    /// The JSON object `--json` prints.
    pub fn to_json(&self) -> Value {
        let mut all: serde_json::Map<String, Value> = self.figures.clone().into_iter().collect();
        all.insert(
            "notes".to_owned(),
            Value::Array(self.notes.iter().cloned().map(Value::String).collect()),
        );
        Value::Object(all)
    }
}

/// `value` rounded for display: integers as integers, others to 3 significant decimals.
fn round(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// Runs `settle bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if std::env::var_os("SOFTHSM2_CONF").is_none() {
        anyhow::bail!(
            "SOFTHSM2_CONF is not set; run ./scripts/bench (it points it at .settle/softhsm) or export it"
        );
    }
    let started = Instant::now();
    let mut report = Report::default();
    report.set("quick", args.quick);
    report.set("machine", env::machine());
    std::fs::create_dir_all(&args.out)?;
    let sections: Vec<Section> = Section::ALL
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.contains(s))
        .collect();
    for section in sections {
        let at = Instant::now();
        eprintln!("settle bench: {section:?} ...");
        match section {
            Section::Gas => gas::run(&args, &mut report).await?,
            Section::Indexer => indexer::run(&args, &mut report).await?,
            Section::Api => api::run(&args, &mut report).await?,
            Section::E2e => e2e::run(&args, &mut report).await?,
            Section::Signing => signing::run(&args, &mut report)?,
        }
        eprintln!(
            "settle bench: {section:?} done in {:.1} s",
            at.elapsed().as_secs_f64()
        );
    }
    report.target(
        "gas_per_credit_warm_100",
        6_300.0,
        true,
        "bounded by the 5,320 floor (cold read + non-zero write of the balance slot + the payee's calldata); the rest is validation, split and the credits log, see docs/gas.md",
    );
    report.target(
        "gas_per_payment_realistic",
        3_999.0,
        true,
        "about half is calldata (49 + 6 per leg bytes per payment)",
    );
    report.target(
        "indexer_copy_ratio",
        0.5,
        false,
        "the indexer also fetches and decodes the logs from the node (eth_getLogs) and keeps the reorg window",
    );
    report.target(
        "api_get_pgbench_ratio",
        0.7,
        false,
        "an API GET is an HTTP request with key check and rate limit, a JSON body, and several queries against pgbench's single primary-key lookup",
    );
    report.target(
        "api_get_p99_ms",
        10.0,
        true,
        "load generator, API and Postgres share the same cores",
    );
    report.target(
        "hsm_sign_ratio",
        0.9,
        false,
        "our signer also computes v (one double-scalar multiplication with the public key) and normalises s, and waits for a free session",
    );
    report.set(
        "bench_seconds",
        (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    let json = report.to_json();
    if args.json {
        println!("{}", serde_json::to_string(&json)?);
    } else {
        for (name, value) in &report.figures {
            println!("{name:<40} {value}");
        }
    }
    Ok(())
}
