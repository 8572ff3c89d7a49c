//! The constructor, `schedule`, `execute`, `cancel`, `pause` and every [`Action`].

use ink::{H256, U256};

use super::*;
use crate::{
    Error,
    split_settlement::{
        CustodianSet, DelaySet, GuardianSet, MAX_DELAY, Operation, OperationCancelled,
        OperationExecuted, OperationScheduled, OwnersSet, Paused, SignerSet, SplitSettlement,
        TokenConfig, TokenConfigured, Unpaused, Upgraded, action_hash,
    },
};

fn new_code() -> H256 {
    H256::repeat_byte(0xc0)
}

fn upgrade() -> Action {
    Action::SetCodeHash(new_code())
}

#[ink::test]
fn the_constructor_validates_owners_threshold_and_delay() {
    // given three owners, ascending
    let keys = owner_keys();
    let owners: Vec<Address> = keys.iter().map(|k| k.address).collect();
    let mut unsorted = owners.clone();
    unsorted.swap(0, 1);
    let mut with_zero = owners.clone();
    with_zero[0] = NATIVE;
    let mut duplicated = owners.clone();
    duplicated[2] = duplicated[1];
    let deploy = |owners: Vec<Address>, threshold: u32, delay: u64| {
        SplitSettlement::new(CHAIN_ID, owners, threshold, delay, guardian()).map(|_| ())
    };

    // when deployed with bad arguments, then each is refused
    assert_eq!(deploy(vec![], 1, 0), Err(Error::InvalidOwners { index: 0 }));
    assert_eq!(
        deploy(unsorted, 1, 0),
        Err(Error::InvalidOwners { index: 1 })
    );
    assert_eq!(
        deploy(with_zero, 1, 0),
        Err(Error::InvalidOwners { index: 0 })
    );
    assert_eq!(
        deploy(duplicated, 1, 0),
        Err(Error::InvalidOwners { index: 2 })
    );
    assert_eq!(
        deploy(owners.clone(), 0, 0),
        Err(Error::InvalidThreshold {
            threshold: 0,
            owners: 3
        })
    );
    assert_eq!(
        deploy(owners.clone(), 4, 0),
        Err(Error::InvalidThreshold {
            threshold: 4,
            owners: 3
        })
    );
    assert_eq!(
        deploy(owners.clone(), 2, MAX_DELAY + 1),
        Err(Error::InvalidDelay(MAX_DELAY + 1))
    );

    // and a valid deployment reads back as given
    let c = SplitSettlement::new(CHAIN_ID, owners.clone(), 2, MAX_DELAY, guardian()).unwrap();
    assert_eq!(c.owners(), (owners, 2));
    assert_eq!(c.delay(), MAX_DELAY);
    assert_eq!(c.guardian(), guardian());
    assert_eq!(c.custodian(), NATIVE);
    assert!(!c.paused());
    assert_eq!(c.governance_nonce(), 0);
    assert_eq!(c.token_config(token()), TokenConfig::default());
}

#[ink::test]
fn an_upgrade_runs_after_the_delay_with_m_of_n_approvals() {
    // given two of three owners approve an upgrade
    let mut w = World::bare();
    let signatures = w.approvals(&upgrade(), 2);

    // when it is scheduled and executed after the delay
    as_caller(stranger());
    let nonce = w.c.schedule(upgrade(), signatures).unwrap();
    let eta = T0 + DELAY;
    assert_eq!(
        w.c.operation(nonce),
        Some(Operation {
            action: upgrade(),
            eta
        })
    );
    set_now(eta);
    let result = w.c.execute(nonce);

    // then the code hash is replaced and every step is in the events
    assert_eq!(result, Ok(()));
    assert_eq!(ink::env::own_code_hash(), new_code());
    assert_eq!(w.c.governance_nonce(), 1);
    assert_eq!(w.c.operation(nonce), None);
    assert_eq!(
        events::<OperationScheduled>(),
        vec![OperationScheduled {
            nonce,
            action_hash: action_hash(&upgrade()),
            action: upgrade(),
            eta
        }]
    );
    assert_eq!(
        events::<OperationExecuted>(),
        vec![OperationExecuted { nonce }]
    );
    assert_eq!(
        events::<Upgraded>(),
        vec![Upgraded {
            code_hash: new_code()
        }]
    );
}

#[ink::test]
fn an_upgrade_before_its_delay_is_refused() {
    // given an upgrade scheduled at T0 with a one-hour delay
    let mut w = World::bare();
    let signatures = w.approvals(&upgrade(), 2);
    let nonce = w.c.schedule(upgrade(), signatures).unwrap();

    // when executed one second early
    set_now(T0 + DELAY - 1);
    let early = w.c.execute(nonce);

    // then it is refused and stays scheduled
    assert_eq!(
        early,
        Err(Error::OperationNotReady {
            eta: T0 + DELAY,
            now: T0 + DELAY - 1
        })
    );
    assert!(w.c.operation(nonce).is_some());
    assert!(events::<Upgraded>().is_empty());
}

#[ink::test]
fn an_unauthorised_upgrade_is_refused() {
    // given an upgrade approved by strangers, by too few owners, or by one owner twice
    let mut w = World::bare();
    let digest = w.c.operation_digest(0, upgrade());
    let outsiders = [Key::new(0x61), Key::new(0x62)];
    let mut outsider_signatures: Vec<[u8; 65]> = Vec::new();
    let mut sorted: Vec<&Key> = outsiders.iter().collect();
    sorted.sort_by_key(|k| k.address);
    for k in &sorted {
        outsider_signatures.push(k.sign(digest));
    }
    let one = w.approvals(&upgrade(), 1);
    let twice = vec![one[0], one[0]];
    let mut descending = w.approvals(&upgrade(), 2);
    descending.reverse();

    // when each is scheduled
    // then each is refused and the governance nonce is not consumed
    assert_eq!(
        w.c.schedule(upgrade(), outsider_signatures),
        Err(Error::SignerNotOwner {
            index: 0,
            signer: sorted[0].address
        })
    );
    assert_eq!(
        w.c.schedule(upgrade(), one),
        Err(Error::ThresholdNotMet { got: 1, needed: 2 })
    );
    assert_eq!(
        w.c.schedule(upgrade(), twice),
        Err(Error::SignersNotAscending { index: 1 })
    );
    assert_eq!(
        w.c.schedule(upgrade(), descending),
        Err(Error::SignersNotAscending { index: 1 })
    );
    let mut broken = w.approvals(&upgrade(), 2);
    broken[1][64] = 0;
    assert_eq!(
        w.c.schedule(upgrade(), broken),
        Err(Error::InvalidSignature)
    );
    assert_eq!(w.c.governance_nonce(), 0);
    assert!(events::<OperationScheduled>().is_empty());
}

#[ink::test]
fn replayed_upgrade_approvals_are_refused() {
    // given an upgrade that was approved, scheduled and executed
    let mut w = World::bare();
    let signatures = w.approvals(&upgrade(), 2);
    let nonce = w.c.schedule(upgrade(), signatures.clone()).unwrap();
    set_now(T0 + DELAY);
    w.c.execute(nonce).unwrap();

    // when the same approvals are submitted again, and the executed operation re-run
    let replay = w.c.schedule(upgrade(), signatures);
    let rerun = w.c.execute(nonce);

    // then the approvals (signed for nonce 0) no longer recover to owners, and the
    // operation is gone
    assert!(matches!(
        replay,
        Err(Error::SignerNotOwner { index: 0, .. })
    ));
    assert_eq!(rerun, Err(Error::UnknownOperation(nonce)));
    assert_eq!(w.c.governance_nonce(), 1);
    assert_eq!(events::<Upgraded>().len(), 1);
}

#[ink::test]
fn approvals_for_one_action_do_not_schedule_another() {
    // given owners approved setting the delay to 60
    let mut w = World::bare();
    let signatures = w.approvals(&Action::SetDelay(60), 2);

    // when the approvals are attached to an upgrade
    let result = w.c.schedule(upgrade(), signatures);

    // then they recover to other addresses
    assert!(matches!(
        result,
        Err(Error::SignerNotOwner { index: 0, .. })
    ));
}

#[ink::test]
fn the_guardian_or_an_owner_can_cancel_a_scheduled_operation() {
    // given two scheduled upgrades
    let mut w = World::bare();
    let first = w.c.schedule(upgrade(), w.approvals(&upgrade(), 2)).unwrap();
    let second = w.c.schedule(upgrade(), w.approvals(&upgrade(), 2)).unwrap();

    // when a stranger tries to cancel, then the guardian and an owner cancel
    as_caller(stranger());
    let refused = w.c.cancel(first);
    as_caller(guardian());
    w.c.cancel(first).unwrap();
    let owner = w.owners[2].address;
    as_caller(owner);
    w.c.cancel(second).unwrap();

    // then the stranger was refused, both are gone and cannot run
    assert_eq!(refused, Err(Error::Unauthorized(stranger())));
    assert_eq!(w.c.cancel(first), Err(Error::UnknownOperation(first)));
    set_now(T0 + DELAY);
    assert_eq!(w.c.execute(first), Err(Error::UnknownOperation(first)));
    assert_eq!(w.c.execute(second), Err(Error::UnknownOperation(second)));
    assert_eq!(
        events::<OperationCancelled>(),
        vec![
            OperationCancelled {
                nonce: first,
                by: guardian()
            },
            OperationCancelled {
                nonce: second,
                by: owner
            }
        ]
    );
}

#[ink::test]
fn owners_and_threshold_change_only_through_governance() {
    // given owners A, B, C with threshold 2 and a new set {D, E} with threshold 2
    let mut w = World::bare();
    let mut fresh = vec![Key::new(0x41), Key::new(0x42)];
    fresh.sort_by_key(|k| k.address);
    let new_owners: Vec<Address> = fresh.iter().map(|k| k.address).collect();

    // when the change is approved and executed
    w.govern(Action::SetOwners {
        owners: new_owners.clone(),
        threshold: 2,
    });

    // then the new owners govern and the old ones no longer can
    assert_eq!(w.c.owners(), (new_owners.clone(), 2));
    assert_eq!(
        events::<OwnersSet>(),
        vec![OwnersSet {
            owners: new_owners,
            threshold: 2
        }]
    );
    let old = w.approvals(&Action::SetDelay(1), 2);
    assert!(matches!(
        w.c.schedule(Action::SetDelay(1), old),
        Err(Error::SignerNotOwner { index: 0, .. })
    ));
    w.owners = fresh;
    w.govern(Action::SetDelay(1));
    assert_eq!(w.c.delay(), 1);
    // and invalid sets are refused when scheduled
    let bad = Action::SetOwners {
        owners: vec![addr(2), addr(1)],
        threshold: 1,
    };
    assert_eq!(
        w.c.schedule(bad.clone(), w.approvals(&bad, 2)),
        Err(Error::InvalidOwners { index: 1 })
    );
    let too_high = Action::SetOwners {
        owners: vec![addr(1)],
        threshold: 2,
    };
    assert_eq!(
        w.c.schedule(too_high.clone(), w.approvals(&too_high, 2)),
        Err(Error::InvalidThreshold {
            threshold: 2,
            owners: 1
        })
    );
}

#[ink::test]
fn the_delay_is_bounded_and_applies_to_later_operations() {
    // given the delay is set to 10 minutes
    let mut w = World::bare();
    w.govern(Action::SetDelay(600));

    // when an operation is scheduled afterwards
    let start = now();
    let nonce = w.c.schedule(upgrade(), w.approvals(&upgrade(), 2)).unwrap();

    // then it is due 10 minutes later, and a delay above the maximum is refused
    assert_eq!(w.c.operation(nonce).map(|o| o.eta), Some(start + 600));
    assert_eq!(events::<DelaySet>(), vec![DelaySet { delay: 600 }]);
    let too_long = Action::SetDelay(MAX_DELAY + 1);
    assert_eq!(
        w.c.schedule(too_long.clone(), w.approvals(&too_long, 2)),
        Err(Error::InvalidDelay(MAX_DELAY + 1))
    );
}

#[ink::test]
fn signers_tokens_guardian_and_custodian_are_set_through_governance() {
    // given a bare contract
    let mut w = World::bare();
    let signer = addr(0x5a);

    // when each setting is changed
    w.govern(Action::SetSigner {
        signer,
        authorised: true,
    });
    w.govern(Action::SetTokenConfig {
        token: token(),
        enabled: true,
        max_payment: 10,
        daily_cap: 20,
    });
    w.govern(Action::SetGuardian(addr(0x9b)));
    w.govern(Action::SetCustodian(addr(0xcd)));

    // then the views and events show it
    assert!(w.c.is_signer(signer));
    let config = w.c.token_config(token());
    assert_eq!(
        (config.enabled, config.max_payment, config.daily_cap),
        (true, 10, 20)
    );
    assert_eq!(w.c.guardian(), addr(0x9b));
    assert_eq!(w.c.custodian(), addr(0xcd));
    assert_eq!(
        events::<SignerSet>(),
        vec![SignerSet {
            signer,
            authorised: true
        }]
    );
    assert_eq!(
        events::<TokenConfigured>(),
        vec![TokenConfigured {
            token: token(),
            enabled: true,
            max_payment: 10,
            daily_cap: 20
        }]
    );
    assert_eq!(
        events::<GuardianSet>(),
        vec![GuardianSet {
            guardian: addr(0x9b)
        }]
    );
    assert_eq!(
        events::<CustodianSet>(),
        vec![CustodianSet {
            custodian: addr(0xcd)
        }]
    );
    // and a zero signer is refused when scheduled
    let zero = Action::SetSigner {
        signer: NATIVE,
        authorised: true,
    };
    assert_eq!(
        w.c.schedule(zero.clone(), w.approvals(&zero, 2)),
        Err(Error::ZeroAddress)
    );
}

#[ink::test]
fn the_guardian_or_an_owner_pauses_and_governance_unpauses() {
    // given a running contract
    let mut w = World::new();

    // when a stranger tries to pause, then the guardian pauses
    as_caller(stranger());
    let refused = w.c.pause();
    as_caller(guardian());
    w.c.pause().unwrap();

    // then it is paused, a second pause is refused, and only governance unpauses
    assert_eq!(refused, Err(Error::Unauthorized(stranger())));
    assert!(w.c.paused());
    as_caller(w.owners[0].address);
    assert_eq!(w.c.pause(), Err(Error::Paused));
    assert_eq!(events::<Paused>(), vec![Paused { by: guardian() }]);
    w.govern(Action::Unpause);
    assert!(!w.c.paused());
    assert_eq!(events::<Unpaused>(), vec![Unpaused {}]);
    // and an owner may pause too
    as_caller(w.owners[1].address);
    assert_eq!(w.c.pause(), Ok(()));
    // and unpausing a running contract fails at execution, leaving it scheduled
    w.govern(Action::Unpause);
    let nonce =
        w.c.schedule(Action::Unpause, w.approvals(&Action::Unpause, 2))
            .unwrap();
    set_now(now() + DELAY);
    assert_eq!(w.c.execute(nonce), Err(Error::NotPaused));
    assert!(w.c.operation(nonce).is_some());
}

#[ink::test]
fn a_zero_guardian_cannot_pause() {
    // given the guardian is cleared
    let mut w = World::bare();
    w.govern(Action::SetGuardian(NATIVE));

    // when the zero address calls pause
    as_caller(NATIVE);
    let result = w.c.pause();

    // then it is refused
    assert_eq!(result, Err(Error::Unauthorized(NATIVE)));
}

#[ink::test]
fn the_operation_digest_is_eip712_over_the_action_hash() {
    // given an action and the governance nonce
    let w = World::bare();
    let action = Action::SetDelay(5);

    // when its digest is computed here, independently of the contract
    let word = |n: u64| U256::from(n).to_big_endian();
    let k = |b: &[u8]| -> [u8; 32] { Keccak256::digest(b).into() };
    let struct_hash = k(&[
        k(b"Operation(uint256 nonce,bytes32 action)"),
        word(0),
        k(&ink::scale::Encode::encode(&action)),
    ]
    .concat());
    let mut input = vec![0x19, 0x01];
    input.extend_from_slice(w.c.domain_separator().as_bytes());
    input.extend_from_slice(&struct_hash);

    // then the contract agrees
    assert_eq!(w.c.operation_digest(0, action), H256(k(&input)));
}
