//! The batch key is rotated while payments flow: the new key is authorised through the multisig
//! and timelock and activated in the registry (`settle keys rotate`); batches the old key signed
//! still settle, later ones are signed by the new key, and the old key is removed and retired
//! (`settle keys retire`).

use alloy::{providers::Provider, sol_types::SolCall};
use settle::keys::{
    TokenArgs,
    rotation::{ContractArgs, RetireArgs, Role, RotateArgs, retire, rotate},
};
use settle_contracts::SplitSettlement;
use settle_e2e::{
    CHAIN_ID, Ledger, Options, Stack,
    chain::{automine, mine},
};
use settle_relayer::keys::{KeyRegistry, KeyStatus};

const SETTLED_BATCHES: &str = "SELECT count(*) FROM relayer.batches WHERE status = 'settled'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_key_rotated_while_payments_flow() {
    let stack = Stack::start(Options {
        batch_keys: vec!["batch-1", "batch-2"],
        max_payments: 20,
        max_in_flight: 2,
        ..Options::default()
    })
    .await;
    let (old, new) = (stack.batch_keys[0].address, stack.batch_keys[1].address);
    let provider = stack.chain.provider();
    let settlement = SplitSettlement::new(stack.contract, &provider);
    let mut ledger = Ledger::default();
    stack.submit(&mut ledger, 0..200).await;
    stack.wait_count(SETTLED_BATCHES, 2).await;

    // Governance authorises the new key while the old one keeps signing.
    assert!(!settlement.isSigner(new).call().await.expect("isSigner"));
    let set_signer = |signer, authorised| {
        SplitSettlement::setSignerCall { signer, authorised }
            .abi_encode()
            .into()
    };
    stack.govern(stack.contract, set_signer(new, true)).await;
    assert!(settlement.isSigner(new).call().await.expect("isSigner"));

    // Batches the old key signs are on their way (the chain holds them in its pool) when the
    // registry switches.
    automine(&provider, false).await;
    stack.submit(&mut ledger, 200..400).await;
    stack
        .wait_until("every payment of the second wave signed", || async {
            stack
                .count("SELECT count(*) FROM relayer.instructions WHERE status = 'accepted'")
                .await
                == 0
        })
        .await;
    stack
        .wait_count(
            "SELECT count(*) FROM relayer.transactions WHERE status = 'pending'",
            2,
        )
        .await;
    let contract = ContractArgs {
        database_url: stack.settings.database_url.clone(),
        chain_id: CHAIN_ID,
        contract: stack.contract.to_string(),
    };
    let rotation = rotate(
        &RotateArgs {
            contract: contract.clone(),
            token: TokenArgs {
                token: stack.token.token_label().to_owned(),
                module: stack.token.module_path().to_path_buf(),
            },
            label: "batch-2".to_owned(),
            role: Role::Batch,
        },
        Some(stack.token.user_pin().to_owned()),
    )
    .await
    .expect("rotated");
    assert_eq!(rotation.active.address, new);
    assert_eq!(rotation.retiring.as_ref().map(|k| k.address), Some(old));
    let switched_at = provider.get_block_number().await.expect("head");
    stack.submit(&mut ledger, 400..600).await;
    automine(&provider, true).await;
    mine(&provider).await;
    stack.settle_all(&ledger).await;

    let settlements = stack.assert_exact(&ledger).await;
    let signers = settlements.signer_of_payments();
    for id in ledger.ids(0..400) {
        assert_eq!(
            signers[&id], old,
            "payment {id} was batched before the switch"
        );
    }
    for id in ledger.ids(400..600) {
        assert_eq!(
            signers[&id], new,
            "payment {id} was batched after the switch"
        );
    }
    assert!(
        settlements
            .batches
            .iter()
            .any(|b| b.signer == old && b.block > switched_at),
        "batches signed by the old key settled after the switch"
    );

    // Retiring the old key waits for governance to remove it.
    let retire_args = RetireArgs {
        contract,
        rpc: stack.chain.endpoint(),
        address: old.to_string(),
    };
    let refused = retire(&retire_args).await.expect_err("still authorised");
    assert!(
        refused.to_string().contains("still authorises"),
        "{refused}"
    );
    stack.govern(stack.contract, set_signer(old, false)).await;
    assert!(!settlement.isSigner(old).call().await.expect("isSigner"));
    let retired = retire(&retire_args).await.expect("retired");
    assert_eq!(retired.address, old);
    let keys: Vec<_> = KeyRegistry::new(stack.pool.clone())
        .list(CHAIN_ID, stack.contract)
        .await
        .expect("registry")
        .into_iter()
        .filter(|k| k.role == settle_relayer::keys::KeyRole::Batch)
        .map(|k| (k.address, k.status))
        .collect();
    assert_eq!(
        keys,
        vec![(old, KeyStatus::Retired), (new, KeyStatus::Active)]
    );

    // Payments keep settling, with the new key only.
    stack.submit(&mut ledger, 600..700).await;
    stack.settle_all(&ledger).await;
    let signers = stack.assert_exact(&ledger).await.signer_of_payments();
    for id in ledger.ids(600..700) {
        assert_eq!(signers[&id], new);
    }
    stack.finish().await;
}
