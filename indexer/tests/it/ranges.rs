//! `eth_getLogs` ranges adapt to what the node answers; endpoints fail over; the chain is checked.

use std::sync::Arc;

use settle_indexer::{Indexer, IndexerConfig, IndexerError, MIGRATOR};
use settle_relayer::{RpcConfig, RpcPool};
use settle_testkit::{FaultMode, FaultProxy, TestDb};

use crate::{
    env::{CHAIN_ID, Env, MERCHANT_1, PLATFORM, counts, dump, pay, rpc_to, table_counts},
    rpc_limit::{REFUSE_ALL, RpcLimitProxy},
};

/// 6 batches over about 20 blocks.
async fn activity(env: &Env) {
    for i in 0..6u128 {
        env.settle(
            env.contract,
            0,
            &[pay(100 + i, &[(MERCHANT_1, 700_000), (PLATFORM, 300_000)])],
        )
        .await;
        env.mine(2).await;
    }
}

/// Batches 6, payments 6, credits 12, deposits 1, withdrawals 0, pushes 0, signer changes 1,
/// governance 5.
const EXPECTED: [i64; 8] = [6, 6, 12, 1, 0, 0, 1, 5];

#[tokio::test]
async fn a_node_that_refuses_large_ranges_is_read_in_smaller_ones() {
    let env = Env::new().await;
    activity(&env).await;
    // The reference indexes into another database, through anvil directly.
    let reference_db = TestDb::create().await.expect("database");
    MIGRATOR.run(reference_db.pool()).await.expect("migrations");
    let reference =
        Indexer::new(reference_db.pool().clone(), env.rpc(), env.config()).expect("indexer");
    reference.sync_once().await.expect("reference");

    // At most 4 blocks per query (toBlock - fromBlock <= 3).
    let proxy = RpcLimitProxy::start(env.chain.endpoint(), 3).await;
    let config = IndexerConfig {
        initial_range: 64,
        max_range: 64,
        ..env.config()
    };
    let indexer =
        Indexer::new(env.db.pool().clone(), rpc_to(proxy.url()), config).expect("indexer");
    let report = indexer.sync_once().await.expect("indexing completes");
    assert!(report.caught_up);
    assert!(report.range_shrinks >= 3, "{report:?}");
    assert_eq!(proxy.refused(), report.range_shrinks);
    assert_eq!(proxy.answered(), report.ranges);
    assert!(
        report.largest_range.is_some_and(|r| r <= 4),
        "largest range answered: {:?}",
        report.largest_range
    );
    assert!(indexer.range_size() <= 8);
    assert_eq!(indexer.metrics().range_shrinks_total, report.range_shrinks);
    assert_eq!(table_counts(env.db.pool()).await, counts(EXPECTED));
    assert_eq!(dump(env.db.pool()).await, dump(reference_db.pool()).await);
    eprintln!(
        "limited node: {} ranges, {} refused, largest {:?}, {:?}",
        report.ranges, report.range_shrinks, report.largest_range, report.elapsed
    );
    reference_db.cleanup().await.expect("cleanup");
    env.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn a_node_that_refuses_even_one_block_fails_clearly_and_writes_nothing() {
    let env = Env::new().await;
    let proxy = RpcLimitProxy::start(env.chain.endpoint(), REFUSE_ALL).await;
    let indexer =
        Indexer::new(env.db.pool().clone(), rpc_to(proxy.url()), env.config()).expect("indexer");
    let err = indexer.sync_once().await.expect_err("no logs at all");
    match &err {
        IndexerError::LogsFailed { from, to, .. } => {
            assert_eq!((*from, *to), (env.deploy_block, env.deploy_block));
        }
        other => panic!("expected LogsFailed, got {other:?}"),
    }
    assert!(!err.is_fatal(), "a node may recover: run() retries");
    assert!(err.to_string().contains("smallest range"));
    assert_eq!(indexer.range_size(), 1);
    assert_eq!(table_counts(env.db.pool()).await, counts([0; 8]));
    assert_eq!(dump(env.db.pool()).await, Vec::<String>::new());
    assert_eq!(indexer.metrics().sync_failures_total, 1);
    env.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn a_refusing_endpoint_is_skipped_for_the_next() {
    let env = Env::new().await;
    activity(&env).await;
    let address = format!("127.0.0.1:{}", env.chain.port())
        .parse()
        .expect("socket address");
    let broken = FaultProxy::start(address).await.expect("proxy");
    broken.set(FaultMode::Refuse);
    let rpc =
        RpcPool::new(&[broken.url(), env.chain.endpoint()], RpcConfig::default()).expect("pool");
    let indexer =
        Indexer::new(env.db.pool().clone(), Arc::new(rpc), env.config()).expect("indexer");
    let report = indexer
        .sync_once()
        .await
        .expect("indexed through the second endpoint");
    assert!(report.caught_up);
    assert_eq!(
        report.range_shrinks, 0,
        "a transport failure is failed over, not shrunk"
    );
    assert_eq!(table_counts(env.db.pool()).await, counts(EXPECTED));
    assert!(broken.connections() > 0);
    env.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn endpoints_of_another_chain_are_refused() {
    let env = Env::new().await;
    let config = IndexerConfig {
        chain_id: CHAIN_ID + 1,
        ..env.config()
    };
    let indexer = env.indexer(config);
    assert!(matches!(
        indexer.sync_once().await,
        Err(IndexerError::WrongChain {
            expected: 31338,
            actual: 31337
        })
    ));
    assert_eq!(table_counts(env.db.pool()).await, counts([0; 8]));
    env.db.cleanup().await.expect("cleanup");
}
