//! Backfill, then live: every event once, every balance equal to the chain's.

use settle_indexer::EventCounts;

use crate::env::{Env, MERCHANT_1, MERCHANT_2, PLATFORM, WHOLE, counts, dump, pay, table_counts};

#[tokio::test]
async fn backfill_then_live_mirrors_every_event_once_and_every_balance() {
    let env = Env::new().await;
    let a = env.contract;
    let pusher = env.chain.addresses()[2];
    let withdrawer = env.chain.addresses()[3];
    let refuser = env.implementation;

    // Phase 1, before the indexer starts. Env::new: Upgraded, OwnershipTransferred, GuardianSet,
    // Initialized, SignerSet, TokenConfigured, Deposited.
    env.opt_in_push(a, pusher).await;
    env.opt_in_push_as_contract(a, refuser).await;
    // Deposit-funded: 3 payments, 5 payees; the pusher's credit is pushed out, the refuser's
    // push fails and stays credited.
    env.settle(
        a,
        0,
        &[
            pay(1_000_000, &[(MERCHANT_1, 900_000), (PLATFORM, 100_000)]),
            pay(500_001, &[(pusher, 500_000), (withdrawer, 500_000)]),
            pay(300_000, &[(refuser, WHOLE)]),
        ],
    )
    .await;
    // Pull-funded (paid with the call): the funder's deposit is not touched.
    env.settle(
        a,
        1,
        &[pay(700, &[(MERCHANT_1, 500_000), (withdrawer, 500_000)])],
    )
    .await;
    env.withdraw(a, withdrawer, 100).await;
    env.deposit(a, 5_000).await;
    // A second contract on the same chain, followed by the same indexer.
    let b = env.deploy().await.proxy;
    env.deposit(b, 9_000).await;

    let mut config = env.config();
    config.contracts = vec![a, b];
    let indexer = env.indexer(config);
    let report = indexer.sync_once().await.expect("backfill");
    let expected_backfill = EventCounts {
        batches: 2,
        payments: 4,
        credits: 7,
        deposits: 3,
        withdrawals: 1,
        pushes: 2,
        signer_changes: 2,
        // a: 4 from the proxy's construction, TokenConfigured, 2 PushPreferenceSet; b: 5.
        governance: 12,
    };
    assert_eq!(report.counts, expected_backfill);
    assert!(report.caught_up);
    assert_eq!(report.indexed_to, Some(env.head().await));
    assert!(
        report.ranges > 1,
        "small ranges: {} blocks in {} ranges",
        report.blocks,
        report.ranges
    );
    assert_eq!(
        table_counts(env.db.pool()).await,
        counts([2, 4, 7, 3, 1, 2, 2, 12])
    );
    let pushes: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kind, account FROM indexer.pushes ORDER BY log_index")
            .fetch_all(env.db.pool())
            .await
            .expect("pushes");
    assert_eq!(
        pushes,
        vec![
            ("pushed_out".to_owned(), pusher.to_vec()),
            ("push_failed".to_owned(), refuser.to_vec())
        ]
    );
    let governance: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, count(*) FROM indexer.governance WHERE contract = $1 GROUP BY name ORDER BY name",
    )
    .bind(a.to_vec())
    .fetch_all(env.db.pool())
    .await
    .expect("governance");
    assert_eq!(
        governance,
        [
            ("GuardianSet", 1),
            ("Initialized", 1),
            ("OwnershipTransferred", 1),
            ("PushPreferenceSet", 2),
            ("TokenConfigured", 1),
            ("Upgraded", 1),
        ]
        .map(|(n, c)| (n.to_owned(), c))
        .to_vec()
    );
    let accounts = [
        env.funder, MERCHANT_1, MERCHANT_2, PLATFORM, pusher, withdrawer, refuser,
    ];
    assert_eq!(env.assert_balances_match(&[a, b], &accounts).await, 14);
    assert_eq!(
        env.indexed_batch_ids().await,
        env.chain_batch_ids(&[a, b]).await
    );

    // Phase 2, live.
    env.settle(a, 0, &[pay(2_000, &[(pusher, WHOLE)])]).await;
    env.settle(
        a,
        0,
        &[
            pay(10, &[(MERCHANT_2, WHOLE)]),
            pay(20, &[(MERCHANT_1, WHOLE)]),
        ],
    )
    .await;
    env.withdraw(a, withdrawer, 50).await;
    env.settle(
        b,
        0,
        &[pay(
            3_000,
            &[(MERCHANT_2, 333_333), (PLATFORM, WHOLE - 333_333)],
        )],
    )
    .await;
    let live = indexer.sync_once().await.expect("live");
    assert_eq!(
        live.counts,
        EventCounts {
            batches: 3,
            payments: 4,
            credits: 5,
            deposits: 0,
            withdrawals: 1,
            pushes: 1,
            signer_changes: 0,
            governance: 0,
        }
    );
    assert_eq!(live.blocks, 4, "one block per transaction");
    assert_eq!(
        table_counts(env.db.pool()).await,
        counts([5, 8, 12, 3, 2, 3, 2, 12])
    );
    assert_eq!(env.assert_balances_match(&[a, b], &accounts).await, 14);
    assert_eq!(
        env.indexed_batch_ids().await,
        env.chain_batch_ids(&[a, b]).await
    );
    env.assert_window_canonical().await;

    // Nothing new: nothing written, nothing changed.
    let before = dump(env.db.pool()).await;
    let idle = indexer.sync_once().await.expect("idle");
    assert_eq!((idle.ranges, idle.counts), (0, EventCounts::default()));
    assert_eq!(dump(env.db.pool()).await, before);

    let metrics = indexer.metrics();
    assert_eq!(metrics.events_total, 3 + 12 + 2 + 1 + 2 + 2 + 5);
    assert_eq!(metrics.head_lag, 0);
    assert!(
        metrics
            .render()
            .contains("settle_indexer_events_total{chain_id=\"31337\"} 27\n")
    );
    eprintln!(
        "backfill: {} events in {} blocks, {} ranges, {:?} ({:.0} events/s); live: {} events in {:?} ({:.0} events/s)",
        report.counts.events(),
        report.blocks,
        report.ranges,
        report.elapsed,
        report.events_per_second(),
        live.counts.events(),
        live.elapsed,
        live.events_per_second(),
    );
    env.db.cleanup().await.expect("cleanup");
}
