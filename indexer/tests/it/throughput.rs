//! A measurement, not a test of speed: indexes a few hundred batches and prints events/s.
//! Run with `cargo nextest run -p settle-indexer --run-ignored only --no-capture throughput`.

use settle_indexer::IndexerConfig;

use crate::env::{Env, pay, table_counts};

const BATCHES: u64 = 200;
const PAYMENTS: usize = 20;

#[tokio::test]
#[ignore = "measurement; run explicitly"]
async fn backfill_throughput() {
    let env = Env::new().await;
    let payees: Vec<_> = (1..=10u8)
        .map(|i| alloy::primitives::Address::repeat_byte(0x10 + i))
        .collect();
    let started = std::time::Instant::now();
    for b in 0..BATCHES {
        let payments: Vec<_> = (0..PAYMENTS)
            .map(|p| {
                let first = payees[p % payees.len()];
                let second = payees[(p + 1) % payees.len()];
                pay(
                    1_000 + u128::from(b),
                    &[(first, 600_000), (second, 400_000)],
                )
            })
            .collect();
        env.settle(env.contract, 0, &payments).await;
    }
    eprintln!("setup: {BATCHES} batches in {:?}", started.elapsed());
    for (name, config) in [
        (
            "one range",
            IndexerConfig {
                initial_range: 5_000,
                max_range: 5_000,
                ..env.config()
            },
        ),
        (
            "ranges of 1 block",
            IndexerConfig {
                initial_range: 1,
                max_range: 1,
                ..env.config()
            },
        ),
    ] {
        sqlx::query("TRUNCATE indexer.batches, indexer.payments, indexer.credits, indexer.deposits, indexer.withdrawals, indexer.pushes, indexer.signer_changes, indexer.governance, indexer.blocks, indexer.checkpoints")
            .execute(env.db.pool())
            .await
            .expect("truncate");
        let indexer = env.indexer(config);
        let report = indexer.sync_once().await.expect("sync");
        let rows = report.counts.events() + report.counts.payments + report.counts.credits;
        eprintln!(
            "{name}: {} events ({rows} rows) in {} blocks, {} ranges, {:?}: {:.0} events/s, {:.0} rows/s",
            report.counts.events(),
            report.blocks,
            report.ranges,
            report.elapsed,
            report.events_per_second(),
            rows as f64 / report.elapsed.as_secs_f64(),
        );
        assert_eq!(
            table_counts(env.db.pool()).await["batches"],
            i64::try_from(BATCHES).expect("small")
        );
    }
    env.db.cleanup().await.expect("cleanup");
}
