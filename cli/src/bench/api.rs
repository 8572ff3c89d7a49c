//! The REST API under load, in this process, on its own fresh database: the bulk intake rate, the
//! capacity of GET payment by id (8 connections as fast as they go), its latency at a fixed rate
//! of 70% of that capacity (measured from each request's scheduled start, so a slow answer
//! delays no later measurement), and `pgbench -S` (8 clients, 2 threads) on the same database.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use serde_json::{Value, json};
use settle_api::{Role, auth};
use tokio::sync::watch;

use super::{BenchArgs, Report, env::BenchEnv, plot};
use crate::{
    config,
    demo::{self, TomlInputs},
    keys::PIN_ENV,
    serve::{self, Part},
};

/// Concurrent connections of the load.
const CONNECTIONS: usize = 8;
/// Payees of the 3-way splits: merchants.
const MERCHANTS: u64 = 50;

/// The API (or the whole system) served in this process from a written settle.toml.
pub(crate) struct Served {
    /// The API's base URL.
    pub(crate) api: String,
    /// The parsed configuration.
    pub(crate) settings: config::Settings,
    /// An integrator's key.
    pub(crate) integrator: String,
    stop: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    /// Writes the section's settle.toml (rate limits out of the way), serves `only` (or every
    /// part), waits until `/readyz` answers and issues an integrator key.
    pub(crate) async fn start(
        env: &BenchEnv,
        dir: &std::path::Path,
        only: Option<Part>,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(dir)?;
        let path = dir.join("settle.toml");
        let text = demo::settle_toml(&TomlInputs {
            dir,
            database_url: &env.database_url,
            rpc: &env.rpc(),
            contract: env.manifest.settlement,
            deployment_block: env.manifest.deployed_block,
            module: &env.module,
            token: &env.token_label,
            api_port: port,
        })
        .replace("rate_per_sec = 1000\n", "rate_per_sec = 10000000\n")
        .replace("burst = 2000\n", "burst = 10000000\n")
        .replace("max_wait_secs = 1\n", "max_wait_secs = 0\n")
        .replace("interval_ms = 200\n", "interval_ms = 20\n")
        .replace("poll_interval_ms = 200\n", "poll_interval_ms = 50\n")
        .replace("reconcile_every_secs = 60\n", "reconcile_every_secs = 0\n");
        std::fs::write(&path, &text)?;
        let settings = config::parse(&path.display().to_string(), &text, None)?;
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        let task = {
            let settings = settings.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                serve::run_parts(&settings, only, std::env::var(PIN_ENV).ok(), stop, stop_rx).await
            })
        };
        let api = format!("http://127.0.0.1:{port}");
        demo::wait_ready(&reqwest::Client::new(), &api, || {
            anyhow::ensure!(
                !task.is_finished(),
                "the served parts stopped before the API was ready"
            );
            Ok(())
        })
        .await?;
        let pool = serve::database(&settings).await?;
        let integrator = auth::create_key(&pool, Role::Integrator, "bench-shop")
            .await?
            .token;
        pool.close().await;
        Ok(Self {
            api,
            settings,
            integrator,
            stop,
            task,
        })
    }

    /// Submits payments `from..from + count` (3-way splits in the native coin) through
    /// `POST /v1/payments/bulk` in chunks of 500; returns their ids.
    pub(crate) async fn submit(
        &self,
        client: &reqwest::Client,
        funder: Address,
        from: u64,
        count: u64,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let end = from.saturating_add(count);
        let mut i = from;
        while i < end {
            let upto = end.min(i.saturating_add(500));
            let chunk: Vec<Value> = (i..upto).map(|n| payment(n, funder)).collect();
            let response = client
                .post(format!("{}/v1/payments/bulk", self.api))
                .bearer_auth(&self.integrator)
                .json(&json!({ "payments": chunk }))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::ensure!(
                status.is_success(),
                "bulk submission answered {status}: {body}"
            );
            for p in body["payments"].as_array().into_iter().flatten() {
                ids.push(p["id"].as_str().unwrap_or_default().to_owned());
            }
            i = upto;
        }
        Ok(ids)
    }

    /// Stops the served parts and waits for them.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        Ok(())
    }
}

/// Payment `n`: 90% to one of 50 merchants, 7% to the platform, 3% to a referrer.
fn payment(n: u64, funder: Address) -> Value {
    let mut merchant = [0u8; 20];
    merchant[0] = 0x3e;
    merchant[12..].copy_from_slice(&n.checked_rem(MERCHANTS).unwrap_or(0).to_be_bytes());
    json!({
        "idempotency_key": format!("bench-{n}"),
        "chain_id": super::env::CHAIN_ID,
        "token": Address::ZERO.to_checksum(None),
        "funder": funder.to_checksum(None),
        "amount": 1_000_000_000_000u64.saturating_add(n).to_string(),
        "splits": [
            {"payee": Address::from(merchant).to_checksum(None), "share": 900_000},
            {"payee": Address::repeat_byte(0xc0).to_checksum(None), "share": 70_000},
            {"payee": Address::repeat_byte(0x7e).to_checksum(None), "share": 30_000},
        ],
    })
}

/// Runs the API section.
pub(crate) async fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let env = BenchEnv::start(args, "api").await?;
    let served = Served::start(&env, &args.out.join("api"), Some(Part::Api)).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS.saturating_mul(8))
        .build()?;
    let count: u64 = if args.quick { 2_000 } else { 10_000 };
    let started = Instant::now();
    let ids = served
        .submit(&client, env.funder.address(), 0, count)
        .await?;
    let bulk_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        u64::try_from(ids.len())? == count,
        "bulk intake answered {} payments for {count}",
        ids.len()
    );
    report.set(
        "api_bulk_payments_per_s",
        (count as f64 / bulk_seconds).round(),
    );

    let seconds = if args.quick { 5 } else { 15 };
    let urls: Arc<Vec<String>> = Arc::new(
        ids.iter()
            .map(|id| format!("{}/v1/payments/{id}", served.api))
            .collect(),
    );
    let key = Arc::new(served.integrator.clone());
    // Capacity: closed loop.
    let done = closed_loop(&client, &urls, &key, Duration::from_secs(seconds)).await?;
    let rps = done as f64 / seconds as f64;
    report.set("api_get_rps", rps.round());
    // Latency at a fixed rate.
    let rate = (rps * 0.7).max(1.0);
    let mut latencies =
        fixed_rate(&client, &urls, &key, rate, Duration::from_secs(seconds)).await?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&latencies, p);
    report.set("api_get_fixed_rate", rate.round());
    report.set("api_get_p50_ms", round3(pct(50.0)));
    report.set("api_get_p90_ms", round3(pct(90.0)));
    report.set("api_get_p99_ms", round3(pct(99.0)));
    report.set("api_get_p999_ms", round3(pct(99.9)));
    plot::bars(
        &args.out.join("api_latency.png"),
        &format!("GET /v1/payments/{{id}} at {rate:.0} requests/s (70% of capacity)"),
        "milliseconds",
        &["p50", "p90", "p99", "p99.9"].map(str::to_owned),
        &[(
            "latency from scheduled start".to_owned(),
            vec![pct(50.0), pct(90.0), pct(99.0), pct(99.9)],
        )],
    )?;
    let integrator = served.integrator.clone();
    served.stop().await?;

    // The ceiling: pgbench's select-only transactions on the same server and database.
    run_pgbench(vec![
        "-i".into(),
        "-q".into(),
        "-s".into(),
        "10".into(),
        env.database_url.clone(),
    ])
    .await?;
    let tps = pgbench(&env.database_url, seconds, None).await?;
    report.set("pgbench_select_tps", tps.round());
    report.set(
        "api_get_pgbench_ratio",
        (rps / tps * 1000.0).round() / 1000.0,
    );
    // Where the rest goes: the database work of one GET alone (the handler's two queries: the
    // key, then the payment with its batch and legs) through pgbench on the same connections.
    let prefix = integrator
        .split('_')
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("an API key without a prefix"))?
        .to_owned();
    let script = args.out.join("api_get_queries.sql");
    std::fs::write(&script, handler_queries(&prefix, count))?;
    let queries = pgbench(&env.database_url, seconds, Some(&script)).await?;
    report.set("pgbench_get_queries_tps", queries.round());
    report.set(
        "api_get_queries_ratio",
        (rps / queries * 1000.0).round() / 1000.0,
    );
    Ok(())
}

/// A pgbench script making the queries `GET /v1/payments/{id}` makes (auth::authenticate, then
/// query::instruction: the payment, its batch and its legs in one query), for a random one of the
/// `count` payments. Kept in step with
/// those functions by hand; it picks the payment by its sequence number instead of its id (both
/// unique indexes).
fn handler_queries(prefix: &str, count: u64) -> String {
    format!(
        "\\set seq random(1, {count})
SELECT id, secret_hash, role, owner FROM api.api_keys WHERE prefix = '{prefix}' AND revoked_at IS NULL;
SELECT i.id, i.seq, i.integrator, i.idempotency_key, i.payment_id, i.chain_id, i.token, i.funder, i.amount::text, i.status, i.created_at, i.updated_at, i.position, b.id, b.batch_id, b.status, b.tx_hash, b.block_number, b.error, (SELECT array_agg(l.payee ORDER BY l.position) FROM relayer.instruction_legs l WHERE l.instruction_id = i.id) AS payees, (SELECT array_agg(l.share ORDER BY l.position) FROM relayer.instruction_legs l WHERE l.instruction_id = i.id) AS shares FROM relayer.instructions i LEFT JOIN relayer.batches b ON b.id = i.batch WHERE i.seq = :seq AND i.integrator = 'bench-shop';
"
    )
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The `p`th percentile (nearest rank) of sorted `values`.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()).saturating_sub(1)]
}

async fn get(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<()> {
    let response = client.get(url).bearer_auth(key).send().await?;
    let status = response.status();
    let _body = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "GET {url} answered {status}");
    Ok(())
}

/// Requests completed by [`CONNECTIONS`] workers, each sending the next as soon as one answers.
async fn closed_loop(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    key: &Arc<String>,
    length: Duration,
) -> anyhow::Result<u64> {
    let until = Instant::now()
        .checked_add(length)
        .unwrap_or_else(Instant::now);
    let mut workers = Vec::new();
    for w in 0..CONNECTIONS {
        let (client, urls, key) = (client.clone(), Arc::clone(urls), Arc::clone(key));
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut i = w;
            while Instant::now() < until {
                get(&client, &urls[i.checked_rem(urls.len()).unwrap_or(0)], &key).await?;
                done = done.saturating_add(1);
                i = i.wrapping_add(CONNECTIONS);
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0u64;
    for w in workers {
        total = total.saturating_add(w.await??);
    }
    Ok(total)
}

/// Milliseconds from each request's scheduled start to its answer, requests started at `rate`
/// per second for `length`.
async fn fixed_rate(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    key: &Arc<String>,
    rate: f64,
    length: Duration,
) -> anyhow::Result<Vec<f64>> {
    // At most this many requests in flight (connections stay bounded); a request that waits for a
    // slot still counts its wait, since its latency runs from its scheduled start.
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS.saturating_mul(8)));
    let start = Instant::now();
    let total = (rate * length.as_secs_f64()) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start
            .checked_add(Duration::from_secs_f64(i as f64 / rate))
            .unwrap_or(start);
        tokio::time::sleep_until(due.into()).await;
        let (client, urls, key) = (client.clone(), Arc::clone(urls), Arc::clone(key));
        let slots = Arc::clone(&slots);
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await?;
            get(&client, &urls[i.checked_rem(urls.len()).unwrap_or(0)], &key).await?;
            anyhow::Ok(due.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut out = Vec::with_capacity(total);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Runs pgbench with `args`; its standard output.
async fn run_pgbench(args: Vec<String>) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("pgbench")
        .args(&args)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run pgbench ({e}); install the Postgres client (scripts/setup does)"
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Transactions per second of pgbench with [`CONNECTIONS`] clients on 2 threads for `seconds`:
/// its built-in select-only script (`-S`, after `pgbench -i`), or the script in `file`.
async fn pgbench(
    database_url: &str,
    seconds: u64,
    file: Option<&std::path::Path>,
) -> anyhow::Result<f64> {
    let mut args: Vec<String> = match file {
        Some(path) => vec!["-f".into(), path.display().to_string()],
        None => vec!["-S".into()],
    };
    args.extend([
        "-n".into(),
        "-c".into(),
        CONNECTIONS.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        seconds.to_string(),
        database_url.into(),
    ]);
    let text = run_pgbench(args).await?;
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("pgbench printed no tps line: {text}"))
}
