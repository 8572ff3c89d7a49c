//! Split arithmetic, the mirror of `contracts/src/lib/SplitMath.sol`.
//!
//! A payment of `amount` is split into legs whose shares sum to [`SCALE`].
//! Every leg but the first gets `floor(amount * share / SCALE)`; the first leg
//! gets the rest, so the legs always add up to `amount` exactly.

use thiserror::Error;

/// Shares are parts per million.
pub const SCALE: u32 = 1_000_000;

/// Why a split is invalid. The same conditions the contract reverts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SplitError {
    /// The amount is zero.
    #[error("the amount is zero")]
    ZeroAmount,
    /// There are no legs.
    #[error("the split has no legs")]
    EmptySplit,
    /// A leg's share is zero.
    #[error("leg {leg} has a zero share")]
    ZeroShare {
        /// Index of the leg.
        leg: usize,
    },
    /// The shares do not sum to [`SCALE`].
    #[error("shares sum to {sum}, not {SCALE}")]
    SharesMismatch {
        /// What they sum to.
        sum: u64,
    },
}

/// The rounded-down portion of `amount` for `share` (at most `SCALE`).
///
/// Exact without widening: with `amount = q * SCALE + r`,
/// `floor(amount * share / SCALE) = q * share + floor(r * share / SCALE)`.
fn portion(amount: u128, share: u32) -> Option<u128> {
    let scale = u128::from(SCALE);
    let share = u128::from(share);
    let (q, r) = (amount.checked_div(scale)?, amount.checked_rem(scale)?);
    // q * share <= amount because share <= SCALE; r * share < SCALE^2 = 10^12.
    q.checked_mul(share)?
        .checked_add(r.checked_mul(share)?.checked_div(scale)?)
}

/// Splits `amount` by `shares`, returning what each leg gets, in order.
///
/// The returned amounts always sum to `amount`.
pub fn split(amount: u128, shares: &[u32]) -> Result<Vec<u128>, SplitError> {
    if amount == 0 {
        return Err(SplitError::ZeroAmount);
    }
    if shares.is_empty() {
        return Err(SplitError::EmptySplit);
    }
    let mut sum: u64 = 0;
    for (leg, &share) in shares.iter().enumerate() {
        if share == 0 {
            return Err(SplitError::ZeroShare { leg });
        }
        sum = sum.saturating_add(u64::from(share));
    }
    if sum != u64::from(SCALE) {
        return Err(SplitError::SharesMismatch { sum });
    }
    // Shares are validated above (each in 1..=SCALE, summing to SCALE), so none of the checked
    // steps below can fail; they are checked so that a broken invariant is an error, not a wrong amount.
    let overflow = SplitError::SharesMismatch { sum };
    let mut parts = shares
        .iter()
        .map(|&s| portion(amount, s))
        .collect::<Option<Vec<u128>>>()
        .ok_or(overflow)?;
    let others = parts
        .iter()
        .skip(1)
        .try_fold(0u128, |acc, &p| acc.checked_add(p))
        .ok_or(overflow)?;
    // others <= amount: the other legs' shares sum to at most SCALE - shares[0].
    parts[0] = amount.checked_sub(others).ok_or(overflow)?;
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on bounded values
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn remainder_goes_to_first_leg() {
        assert_eq!(
            split(1001, &[900_000, 70_000, 30_000]),
            Ok(vec![901, 70, 30])
        );
        assert_eq!(split(1, &[500_000, 500_000]), Ok(vec![1, 0]));
        assert_eq!(split(u128::MAX, &[SCALE]), Ok(vec![u128::MAX]));
    }

    #[test]
    fn rejects_what_the_contract_rejects() {
        assert_eq!(split(0, &[SCALE]), Err(SplitError::ZeroAmount));
        assert_eq!(split(5, &[]), Err(SplitError::EmptySplit));
        assert_eq!(split(5, &[SCALE, 0]), Err(SplitError::ZeroShare { leg: 1 }));
        assert_eq!(
            split(5, &[600_000, 400_001]),
            Err(SplitError::SharesMismatch { sum: 1_000_001 })
        );
    }

    fn shares_strategy() -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(1u32..=SCALE, 1..8).prop_filter_map("shares must fit", |raw| {
            // Scale arbitrary weights to sum exactly to SCALE, every share >= 1.
            let n = u64::try_from(raw.len()).ok()?;
            let total: u64 = raw.iter().map(|&w| u64::from(w)).sum();
            let budget = u64::from(SCALE).checked_sub(n)?;
            let mut shares: Vec<u32> = raw
                .iter()
                .map(|&w| u32::try_from(1 + u64::from(w) * budget / total).ok())
                .collect::<Option<_>>()?;
            let assigned: u64 = shares.iter().map(|&s| u64::from(s)).sum();
            let last = shares.last_mut()?;
            *last = u32::try_from(u64::from(*last) + u64::from(SCALE) - assigned).ok()?;
            Some(shares)
        })
    }

    proptest! {
        #[test]
        fn conserves_and_rounds_down(amount in 1u128.., shares in shares_strategy()) {
            let parts = split(amount, &shares).expect("valid split");
            prop_assert_eq!(parts.iter().sum::<u128>(), amount);
            for (i, (&part, &share)) in parts.iter().zip(&shares).enumerate().skip(1) {
                // Exactly floor(amount * share / SCALE), computed in 256 bits.
                let exact = alloy::primitives::U256::from(amount) * alloy::primitives::U256::from(share)
                    / alloy::primitives::U256::from(SCALE);
                prop_assert_eq!(alloy::primitives::U256::from(part), exact, "leg {}", i);
            }
        }
    }
}
