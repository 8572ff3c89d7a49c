//! `settle_batch`, `batch_digest`, `preview_credits`, `invalidate_nonce`.

use ink::{H256, U256};

use super::*;
use crate::{
    Error, FUNDING_PULL,
    split_settlement::{BatchSettled, NonceInvalidated, SplitSettlement},
};

const SECP256K1_N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

#[ink::test]
fn settles_a_deposit_funded_batch_and_credits_every_payee() {
    // given a funder with 5000 of the token and a signed three-way batch
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(7, token());
    let expected_digest = w.c.batch_digest(b.clone()).unwrap();

    // when it settles
    let digest = w.settle(&b).unwrap();

    // then the payees are credited 901 / 70 / 30, the funder debited, the nonce used
    let p = payees(3);
    assert_eq!(digest, expected_digest);
    assert_eq!(w.c.balance_of(token(), p[0]), 901);
    assert_eq!(w.c.balance_of(token(), p[1]), 70);
    assert_eq!(w.c.balance_of(token(), p[2]), 30);
    assert_eq!(w.c.balance_of(token(), funder()), 3_999);
    assert_eq!(w.c.held(token()), 5_000);
    assert!(w.c.is_nonce_used(w.signer.address, U256::from(7)));
    assert!(!w.c.is_nonce_used(w.signer.address, U256::from(6)));
    let config = w.c.token_config(token());
    assert_eq!((config.spent_today, config.day), (1001, now() / 86_400));
    // and one event says all of it
    assert_eq!(
        events::<BatchSettled>(),
        vec![BatchSettled {
            batch_id: b.batch_id,
            signer: w.signer.address,
            token: token(),
            digest,
            funder: funder(),
            funding: FUNDING_DEPOSIT,
            nonce: U256::from(7),
            total: 1001,
            payments: b.payments.clone(),
            credits: vec![(p[0], 901), (p[1], 70), (p[2], 30)],
        }]
    );
}

#[ink::test]
fn settles_a_pull_funded_native_batch_with_the_exact_value() {
    // given a native batch funded by value sent with the call
    let mut w = World::new();
    let b = batch(
        1,
        NATIVE,
        FUNDING_PULL,
        payees(2),
        &[pay(1, 10, &[(0, 500_000), (1, 500_000)])],
    );
    let signature = w.sign(&b);
    let before = engine_balance(contract());

    // when the funder sends exactly the total
    let result = paying(funder(), 10, || w.c.settle_batch(b.clone(), signature));

    // then payees hold 5 each and the contract holds the 10 it owes them
    assert!(result.is_ok());
    assert_eq!(w.c.balance_of(NATIVE, payees(2)[0]), 5);
    assert_eq!(w.c.balance_of(NATIVE, payees(2)[1]), 5);
    assert_eq!(w.c.held(NATIVE), 10);
    assert_eq!(engine_balance(contract()), before + U256::from(10));
}

#[ink::test]
fn a_funder_who_is_also_a_payee_ends_with_the_net_balance() {
    // given a funder with 100 who pays itself half of a 100 payment
    let mut w = World::new();
    w.fund(funder(), 100);
    let mut people = vec![funder(), payees(1)[0]];
    people.sort();
    let me = u16::try_from(people.iter().position(|p| *p == funder()).unwrap()).unwrap();
    let b = batch(
        1,
        token(),
        FUNDING_DEPOSIT,
        people.clone(),
        &[pay(1, 100, &[(me, 500_000), (1 - me, 500_000)])],
    );

    // when it settles
    w.settle(&b).unwrap();

    // then the funder keeps 50 and the other payee has 50
    assert_eq!(w.c.balance_of(token(), funder()), 50);
    assert_eq!(w.c.balance_of(token(), payees(1)[0]), 50);
    assert_eq!(w.c.held(token()), 100);
}

#[ink::test]
fn a_replayed_batch_is_refused_and_changes_nothing() {
    // given a batch that settled once
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(3, token());
    let signature = w.sign(&b);
    w.c.settle_batch(b.clone(), signature).unwrap();
    let events_before = event_count();

    // when the same signed batch is submitted again
    let result = w.c.settle_batch(b, signature);

    // then it is refused as a used nonce and no balance moves
    assert_eq!(
        result,
        Err(Error::NonceAlreadyUsed {
            signer: w.signer.address,
            nonce: U256::from(3)
        })
    );
    assert_eq!(w.c.balance_of(token(), funder()), 3_999);
    assert_eq!(w.c.token_config(token()).spent_today, 1001);
    assert_eq!(event_count(), events_before);
}

#[ink::test]
fn nonces_are_unordered_and_span_bitmap_words() {
    // given a funded world
    let mut w = World::new();
    w.fund(funder(), 50_000);

    // when nonces 256, 255, 0 and 2^256-1 are used out of order
    for nonce in [256u64, 255, 0] {
        w.settle(&three_way(nonce, token())).unwrap();
    }
    let mut top = three_way(0, token());
    top.nonce = U256::MAX;
    w.settle(&top).unwrap();

    // then each is used, their neighbours are not
    let s = w.signer.address;
    for used in [0u64, 255, 256] {
        assert!(w.c.is_nonce_used(s, U256::from(used)));
    }
    assert!(w.c.is_nonce_used(s, U256::MAX));
    for free in [1u64, 254, 257, 512] {
        assert!(!w.c.is_nonce_used(s, U256::from(free)));
    }
    assert!(!w.c.is_nonce_used(s, U256::MAX - 1));
}

#[ink::test]
fn a_batch_from_a_wrong_signer_is_refused() {
    // given a batch signed by a key that is not an authorised signer
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(1, token());
    let intruder = Key::new(0x66);
    let signature = intruder.sign(w.c.batch_digest(b.clone()).unwrap());

    // when it is submitted
    let result = w.c.settle_batch(b, signature);

    // then the recovered address is named and nothing moves
    assert_eq!(result, Err(Error::UnauthorizedSigner(intruder.address)));
    assert_eq!(w.c.balance_of(token(), funder()), 5_000);
    assert!(!w.c.is_nonce_used(intruder.address, U256::from(1)));
}

#[ink::test]
fn a_tampered_batch_recovers_to_someone_else() {
    // given a signed batch whose amount is changed after signing
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(1, token());
    let signature = w.sign(&b);
    let mut tampered = b.clone();
    tampered.payments = pack(&[pay(1, 2001, &[(0, 900_000), (1, 70_000), (2, 30_000)])]);

    // when the tampered batch is submitted
    let result = w.c.settle_batch(tampered, signature);

    // then the signature does not recover to the signer
    assert!(matches!(result, Err(Error::UnauthorizedSigner(a)) if a != w.signer.address));
}

#[ink::test]
fn a_removed_signer_can_no_longer_settle() {
    // given the signer was authorised, then removed by governance
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let signer = w.signer.address;
    assert!(w.c.is_signer(signer));
    w.govern(Action::SetSigner {
        signer,
        authorised: false,
    });

    // when it signs a batch
    let result = w.settle(&three_way(1, token()));

    // then it is refused
    assert!(!w.c.is_signer(signer));
    assert_eq!(result, Err(Error::UnauthorizedSigner(signer)));
}

#[ink::test]
fn an_expired_batch_is_refused_and_the_deadline_itself_is_accepted() {
    // given a batch whose deadline is now + 600
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(1, token());
    let deadline = b.deadline;

    // when it is submitted one second after its deadline
    set_now(deadline + 1);
    let late = w.settle(&b);

    // then it is refused as expired
    assert_eq!(
        late,
        Err(Error::BatchExpired {
            deadline,
            now: deadline + 1
        })
    );
    // and at the deadline itself it settles
    set_now(deadline);
    assert!(w.settle(&b).is_ok());
}

#[ink::test]
fn shares_not_summing_to_the_scale_are_refused() {
    // given a batch whose second payment's shares sum to 1,000,001
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = batch(
        1,
        token(),
        FUNDING_DEPOSIT,
        payees(2),
        &[
            pay(1, 10, &[(0, 1_000_000)]),
            pay(2, 10, &[(0, 600_000), (1, 400_001)]),
        ],
    );

    // when it is previewed, hashed and submitted
    let expected = Err(Error::SharesMismatch {
        payment: 1,
        sum: 1_000_001,
    });

    // then all three refuse it the same way
    assert_eq!(w.c.preview_credits(b.clone()).map(|_| ()), expected);
    assert_eq!(w.c.batch_digest(b.clone()).map(|_| ()), expected);
    let signature = Key::new(0x51).sign(H256::zero());
    assert_eq!(w.c.settle_batch(b, signature).map(|_| ()), expected);
    // and shares summing short of the scale too
    let short = batch(
        2,
        token(),
        FUNDING_DEPOSIT,
        payees(2),
        &[pay(1, 10, &[(0, 500_000), (1, 499_999)])],
    );
    assert_eq!(
        w.c.preview_credits(short),
        Err(Error::SharesMismatch {
            payment: 0,
            sum: 999_999
        })
    );
}

#[ink::test]
fn a_payment_above_the_single_payment_limit_is_refused() {
    // given a payment one above the token's max single payment
    let mut w = World::new();
    w.fund(funder(), MAX_PAYMENT + 1);
    let b = batch(
        1,
        token(),
        FUNDING_DEPOSIT,
        payees(1),
        &[pay(1, MAX_PAYMENT + 1, &[(0, 1_000_000)])],
    );

    // when it is submitted
    let result = w.settle(&b);

    // then it is refused, while preview (no limits) accepts it
    assert_eq!(
        result,
        Err(Error::PaymentTooLarge {
            payment: 0,
            amount: MAX_PAYMENT + 1,
            max: MAX_PAYMENT
        })
    );
    assert!(w.c.preview_credits(b).is_ok());
    // and exactly the limit settles
    let ok = batch(
        2,
        token(),
        FUNDING_DEPOSIT,
        payees(1),
        &[pay(1, MAX_PAYMENT, &[(0, 1_000_000)])],
    );
    assert!(w.settle(&ok).is_ok());
}

#[ink::test]
fn the_daily_cap_is_enforced_and_resets_the_next_day() {
    // given a cap of 1,500 per day and 1,001 already settled today
    let mut w = World::new();
    w.govern(Action::SetTokenConfig {
        token: token(),
        enabled: true,
        max_payment: MAX_PAYMENT,
        daily_cap: 1_500,
    });
    w.fund(funder(), 10_000);
    w.settle(&three_way(1, token())).unwrap();

    // when a second 1,001 batch comes the same day
    let second = w.settle(&three_way(2, token()));

    // then it is refused with what remains
    assert_eq!(
        second,
        Err(Error::DailyCapExceeded {
            token: token(),
            requested: 1001,
            remaining: 499
        })
    );
    // and the next day it settles
    set_now((now() / 86_400 + 1) * 86_400);
    assert!(w.settle(&three_way(2, token())).is_ok());
    assert_eq!(w.c.token_config(token()).spent_today, 1001);
}

#[ink::test]
fn a_funder_without_enough_balance_is_refused() {
    // given a funder with 1,000 and a 1,001 batch
    let mut w = World::new();
    w.fund(funder(), 1_000);

    // when it is submitted
    let result = w.settle(&three_way(1, token()));

    // then the shortfall is named and the nonce stays free
    assert_eq!(
        result,
        Err(Error::InsufficientBalance {
            token: token(),
            account: funder(),
            needed: 1001,
            available: 1_000
        })
    );
    assert!(!w.c.is_nonce_used(w.signer.address, U256::one()));
}

#[ink::test]
fn malformed_signatures_are_refused_before_recovery() {
    // given a validly signed batch
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(1, token());
    let good = w.sign(&b);
    let n = U256::from_str_radix(SECP256K1_N, 16).unwrap();
    let s = U256::from_big_endian(&good[32..64]);

    // when v, r or s are out of range
    let mut bad_v = good;
    bad_v[64] = 29;
    let mut zero_r = good;
    zero_r[..32].fill(0);
    let mut big_r = good;
    big_r[..32].copy_from_slice(&n.to_big_endian());
    let mut high_s = good;
    high_s[32..64].copy_from_slice(&(n - s).to_big_endian());
    high_s[64] = if good[64] == 27 { 28 } else { 27 };
    let mut zero_s = good;
    zero_s[32..64].fill(0);

    // then each is refused without touching state
    for (signature, error) in [
        (bad_v, Error::InvalidSignature),
        (zero_r, Error::InvalidSignature),
        (big_r, Error::InvalidSignature),
        (zero_s, Error::InvalidSignature),
        (high_s, Error::InvalidSignatureS),
    ] {
        assert_eq!(w.c.settle_batch(b.clone(), signature), Err(error));
    }
    // and v as 0/1 (not Ethereum's 27/28) is refused too
    let mut raw_v = good;
    raw_v[64] -= 27;
    assert_eq!(
        w.c.settle_batch(b.clone(), raw_v),
        Err(Error::InvalidSignature)
    );
    assert_eq!(w.c.balance_of(token(), funder()), 5_000);
    // while the original still settles
    assert!(w.c.settle_batch(b, good).is_ok());
}

#[ink::test]
fn a_disabled_or_unknown_token_is_refused() {
    // given a token that was never configured and the token disabled
    let mut w = World::new();
    let unknown = addr(0x71);

    // when batches in them are submitted
    let unknown_result = w.settle(&three_way(1, unknown));
    w.govern(Action::SetTokenConfig {
        token: token(),
        enabled: false,
        max_payment: MAX_PAYMENT,
        daily_cap: DAILY_CAP,
    });
    let disabled_result = w.settle(&three_way(2, token()));

    // then both are refused
    assert_eq!(unknown_result, Err(Error::TokenNotEnabled(unknown)));
    assert_eq!(disabled_result, Err(Error::TokenNotEnabled(token())));
}

#[ink::test]
fn settlement_is_refused_while_paused() {
    // given a paused contract
    let mut w = World::new();
    w.fund(funder(), 5_000);
    as_caller(guardian());
    w.c.pause().unwrap();

    // when a valid batch is submitted
    let result = w.settle(&three_way(1, token()));

    // then it is refused
    assert_eq!(result, Err(Error::Paused));
}

#[ink::test]
fn the_value_sent_must_match_the_funding_mode() {
    // given a deposit-funded batch and a pull-funded native batch of 10
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let deposit = three_way(1, token());
    let pull = batch(
        2,
        NATIVE,
        FUNDING_PULL,
        payees(1),
        &[pay(1, 10, &[(0, 1_000_000)])],
    );
    let (s1, s2) = (w.sign(&deposit), w.sign(&pull));
    let before = engine_balance(contract());

    // when value comes with the deposit batch, and the wrong value with the pull batch
    let r1 = paying(funder(), 1, || w.c.settle_batch(deposit.clone(), s1));
    let r2 = paying(funder(), 9, || w.c.settle_batch(pull.clone(), s2));

    // then both are refused and the value is returned
    assert_eq!(
        r1,
        Err(Error::WrongValue {
            expected: 0,
            sent: U256::one()
        })
    );
    assert_eq!(
        r2,
        Err(Error::WrongValue {
            expected: 10,
            sent: U256::from(9)
        })
    );
    assert_eq!(engine_balance(contract()), before);
    assert_eq!(w.c.held(NATIVE), 0);
}

#[ink::test]
fn pull_funding_of_a_non_native_token_and_unknown_modes_are_refused() {
    // given batches with pull funding in a token and funding mode 2
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let mut pull = three_way(1, token());
    pull.funding = FUNDING_PULL;
    let mut odd = three_way(2, token());
    odd.funding = 2;

    // when they are submitted
    let r1 = w.settle(&pull);
    let r2 = w.settle(&odd);

    // then each is refused with its reason
    assert_eq!(r1, Err(Error::PullNotSupported(token())));
    assert_eq!(r2, Err(Error::InvalidFunding(2)));
}

#[ink::test]
fn malformed_batches_are_refused_with_the_evm_errors() {
    // given one contract and a set of broken batches
    let w = World::new();
    let three = |payments: &[Pay]| batch(1, token(), FUNDING_DEPOSIT, payees(3), payments);
    let full = pack(&[pay(1, 10, &[(0, 1_000_000)])]);
    let mut header_cut = three(&[]);
    header_cut.payments = full[..48].to_vec();
    let mut legs_cut = three(&[]);
    legs_cut.payments = [full.clone(), full[..54].to_vec()].concat();
    let mut zero_payee = three(&[pay(1, 10, &[(0, 1_000_000)])]);
    zero_payee.payees[1] = NATIVE;
    let mut unsorted = three(&[pay(1, 10, &[(0, 1_000_000)])]);
    unsorted.payees.swap(1, 2);
    let mut duplicate = three(&[pay(1, 10, &[(0, 1_000_000)])]);
    duplicate.payees[2] = duplicate.payees[1];

    // when each is hashed (the same validation as settlement)
    // then each is refused with the error the EVM contract reverts with
    let cases = [
        (three(&[]), Error::EmptyBatch),
        (header_cut, Error::MalformedPayments { payment: 0 }),
        (legs_cut, Error::MalformedPayments { payment: 1 }),
        (
            three(&[pay(1, 0, &[(0, 1_000_000)])]),
            Error::ZeroAmount { payment: 0 },
        ),
        (three(&[pay(1, 10, &[])]), Error::EmptySplit { payment: 0 }),
        (
            three(&[pay(1, 10, &[(0, 1_000_000), (1, 0)])]),
            Error::ZeroShare { payment: 0, leg: 1 },
        ),
        (
            three(&[pay(1, 10, &[(0, 500_000), (3, 500_000)])]),
            Error::UnknownPayee { payment: 0, leg: 1 },
        ),
        (zero_payee, Error::ZeroPayee { index: 1 }),
        (unsorted, Error::PayeesNotSorted { index: 2 }),
        (duplicate, Error::PayeesNotSorted { index: 2 }),
        (
            three(&[
                pay(1, u128::MAX, &[(0, 1_000_000)]),
                pay(2, 1, &[(1, 1_000_000)]),
            ]),
            Error::AmountOverflow,
        ),
    ];
    for (b, error) in cases {
        assert_eq!(w.c.batch_digest(b.clone()), Err(error.clone()), "{error:?}");
        assert_eq!(w.c.preview_credits(b).map(|_| ()), Err(error));
    }
}

#[ink::test]
fn preview_aggregates_credits_per_payee() {
    // given two 1001 payments split 90/7/3
    let w = World::new();
    let legs = [(0, 900_000), (1, 70_000), (2, 30_000)];
    let b = batch(
        1,
        token(),
        FUNDING_DEPOSIT,
        payees(3),
        &[pay(1, 1001, &legs), pay(2, 1001, &legs)],
    );

    // when previewed
    let preview = w.c.preview_credits(b);

    // then each payee's credits are summed and the first leg takes the remainders
    assert_eq!(preview, Ok((vec![1802, 140, 60], 2002)));
}

#[ink::test]
fn the_digest_depends_on_chain_id_and_contract_address() {
    // given the same batch on two chains and at two addresses
    let b = three_way(1, token());
    let here = World::bare_at(contract(), CHAIN_ID, DELAY)
        .c
        .batch_digest(b.clone())
        .unwrap();
    let other_chain = World::bare_at(contract(), CHAIN_ID + 1, DELAY)
        .c
        .batch_digest(b.clone())
        .unwrap();
    let w = World::bare_at(addr(0xc1), CHAIN_ID, DELAY);

    // when hashed at another address
    let other_address = w.c.batch_digest(b).unwrap();

    // then all three digests differ
    assert_ne!(here, other_chain);
    assert_ne!(here, other_address);
    assert_ne!(other_chain, other_address);
    assert_eq!(w.c.chain_id(), CHAIN_ID);
}

#[ink::test]
fn a_signer_can_invalidate_a_nonce_to_cancel_a_signed_batch() {
    // given a batch signed with nonce 9
    let mut w = World::new();
    w.fund(funder(), 5_000);
    let b = three_way(9, token());
    let signature = w.sign(&b);

    // when the signer invalidates nonce 9
    as_caller(w.signer.address);
    w.c.invalidate_nonce(U256::from(9)).unwrap();

    // then the batch can no longer settle, the event names the nonce, and a second
    // invalidation is refused
    let s = w.signer.address;
    assert_eq!(
        w.c.settle_batch(b, signature),
        Err(Error::NonceAlreadyUsed {
            signer: s,
            nonce: U256::from(9)
        })
    );
    assert_eq!(
        events::<NonceInvalidated>(),
        vec![NonceInvalidated {
            signer: s,
            nonce: U256::from(9)
        }]
    );
    as_caller(s);
    assert_eq!(
        w.c.invalidate_nonce(U256::from(9)),
        Err(Error::NonceAlreadyUsed {
            signer: s,
            nonce: U256::from(9)
        })
    );
}

#[ink::test]
fn version_is_one() {
    // given a deployed contract, when asked its version, then it is 1
    let w: SplitSettlement = World::bare().c;
    assert_eq!(w.version(), 1);
}
