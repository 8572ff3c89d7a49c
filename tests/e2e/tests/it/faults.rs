//! Faults in the middle of a flow of payments, each followed by the exact end state: every
//! payment settled once on chain, balances equal to the sums, the mirror equal to the chain,
//! reconciliation clean.

use std::{os::unix::process::ExitStatusExt, time::Duration};

use settle_e2e::{
    Ledger, Options, Settlements, Stack,
    chain::{Miner, automine, mine, revert, snapshot},
};
use settle_testkit::FaultMode;
use sqlx::Connection;

const NOT_SETTLED: &str = "SELECT count(*) FROM relayer.instructions WHERE status <> 'settled'";
const SETTLED_BATCHES: &str = "SELECT count(*) FROM relayer.batches WHERE status = 'settled'";
const TRANSACTIONS: &str = "SELECT count(*) FROM relayer.transactions";

/// `settle serve --only relayer` (the built binary) is SIGKILLed twice mid-flow, once after
/// batches settled and once right after a transaction was stored, with payments pending both
/// times; each restart resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayer_process_killed_mid_flow_resumes_and_settles_everything_once() {
    let mut stack = Stack::start(Options {
        relayer_process: true,
        max_payments: 20,
        max_in_flight: 2,
        ..Options::default()
    })
    .await;
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..400).await;
    stack.spawn_relayer();

    stack.wait_count(SETTLED_BATCHES, 2).await;
    let status = stack.kill_relayer();
    assert_eq!(status.signal(), Some(9), "SIGKILLed: {status}");
    let pending = stack.count(NOT_SETTLED).await;
    assert!(pending > 0, "killed mid-flow, with payments pending");
    // The API keeps accepting while no relayer runs.
    stack.submit(&mut ledger, 400..700).await;

    stack.spawn_relayer();
    let stored = stack.count(TRANSACTIONS).await;
    stack
        .wait_count(TRANSACTIONS, stored.checked_add(1).expect("small"))
        .await;
    let status = stack.kill_relayer();
    assert_eq!(status.signal(), Some(9), "SIGKILLed: {status}");
    assert!(stack.count(NOT_SETTLED).await > 0);

    stack.spawn_relayer();
    stack.settle_all(&ledger).await;
    stack.assert_exact(&ledger).await;
    stack.finish().await;
}

/// Relayer and indexer reach anvil through a proxy that refuses, then stalls, every connection
/// for a while mid-flow; nothing settles while it does, and everything settles once after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_refusing_then_stalling_mid_flow_recovers_exactly() {
    let stack = Stack::start(Options {
        fault_proxy: true,
        max_payments: 20,
        max_in_flight: 1,
        ..Options::default()
    })
    .await;
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..300).await;
    let mut next = 300u64;
    for mode in [FaultMode::Refuse, FaultMode::Stall] {
        let settled = stack.count(SETTLED_BATCHES).await;
        stack
            .wait_count(SETTLED_BATCHES, settled.checked_add(2).expect("small"))
            .await;
        assert!(
            stack.count(NOT_SETTLED).await > 0,
            "the fault comes mid-flow"
        );
        let proxy = stack.proxy();
        proxy.set(mode);
        // The parts keep trying: connections reach the proxy and are refused or stalled.
        let tried = proxy.connections();
        stack
            .wait_until("the parts to hit the failing proxy", || async {
                proxy.connections() >= tried.checked_add(3).expect("small")
            })
            .await;
        let frozen = stack.count(SETTLED_BATCHES).await;
        let tried = proxy.connections();
        stack
            .wait_until("more attempts through the failing proxy", || async {
                proxy.connections() >= tried.checked_add(3).expect("small")
            })
            .await;
        assert_eq!(
            stack.count(SETTLED_BATCHES).await,
            frozen,
            "nothing settles while the chain is unreachable ({mode:?})"
        );
        // Intake needs no chain: payments keep coming in.
        let until = next.checked_add(200).expect("small");
        stack.submit(&mut ledger, next..until).await;
        next = until;
        proxy.set(FaultMode::Pass);
    }
    stack.settle_all(&ledger).await;
    stack.assert_exact(&ledger).await;
    stack.finish().await;
}

/// Reads `name` from the API's Prometheus text (the first sample).
async fn metric(stack: &Stack, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", stack.api))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| {
            // A counter: a small whole number.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = v as u64;
            whole
        })
}

/// A block holding settled (mined, indexed) batches is reverted away mid-flow; the relayer sends
/// them again, the indexer rolls back, and every payment ends settled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_under_settled_batches_is_resubmitted_and_rolled_back() {
    let stack = Stack::start(Options {
        confirmations: 4,
        max_payments: 20,
        max_in_flight: 4,
        ..Options::default()
    })
    .await;
    let provider = stack.chain.provider();
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..200).await;
    let miner = Miner::start(provider.clone(), Duration::from_millis(200));
    stack.settle_all(&ledger).await;
    miner.stop().await;

    // The next batches go into one block on top of a snapshot.
    let before = Settlements::read(&stack).await.batches.len();
    automine(&provider, false).await;
    let base = provider_head(&stack).await;
    let snap = snapshot(&provider).await;
    stack.submit(&mut ledger, 200..500).await;
    stack
        .wait_count(
            "SELECT count(*) FROM relayer.transactions WHERE status = 'pending'",
            4,
        )
        .await;
    mine(&provider).await;
    let doomed = base.checked_add(1).expect("small");
    let doomed_hash = stack.block_hash(doomed).await.expect("the new block");
    let in_block: Vec<_> = Settlements::read(&stack)
        .await
        .batches
        .into_iter()
        .filter(|b| b.block == doomed)
        .collect();
    assert_eq!(in_block.len(), 4, "four batches settled in block {doomed}");
    let indexed = |n: usize| {
        let stack = &stack;
        async move {
            usize::try_from(
                settle_indexer::reconcile::indexed_batch_count(
                    &stack.pool,
                    settle_e2e::CHAIN_ID,
                    stack.contract,
                )
                .await
                .expect("count"),
            )
            .expect("count")
                == n
        }
    };
    let all = before.checked_add(4).expect("small");
    stack
        .wait_until("the indexer to mirror the doomed block", || indexed(all))
        .await;
    let indexed_in_doomed = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM indexer.batches WHERE block_hash = $1")
            .bind(doomed_hash.as_slice())
            .fetch_one(&stack.pool)
            .await
            .expect("count")
    };
    assert_eq!(indexed_in_doomed().await, 4);
    stack
        .wait_count(
            "SELECT count(*) FROM relayer.batches WHERE status = 'included'",
            4,
        )
        .await;

    // The reorg: the block goes, and a different chain grows in its place.
    revert(&provider, snap).await;
    assert_eq!(
        stack.block_hash(doomed).await,
        None,
        "block {doomed} is gone"
    );
    let after = Settlements::read(&stack).await;
    assert_eq!(after.batches.len(), before, "its settlements are gone");
    automine(&provider, true).await;
    let miner = Miner::start(provider.clone(), Duration::from_millis(200));
    stack
        .wait_until("the indexer to roll back", || async {
            metric(&stack, "settle_indexer_reorgs_total").await >= 1
        })
        .await;
    assert_ne!(stack.block_hash(doomed).await, Some(doomed_hash));
    assert_eq!(indexed_in_doomed().await, 0, "the indexer rolled back");

    stack.settle_all(&ledger).await;
    miner.stop().await;
    let settlements = stack.assert_exact(&ledger).await;
    for lost in &in_block {
        let again: Vec<_> = settlements
            .batches
            .iter()
            .filter(|b| b.batch_id == lost.batch_id)
            .collect();
        assert_eq!(
            again.len(),
            1,
            "batch {} settled again, once",
            lost.batch_id
        );
        assert_eq!(again[0].payment_ids, lost.payment_ids);
        assert!(again[0].block >= doomed);
        // The relayer saw its transaction vanish and sent the batch again, in a new one.
        let attempts: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT t.status, t.hash FROM relayer.transactions t
             JOIN relayer.batches b ON b.id = t.batch WHERE b.batch_id = $1 ORDER BY t.created_at",
        )
        .bind(lost.batch_id.as_slice())
        .fetch_all(&stack.pool)
        .await
        .expect("attempts");
        assert_eq!(
            attempts,
            vec![
                ("dropped".to_owned(), lost.tx.to_vec()),
                ("mined".to_owned(), again[0].tx.to_vec())
            ]
        );
        assert_ne!(again[0].tx, lost.tx);
    }
    stack.finish().await;
}

async fn provider_head(stack: &Stack) -> u64 {
    use alloy::providers::Provider;
    stack
        .chain
        .provider()
        .get_block_number()
        .await
        .expect("head")
}

/// The database server restarts mid-flow (`pg_ctl restart -m fast`, every connection cut); the
/// relayer, indexer and API in the process ride it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_flow_is_ridden_out() {
    let stack = Stack::start(Options {
        private_postgres: true,
        max_payments: 20,
        max_in_flight: 1,
        ..Options::default()
    })
    .await;
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..400).await;
    let started = || async {
        sqlx::query_scalar::<_, String>("SELECT pg_postmaster_start_time()::text")
            .fetch_one(&stack.pool)
            .await
            .expect("start time")
    };
    for round in 0..2u64 {
        let settled = stack.count(SETTLED_BATCHES).await;
        stack
            .wait_count(SETTLED_BATCHES, settled.checked_add(2).expect("small"))
            .await;
        let mut witness = sqlx::PgConnection::connect(&stack.settings.database_url)
            .await
            .expect("connected");
        let before = started().await;
        assert!(
            stack.count(NOT_SETTLED).await > 0,
            "the restart comes mid-flow"
        );
        tokio::task::block_in_place(|| stack.cluster().restart()).expect("restarted");
        assert!(
            sqlx::query("SELECT 1").execute(&mut witness).await.is_err(),
            "connections open before the restart are cut"
        );
        assert_ne!(started().await, before, "the server restarted");
        let from = 400u64
            .checked_add(round.checked_mul(200).expect("small"))
            .expect("small");
        stack
            .submit(&mut ledger, from..from.checked_add(200).expect("small"))
            .await;
        assert!(
            stack.in_process_running(),
            "no part exited on the lost database"
        );
    }
    stack.settle_all(&ledger).await;
    stack.assert_exact(&ledger).await;
    assert!(stack.in_process_running());
    stack.finish().await;
}
