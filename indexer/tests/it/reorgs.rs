//! Reorgs made on anvil with `evm_snapshot` / `evm_revert` and different transactions mined in
//! the replaced blocks.

use settle_indexer::{IndexerError, Reorg};

use crate::env::{Env, MERCHANT_1, MERCHANT_2, PLATFORM, WHOLE, counts, dump, pay, table_counts};

/// Indexes `depth` blocks holding some batches, replaces them with `depth + 1` blocks holding
/// other batches, and checks the indexer follows the new chain exactly.
async fn reorg_of_depth(depth: u64) {
    let env = Env::new().await;
    let a = env.contract;
    let pusher = env.chain.addresses()[2];
    env.opt_in_push(a, pusher).await;
    let kept = env
        .settle(a, 0, &[pay(1_000, &[(MERCHANT_1, WHOLE)])])
        .await;
    let indexer = env.indexer(env.config());
    indexer.sync_once().await.expect("initial sync");
    let fork = env.head().await;

    // The chain the indexer sees first: `depth` blocks, up to 3 of them settling batches.
    let snapshot = env.snapshot().await;
    let orphaned_batches = depth.min(3);
    let mut orphaned = Vec::new();
    for i in 0..orphaned_batches {
        orphaned.push(
            env.settle(
                a,
                0,
                &[pay(
                    5_000 + u128::from(i),
                    &[(pusher, 500_000), (PLATFORM, 500_000)],
                )],
            )
            .await,
        );
    }
    env.mine(depth - orphaned_batches).await;
    assert_eq!(env.head().await, fork + depth);
    let first = indexer.sync_once().await.expect("sync on the first branch");
    assert!(first.reorgs.is_empty());
    assert_eq!(
        env.indexed_batch_ids().await,
        std::iter::once(kept)
            .chain(orphaned.iter().copied())
            .collect()
    );

    // The chain replaces them: other batches, one block longer.
    env.revert(snapshot).await;
    assert_eq!(env.head().await, fork);
    let replacing = depth.min(2);
    let mut canonical = vec![kept];
    for i in 0..replacing {
        canonical.push(
            env.settle(a, 0, &[pay(7_000 + u128::from(i), &[(MERCHANT_2, WHOLE)])])
                .await,
        );
    }
    env.mine(depth + 1 - replacing).await;
    assert_eq!(env.head().await, fork + depth + 1);

    let report = indexer.sync_once().await.expect("sync after the reorg");
    assert_eq!(report.reorgs.len(), 1, "{report:?}");
    let Reorg {
        fork_point,
        old_head,
        depth: seen_depth,
        events_removed,
    } = report.reorgs[0];
    assert_eq!(
        (fork_point, old_head, seen_depth),
        (fork, fork + depth, depth)
    );
    // Each orphaned batch settled one BatchSettled and one PushedOut.
    assert_eq!(events_removed, orphaned_batches * 2);
    assert_eq!(report.indexed_to, Some(fork + depth + 1));
    assert_eq!(
        env.indexed_batch_ids().await,
        env.chain_batch_ids(&[a]).await
    );
    assert_eq!(
        env.indexed_batch_ids().await,
        canonical.into_iter().collect()
    );
    env.assert_balances_match(
        &[a],
        &[env.funder, MERCHANT_1, MERCHANT_2, PLATFORM, pusher],
    )
    .await;
    env.assert_window_canonical().await;
    // The kept batch and the replacing ones (one payment, one credit each); the orphaned
    // batches' payments, credits and pushes are gone with them.
    let batches = 1 + i64::try_from(replacing).expect("small");
    assert_eq!(
        table_counts(env.db.pool()).await,
        counts([batches, batches, batches, 1, 0, 0, 1, 6])
    );
    assert_eq!(indexer.metrics().reorgs_total, 1);
    assert_eq!(indexer.metrics().deepest_reorg, depth);
    env.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn reorg_of_depth_1_is_followed() {
    reorg_of_depth(1).await;
}

#[tokio::test]
async fn reorg_of_depth_5_is_followed() {
    reorg_of_depth(5).await;
}

#[tokio::test]
async fn reorg_of_depth_64_is_followed() {
    reorg_of_depth(64).await;
}

#[tokio::test]
async fn reorg_deeper_than_the_window_is_refused_and_writes_nothing() {
    let env = Env::new().await;
    let a = env.contract;
    let mut config = env.config();
    config.reorg_window = 4;
    let indexer = env.indexer(config);
    indexer.sync_once().await.expect("initial sync");
    let fork = env.head().await;

    let snapshot = env.snapshot().await;
    env.settle(a, 0, &[pay(1_000, &[(MERCHANT_1, WHOLE)])])
        .await;
    env.mine(7).await;
    indexer.sync_once().await.expect("sync on the first branch");
    let window: Vec<i64> = sqlx::query_scalar("SELECT number FROM indexer.blocks ORDER BY number")
        .fetch_all(env.db.pool())
        .await
        .expect("window");
    let head = i64::try_from(fork + 8).expect("small");
    assert_eq!(window, (head - 3..=head).collect::<Vec<_>>());

    env.revert(snapshot).await;
    env.settle(a, 0, &[pay(2_000, &[(MERCHANT_2, WHOLE)])])
        .await;
    env.mine(8).await;
    let before = dump(env.db.pool()).await;
    let err = indexer
        .sync_once()
        .await
        .expect_err("a reorg of 8 with a window of 4");
    match &err {
        IndexerError::ReorgTooDeep {
            chain_id,
            oldest,
            head,
            window,
        } => {
            assert_eq!(
                (*chain_id, *oldest, *head, *window),
                (31337, fork + 5, fork + 8, 4)
            );
        }
        other => panic!("expected ReorgTooDeep, got {other:?}"),
    }
    assert!(err.is_fatal());
    assert!(err.to_string().contains("raise `reorg_window`"));
    assert_eq!(dump(env.db.pool()).await, before, "nothing was written");
    // And it stays refused: the indexer does not guess.
    assert!(matches!(
        indexer.sync_once().await,
        Err(IndexerError::ReorgTooDeep { .. })
    ));
    assert_eq!(dump(env.db.pool()).await, before);
    env.db.cleanup().await.expect("cleanup");
}
