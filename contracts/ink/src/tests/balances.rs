//! `deposit`, `deposit_native`, `withdraw`.

use ink::U256;

use super::*;
use crate::{
    Error,
    split_settlement::{Deposited, Withdrawn},
};

#[ink::test]
fn a_native_deposit_credits_the_funder_with_the_value_sent() {
    // given an empty contract
    let mut w = World::new();
    let before = engine_balance(contract());

    // when a payer sends 700 for the funder
    let result = paying(stranger(), 700, || w.c.deposit_native(funder()));

    // then the funder holds 700 internally, the contract 700 more on chain, and an event says so
    assert_eq!(result, Ok(()));
    assert_eq!(w.c.balance_of(NATIVE, funder()), 700);
    assert_eq!(w.c.held(NATIVE), 700);
    assert_eq!(engine_balance(contract()), before + U256::from(700));
    assert_eq!(
        events::<Deposited>(),
        vec![Deposited {
            token: NATIVE,
            funder: funder(),
            from: stranger(),
            amount: 700
        }]
    );
}

#[ink::test]
fn native_deposits_are_refused_when_invalid() {
    // given a contract, and later one with the native coin disabled and one paused
    let mut w = World::new();

    // when the funder is zero or nothing is sent
    // then each is refused
    assert_eq!(
        paying(stranger(), 5, || w.c.deposit_native(NATIVE)),
        Err(Error::ZeroAddress)
    );
    as_caller(stranger());
    assert_eq!(w.c.deposit_native(funder()), Err(Error::ZeroValue));
    w.govern(Action::SetTokenConfig {
        token: NATIVE,
        enabled: false,
        max_payment: 1,
        daily_cap: 1,
    });
    assert_eq!(
        paying(stranger(), 5, || w.c.deposit_native(funder())),
        Err(Error::TokenNotEnabled(NATIVE))
    );
    as_caller(guardian());
    w.c.pause().unwrap();
    assert_eq!(
        paying(stranger(), 5, || w.c.deposit_native(funder())),
        Err(Error::Paused)
    );
    assert_eq!(w.c.held(NATIVE), 0);
}

#[ink::test]
fn the_custodian_credits_token_deposits() {
    // given the custodian
    let mut w = World::new();

    // when it deposits 300 of the token for the funder
    as_caller(custodian());
    let result = w.c.deposit(token(), funder(), 300);

    // then the funder's balance and the token's holdings grow by 300
    assert_eq!(result, Ok(()));
    assert_eq!(w.c.balance_of(token(), funder()), 300);
    assert_eq!(w.c.held(token()), 300);
    assert_eq!(w.c.custodian(), custodian());
    assert_eq!(
        events::<Deposited>(),
        vec![Deposited {
            token: token(),
            funder: funder(),
            from: custodian(),
            amount: 300
        }]
    );
}

#[ink::test]
fn token_deposits_are_refused_when_invalid() {
    // given a configured contract
    let mut w = World::new();

    // when someone other than the custodian deposits
    as_caller(stranger());
    let not_custodian = w.c.deposit(token(), funder(), 1);

    // then it is refused, as are deposits with bad arguments
    assert_eq!(not_custodian, Err(Error::Unauthorized(stranger())));
    as_caller(custodian());
    assert_eq!(w.c.deposit(token(), NATIVE, 1), Err(Error::ZeroAddress));
    assert_eq!(w.c.deposit(token(), funder(), 0), Err(Error::ZeroValue));
    assert_eq!(
        w.c.deposit(NATIVE, funder(), 1),
        Err(Error::TokenNotEnabled(NATIVE))
    );
    assert_eq!(
        w.c.deposit(addr(0x71), funder(), 1),
        Err(Error::TokenNotEnabled(addr(0x71)))
    );
    w.c.deposit(token(), funder(), u128::MAX).unwrap();
    assert_eq!(
        w.c.deposit(token(), funder(), 1),
        Err(Error::AmountOverflow)
    );
    // and without a custodian nobody may deposit tokens, not even the zero address
    w.govern(Action::SetCustodian(NATIVE));
    as_caller(NATIVE);
    assert_eq!(
        w.c.deposit(token(), funder(), 1),
        Err(Error::Unauthorized(NATIVE))
    );
    // and nothing is credited while paused
    w.govern(Action::SetCustodian(custodian()));
    as_caller(guardian());
    w.c.pause().unwrap();
    as_caller(custodian());
    assert_eq!(w.c.deposit(token(), funder(), 1), Err(Error::Paused));
    assert_eq!(w.c.held(token()), u128::MAX);
}

#[ink::test]
fn a_payee_withdraws_native_credits_to_any_address() {
    // given a payee credited 5 native by a settled batch
    let mut w = World::new();
    paying(stranger(), 10, || w.c.deposit_native(funder())).unwrap();
    let b = batch(
        1,
        NATIVE,
        FUNDING_DEPOSIT,
        payees(2),
        &[pay(1, 10, &[(0, 500_000), (1, 500_000)])],
    );
    w.settle(&b).unwrap();
    let payee = payees(2)[0];
    let to = addr(0x77);
    let contract_before = engine_balance(contract());

    // when it withdraws 4 to another address
    as_caller(payee);
    let result = w.c.withdraw(NATIVE, 4, to);

    // then the value arrives, the ledger and holdings shrink by 4
    assert_eq!(result, Ok(()));
    assert_eq!(engine_balance(to), U256::from(4));
    assert_eq!(engine_balance(contract()), contract_before - U256::from(4));
    assert_eq!(w.c.balance_of(NATIVE, payee), 1);
    assert_eq!(w.c.held(NATIVE), 6);
    assert_eq!(
        events::<Withdrawn>(),
        vec![Withdrawn {
            token: NATIVE,
            account: payee,
            to,
            amount: 4
        }]
    );
}

#[ink::test]
fn a_token_withdrawal_debits_the_ledger_for_the_custodian_to_pay() {
    // given the funder holds 300 of the token
    let mut w = World::new();
    w.fund(funder(), 300);

    // when it withdraws 120
    as_caller(funder());
    let result = w.c.withdraw(token(), 120, funder());

    // then the ledger shows 180 and the event tells the custodian what to pay
    assert_eq!(result, Ok(()));
    assert_eq!(w.c.balance_of(token(), funder()), 180);
    assert_eq!(w.c.held(token()), 180);
    assert_eq!(events::<Withdrawn>().len(), 1);
}

#[ink::test]
fn withdrawals_are_refused_when_invalid() {
    // given the funder holds 300 of the token
    let mut w = World::new();
    w.fund(funder(), 300);
    as_caller(funder());

    // when it withdraws to zero, nothing, or more than it has
    // then each is refused
    assert_eq!(w.c.withdraw(token(), 1, NATIVE), Err(Error::ZeroAddress));
    assert_eq!(w.c.withdraw(token(), 0, funder()), Err(Error::ZeroValue));
    assert_eq!(
        w.c.withdraw(token(), 301, funder()),
        Err(Error::InsufficientBalance {
            token: token(),
            account: funder(),
            needed: 301,
            available: 300
        })
    );
    as_caller(guardian());
    w.c.pause().unwrap();
    as_caller(funder());
    assert_eq!(w.c.withdraw(token(), 1, funder()), Err(Error::Paused));
    assert_eq!(w.c.balance_of(token(), funder()), 300);
}

#[ink::test]
fn a_failed_native_send_leaves_the_balance_in_place() {
    // given a contract account the engine holds no balance for, with a ledger credit of 50
    // (value recorded as sent but never moved, so the send must fail)
    let mut w = World::unfunded_at(addr(0xc2), CHAIN_ID, DELAY);
    w.configure();
    test::set_caller(stranger());
    test::set_value_transferred(U256::from(50));
    w.c.deposit_native(funder()).unwrap();
    test::set_value_transferred(U256::zero());

    // when the funder withdraws
    as_caller(funder());
    let result = w.c.withdraw(NATIVE, 50, funder());

    // then the send failure is reported and the ledger is unchanged
    assert_eq!(
        result,
        Err(Error::NativeTransferFailed {
            to: funder(),
            amount: 50
        })
    );
    assert_eq!(w.c.balance_of(NATIVE, funder()), 50);
    assert_eq!(w.c.held(NATIVE), 50);
    assert!(events::<Withdrawn>().is_empty());
}
