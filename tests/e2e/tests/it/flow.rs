//! 10,000 split payments from three integrators through the REST API, settled by the relayer
//! (SoftHSM2 keys), mirrored by the indexer, reconciled; then a merchant withdraws.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use serde_json::Value;
use settle_contracts::SplitSettlement;
use settle_e2e::{CHAIN_ID, Ledger, Options, Stack};

const PAYMENTS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_payments_settle_once_index_and_reconcile_clean() {
    let stack = Stack::start(Options {
        max_payments: 500,
        max_in_flight: 16,
        ..Options::default()
    })
    .await;
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..PAYMENTS).await;
    stack.settle_all(&ledger).await;
    let settlements = stack.assert_exact(&ledger).await;
    // 10,000 payments of at most 500 from three integrators' arrival order: at least 20 batches.
    assert!(
        settlements.batches.len() >= 20,
        "{}",
        settlements.batches.len()
    );

    // A merchant withdraws; the chain and the mirror follow.
    let merchant = stack.merchants[0];
    let owed = ledger.expected[&merchant];
    let withdrawn = SplitSettlement::new(stack.contract, stack.wallet(5))
        .withdraw(Address::ZERO, U256::from(owed), merchant)
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(withdrawn.status());
    let path = format!("/v1/merchants/{}/balances", merchant.to_checksum(None));
    let mut balance = Value::Null;
    for _ in 0..100 {
        balance = stack.get(&path).await["balances"][0]["balance"].clone();
        if balance == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(balance, "0");
    let withdrawals = stack
        .get(&format!(
            "/v1/merchants/{}/withdrawals",
            merchant.to_checksum(None)
        ))
        .await;
    assert_eq!(
        withdrawals["withdrawals"][0]["amount"],
        owed.to_string(),
        "{withdrawals}"
    );
    let after =
        settle_indexer::reconcile::reconcile(&stack.pool, &stack.rpc(), CHAIN_ID, stack.contract)
            .await
            .expect("reconciled");
    assert_eq!(after.findings, Vec::new(), "{}", after.summary());
    stack.finish().await;
}
