//! Batches, their packed payments, and the split arithmetic.
//!
//! `Batch::payments` is a byte string of payments laid end to end, each
//! `bytes32 paymentId | uint128 amount | uint8 legCount | legCount x (uint16 payeeIndex | uint32 share)`,
//! big-endian, `49 + 6 * legCount` bytes: the format of the EVM contract. Shares are parts
//! per million; every leg but the first gets `floor(amount * share / 1e6)` and the first
//! leg gets the remainder, so a payment's legs always add up to its amount.

use ink::{Address, H256, U256, prelude::vec::Vec};

use crate::{
    eip712::{BATCH_TYPE, hash_words, keccak256, payees_hash, uint_word},
    errors::{Error, Result},
};

/// Shares are parts per million.
pub const SCALE: u32 = 1_000_000;
/// Bytes of a packed payment before its legs: payment id (32), amount (16), leg count (1).
pub const PAYMENT_HEADER: usize = 49;
/// Bytes of a packed leg: payee index (2), share (4).
pub const LEG_SIZE: usize = 6;
/// Funding mode: draw from the funder's internal balance.
pub const FUNDING_DEPOSIT: u8 = 0;
/// Funding mode: the batch total arrives with the call (native coin only on this contract).
pub const FUNDING_PULL: u8 = 1;
/// The native coin's token address.
pub const NATIVE: Address = Address::zero();

/// A signed batch of payments in one token, drawn once from one funder.
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Caller-chosen id, echoed in the event.
    pub batch_id: H256,
    /// The signer's replay nonce (unordered: any unused value).
    pub nonce: U256,
    /// Last second (block timestamp) at which the batch may settle.
    pub deadline: u64,
    /// The token; [`NATIVE`] is the native coin.
    pub token: Address,
    /// Whose balance (or value) pays.
    pub funder: Address,
    /// [`FUNDING_DEPOSIT`] or [`FUNDING_PULL`].
    pub funding: u8,
    /// Strictly ascending, non-zero; legs refer to them by index.
    pub payees: Vec<Address>,
    /// The packed payments (see the module docs).
    pub payments: Vec<u8>,
}

/// What one pass over a batch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// What each payee (by index) is credited, summed over the batch's payments.
    pub credits: Vec<u128>,
    /// The sum of the payments' amounts.
    pub total: u128,
    /// The batch's EIP-712 struct hash.
    pub struct_hash: [u8; 32],
}

/// `floor(amount * share / SCALE)`, exact (the product is taken in 256 bits).
pub fn portion(amount: u128, share: u32) -> u128 {
    let exact = U256::from(amount)
        .saturating_mul(U256::from(share))
        .checked_div(U256::from(SCALE))
        .unwrap_or_default();
    // share <= SCALE at every call site, so the portion is at most `amount`.
    u128::try_from(exact).unwrap_or(u128::MAX)
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn read_be<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at.saturating_add(N)]);
    out
}

/// Validates `batch` and computes its credits, total and struct hash, rejecting exactly what
/// the EVM contract rejects, in the same order: payees first, then per payment its header
/// (amount, limit, legs), per leg its share and payee, then the payment's share sum.
pub fn tally(batch: &Batch, max_payment: u128) -> Result<Tally> {
    let mut previous = NATIVE;
    for (i, payee) in batch.payees.iter().enumerate() {
        if *payee == NATIVE {
            return Err(Error::ZeroPayee { index: index(i) });
        }
        // H160 compares its big-endian bytes, i.e. as the EVM compares addresses.
        if *payee <= previous {
            return Err(Error::PayeesNotSorted { index: index(i) });
        }
        previous = *payee;
    }

    let bytes = batch.payments.as_slice();
    if bytes.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let mut credits = ink::prelude::vec![0u128; batch.payees.len()];
    let mut total: u128 = 0;
    let mut cursor = 0usize;
    let mut payment = 0u32;
    while cursor < bytes.len() {
        let malformed = Error::MalformedPayments { payment };
        let legs_at = cursor
            .checked_add(PAYMENT_HEADER)
            .filter(|end| *end <= bytes.len())
            .ok_or(malformed.clone())?;
        let amount = u128::from_be_bytes(read_be(bytes, cursor.saturating_add(32)));
        let leg_count = usize::from(bytes[cursor.saturating_add(48)]);
        if amount == 0 {
            return Err(Error::ZeroAmount { payment });
        }
        if amount > max_payment {
            return Err(Error::PaymentTooLarge {
                payment,
                amount,
                max: max_payment,
            });
        }
        if leg_count == 0 {
            return Err(Error::EmptySplit { payment });
        }
        let end = leg_count
            .checked_mul(LEG_SIZE)
            .and_then(|size| legs_at.checked_add(size))
            .filter(|end| *end <= bytes.len())
            .ok_or(malformed)?;
        split_into(&bytes[legs_at..end], payment, amount, &mut credits)?;
        total = total.checked_add(amount).ok_or(Error::AmountOverflow)?;
        cursor = end;
        payment = payment.saturating_add(1);
    }

    let struct_hash = hash_words(&[
        keccak256(BATCH_TYPE.as_bytes()),
        batch.batch_id.0,
        uint_word(batch.nonce),
        uint_word(U256::from(batch.deadline)),
        crate::eip712::address_word(batch.token),
        crate::eip712::address_word(batch.funder),
        uint_word(U256::from(batch.funding)),
        payees_hash(&batch.payees),
        keccak256(bytes),
    ]);
    Ok(Tally {
        credits,
        total,
        struct_hash,
    })
}

/// Splits one payment, whose packed legs are `legs`, into `credits`.
fn split_into(legs: &[u8], payment: u32, amount: u128, credits: &mut [u128]) -> Result<()> {
    let parsed = legs.chunks_exact(LEG_SIZE).map(|leg| {
        (
            usize::from(u16::from_be_bytes(read_be(leg, 0))),
            u32::from_be_bytes(read_be(leg, 2)),
        )
    });
    // Validate every leg before crediting anything, so an invalid payment leaves `credits` alone.
    let mut sum: u64 = 0;
    for (leg, (payee, share)) in parsed.clone().enumerate() {
        if share == 0 {
            return Err(Error::ZeroShare {
                payment,
                leg: index(leg),
            });
        }
        if payee >= credits.len() {
            return Err(Error::UnknownPayee {
                payment,
                leg: index(leg),
            });
        }
        // At most 255 legs of u32 shares: far below u64::MAX.
        sum = sum.saturating_add(u64::from(share));
    }
    if sum != u64::from(SCALE) {
        return Err(Error::SharesMismatch { payment, sum });
    }
    let mut distributed: u128 = 0;
    let mut first = 0usize;
    for (leg, (payee, share)) in parsed.enumerate() {
        if leg == 0 {
            first = payee;
            continue;
        }
        let part = portion(amount, share);
        // The other legs' shares sum to SCALE - share[0], so `distributed <= amount`.
        distributed = distributed.saturating_add(part);
        credits[payee] = credits[payee]
            .checked_add(part)
            .ok_or(Error::AmountOverflow)?;
    }
    let remainder = amount.saturating_sub(distributed);
    credits[first] = credits[first]
        .checked_add(remainder)
        .ok_or(Error::AmountOverflow)?;
    Ok(())
}
