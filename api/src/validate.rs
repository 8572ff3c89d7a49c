//! Parsing of the values clients send: addresses, amounts, ids.

use alloy::primitives::{Address, B256};
use sqlx::types::chrono::{DateTime, Utc};

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

/// An RFC 3339 time such as `2025-01-31T12:00:00Z`, for a query parameter.
pub fn timestamp(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!(
                    "`{field}` = {text:?} is not an RFC 3339 time ({e}), e.g. 2025-01-31T12:00:00Z"
                ),
            )
        })
}

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// An absolute `http://` or `https://` URL with a host and no credentials.
pub fn url(field: &str, text: &str) -> Result<reqwest::Url, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            ErrorCode::InvalidUrl,
            format!("`{field}` = {text:?} {why}; send an absolute http:// or https:// URL"),
        )
    };
    if text.len() > MAX_URL_LEN {
        return Err(bad(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    let parsed = reqwest::Url::parse(text).map_err(|e| bad(&format!("does not parse ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("is not http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("carries credentials"));
    }
    Ok(parsed)
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
    fn timestamps_are_rfc3339() {
        assert_eq!(
            timestamp("from", "2025-01-31T12:00:00+01:00")
                .expect("ok")
                .to_rfc3339(),
            "2025-01-31T11:00:00+00:00"
        );
        for bad in ["", "2025-01-31", "yesterday", "2025-01-31T12:00:00"] {
            assert_eq!(
                timestamp("from", bad).expect_err(bad).code(),
                ErrorCode::InvalidParameter
            );
        }
    }

    #[test]
    fn urls_are_absolute_http_without_credentials() {
        assert!(url("url", "https://hooks.example.com/settle?x=1").is_ok());
        assert!(url("url", "http://127.0.0.1:8080/").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                url("url", bad).expect_err(bad).code(),
                ErrorCode::InvalidUrl
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            url("url", &long).expect_err("long").code(),
            ErrorCode::InvalidUrl
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
