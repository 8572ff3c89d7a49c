//! The Rust mirror against the shared vectors: split, packing, credits, digest.

use settle_contracts::{
    batch_credits, decode_payments, digest::batch_digest, encode_payments, split::split,
};

use alloy::primitives::U256;

use crate::fixtures::{batch_cases, split_cases};

/// `None` on overflow, which a consistent vector never reaches.
fn sum(values: &[u128]) -> Option<u128> {
    values.iter().try_fold(0u128, |acc, &v| acc.checked_add(v))
}

#[test]
fn vectors_are_self_consistent() {
    // Guards against a truncated or hand-edited file: the expected values must
    // still conserve the amounts they split.
    let splits = split_cases();
    assert!(splits.len() >= 15, "split.json has {} cases", splits.len());
    for case in &splits {
        assert_eq!(case.expected.len(), case.shares.len(), "{}", case.name);
        assert_eq!(sum(&case.expected), Some(case.amount), "{}", case.name);
    }
    let batches = batch_cases();
    assert!(
        batches.len() >= 5,
        "batches.json has {} cases",
        batches.len()
    );
    for case in &batches {
        assert_eq!(
            case.expected.credits.len(),
            case.batch.payees.len(),
            "{}",
            case.name
        );
        assert_eq!(
            sum(&case.expected.credits),
            Some(case.expected.total),
            "{}",
            case.name
        );
        assert!(
            case.batch.payees.windows(2).all(|w| w[0] < w[1]),
            "{}: payees sorted",
            case.name
        );
    }
}

#[test]
fn split_matches_every_vector() {
    for case in split_cases() {
        assert_eq!(
            split(case.amount, &case.shares),
            Ok(case.expected),
            "{}: split({}, {:?})",
            case.name,
            case.amount,
            case.shares
        );
    }
}

#[test]
fn payments_pack_and_unpack_like_the_vectors() {
    for case in batch_cases() {
        let packed = encode_payments(&case.payments).expect("vector payments fit the packed form");
        assert_eq!(
            packed, case.expected.packed_payments,
            "{}: packed",
            case.name
        );
        assert_eq!(
            decode_payments(&case.expected.packed_payments).as_ref(),
            Ok(&case.payments),
            "{}: unpacked",
            case.name
        );
    }
}

#[test]
fn batch_credits_match_every_vector() {
    for case in batch_cases() {
        assert_eq!(
            batch_credits(case.batch.payees.len(), &case.payments),
            Ok((
                case.expected
                    .credits
                    .iter()
                    .map(|&c| U256::from(c))
                    .collect(),
                U256::from(case.expected.total)
            )),
            "{}",
            case.name
        );
    }
}

#[test]
fn batch_digest_matches_every_vector() {
    for case in batch_cases() {
        assert_eq!(
            batch_digest(&case.batch, case.chain_id, case.verifying_contract),
            case.expected.digest,
            "{}",
            case.name
        );
    }
}
