//! Upgrading the proxy from a proposal file: propose, owners approve, schedule, wait, execute.

use alloy::primitives::Address;
use settle_contracts::SplitSettlement;
use settle_deploy::{
    deploy,
    upgrade::{self, Executed, Proposal, TimelockState, UpgradeError},
};
use settle_testkit::TestChain;

use crate::{OWNERS, RELAY, SIGNER, advance, config, deployer, options, provider_for};

/// The delay these tests configure, in seconds.
const DELAY: u64 = 60;

#[tokio::test]
async fn owners_upgrade_the_proxy_through_multisig_and_timelock() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&chain);
    cfg.governance.min_delay = DELAY;
    let manifest = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed")
        .manifest;
    let manifest_path = dir.path().join("deployments/31337.json");
    let relay = provider_for(&chain, RELAY);
    let reader = upgrade::connect(&chain.endpoint()).expect("url");

    // The committed artifact at a fresh address is a valid UUPS implementation.
    let new = *SplitSettlement::deploy(relay.clone())
        .await
        .expect("implementation")
        .address();

    // A manifest of another chain than the endpoint's.
    let mut elsewhere = manifest.clone();
    elsewhere.chain_id = 5;
    let err = upgrade::propose(&reader, &elsewhere, &manifest_path, new)
        .await
        .expect_err("wrong chain");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is for chain 5 but the RPC endpoint serves chain 31337; point --rpc at chain 5",
            manifest_path.display()
        )
    );

    // Nothing at an address without code.
    let empty = Address::repeat_byte(0x99);
    let err = upgrade::propose(&reader, &manifest, &manifest_path, empty)
        .await
        .expect_err("no code");
    assert!(
        matches!(err, UpgradeError::NoCode(a) if a == empty),
        "{err}"
    );
    // Code that is not UUPS (the multisig) is refused too.
    let err = upgrade::propose(&reader, &manifest, &manifest_path, manifest.multisig)
        .await
        .expect_err("not uups");
    assert!(
        matches!(err, UpgradeError::NotUups(a) if a == manifest.multisig),
        "{err}"
    );

    let mut proposal = upgrade::propose(&reader, &manifest, &manifest_path, new)
        .await
        .expect("proposed");
    assert_eq!(proposal.previous_implementation, manifest.implementation);
    assert_eq!(proposal.delay, DELAY);
    assert_eq!(proposal.threshold, 2);
    assert!(proposal.version.is_some());
    assert_eq!(
        proposal.execute.nonce,
        proposal.schedule.nonce + alloy::primitives::U256::from(1)
    );
    let file = dir.path().join("proposal.json");
    proposal.write(&file).expect("written");
    assert_eq!(Proposal::read(&file).expect("read back"), proposal);

    // A non-owner is refused and nothing is recorded.
    let stranger = chain.signers()[RELAY].clone();
    let err = proposal.approve(&stranger).await.expect_err("not owner");
    assert!(
        matches!(err, UpgradeError::NotOwner { signer, .. } if signer == stranger.address()),
        "{err}"
    );
    assert!(proposal.schedule.signatures.is_empty());

    // One owner: not enough.
    let owners: Vec<_> = OWNERS.map(|i| chain.signers()[i].clone()).to_vec();
    proposal.approve(&owners[2]).await.expect("approved");
    let err = upgrade::execute(&relay, &proposal)
        .await
        .expect_err("threshold");
    assert!(
        matches!(err, UpgradeError::ThresholdNotMet { have: 1, need: 2 }),
        "{err}"
    );

    // A second owner: scheduled; signatures kept sorted by owner.
    proposal.approve(&owners[0]).await.expect("approved");
    let signers: Vec<Address> = proposal
        .schedule
        .signatures
        .iter()
        .map(|s| s.owner)
        .collect();
    let mut sorted = vec![owners[0].address(), owners[2].address()];
    sorted.sort();
    assert_eq!(signers, sorted);
    let scheduled = upgrade::execute(&relay, &proposal)
        .await
        .expect("scheduled");
    let Executed::Scheduled { ready_at, .. } = scheduled else {
        panic!("expected a schedule, got {scheduled:?}");
    };
    let status = upgrade::status(&reader, &proposal).await.expect("status");
    assert_eq!(status.timelock, TimelockState::Scheduled { ready_at });
    assert_eq!(status.implementation, manifest.implementation);

    // Too early.
    let err = upgrade::execute(&relay, &proposal)
        .await
        .expect_err("early");
    assert!(
        matches!(err, UpgradeError::TooEarly { ready_at: r, wait } if r == ready_at && wait > 0 && wait <= DELAY),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("too early: the timelock allows execution at ")
    );

    advance(&chain, DELAY + 1).await;
    let done = upgrade::execute(&relay, &proposal).await.expect("upgraded");
    assert!(matches!(done, Executed::Upgraded { .. }), "{done:?}");
    assert_eq!(
        upgrade::implementation_of(&reader, manifest.settlement)
            .await
            .expect("slot"),
        new
    );
    let status = upgrade::status(&reader, &proposal).await.expect("status");
    assert_eq!(status.timelock, TimelockState::Done);

    // State survives the upgrade.
    let settlement = SplitSettlement::new(manifest.settlement, relay.clone());
    assert!(
        settlement
            .isSigner(chain.addresses()[SIGNER])
            .call()
            .await
            .expect("isSigner")
    );
    let err = upgrade::execute(&relay, &proposal).await.expect_err("done");
    assert!(
        matches!(err, UpgradeError::AlreadyDone(a) if a == new),
        "{err}"
    );
}

#[tokio::test]
async fn an_edited_proposal_is_refused() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&chain);
    cfg.governance.min_delay = DELAY;
    let manifest = deploy(&cfg, &chain.endpoint(), deployer(&chain), &options(&dir))
        .await
        .expect("deployed")
        .manifest;
    let new = *SplitSettlement::deploy(provider_for(&chain, RELAY))
        .await
        .expect("implementation")
        .address();
    let reader = upgrade::connect(&chain.endpoint()).expect("url");
    let mut proposal = upgrade::propose(&reader, &manifest, std::path::Path::new("m"), new)
        .await
        .expect("proposed");
    proposal.implementation = Address::repeat_byte(0x66);
    let file = dir.path().join("proposal.json");
    proposal.write(&file).expect("written");
    let err = Proposal::read(&file).expect_err("tampered");
    assert!(
        matches!(err, UpgradeError::Tampered { which: "schedule" }),
        "{err}"
    );
}
