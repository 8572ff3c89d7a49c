//! Crashes between and inside range writes: a restarted indexer loses nothing and repeats nothing.

use std::time::Duration;

use settle_indexer::{IndexerError, MIGRATOR};
use settle_testkit::TestDb;

use crate::env::{Env, MERCHANT_1, MERCHANT_2, PLATFORM, counts, dump, pay, table_counts};

/// 8 batches, 2 deposits and a withdrawal, spread over about 30 blocks.
async fn activity(env: &Env) {
    let payee = env.chain.addresses()[4];
    for i in 0..8u128 {
        env.settle(
            env.contract,
            0,
            &[
                pay(1_000 + i, &[(MERCHANT_1, 600_000), (PLATFORM, 400_000)]),
                pay(2_000 + i, &[(payee, 500_000), (MERCHANT_2, 500_000)]),
            ],
        )
        .await;
        env.mine(2).await;
    }
    env.deposit(env.contract, 77).await;
    env.withdraw(env.contract, payee, 1_000).await;
    env.deposit(env.contract, 88).await;
}

/// What a single uninterrupted indexer makes of the same chain, in its own database.
async fn reference(env: &Env) -> (TestDb, Vec<String>) {
    let db = TestDb::create().await.expect("reference database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let indexer =
        settle_indexer::Indexer::new(db.pool().clone(), env.rpc(), env.config()).expect("indexer");
    let report = indexer.sync_once().await.expect("reference sync");
    assert!(report.caught_up);
    let rows = dump(db.pool()).await;
    (db, rows)
}

/// Batches 8, payments 16, credits 32, deposits 3, withdrawals 1, pushes 0, signer changes 1,
/// governance 5.
const EXPECTED: [i64; 8] = [8, 16, 32, 3, 1, 0, 1, 5];

#[tokio::test]
async fn stopped_after_some_ranges_a_new_indexer_resumes_exactly() {
    let env = Env::new().await;
    activity(&env).await;
    let (reference_db, expected) = reference(&env).await;

    let mut config = env.config();
    config.initial_range = 2;
    config.max_range = 2;
    let first = env.indexer(config.clone());
    let partial = first.sync_ranges(3).await.expect("three ranges");
    assert_eq!((partial.ranges, partial.blocks), (3, 6));
    assert!(!partial.caught_up);
    assert_eq!(partial.indexed_to, Some(env.deploy_block + 5));
    drop(first);
    let checkpoint: i64 = sqlx::query_scalar("SELECT block_number FROM indexer.checkpoints")
        .fetch_one(env.db.pool())
        .await
        .expect("one checkpoint");
    assert_eq!(
        checkpoint,
        i64::try_from(env.deploy_block + 5).expect("small")
    );

    let second = env.indexer(config);
    let rest = second.sync_once().await.expect("resume");
    assert!(rest.caught_up);
    assert_eq!(
        partial.blocks + rest.blocks,
        env.head().await - env.deploy_block + 1,
        "every block once"
    );
    let mut total = partial.counts;
    total.add(&rest.counts);
    assert_eq!(
        [
            total.batches,
            total.payments,
            total.credits,
            total.deposits,
            total.withdrawals,
            total.pushes,
            total.signer_changes,
            total.governance
        ]
        .map(|n| i64::try_from(n).expect("small")),
        EXPECTED
    );
    assert_eq!(table_counts(env.db.pool()).await, counts(EXPECTED));
    assert_eq!(dump(env.db.pool()).await, expected);
    reference_db.cleanup().await.expect("cleanup");
    env.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn syncs_cancelled_at_any_point_resume_exactly() {
    let env = Env::new().await;
    activity(&env).await;
    let (reference_db, expected) = reference(&env).await;

    let mut config = env.config();
    config.initial_range = 1;
    config.max_range = 1;
    let mut cancelled = 0u32;
    let mut raced = 0u32;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        assert!(attempt < 2_000, "never finished");
        // A fresh indexer every time, as after a crash; the sync is dropped wherever it is
        // after a scattered deadline of 1 to 8 ms (a range takes a few): between ranges, inside
        // a transaction, during a commit. Later attempts get more time, so it ends.
        let indexer = env.indexer(config.clone());
        let deadline = 1_000 + (attempt * 7_919) % 7_000 + attempt * 50;
        match tokio::time::timeout(Duration::from_micros(deadline), indexer.sync_once()).await {
            Err(_) => cancelled += 1,
            Ok(Ok(report)) if report.caught_up => break,
            // A sync cancelled during its COMMIT can still commit after the next one read the
            // window: the next one sees another writer and writes nothing (run() retries it).
            Ok(Err(IndexerError::ConcurrentWriter { chain_id: 31337 })) => raced += 1,
            Ok(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert!(cancelled > 1, "some syncs were cut short ({cancelled})");
    assert_eq!(table_counts(env.db.pool()).await, counts(EXPECTED));
    assert_eq!(dump(env.db.pool()).await, expected);
    eprintln!("cancelled {cancelled} syncs ({raced} raced a cancelled commit) before one finished");
    reference_db.cleanup().await.expect("cleanup");
    env.db.cleanup().await.expect("cleanup");
}
