//! Indexer throughput: 1,000,000 credits (100,000 with `--quick`) settled on anvil in batches of
//! 1,000 payees, then indexed from the deployment block by the real indexer into a fresh
//! database. The ceiling is `COPY` (binary) of exactly the rows it wrote into copies of the same
//! tables (same columns, types, checks, keys, indexes and foreign keys), on the same server.

use std::{sync::Arc, time::Instant};

use alloy::providers::Provider;
use futures_util::StreamExt;
use settle_contracts::SplitSettlement;
use settle_indexer::{Indexer, IndexerConfig};
use settle_relayer::{RpcConfig, RpcPool};
use sqlx::{Connection, PgConnection, postgres::PgPoolOptions};

use super::{
    BenchArgs, Report,
    env::{BenchEnv, CHAIN_ID, NATIVE, one_credit_each, payees},
};

/// Payees per generated batch (10 payments of 100 legs; about 7.3 M gas, under the 2^24 cap a
/// transaction may use since Osaka).
const PER_BATCH: usize = 1_000;
/// The event tables, parents first.
const TABLES: [&str; 8] = settle_indexer::EVENT_ROW_TABLES;

/// Runs the indexer section.
pub(crate) async fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let target: usize = if args.quick { 100_000 } else { 1_000_000 };
    let env = BenchEnv::start(args, "indexer").await?;
    let who = payees("indexer", PER_BATCH);

    // Generation (not timed as indexing): warm the payees in batches of 500 (cold credits cost
    // about 25,000 gas each), then full batches until `target` credits exist.
    let generated = Instant::now();
    let mut credits = 0usize;
    let mut pending = Vec::new();
    let settlement = SplitSettlement::new(env.manifest.settlement, &env.provider);
    let mut sent = 0usize;
    for chunk in who.chunks(500) {
        env.settle(NATIVE, &one_credit_each(chunk, 1_000_000))
            .await?;
        credits = credits.saturating_add(chunk.len());
    }
    let payments = one_credit_each(&who, 1_000_000);
    while credits < target {
        let (batch, signature) = env.signed_batch(NATIVE, &payments)?;
        let tx = settlement
            .settleBatch(batch, signature)
            .gas(16_000_000)
            .send()
            .await?;
        pending.push(tx);
        credits = credits.saturating_add(PER_BATCH);
        sent = sent.saturating_add(1);
        // Keep the node's pool short: wait for every 50th.
        if pending.len() >= 50 {
            confirm(&mut pending).await?;
        }
    }
    confirm(&mut pending).await?;
    report.set("indexer_generate_seconds", seconds(generated));
    eprintln!(
        "settle bench: generated {credits} credits in {sent} full batches in {:.1} s",
        generated.elapsed().as_secs_f64()
    );

    // What the node alone costs: every log of the contract fetched (and decoded by alloy) in
    // ranges of 200 blocks, nothing written.
    let head = env.provider.get_block_number().await?;
    let fetched = Instant::now();
    let mut logs = 0usize;
    let mut from = env.manifest.deployed_block;
    while from <= head {
        let to = head.min(from.saturating_add(199));
        let filter = alloy::rpc::types::Filter::new()
            .address(env.manifest.settlement)
            .from_block(from)
            .to_block(to);
        logs = logs.saturating_add(env.provider.get_logs(&filter).await?.len());
        from = to.saturating_add(1);
    }
    report.set("indexer_fetch_seconds", seconds(fetched));
    report.set("indexer_fetched_logs", logs);

    // Indexing, timed.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&env.database_url)
        .await?;
    settle_indexer::migrate(&pool).await?;
    let rpc = Arc::new(RpcPool::new(
        &[env.rpc()],
        RpcConfig {
            timeout: std::time::Duration::from_secs(60),
            ..RpcConfig::default()
        },
    )?);
    let config = IndexerConfig {
        confirmations: 0,
        initial_range: 20,
        max_range: 200,
        ..IndexerConfig::new(
            CHAIN_ID,
            vec![env.manifest.settlement],
            env.manifest.deployed_block,
        )
    };
    let indexer = Indexer::new(pool.clone(), rpc, config)?;
    let started = Instant::now();
    let mut indexed_credits = 0u64;
    let mut rows = 0u64;
    loop {
        let sync = indexer.sync_once().await?;
        indexed_credits = indexed_credits.saturating_add(sync.counts.credits);
        rows = rows
            .saturating_add(sync.counts.events())
            .saturating_add(sync.counts.payments)
            .saturating_add(sync.counts.credits);
        if sync.caught_up {
            break;
        }
    }
    let index_seconds = started.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM indexer.credits")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        u64::try_from(stored)? == indexed_credits && usize::try_from(stored)? >= target,
        "the indexer stored {stored} credits, reported {indexed_credits}, expected at least {target}"
    );
    let copy_seconds = copy_ceiling(&env.database_url).await?;
    let events_per_s = indexed_credits as f64 / index_seconds;
    let rows_per_s = rows as f64 / index_seconds;
    let copy_rows_per_s = rows as f64 / copy_seconds;
    report.set("indexer_credits", indexed_credits);
    report.set("indexer_rows", rows);
    report.set("indexer_seconds", round1(index_seconds));
    report.set("indexer_events_per_s", events_per_s.round());
    report.set("indexer_rows_per_s", rows_per_s.round());
    report.set("indexer_copy_seconds", round1(copy_seconds));
    report.set("indexer_copy_rows_per_s", copy_rows_per_s.round());
    report.set(
        "indexer_copy_ratio",
        (rows_per_s / copy_rows_per_s * 1000.0).round() / 1000.0,
    );
    Ok(())
}

/// Waits for every pending transaction's receipt and checks it succeeded.
async fn confirm(
    pending: &mut Vec<alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>>,
) -> anyhow::Result<()> {
    for tx in pending.drain(..) {
        // A transaction the node lost must fail the run, not hang it.
        let receipt = tx
            .with_timeout(Some(std::time::Duration::from_secs(120)))
            .get_receipt()
            .await?;
        anyhow::ensure!(
            receipt.status(),
            "a generated batch reverted: {}",
            receipt.transaction_hash
        );
    }
    Ok(())
}

fn seconds(since: Instant) -> f64 {
    round1(since.elapsed().as_secs_f64())
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Seconds to `COPY` every row of the event tables into empty copies of those tables.
async fn copy_ceiling(database_url: &str) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect(database_url).await?;
    sqlx::query("DROP SCHEMA IF EXISTS bench_copy CASCADE")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE SCHEMA bench_copy")
        .execute(&mut conn)
        .await?;
    for table in TABLES {
        sqlx::query(&format!(
            "CREATE TABLE bench_copy.{table} (LIKE indexer.{table} INCLUDING ALL)"
        ))
        .execute(&mut conn)
        .await?;
    }
    // The indexer's tables reference their batch; so do the copies.
    for table in ["payments", "credits"] {
        sqlx::query(&format!(
            "ALTER TABLE bench_copy.{table} ADD FOREIGN KEY (chain_id, block_hash, log_index)
             REFERENCES bench_copy.batches (chain_id, block_hash, log_index) ON DELETE CASCADE"
        ))
        .execute(&mut conn)
        .await?;
    }
    // Export outside the timing.
    let mut data = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let mut out = Vec::new();
        let mut stream = conn
            .copy_out_raw(&format!("COPY indexer.{table} TO STDOUT (FORMAT binary)"))
            .await?;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        drop(stream);
        data.push((table, out));
    }
    let started = Instant::now();
    for (table, bytes) in &data {
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY bench_copy.{table} FROM STDIN (FORMAT binary)"
            ))
            .await?;
        for piece in bytes.chunks(1 << 20) {
            copy.send(piece).await?;
        }
        copy.finish().await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    sqlx::query("DROP SCHEMA bench_copy CASCADE")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(elapsed)
}
