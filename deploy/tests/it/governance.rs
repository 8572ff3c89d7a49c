//! The deployed system's governance path, end to end: owners approve a timelock schedule by
//! EIP-712 signatures, the delay passes, they approve the execution, and the change lands.

use alloy::{
    primitives::{Address, B256, Bytes},
    providers::DynProvider,
    signers::Signer,
    sol_types::SolCall,
};
use settle_contracts::{SettleMultisig, SplitSettlement, TimelockController};
use settle_deploy::{
    deploy,
    multisig::{Operation, TimelockCall, operation_digest, sign_operation},
};
use settle_testkit::TestChain;

use crate::{DELAY, OWNERS, RELAY, advance, config, deployer, options, provider_for};

/// Has the multisig execute `operation` with `signatures`, sent by the relay account.
async fn execute(
    multisig: &SettleMultisig::SettleMultisigInstance<DynProvider>,
    operation: &Operation,
    signatures: Vec<Bytes>,
) -> Result<(), alloy::contract::Error> {
    let receipt = multisig
        .execute(
            operation.target,
            operation.value,
            operation.data.clone(),
            signatures,
        )
        .send()
        .await?
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status());
    Ok(())
}

#[tokio::test]
async fn owners_change_a_signer_through_multisig_and_timelock() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&chain);
    let chain_id = chain.chain_id();
    let outcome = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed");
    let manifest = outcome.manifest;

    let relay = provider_for(&chain, RELAY);
    let multisig = SettleMultisig::new(manifest.multisig, relay.clone());
    let timelock = TimelockController::new(manifest.timelock, relay.clone());
    let settlement = SplitSettlement::new(manifest.settlement, relay);
    let newcomer = Address::repeat_byte(0x42);
    assert!(
        !settlement
            .isSigner(newcomer)
            .call()
            .await
            .expect("isSigner")
    );

    // Two of the three owners, given in descending order: the helper sorts them.
    let owners: Vec<_> = OWNERS.map(|i| chain.signers()[i].clone()).to_vec();
    let mut approvers: Vec<&(dyn Signer + Send + Sync)> = vec![&owners[2], &owners[0]];
    approvers.sort_by_key(|s| std::cmp::Reverse(s.address()));

    let call = TimelockCall::new(
        manifest.settlement,
        SplitSettlement::setSignerCall {
            signer: newcomer,
            authorised: true,
        }
        .abi_encode(),
        B256::repeat_byte(0x01),
    );

    // Schedule.
    let nonce = multisig.nonce().call().await.expect("nonce");
    let schedule = call.schedule(manifest.timelock, DELAY, nonce);
    assert_eq!(
        operation_digest(&schedule, chain_id, manifest.multisig),
        multisig
            .operationDigest(
                schedule.target,
                schedule.value,
                schedule.data.clone(),
                schedule.nonce
            )
            .call()
            .await
            .expect("operationDigest"),
        "our EIP-712 digest is the contract's"
    );
    let signatures = sign_operation(&approvers, &schedule, chain_id, manifest.multisig)
        .await
        .expect("signed");
    execute(&multisig, &schedule, signatures)
        .await
        .expect("scheduled");
    let id = call.id();
    assert!(
        timelock
            .isOperationPending(id)
            .call()
            .await
            .expect("pending")
    );

    // Execute: refused before the delay, done after it.
    let run = call.execute(manifest.timelock, nonce + alloy::primitives::U256::from(1));
    let signatures = sign_operation(&approvers, &run, chain_id, manifest.multisig)
        .await
        .expect("signed");
    let early = execute(&multisig, &run, signatures.clone()).await;
    let revert = early
        .expect_err("not ready yet")
        .as_decoded_interface_error::<TimelockController::TimelockControllerErrors>()
        .expect("a timelock error");
    assert!(
        matches!(
            revert,
            TimelockController::TimelockControllerErrors::TimelockUnexpectedOperationState(ref e)
                if e.operationId == id
        ),
        "{revert:?}"
    );
    assert!(
        !settlement
            .isSigner(newcomer)
            .call()
            .await
            .expect("isSigner")
    );

    advance(&chain, DELAY).await;
    execute(&multisig, &run, signatures)
        .await
        .expect("executed");
    assert!(
        settlement
            .isSigner(newcomer)
            .call()
            .await
            .expect("isSigner")
    );
    assert!(timelock.isOperationDone(id).call().await.expect("done"));

    // The configuration that includes the new signer now matches the chain.
    let mut updated = cfg.clone();
    updated.signers.push(newcomer);
    let again = deploy(
        &updated,
        &chain.endpoint(),
        deployer(&chain),
        &options(&dir),
    )
    .await
    .expect("in place");
    assert!(again.nothing_to_do());
}

#[tokio::test]
async fn after_the_multisig_adds_an_owner_the_updated_config_matches() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&chain);
    let chain_id = chain.chain_id();
    let manifest = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed")
        .manifest;

    // The multisig manages its own owners: no timelock in between.
    let newcomer = chain.addresses()[7];
    let multisig = SettleMultisig::new(manifest.multisig, provider_for(&chain, RELAY));
    let add = Operation {
        target: manifest.multisig,
        value: alloy::primitives::U256::ZERO,
        data: SettleMultisig::addOwnerCall { owner: newcomer }
            .abi_encode()
            .into(),
        nonce: multisig.nonce().call().await.expect("nonce"),
    };
    let owners: Vec<_> = OWNERS.map(|i| chain.signers()[i].clone()).to_vec();
    let approvers: Vec<&(dyn Signer + Send + Sync)> = vec![&owners[0], &owners[1]];
    let signatures = sign_operation(&approvers, &add, chain_id, manifest.multisig)
        .await
        .expect("signed");
    execute(&multisig, &add, signatures)
        .await
        .expect("owner added");

    // The old config now differs from the chain; nothing is sent, the multisig is named.
    let before = crate::nonce(&chain, chain.addresses()[crate::DEPLOYER]).await;
    let err = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect_err("owners differ");
    assert!(
        matches!(
            &err,
            settle_deploy::DeployError::NeedsMultisig { multisig, changes, .. }
                if *multisig == manifest.multisig
                    && matches!(changes.0.as_slice(), [settle_deploy::Change::Owners { .. }])
        ),
        "{err}"
    );

    // The config with the new owner describes another multisig address, yet the deployment is
    // the one the manifest records, governed by its timelock: it matches, and the manifest
    // records the new owners.
    let mut updated = cfg.clone();
    updated.governance.owners.push(newcomer);
    let outcome = deploy(
        &updated,
        &chain.endpoint(),
        deployer(&chain),
        &options(&dir),
    )
    .await
    .expect("matches");
    assert!(outcome.nothing_to_do());
    assert!(outcome.manifest_written);
    assert_eq!(outcome.manifest.multisig, manifest.multisig);
    assert_eq!(outcome.manifest.timelock, manifest.timelock);
    assert_eq!(outcome.manifest.owners, updated.governance.owners);
    assert_eq!(
        crate::nonce(&chain, chain.addresses()[crate::DEPLOYER]).await,
        before
    );
}
