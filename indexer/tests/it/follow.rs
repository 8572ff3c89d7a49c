//! `run` follows the chain until shut down.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::env::{Env, MERCHANT_1, WHOLE, pay};

async fn batches(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM indexer.batches")
        .fetch_one(env.db.pool())
        .await
        .expect("count")
}

/// Waits until the indexer has `n` batches (checked every 20 ms, for at most 30 s).
async fn until_batches(env: &Env, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while batches(env).await != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the indexer never reached {n} batches"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn run_follows_new_blocks_until_shutdown() {
    let env = Env::new().await;
    let indexer = env.indexer(env.config());
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let follow = async {
        env.settle(env.contract, 0, &[pay(10, &[(MERCHANT_1, WHOLE)])])
            .await;
        until_batches(&env, 1).await;
        env.settle(env.contract, 0, &[pay(20, &[(MERCHANT_1, WHOLE)])])
            .await;
        env.settle(env.contract, 1, &[pay(30, &[(MERCHANT_1, WHOLE)])])
            .await;
        until_batches(&env, 3).await;
        stop.send(()).expect("indexer running");
    };
    let (outcome, ()) = tokio::join!(indexer.run(shutdown), follow);
    outcome.expect("stopped cleanly");
    let metrics = indexer.metrics();
    assert_eq!(metrics.head_lag, 0);
    assert!(metrics.syncs_total >= 2);
    assert_eq!(metrics.sync_failures_total, 0);
    env.assert_balances_match(&[env.contract], &[env.funder, MERCHANT_1])
        .await;
    env.db.cleanup().await.expect("cleanup");
}
