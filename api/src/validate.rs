//! Parsing of the values clients send: addresses, amounts, ids.

use alloy::primitives::{Address, B256};

use crate::problem::{ApiError, ErrorCode};

/// An EIP-55 address: `0x` and 40 hex digits in the checksummed case (all-lower or all-upper is
/// refused too, since it carries no checksum).
pub fn address(text: &str) -> Result<Address, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            ErrorCode::InvalidAddress,
            format!("{text:?} is not an EIP-55 address: {why}"),
        )
    };
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| bad("it must start with 0x"))?;
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("it must have 40 hex digits after 0x"));
    }
    let parsed: Address = text.parse().map_err(|_| bad("it does not parse"))?;
    if parsed.to_checksum(None) != text {
        return Err(bad(&format!(
            "the checksummed form is {}",
            parsed.to_checksum(None)
        )));
    }
    Ok(parsed)
}

/// A positive amount of base units, written as a decimal integer string below 2^128.
pub fn amount(field: &str, text: &str) -> Result<u128, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            ErrorCode::InvalidAmount,
            format!(
                "`{field}` = {text:?} {why}; write the amount in base units as a decimal integer string, e.g. \"1500000\""
            ),
        )
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a decimal integer"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(bad("has leading zeros"));
    }
    let value: u128 = text
        .parse()
        .map_err(|_| bad("is too large (at most 2^128 - 1)"))?;
    if value == 0 {
        return Err(bad("is zero"));
    }
    Ok(value)
}

/// A 32-byte hex value such as a payment id or batch id.
pub fn bytes32(field: &str, text: &str) -> Result<B256, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`{field}` = {text:?} is not 0x and 64 hex digits"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_carry_their_checksum() {
        let good = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
        assert!(address(good).is_ok());
        for bad in [
            "0x5fbdb2315678afecb367f032d93f642f64180aa3",
            "5FbDB2315678afecb367f032d93F642f64180aa3",
            "0x5FbDB2315678afecb367f032d93F642f64180aa",
            "0x5FbDB2315678afecb367f032d93F642f64180aG",
        ] {
            assert_eq!(
                address(bad).expect_err(bad).code(),
                ErrorCode::InvalidAddress
            );
        }
        assert_eq!(
            address("0x5fbdb2315678afecb367f032d93f642f64180aa3")
                .expect_err("lower")
                .detail(),
            "\"0x5fbdb2315678afecb367f032d93f642f64180aa3\" is not an EIP-55 address: the checksummed form is 0x5FbDB2315678afecb367f032d93F642f64180aa3"
        );
    }

    #[test]
    fn amounts_are_positive_decimal_integers_below_2_128() {
        assert_eq!(amount("amount", "1").expect("ok"), 1);
        assert_eq!(
            amount("amount", "340282366920938463463374607431768211455").expect("max"),
            u128::MAX
        );
        for bad in [
            "",
            "0",
            "-1",
            "1.5",
            "1e6",
            " 1",
            "01",
            "340282366920938463463374607431768211456",
        ] {
            assert_eq!(
                amount("amount", bad).expect_err(bad).code(),
                ErrorCode::InvalidAmount
            );
        }
    }
}
