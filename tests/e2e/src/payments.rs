//! The payments a scenario submits, and what they must credit.
//!
//! Payment `n` is deterministic: its amount, merchant and integrator follow from `n`, so a test
//! that submits ranges of `n` knows exactly which payment ids must settle and what every payee
//! must hold.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
};

use alloy::primitives::{Address, B256};
use serde_json::{Value, json};

use crate::CHAIN_ID;

/// The integrators payments come from (API keys are created for each).
pub const INTEGRATORS: [&str; 3] = ["shop-a", "shop-b", "wallet-c"];
/// Parts per million: merchant, platform, referrer.
pub const SHARES: [u32; 3] = [900_000, 70_000, 30_000];
/// The platform's payee.
pub const PLATFORM: Address = Address::repeat_byte(0xc0);
/// The referrer's payee.
pub const REFERRER: Address = Address::repeat_byte(0x7e);
/// Distinct merchants payments rotate through.
pub const MERCHANTS: u64 = 50;
/// Most payments in one bulk request.
pub const CHUNK: usize = 500;

/// Every split credits the first leg with the remainder and the others with the floor of their
/// share, as the contract does.
pub fn credits(amount: u128) -> [u128; 3] {
    let part = |share: u32| {
        amount
            .checked_mul(u128::from(share))
            .expect("small amounts")
            .checked_div(1_000_000)
            .expect("nonzero divisor")
    };
    let (platform, referrer) = (part(SHARES[1]), part(SHARES[2]));
    let merchant = amount
        .checked_sub(platform)
        .and_then(|rest| rest.checked_sub(referrer))
        .expect("the floors never exceed the amount");
    [merchant, platform, referrer]
}

/// The amount of payment `n`.
pub fn amount(n: u64) -> u128 {
    u128::from(n)
        .checked_mul(7_919)
        .and_then(|x| x.checked_add(1_000_000_000_000))
        .expect("small")
}

/// Which of [`INTEGRATORS`] submits payment `n`.
pub fn integrator_of(n: u64) -> usize {
    usize::try_from(n.checked_rem(3).expect("nonzero")).expect("small")
}

/// What was submitted, and what it must credit once settled.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Wei every payee must be credited.
    pub expected: BTreeMap<Address, u128>,
    /// The on-chain payment id of every submitted payment, by `n`.
    pub payment_ids: BTreeMap<u64, B256>,
}

impl Ledger {
    /// How many payments were submitted.
    pub fn count(&self) -> u64 {
        u64::try_from(self.payment_ids.len()).expect("small")
    }

    /// The payment ids of the payments numbered `range`.
    pub fn ids(&self, range: Range<u64>) -> BTreeSet<B256> {
        self.payment_ids.range(range).map(|(_, id)| *id).collect()
    }

    /// Books payment `n` (the API accepted it with `payment_id`) and its credits.
    pub(crate) fn book(&mut self, n: u64, payment_id: B256, merchant: Address) {
        let previous = self.payment_ids.insert(n, payment_id);
        assert!(previous.is_none(), "payment {n} booked twice");
        for (payee, credit) in [merchant, PLATFORM, REFERRER]
            .into_iter()
            .zip(credits(amount(n)))
        {
            let total = self.expected.entry(payee).or_insert(0);
            *total = total.checked_add(credit).expect("no overflow");
        }
    }
}

/// The JSON body of payment `n` in a bulk request.
pub fn payment_json(n: u64, funder: Address, merchant: Address) -> Value {
    json!({
        "idempotency_key": format!("order-{n}"),
        "chain_id": CHAIN_ID,
        "token": Address::ZERO.to_checksum(None),
        "funder": funder.to_checksum(None),
        "amount": amount(n).to_string(),
        "splits": [
            {"payee": merchant.to_checksum(None), "share": SHARES[0]},
            {"payee": PLATFORM.to_checksum(None), "share": SHARES[1]},
            {"payee": REFERRER.to_checksum(None), "share": SHARES[2]},
        ],
    })
}
