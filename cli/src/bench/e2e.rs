//! End to end, in this process: relayer, indexer and API served from a settle.toml on their own
//! anvil and database; payments submitted through `POST /v1/payments/bulk`; timed until every
//! one is settled and indexed.
//!
//! Per-stage latency, per payment, from its acceptance: `signed` (the batcher groups and signs in
//! one transaction, so batched and signed are one moment), `submitted`, `confirmed` (settled
//! after the configured confirmations) from the relayer's change feed; `mined` (when the relayer
//! saw the receipt, so it can come after `indexed`) and `indexed` from an observer that polls the
//! batch tables every 10 ms. Every time is the database's clock.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{PgPool, Row};
use tokio::sync::Mutex;

use super::{BenchArgs, Report, api::Served, api::percentile, env::BenchEnv, plot};

/// The stages after acceptance, in order.
const STAGES: [&str; 5] = ["signed", "submitted", "mined", "confirmed", "indexed"];

/// First time (database clock, epoch seconds) each batch was seen mined and indexed.
#[derive(Debug, Default)]
struct Seen {
    mined: HashMap<uuid::Uuid, f64>,
    indexed: HashMap<Vec<u8>, f64>,
}

/// Runs the end-to-end section.
pub(crate) async fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let env = BenchEnv::start(args, "e2e").await?;
    let served = Served::start(&env, &args.out.join("e2e"), None).await?;
    let pool = crate::serve::database(&served.settings).await?;
    let count: u64 = if args.quick { 2_000 } else { 10_000 };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let observer = {
        let (pool, seen) = (pool.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            loop {
                observe(&pool, &seen).await?;
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
            anyhow::Ok(())
        })
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    served
        .submit(&client, env.funder.address(), 0, count)
        .await?;
    let deadline = started
        .checked_add(Duration::from_secs(900))
        .unwrap_or(started);
    loop {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE i.status = 'settled') AS settled,
                    count(*) FILTER (WHERE i.status = 'settled' AND ib.batch_id IS NULL) AS unindexed
             FROM relayer.instructions i
             LEFT JOIN relayer.batches b ON b.id = i.batch
             LEFT JOIN indexer.batches ib ON ib.batch_id = b.batch_id",
        )
        .fetch_one(&pool)
        .await?;
        let settled: i64 = row.try_get("settled")?;
        let unindexed: i64 = row.try_get("unindexed")?;
        if u64::try_from(settled)? >= count && unindexed == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after 900 s only {settled} of {count} payments settled ({unindexed} not indexed)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    observer.await??;
    observe(&pool, &seen).await?;
    report.set("e2e_payments", count);
    report.set("e2e_seconds", (seconds * 10.0).round() / 10.0);
    report.set("e2e_payments_per_s", (count as f64 / seconds).round());

    let latencies = stage_latencies(&pool, &*seen.lock().await).await?;
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (stage, mut values) in STAGES.iter().zip(latencies) {
        values.sort_by(f64::total_cmp);
        let (a, b) = (percentile(&values, 50.0), percentile(&values, 99.0));
        report.set(&format!("e2e_{stage}_p50_ms"), a.round());
        report.set(&format!("e2e_{stage}_p99_ms"), b.round());
        p50.push(a);
        p99.push(b);
    }
    plot::bars(
        &args.out.join("e2e_latency.png"),
        &format!("Time from acceptance to each stage ({count} payments)"),
        "milliseconds",
        &STAGES.map(str::to_owned),
        &[("p50".to_owned(), p50), ("p99".to_owned(), p99)],
    )?;
    pool.close().await;
    served.stop().await?;
    Ok(())
}

/// Records the first sighting of batches that are mined (included or settled) and indexed.
async fn observe(pool: &PgPool, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let mined = sqlx::query(
        "SELECT id, extract(epoch FROM clock_timestamp())::float8 AS at
         FROM relayer.batches WHERE status IN ('included', 'settled')",
    )
    .fetch_all(pool)
    .await?;
    let indexed = sqlx::query(
        "SELECT batch_id::bytea AS batch_id, extract(epoch FROM clock_timestamp())::float8 AS at
         FROM indexer.batches",
    )
    .fetch_all(pool)
    .await?;
    let mut seen = seen.lock().await;
    for row in mined {
        let at: f64 = row.try_get("at")?;
        seen.mined.entry(row.try_get("id")?).or_insert(at);
    }
    for row in indexed {
        let at: f64 = row.try_get("at")?;
        seen.indexed.entry(row.try_get("batch_id")?).or_insert(at);
    }
    Ok(())
}

/// For each stage of [`STAGES`], the milliseconds from each payment's acceptance to it.
async fn stage_latencies(pool: &PgPool, seen: &Seen) -> anyhow::Result<Vec<Vec<f64>>> {
    let rows = sqlx::query(
        "WITH c AS (
            SELECT instruction_id,
                   extract(epoch FROM min(changed_at) FILTER (WHERE new_status = 'signed'))::float8 AS signed,
                   extract(epoch FROM min(changed_at) FILTER (WHERE new_status = 'submitted'))::float8 AS submitted,
                   extract(epoch FROM min(changed_at) FILTER (WHERE new_status = 'settled'))::float8 AS confirmed
            FROM relayer.instruction_changes GROUP BY instruction_id)
         SELECT i.batch AS batch, b.batch_id AS batch_id,
                extract(epoch FROM i.created_at)::float8 AS accepted, c.signed, c.submitted, c.confirmed
         FROM relayer.instructions i
         JOIN relayer.batches b ON b.id = i.batch
         LEFT JOIN c ON c.instruction_id = i.id",
    )
    .fetch_all(pool)
    .await?;
    let mut out = vec![Vec::with_capacity(rows.len()); STAGES.len()];
    for row in rows {
        let accepted: f64 = row.try_get("accepted")?;
        let batch: uuid::Uuid = row.try_get("batch")?;
        let batch_id: Vec<u8> = row.try_get("batch_id")?;
        let times = [
            row.try_get::<Option<f64>, _>("signed")?,
            row.try_get::<Option<f64>, _>("submitted")?,
            seen.mined.get(&batch).copied(),
            row.try_get::<Option<f64>, _>("confirmed")?,
            seen.indexed.get(&batch_id).copied(),
        ];
        for (slot, time) in out.iter_mut().zip(times) {
            if let Some(t) = time {
                slot.push(((t - accepted) * 1000.0).max(0.0));
            }
        }
    }
    Ok(out)
}
