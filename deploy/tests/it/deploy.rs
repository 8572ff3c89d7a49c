//! `deploy` on anvil: the deployment, its idempotence, resumption and refusals.

use alloy::{
    consensus::Typed2718,
    network::{ReceiptResponse, TransactionBuilder, TransactionResponse},
    primitives::{Address, B256, U256, keccak256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use settle_contracts::{SettleMultisig, SplitSettlement, TimelockController};
use settle_deploy::{
    Change, Contract, DeployError, Manifest, Outcome, Plan, Step, StepStatus, deploy,
    plan::implementation_slot,
};
use settle_relayer::HsmSigner;
use settle_testkit::{TestChain, TestToken, pkcs11, settlement::fund};

use crate::{
    DELAY, DEPLOYER, GUARDIAN, OWNERS, SIGNER, config, deployer, factory_says, nonce, options,
};

/// The steps a fresh deployment of [`config`] takes, as strings, in order.
fn expected_steps(plan: &Plan, chain: &TestChain) -> Vec<String> {
    let cfg = config(chain);
    let mut steps = vec![
        Step::Create {
            contract: Contract::Multisig,
            address: plan.multisig.address,
        },
        Step::Create {
            contract: Contract::Timelock,
            address: plan.timelock.address,
        },
        Step::Create {
            contract: Contract::Implementation,
            address: plan.implementation.address,
        },
        Step::Create {
            contract: Contract::Proxy,
            address: plan.proxy.address,
        },
        Step::AuthoriseSigner(chain.addresses()[SIGNER]),
    ];
    steps.extend(cfg.tokens.iter().copied().map(Step::EnableToken));
    steps.push(Step::SetGuardian(chain.addresses()[GUARDIAN]));
    steps.push(Step::TransferOwnership {
        timelock: plan.timelock.address,
    });
    steps.iter().map(ToString::to_string).collect()
}

fn step_names(outcome: &Outcome) -> Vec<String> {
    outcome.steps.iter().map(|s| s.step.to_string()).collect()
}

#[tokio::test]
async fn deploys_wires_and_hands_over_to_the_timelock() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&chain);
    let from = chain.addresses()[DEPLOYER];
    let plan = Plan::new(&cfg, from);

    // The prediction is the CREATE2 formula, and the factory itself, asked before anything exists,
    // agrees (the proxy's constructor needs the implementation, so it cannot be asked).
    for planned in plan.contracts() {
        let preimage = [
            &[0xff_u8][..],
            settle_deploy::CREATE2_FACTORY.as_slice(),
            plan.salt.as_slice(),
            keccak256(&planned.init_code).as_slice(),
        ]
        .concat();
        assert_eq!(
            Address::from_slice(&keccak256(preimage)[12..]),
            planned.address,
            "{}",
            planned.contract
        );
    }
    for planned in [&plan.multisig, &plan.timelock, &plan.implementation] {
        assert_eq!(
            factory_says(&chain, planned.factory_calldata(plan.salt)).await,
            planned.address,
            "{}",
            planned.contract
        );
    }

    let outcome = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed");
    assert_eq!(step_names(&outcome), expected_steps(&plan, &chain));
    assert!(!outcome.nothing_to_do());
    assert_eq!(outcome.transactions(), outcome.steps.len());

    // Every transaction is EIP-1559, from the deployer, and succeeded.
    let provider = chain.provider();
    for report in &outcome.steps {
        let StepStatus::Done { tx, block } = report.status else {
            panic!("{} was not sent", report.step);
        };
        let sent = provider
            .get_transaction_by_hash(tx)
            .await
            .expect("rpc")
            .expect("known transaction");
        assert_eq!(sent.from(), from);
        assert_eq!(sent.ty(), 2, "{} is EIP-1559", report.step);
        let receipt = provider
            .get_transaction_receipt(tx)
            .await
            .expect("rpc")
            .expect("receipt");
        assert!(receipt.status());
        assert_eq!(receipt.block_number(), Some(block));
    }

    // Governance: the timelock owns the proxy; the multisig is its only proposer, executor and
    // canceller; nobody else administers it.
    let settlement = SplitSettlement::new(plan.proxy.address, &provider);
    assert_eq!(
        settlement.owner().call().await.expect("owner"),
        plan.timelock.address
    );
    let timelock = TimelockController::new(plan.timelock.address, &provider);
    let multisig = plan.multisig.address;
    for role in [
        timelock.PROPOSER_ROLE().call().await.expect("role"),
        timelock.EXECUTOR_ROLE().call().await.expect("role"),
        timelock.CANCELLER_ROLE().call().await.expect("role"),
    ] {
        assert!(
            timelock
                .hasRole(role, multisig)
                .call()
                .await
                .expect("hasRole")
        );
        assert!(!timelock.hasRole(role, from).call().await.expect("hasRole"));
    }
    let admin = timelock.DEFAULT_ADMIN_ROLE().call().await.expect("role");
    assert!(!timelock.hasRole(admin, from).call().await.expect("hasRole"));
    assert!(
        timelock
            .hasRole(admin, plan.timelock.address)
            .call()
            .await
            .expect("hasRole")
    );
    assert_eq!(
        timelock.getMinDelay().call().await.expect("delay"),
        U256::from(DELAY)
    );
    let ms = SettleMultisig::new(multisig, &provider);
    assert_eq!(
        ms.getOwners().call().await.expect("owners"),
        OWNERS.map(|i| chain.addresses()[i]).to_vec()
    );
    assert_eq!(
        ms.threshold().call().await.expect("threshold"),
        U256::from(2)
    );

    // The settlement: the implementation behind the proxy, signer, tokens, guardian.
    let slot = provider
        .get_storage_at(plan.proxy.address, implementation_slot())
        .await
        .expect("slot");
    assert_eq!(
        Address::from_word(B256::from(slot)),
        plan.implementation.address
    );
    assert!(
        settlement
            .isSigner(chain.addresses()[SIGNER])
            .call()
            .await
            .expect("isSigner")
    );
    for limits in &cfg.tokens {
        let on_chain = settlement
            .tokenConfig(limits.token)
            .call()
            .await
            .expect("tokenConfig");
        assert!(on_chain.enabled);
        assert_eq!(on_chain.maxPayment, limits.max_payment);
        assert_eq!(on_chain.dailyCap, limits.daily_cap);
    }
    assert_eq!(
        settlement.guardian().call().await.expect("guardian"),
        chain.addresses()[GUARDIAN]
    );

    // The manifest.
    let path = dir.path().join("deployments/31337.json");
    assert_eq!(outcome.manifest_path, path);
    assert!(outcome.manifest_written);
    let manifest = Manifest::read(&path, 31337).expect("manifest");
    let StepStatus::Done {
        block: proxy_block, ..
    } = outcome.steps[3].status
    else {
        panic!("the proxy was created in this run");
    };
    assert_eq!(
        manifest,
        Manifest {
            chain_id: 31337,
            settlement: plan.proxy.address,
            implementation: plan.implementation.address,
            timelock: plan.timelock.address,
            multisig,
            owners: cfg.governance.owners.clone(),
            threshold: 2,
            min_delay: DELAY,
            salt: cfg.salt,
            deployer: from,
            deployed_block: proxy_block,
        }
    );
    assert_eq!(outcome.manifest, manifest);

    // A second run finds everything in place and sends nothing.
    let before = nonce(&chain, from).await;
    let again = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("second run");
    assert!(again.nothing_to_do());
    assert_eq!(again.transactions(), 0);
    assert_eq!(step_names(&again), expected_steps(&plan, &chain));
    assert!(
        again
            .steps
            .iter()
            .all(|s| s.to_string().starts_with("already  "))
    );
    assert!(!again.manifest_written);
    assert_eq!(again.manifest, manifest);
    assert_eq!(nonce(&chain, from).await, before);
}

#[tokio::test]
async fn resumes_a_deployment_someone_else_started() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&chain);
    let plan = Plan::new(&cfg, chain.addresses()[DEPLOYER]);

    // Another account creates the multisig and the implementation with the same init code.
    let other = crate::provider_for(&chain, 8);
    for planned in [&plan.multisig, &plan.implementation] {
        let tx = TransactionRequest::default()
            .with_to(settle_deploy::CREATE2_FACTORY)
            .with_input(planned.factory_calldata(plan.salt));
        let receipt = other
            .send_transaction(tx)
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        assert!(receipt.status());
    }

    let outcome = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed");
    let already: Vec<bool> = outcome
        .steps
        .iter()
        .map(|s| s.status == StepStatus::Already)
        .collect();
    assert_eq!(
        already,
        [true, false, true, false, false, false, false, false, false]
    );
}

#[tokio::test]
async fn a_config_for_another_chain_is_refused_before_anything_is_sent() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&chain);
    cfg.chain_id = 1;
    let err = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect_err("wrong chain");
    assert!(
        matches!(
            err,
            DeployError::WrongChain {
                configured: 1,
                served: 31337
            }
        ),
        "{err}"
    );
    assert_eq!(nonce(&chain, chain.addresses()[DEPLOYER]).await, 0);
    assert!(!dir.path().join("deployments").exists());
}

#[tokio::test]
async fn a_deployer_other_than_the_configured_one_is_refused() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = deploy(
        &config(&chain),
        &chain.endpoint(),
        chain.signers()[7].clone(),
        &options(&dir),
    )
    .await
    .expect_err("wrong deployer");
    assert!(
        matches!(err, DeployError::WrongDeployer { configured, signer }
            if configured == chain.addresses()[DEPLOYER] && signer == chain.addresses()[7]),
        "{err}"
    );
}

#[tokio::test]
async fn a_chain_without_the_create2_factory_is_refused() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    chain
        .provider()
        .raw_request::<_, ()>(
            "anvil_setCode".into(),
            (settle_deploy::CREATE2_FACTORY, "0x"),
        )
        .await
        .expect("anvil_setCode");
    let err = deploy(
        &config(&chain),
        &chain.endpoint(),
        deployer(&chain),
        &options(&dir),
    )
    .await
    .expect_err("no factory");
    assert!(
        matches!(err, DeployError::NoFactory { chain_id: 31337 }),
        "{err}"
    );
    assert!(err.to_string().contains("deterministic deployment proxy"));
}

#[tokio::test]
async fn changes_to_a_timelocked_deployment_are_left_to_the_multisig() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&chain);
    let from = chain.addresses()[DEPLOYER];
    deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed");
    let before = nonce(&chain, from).await;
    let manifest_before =
        std::fs::read(dir.path().join("deployments/31337.json")).expect("manifest");

    let mut changed = cfg.clone();
    let new_signer = Address::repeat_byte(0x51);
    changed.signers.push(new_signer);
    changed.tokens[1].daily_cap = 7;
    changed.governance.guardian = chain.addresses()[6];
    let err = deploy(
        &changed,
        &chain.endpoint(),
        deployer(&chain),
        &options(&dir),
    )
    .await
    .expect_err("needs the multisig");
    let plan = Plan::new(&cfg, from);
    match &err {
        DeployError::NeedsMultisig {
            proxy,
            multisig,
            timelock,
            changes,
        } => {
            assert_eq!(*proxy, plan.proxy.address);
            assert_eq!(*multisig, plan.multisig.address);
            assert_eq!(*timelock, plan.timelock.address);
            assert_eq!(
                changes.0,
                vec![
                    Change::Signer(new_signer),
                    Change::Token {
                        configured: changed.tokens[1],
                        enabled: true,
                        max_payment: cfg.tokens[1].max_payment,
                        daily_cap: cfg.tokens[1].daily_cap,
                    },
                    Change::Guardian {
                        deployed: chain.addresses()[GUARDIAN],
                        configured: chain.addresses()[6],
                    },
                ]
            );
        }
        other => panic!("expected NeedsMultisig, got {other}"),
    }
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains("must go through the multisig"),
        "{message}"
    );
    assert_eq!(nonce(&chain, from).await, before, "nothing was sent");
    assert_eq!(
        std::fs::read(dir.path().join("deployments/31337.json")).expect("manifest"),
        manifest_before
    );

    // Another salt is another deployment, but the manifest records a live one: refused.
    let mut other_salt = cfg.clone();
    other_salt.salt = B256::repeat_byte(1);
    let err = deploy(
        &other_salt,
        &chain.endpoint(),
        deployer(&chain),
        &options(&dir),
    )
    .await
    .expect_err("conflict");
    assert!(
        matches!(err, DeployError::ManifestConflict { recorded, .. } if recorded == plan.proxy.address),
        "{err}"
    );
    assert_eq!(nonce(&chain, from).await, before, "nothing was sent");
}

#[tokio::test]
async fn an_hsm_key_deploys() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let token = TestToken::create().expect("token");
    let hsm = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
    )
    .expect("hsm signer");
    let from = hsm.address();
    fund(&chain, from).await.expect("funded");
    let mut cfg = config(&chain);
    cfg.deployer.address = Some(from);

    let outcome = deploy(&cfg, &chain.endpoint(), hsm, &options(&dir))
        .await
        .expect("deployed with the HSM key");
    assert_eq!(outcome.transactions(), 9);
    let plan = Plan::new(&cfg, from);
    assert_eq!(outcome.manifest.deployer, from);
    assert_eq!(outcome.manifest.settlement, plan.proxy.address);
    // The proxy's address depends on the deployer; the rest does not.
    let dev_plan = Plan::new(&cfg, chain.addresses()[DEPLOYER]);
    assert_ne!(plan.proxy.address, dev_plan.proxy.address);
    assert_eq!(plan.multisig.address, dev_plan.multisig.address);
    assert_eq!(plan.implementation.address, dev_plan.implementation.address);

    let settlement = SplitSettlement::new(plan.proxy.address, chain.provider());
    assert_eq!(
        settlement.owner().call().await.expect("owner"),
        plan.timelock.address
    );
    assert_eq!(nonce(&chain, from).await, 9);
}

#[tokio::test]
async fn a_manifest_of_a_chain_that_was_reset_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = TestChain::start().expect("anvil");
    let cfg = config(&first);
    deploy(&cfg, &first.endpoint(), deployer(&first), &options(&dir))
        .await
        .expect("deployed");
    drop(first);

    // A fresh anvil: same chain id, none of the recorded contracts.
    let second = TestChain::start().expect("anvil");
    second
        .provider()
        .raw_request::<_, ()>("anvil_mine".into(), (U256::from(5),))
        .await
        .expect("anvil_mine");
    let outcome = deploy(&cfg, &second.endpoint(), deployer(&second), &options(&dir))
        .await
        .expect("deployed again");
    assert_eq!(outcome.transactions(), 9);
    assert!(outcome.manifest_written);
    assert_eq!(
        Manifest::read(&outcome.manifest_path, 31337)
            .expect("manifest")
            .deployed_block,
        9,
        "the proxy is the fourth transaction after five empty blocks"
    );
}
