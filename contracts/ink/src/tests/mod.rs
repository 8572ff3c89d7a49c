//! Off-chain `#[ink::test]` tests, written as given / when / then.
//!
//! Helpers here are the only place that touches the off-chain engine directly: keys and
//! signatures (k256, independent of the contract's recovery), time, callers, value, events.

#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)] // test code: a panic is a failure

mod balances;
mod conservation;
mod governance;
mod settle;
mod vectors;

use ink::{
    Address, H256, U256,
    env::{DefaultEnvironment, test},
    scale::Decode,
};
use k256::ecdsa::SigningKey;
use sha3::{Digest, Keccak256};

use crate::{
    Batch, FUNDING_DEPOSIT, NATIVE, Result,
    split_settlement::{Action, SplitSettlement},
};

pub(crate) const CHAIN_ID: u64 = 420_420_417;
pub(crate) const T0: u64 = 1_750_000_000;
pub(crate) const DELAY: u64 = 3_600;
pub(crate) const MAX_PAYMENT: u128 = 1_000_000_000_000;
pub(crate) const DAILY_CAP: u128 = 5_000_000_000_000;
/// What a test contract's account holds before any deposit (above the existential deposit).
pub(crate) const START_BALANCE: u128 = 1_000_000;

pub(crate) fn addr(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

/// The contract's own address in most tests.
pub(crate) fn contract() -> Address {
    addr(0xc0)
}
/// A non-native token.
pub(crate) fn token() -> Address {
    addr(0x70)
}
pub(crate) fn guardian() -> Address {
    addr(0x9a)
}
pub(crate) fn custodian() -> Address {
    addr(0xcc)
}
pub(crate) fn stranger() -> Address {
    addr(0xee)
}
pub(crate) fn funder() -> Address {
    addr(0xf0)
}

/// A secp256k1 key and its Ethereum address, derived here with sha3 (not through the contract).
pub(crate) struct Key {
    secret: SigningKey,
    pub(crate) address: Address,
}

impl Key {
    pub(crate) fn new(seed: u8) -> Self {
        let secret = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let point = secret.verifying_key().to_encoded_point(false);
        let hash = Keccak256::digest(&point.as_bytes()[1..]);
        Self {
            secret,
            address: Address::from_slice(&hash[12..]),
        }
    }

    /// `r || s || v` with `v` 27 or 28 and low `s`, as Ethereum signers produce.
    pub(crate) fn sign(&self, digest: H256) -> [u8; 65] {
        let (signature, recovery) = self.secret.sign_prehash_recoverable(&digest.0).unwrap();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + recovery.to_byte();
        out
    }
}

/// Owners 1..=3 sorted by address, threshold 2.
pub(crate) fn owner_keys() -> Vec<Key> {
    let mut keys: Vec<Key> = (1..=3).map(Key::new).collect();
    keys.sort_by_key(|k| k.address);
    keys
}

pub(crate) fn batch_signer() -> Key {
    Key::new(0x51)
}

pub(crate) fn now() -> u64 {
    ink::env::block_timestamp::<DefaultEnvironment>()
}

pub(crate) fn set_now(t: u64) {
    test::set_block_timestamp::<DefaultEnvironment>(t);
}

pub(crate) fn as_caller(who: Address) {
    test::set_caller(who);
    test::set_value_transferred(U256::zero());
}

pub(crate) fn engine_balance(who: Address) -> U256 {
    test::get_contract_balance::<DefaultEnvironment>(who).unwrap_or_default()
}

/// Calls `f` as `from` carrying `value`, moving it into the contract first; if the call
/// fails the value goes back, as a reverted call's value would.
pub(crate) fn paying<T>(from: Address, value: u128, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let value = U256::from(value);
    test::set_caller(from);
    // Keep the payer well above the engine's existential deposit.
    test::set_contract_balance(
        from,
        engine_balance(from) + value + U256::from(START_BALANCE),
    );
    test::transfer_in(value);
    let result = f();
    if result.is_err() {
        let callee = test::callee();
        test::set_contract_balance(callee, engine_balance(callee) - value);
        // Keep the payer well above the engine's existential deposit.
        test::set_contract_balance(
            from,
            engine_balance(from) + value + U256::from(START_BALANCE),
        );
    }
    test::set_value_transferred(U256::zero());
    result
}

/// Events of type `E` recorded so far, in order.
pub(crate) fn events<E>() -> Vec<E>
where
    E: ink::env::Event + Decode,
{
    let topic = <E as ink::env::Event>::SIGNATURE_TOPIC;
    test::recorded_events()
        .into_iter()
        .filter(|e| e.topics.first().copied() == topic)
        .map(|e| E::decode(&mut &e.data[..]).unwrap())
        .collect()
}

pub(crate) fn event_count() -> usize {
    test::recorded_events().len()
}

/// A payment for the packed format.
#[derive(Clone, Debug)]
pub(crate) struct Pay {
    pub(crate) id: [u8; 32],
    pub(crate) amount: u128,
    pub(crate) legs: Vec<(u16, u32)>,
}

pub(crate) fn pay(tag: u8, amount: u128, legs: &[(u16, u32)]) -> Pay {
    Pay {
        id: [tag; 32],
        amount,
        legs: legs.to_vec(),
    }
}

/// Packs payments: `id | amount (16 bytes BE) | leg count | (payee u16 BE | share u32 BE)*`.
pub(crate) fn pack(payments: &[Pay]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payments {
        out.extend_from_slice(&p.id);
        out.extend_from_slice(&p.amount.to_be_bytes());
        out.push(u8::try_from(p.legs.len()).unwrap());
        for (payee, share) in &p.legs {
            out.extend_from_slice(&payee.to_be_bytes());
            out.extend_from_slice(&share.to_be_bytes());
        }
    }
    out
}

/// `n` ascending payee addresses, none equal to the test actors.
pub(crate) fn payees(n: usize) -> Vec<Address> {
    (0..n)
        .map(|i| {
            let mut bytes = [0u8; 20];
            bytes[0] = 0x10;
            bytes[18..].copy_from_slice(&u16::try_from(i).unwrap().to_be_bytes());
            Address::from(bytes)
        })
        .collect()
}

pub(crate) fn batch(
    nonce: u64,
    token: Address,
    funding: u8,
    payees: Vec<Address>,
    payments: &[Pay],
) -> Batch {
    Batch {
        batch_id: H256::repeat_byte(0xba),
        nonce: U256::from(nonce),
        deadline: now() + 600,
        token,
        funder: funder(),
        funding,
        payees,
        payments: pack(payments),
    }
}

/// 1001 split 90% / 7% / 3% over three payees: credits 901 / 70 / 30.
pub(crate) fn three_way(nonce: u64, token: Address) -> Batch {
    batch(
        nonce,
        token,
        FUNDING_DEPOSIT,
        payees(3),
        &[pay(1, 1001, &[(0, 900_000), (1, 70_000), (2, 30_000)])],
    )
}

/// A deployed contract with a batch signer, the native coin and `token()` enabled, and a custodian.
pub(crate) struct World {
    pub(crate) c: SplitSettlement,
    pub(crate) owners: Vec<Key>,
    pub(crate) signer: Key,
}

impl World {
    /// Deploys at `contract()` with no configuration.
    pub(crate) fn bare() -> Self {
        Self::bare_at(contract(), CHAIN_ID, DELAY)
    }

    /// Deploys at `at`, whose account starts with [`START_BALANCE`].
    pub(crate) fn bare_at(at: Address, chain_id: u64, delay: u64) -> Self {
        test::set_contract_balance(at, U256::from(START_BALANCE));
        Self::unfunded_at(at, chain_id, delay)
    }

    /// Deploys at `at`, an account the engine has no balance for (so sends from it fail).
    pub(crate) fn unfunded_at(at: Address, chain_id: u64, delay: u64) -> Self {
        test::set_callee(at);
        test::set_contract(at);
        set_now(T0);
        as_caller(stranger());
        let owners = owner_keys();
        let c = SplitSettlement::new(
            chain_id,
            owners.iter().map(|k| k.address).collect(),
            2,
            delay,
            guardian(),
        )
        .unwrap();
        Self {
            c,
            owners,
            signer: batch_signer(),
        }
    }

    /// [`Self::bare`] plus signer, tokens and custodian set through governance.
    pub(crate) fn new() -> Self {
        let mut w = Self::bare();
        w.configure();
        w
    }

    pub(crate) fn configure(&mut self) {
        let signer = self.signer.address;
        self.govern(Action::SetSigner {
            signer,
            authorised: true,
        });
        for t in [NATIVE, token()] {
            self.govern(Action::SetTokenConfig {
                token: t,
                enabled: true,
                max_payment: MAX_PAYMENT,
                daily_cap: DAILY_CAP,
            });
        }
        self.govern(Action::SetCustodian(custodian()));
    }

    /// Owner signatures (the first `n` owners, ascending) for `action` at the current nonce.
    pub(crate) fn approvals(&self, action: &Action, n: usize) -> Vec<[u8; 65]> {
        let digest = self
            .c
            .operation_digest(self.c.governance_nonce(), action.clone());
        self.owners.iter().take(n).map(|k| k.sign(digest)).collect()
    }

    /// Schedules `action` with two owner signatures, waits out the delay and executes it.
    pub(crate) fn govern(&mut self, action: Action) {
        let signatures = self.approvals(&action, 2);
        let nonce = self.c.schedule(action, signatures).unwrap();
        set_now(now() + self.c.delay());
        self.c.execute(nonce).unwrap();
    }

    /// Signs `batch` with the batch signer.
    pub(crate) fn sign(&self, batch: &Batch) -> [u8; 65] {
        self.signer
            .sign(self.c.batch_digest(batch.clone()).unwrap())
    }

    /// Credits `amount` of `token()` to `who` through the custodian.
    pub(crate) fn fund(&mut self, who: Address, amount: u128) {
        as_caller(custodian());
        self.c.deposit(token(), who, amount).unwrap();
    }

    pub(crate) fn settle(&mut self, batch: &Batch) -> Result<H256> {
        let signature = self.sign(batch);
        as_caller(stranger());
        self.c.settle_batch(batch.clone(), signature)
    }
}
