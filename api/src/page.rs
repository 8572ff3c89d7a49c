//! Opaque page cursors and page sizes shared by the list routes.
//!
//! A cursor is a position in a keyset (an arrival number), tagged with the
//! listing it belongs to. Clients pass it back unchanged; its form may change.

use crate::problem::{ApiError, ErrorCode};

/// Which listing a cursor belongs to (a payments cursor is refused by the deliveries listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Payments,
    Deliveries,
}

impl Listing {
    const fn tag(self) -> char {
        match self {
            Self::Payments => 'p',
            Self::Deliveries => 'd',
        }
    }
}

/// Items per page when the client does not say.
pub(crate) const DEFAULT_LIMIT: u32 = 50;

/// The cursor for the position `seq` of `listing`.
pub(crate) fn encode(listing: Listing, seq: i64) -> String {
    format!("{}{:016x}", listing.tag(), seq)
}

/// The position a cursor of `listing` names.
pub(crate) fn decode(listing: Listing, text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "`cursor` = {text:?} is not a cursor of this listing; pass back `next_cursor` unchanged"
            ),
        )
    };
    let digits = text.strip_prefix(listing.tag()).ok_or_else(bad)?;
    if digits.len() != 16
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    let value = u64::from_str_radix(digits, 16).map_err(|_| bad())?;
    i64::try_from(value).map_err(|_| bad())
}

/// The page size: `limit` if given (1 to `max`), else the default (at most `max`).
pub(crate) fn limit(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT.min(max).max(1)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`limit` = {n} is out of range; ask for 1 to {max} items per page"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_listing() {
        for seq in [0, 1, 4096, i64::MAX] {
            let text = encode(Listing::Payments, seq);
            assert_eq!(decode(Listing::Payments, &text).expect("decodes"), seq);
            assert_eq!(
                decode(Listing::Deliveries, &text)
                    .expect_err("other listing")
                    .code(),
                ErrorCode::InvalidParameter
            );
        }
        for bad in [
            "",
            "p",
            "p123",
            "pffffffffffffffff",
            "p000000000000000G",
            "x0000000000000001",
        ] {
            assert!(decode(Listing::Payments, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_stay_within_the_page_size() {
        assert_eq!(limit(None, 100).expect("default"), 50);
        assert_eq!(limit(None, 10).expect("default"), 10);
        assert_eq!(limit(Some(100), 100).expect("max"), 100);
        assert!(limit(Some(0), 100).is_err());
        assert!(limit(Some(101), 100).is_err());
    }
}
