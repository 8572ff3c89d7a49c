//! Payments and their packed on-chain form.
//!
//! `Batch.payments` is a byte string: every payment is
//! `bytes32 paymentId | uint128 amount | uint8 legCount | legCount x (uint16 payee | uint32 share)`,
//! big-endian, `49 + 6 * legCount` bytes. A leg's `payee` is an index into
//! `Batch.payees`. This module encodes and decodes that form and computes the
//! credits a batch makes, exactly as `SplitSettlement._tally` does.

use alloy::primitives::{B256, Bytes, U256};
use thiserror::Error;

use crate::split::{SplitError, split};

/// Bytes of a packed payment before its legs.
pub const PAYMENT_HEADER: usize = 49;
/// Bytes of a packed leg.
pub const LEG_SIZE: usize = 6;
/// Most legs one payment can have (the count is one byte).
pub const MAX_LEGS: usize = u8::MAX as usize;

/// One leg of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leg {
    /// Index into the batch's payees.
    pub payee: u16,
    /// Parts per million of the payment.
    pub share: u32,
}

/// A payment inside a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payment {
    /// The payment's id (unique per integrator and idempotency key off-chain).
    pub payment_id: B256,
    /// Amount in token base units.
    pub amount: u128,
    /// How it is split; the first leg takes the rounding remainder.
    pub legs: Vec<Leg>,
}

/// Why payments cannot be packed, unpacked or credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PaymentError {
    /// A payment has more legs than one byte can count.
    #[error("payment {payment} has {legs} legs; at most {MAX_LEGS} fit")]
    TooManyLegs {
        /// Index of the payment.
        payment: usize,
        /// How many legs it has.
        legs: usize,
    },
    /// The packed bytes end inside a payment.
    #[error("packed payments end inside payment {payment}")]
    Malformed {
        /// Index of the payment.
        payment: usize,
    },
    /// There are no payments.
    #[error("the batch has no payments")]
    Empty,
    /// A leg names a payee index outside the batch's payees.
    #[error("payment {payment} leg {leg} names payee {payee}, but the batch has {payees} payees")]
    UnknownPayee {
        /// Index of the payment.
        payment: usize,
        /// Index of the leg.
        leg: usize,
        /// The payee index named.
        payee: u16,
        /// How many payees the batch has.
        payees: usize,
    },
    /// A payment's split is invalid.
    #[error("payment {payment}: {source}")]
    Split {
        /// Index of the payment.
        payment: usize,
        /// What is wrong with the split.
        source: SplitError,
    },
}

/// Packs payments into `Batch.payments`.
pub fn encode_payments(payments: &[Payment]) -> Result<Bytes, PaymentError> {
    let size = payments
        .iter()
        .map(|p| {
            p.legs
                .len()
                .saturating_mul(LEG_SIZE)
                .saturating_add(PAYMENT_HEADER)
        })
        .fold(0usize, usize::saturating_add);
    let mut out = Vec::with_capacity(size);
    for (index, p) in payments.iter().enumerate() {
        let count = u8::try_from(p.legs.len()).map_err(|_| PaymentError::TooManyLegs {
            payment: index,
            legs: p.legs.len(),
        })?;
        out.extend_from_slice(p.payment_id.as_slice());
        out.extend_from_slice(&p.amount.to_be_bytes());
        out.push(count);
        for leg in &p.legs {
            out.extend_from_slice(&leg.payee.to_be_bytes());
            out.extend_from_slice(&leg.share.to_be_bytes());
        }
    }
    Ok(out.into())
}

/// Unpacks `Batch.payments` (or the `payments` of a `BatchSettled` event).
pub fn decode_payments(mut bytes: &[u8]) -> Result<Vec<Payment>, PaymentError> {
    let mut payments = Vec::new();
    while !bytes.is_empty() {
        let payment = payments.len();
        let malformed = PaymentError::Malformed { payment };
        let (header, rest) = bytes.split_at_checked(PAYMENT_HEADER).ok_or(malformed)?;
        let (id, header) = header.split_at(32);
        let (amount, count) = header.split_at(16);
        let leg_count = usize::from(count[0]);
        let (legs_bytes, rest) = rest
            .split_at_checked(leg_count.saturating_mul(LEG_SIZE))
            .ok_or(malformed)?;
        let legs = legs_bytes
            .chunks_exact(LEG_SIZE)
            .map(|leg| Leg {
                payee: u16::from_be_bytes([leg[0], leg[1]]),
                share: u32::from_be_bytes([leg[2], leg[3], leg[4], leg[5]]),
            })
            .collect();
        payments.push(Payment {
            payment_id: B256::from_slice(id),
            amount: u128::from_be_bytes(amount.try_into().map_err(|_| malformed)?),
            legs,
        });
        bytes = rest;
    }
    Ok(payments)
}

/// What a batch credits each of its `payee_count` payees, and its total, exactly as
/// the contract computes them: the same checks in the same order (per payment: amount,
/// legs; per leg: share, payee; then the share sum), and 256-bit sums like its `uint256`s.
pub fn batch_credits(
    payee_count: usize,
    payments: &[Payment],
) -> Result<(Vec<U256>, U256), PaymentError> {
    if payments.is_empty() {
        return Err(PaymentError::Empty);
    }
    let mut credits = vec![U256::ZERO; payee_count];
    let mut total = U256::ZERO;
    for (index, p) in payments.iter().enumerate() {
        let split_error = |source| PaymentError::Split {
            payment: index,
            source,
        };
        if p.amount == 0 {
            return Err(split_error(SplitError::ZeroAmount));
        }
        if p.legs.is_empty() {
            return Err(split_error(SplitError::EmptySplit));
        }
        for (leg_index, leg) in p.legs.iter().enumerate() {
            if leg.share == 0 {
                return Err(split_error(SplitError::ZeroShare { leg: leg_index }));
            }
            if usize::from(leg.payee) >= payee_count {
                return Err(PaymentError::UnknownPayee {
                    payment: index,
                    leg: leg_index,
                    payee: leg.payee,
                    payees: payee_count,
                });
            }
        }
        let shares: Vec<u32> = p.legs.iter().map(|l| l.share).collect();
        let parts = split(p.amount, &shares).map_err(split_error)?;
        for (leg, part) in p.legs.iter().zip(parts) {
            // Indexes were checked above; sums of u128 parts cannot overflow 256 bits.
            if let Some(slot) = credits.get_mut(usize::from(leg.payee)) {
                *slot = slot.saturating_add(U256::from(part));
            }
        }
        total = total.saturating_add(U256::from(p.amount));
    }
    Ok((credits, total))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on bounded values
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn three_way(amount: u128) -> Payment {
        Payment {
            payment_id: B256::repeat_byte(0x11),
            amount,
            legs: vec![
                Leg {
                    payee: 0,
                    share: 900_000,
                },
                Leg {
                    payee: 1,
                    share: 70_000,
                },
                Leg {
                    payee: 2,
                    share: 30_000,
                },
            ],
        }
    }

    #[test]
    fn packs_in_the_documented_layout() {
        let bytes = encode_payments(&[three_way(1001)]).expect("encode");
        let mut expected = vec![0x11; 32];
        expected.extend_from_slice(&1001u128.to_be_bytes());
        expected.push(3);
        expected.extend_from_slice(&[0, 0, 0x00, 0x0d, 0xbb, 0xa0]); // 0, 900000
        expected.extend_from_slice(&[0, 1, 0x00, 0x01, 0x11, 0x70]); // 1, 70000
        expected.extend_from_slice(&[0, 2, 0x00, 0x00, 0x75, 0x30]); // 2, 30000
        assert_eq!(bytes.as_ref(), expected.as_slice());
    }

    #[test]
    fn truncated_bytes_name_the_payment() {
        let bytes = encode_payments(&[three_way(1), three_way(2)]).expect("encode");
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(
            decode_payments(cut),
            Err(PaymentError::Malformed { payment: 1 })
        );
        assert_eq!(
            decode_payments(&bytes[..10]),
            Err(PaymentError::Malformed { payment: 0 })
        );
    }

    #[test]
    fn credits_aggregate_per_payee() {
        let (credits, total) =
            batch_credits(3, &[three_way(1001), three_way(1001)]).expect("credits");
        assert_eq!(credits, [1802u64, 140, 60].map(U256::from).to_vec());
        assert_eq!(total, U256::from(2002));
        assert_eq!(
            batch_credits(2, &[three_way(5)]),
            Err(PaymentError::UnknownPayee {
                payment: 0,
                leg: 2,
                payee: 2,
                payees: 2
            })
        );
        assert_eq!(batch_credits(3, &[]), Err(PaymentError::Empty));
    }

    #[test]
    fn too_many_legs_is_an_error() {
        let mut p = three_way(1);
        p.legs = vec![Leg { payee: 0, share: 1 }; 256];
        assert_eq!(
            encode_payments(&[p]),
            Err(PaymentError::TooManyLegs {
                payment: 0,
                legs: 256
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(payments in prop::collection::vec(
            (any::<[u8; 32]>(), any::<u128>(), prop::collection::vec((any::<u16>(), any::<u32>()), 0..12)),
            0..20,
        )) {
            let payments: Vec<Payment> = payments
                .into_iter()
                .map(|(id, amount, legs)| Payment {
                    payment_id: B256::from(id),
                    amount,
                    legs: legs.into_iter().map(|(payee, share)| Leg { payee, share }).collect(),
                })
                .collect();
            let bytes = encode_payments(&payments).expect("encode");
            prop_assert_eq!(decode_payments(&bytes).expect("decode"), payments);
        }
    }
}
