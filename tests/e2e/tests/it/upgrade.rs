//! The settlement proxy is upgraded to a V2 implementation through the multisig and the timelock
//! (the library behind `settle upgrade`) while payments keep flowing.

use alloy::providers::Provider;
use settle_contracts::SplitSettlement;
use settle_deploy::upgrade::{Executed, execute, propose};
use settle_e2e::{
    Ledger, Options, Stack,
    chain::{SplitSettlementV2, advance, implementation},
};

const NOT_SETTLED: &str = "SELECT count(*) FROM relayer.instructions WHERE status <> 'settled'";
const SETTLED_BATCHES: &str = "SELECT count(*) FROM relayer.batches WHERE status = 'settled'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_through_multisig_and_timelock_while_payments_flow() {
    let stack = Stack::start(Options {
        max_payments: 20,
        max_in_flight: 2,
        ..Options::default()
    })
    .await;
    let provider = stack.chain.provider();
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..300).await;

    // Anyone deploys the new implementation; owners 1 and 2 approve; anvil account 9 sends.
    let v2 = *SplitSettlementV2::deploy(stack.wallet(0))
        .await
        .expect("V2 deployed")
        .address();
    let v1 = implementation(&provider, stack.contract).await;
    assert_eq!(v1, stack.manifest.implementation);
    let mut proposal = propose(&provider, &stack.manifest, &stack.manifest_path, v2)
        .await
        .expect("proposed");
    assert_eq!(proposal.version.as_deref(), Some("2"));
    assert_eq!(proposal.previous_implementation, v1);
    for owner in &stack.chain.signers()[1..3] {
        proposal.approve(owner).await.expect("approved");
    }
    let sender = stack.wallet(9);
    let scheduled = execute(&sender, &proposal).await.expect("scheduled");
    assert!(
        matches!(scheduled, Executed::Scheduled { .. }),
        "{scheduled:?}"
    );
    stack.wait_count(SETTLED_BATCHES, 2).await;
    advance(&provider, stack.manifest.min_delay.saturating_add(1)).await;

    // Payments are pending when the upgrade lands.
    stack.submit(&mut ledger, 300..600).await;
    assert!(stack.count(NOT_SETTLED).await > 0);
    let Executed::Upgraded { tx } = execute(&sender, &proposal).await.expect("upgraded") else {
        panic!("the second step upgrades");
    };
    let upgrade_block = provider
        .get_transaction_receipt(tx)
        .await
        .expect("receipt")
        .expect("mined")
        .block_number
        .expect("block");

    // The new implementation serves the proxy.
    assert_eq!(implementation(&provider, stack.contract).await, v2);
    let proxy = SplitSettlementV2::new(stack.contract, &provider);
    assert_eq!(proxy.version().call().await.expect("version"), "2");
    assert_eq!(
        proxy.newFeature().call().await.expect("newFeature"),
        alloy::primitives::U256::from(42)
    );

    stack.submit(&mut ledger, 600..900).await;
    stack.settle_all(&ledger).await;
    let settlements = stack.assert_exact(&ledger).await;
    let before = settlements
        .batches
        .iter()
        .filter(|b| b.block < upgrade_block)
        .count();
    let after = settlements
        .batches
        .iter()
        .filter(|b| b.block > upgrade_block)
        .count();
    assert!(before > 0, "batches settled on V1");
    assert!(after > 0, "batches settled on V2");
    assert_eq!(
        before.checked_add(after),
        Some(settlements.batches.len()),
        "no batch shares the upgrade's block: the relayer's sends and the upgrade are separate transactions"
    );

    // State kept: every batch nonce used on V1 is still used under V2 (and those used on V2 too).
    let settlement = SplitSettlement::new(stack.contract, &provider);
    for batch in &settlements.batches {
        assert!(
            settlement
                .isNonceUsed(batch.signer, batch.nonce)
                .call()
                .await
                .expect("isNonceUsed"),
            "nonce {} of {} used",
            batch.nonce,
            batch.signer
        );
    }
    // The indexer saw both implementations: the proxy's deployment and the upgrade.
    assert_eq!(
        stack
            .count("SELECT count(*) FROM indexer.governance WHERE name = 'Upgraded'")
            .await,
        2
    );
    stack.finish().await;
}
