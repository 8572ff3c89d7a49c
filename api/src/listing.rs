//! What the merchant and auditor listings share: page sizes, opaque keyset cursors, block ranges
//! given by block numbers or times, and the mapping of the indexer's read errors.
//!
//! A cursor is a position in the chain (block, log index, and for payouts the payment and leg),
//! tagged with the listing it belongs to. Clients pass `next_cursor` back unchanged; its form may
//! change. Times select blocks by their timestamp, `from` inclusive and `to` exclusive, resolved
//! on the chain itself (the indexer keeps block times only for its reorg window).

use settle_indexer::query::{self, BlockFilter, Deployment, LogKey, PayoutKey, QueryError};
use sqlx::types::chrono::{DateTime, Utc};

use crate::{
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

/// Items per page when the client does not say.
pub(crate) const DEFAULT_LIMIT: u32 = 50;

/// The deployment the API serves.
pub(crate) fn deployment(state: &AppState) -> Deployment {
    Deployment {
        chain_id: state.config().chain_id,
        contract: state.config().contract,
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, detail)
}

/// The page size: `limit` if given (1 to `max`), else the default (at most `max`).
pub(crate) fn limit(limit: Option<u32>, max: u32) -> Result<usize, ApiError> {
    let n = match limit {
        None => DEFAULT_LIMIT.min(max).max(1),
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
                "`limit` = {n} is out of range; ask for 1 to {max} items per page"
            )));
        }
    };
    usize::try_from(n).map_err(|_| invalid("`limit` does not fit this server"))
}

/// Which listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Payouts,
    Withdrawals,
}

impl Tag {
    const fn char(self) -> char {
        match self {
            Self::Payouts => 'o',
            Self::Withdrawals => 'w',
        }
    }
}

/// `widths` hex numbers of those widths after the tag.
fn decode_fields<const N: usize>(
    tag: Tag,
    text: &str,
    widths: [usize; N],
) -> Result<[u64; N], ApiError> {
    let bad = || {
        invalid(format!(
            "`cursor` = {text:?} is not a cursor of this listing; pass back `next_cursor` unchanged"
        ))
    };
    let mut rest = text.strip_prefix(tag.char()).ok_or_else(bad)?;
    if rest.len() != widths.iter().sum::<usize>()
        || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    let mut out = [0u64; N];
    for (slot, width) in out.iter_mut().zip(widths) {
        let (field, tail) = rest.split_at_checked(width).ok_or_else(bad)?;
        *slot = u64::from_str_radix(field, 16).map_err(|_| bad())?;
        rest = tail;
    }
    Ok(out)
}

/// The cursor after a payout.
pub(crate) fn payout_cursor(key: PayoutKey) -> String {
    format!(
        "{}{:016x}{:016x}{:08x}{:08x}",
        Tag::Payouts.char(),
        key.block_number,
        key.log_index,
        key.payment,
        key.leg
    )
}

/// The payout a cursor names.
pub(crate) fn parse_payout_cursor(text: &str) -> Result<PayoutKey, ApiError> {
    let [block_number, log_index, payment, leg] =
        decode_fields(Tag::Payouts, text, [16, 16, 8, 8])?;
    let narrow = |n: u64| u32::try_from(n).map_err(|_| invalid("`cursor` is out of range"));
    Ok(PayoutKey {
        block_number,
        log_index,
        payment: narrow(payment)?,
        leg: narrow(leg)?,
    })
}

/// The cursor after a withdrawal.
pub(crate) fn withdrawal_cursor(key: LogKey) -> String {
    format!(
        "{}{:016x}{:016x}",
        Tag::Withdrawals.char(),
        key.block_number,
        key.log_index
    )
}

/// The withdrawal a cursor names.
pub(crate) fn parse_withdrawal_cursor(text: &str) -> Result<LogKey, ApiError> {
    let [block_number, log_index] = decode_fields(Tag::Withdrawals, text, [16, 16])?;
    Ok(LogKey {
        block_number,
        log_index,
    })
}

/// An RFC 3339 time as the first whole second at or after it (block times are whole seconds, so
/// `time <= t` and `t < time` hold for a block time `t` exactly when they hold for this second).
/// Times before 1970 are 0.
pub(crate) fn ceil_seconds(time: &DateTime<Utc>) -> u64 {
    let seconds = time.timestamp();
    let seconds = if time.timestamp_subsec_nanos() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    };
    u64::try_from(seconds).unwrap_or(0)
}

/// A read of the indexer as the API answers its failure: the database or the chain being out of
/// reach is `unavailable`, anything else `internal` (logged, never shown).
pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Database(e) => ApiError::database(&e),
        QueryError::Rpc { .. } | QueryError::BlockMissing { .. } => {
            tracing::warn!(error = %e, "chain read failed");
            ApiError::new(
                ErrorCode::Unavailable,
                "the chain is not reachable right now; retry shortly",
            )
            .retry_after(1)
        }
        other => ApiError::internal(&other),
    }
}

/// The range filters of a listing, as the client sent them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeParams<'a> {
    pub(crate) token: Option<&'a str>,
    pub(crate) from_block: Option<u64>,
    pub(crate) to_block: Option<u64>,
    pub(crate) from_time: Option<&'a str>,
    pub(crate) to_time: Option<&'a str>,
}

/// The blocks and token a listing covers, or `None` when no block can match. Times are resolved
/// to blocks on the chain, up to the indexed checkpoint (nothing later is indexed).
pub(crate) async fn block_filter(
    state: &AppState,
    params: &RangeParams<'_>,
) -> Result<Option<BlockFilter>, ApiError> {
    let token = params
        .token
        .map(|t| {
            validate::address(t).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidAddress,
                    format!("`token`: {}", e.detail()),
                )
            })
        })
        .transpose()?;
    let from_time = params
        .from_time
        .map(|t| validate::timestamp("from_time", t))
        .transpose()?;
    let to_time = params
        .to_time
        .map(|t| validate::timestamp("to_time", t))
        .transpose()?;
    let mut from_block = params.from_block.unwrap_or(0);
    let mut to_block = params.to_block.unwrap_or(u64::MAX);
    if from_block > to_block {
        return Err(invalid(format!(
            "`from_block` ({from_block}) is after `to_block` ({to_block})"
        )));
    }
    if let (Some(from), Some(to)) = (&from_time, &to_time)
        && from >= to
    {
        return Err(invalid(format!(
            "`from_time` ({}) must be before `to_time` ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    if from_time.is_some() || to_time.is_some() {
        let Some(checkpoint) = query::checkpoint(state.pool(), deployment(state))
            .await
            .map_err(query_error)?
        else {
            return Ok(None);
        };
        let high = checkpoint.block_number;
        if let Some(from) = &from_time {
            let first = query::first_block_at_or_after(state.rpc(), ceil_seconds(from), 0, high)
                .await
                .map_err(query_error)?;
            from_block = from_block.max(first);
        }
        if let Some(to) = &to_time {
            let after = query::first_block_at_or_after(state.rpc(), ceil_seconds(to), 0, high)
                .await
                .map_err(query_error)?;
            let Some(last) = after.checked_sub(1) else {
                return Ok(None);
            };
            to_block = to_block.min(last);
        }
        if from_block > to_block {
            return Ok(None);
        }
    }
    Ok(Some(BlockFilter {
        token,
        from_block,
        to_block,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_listing() {
        let key = PayoutKey {
            block_number: u64::MAX,
            log_index: 7,
            payment: 3,
            leg: u32::MAX,
        };
        let text = payout_cursor(key);
        assert_eq!(text, "offffffffffffffff000000000000000700000003ffffffff");
        assert_eq!(parse_payout_cursor(&text).expect("round trip"), key);
        let log = LogKey {
            block_number: 12,
            log_index: 0,
        };
        assert_eq!(
            parse_withdrawal_cursor(&withdrawal_cursor(log)).expect("round trip"),
            log
        );
        for bad in [
            String::new(),
            "o".to_owned(),
            withdrawal_cursor(log),
            text.to_uppercase(),
            format!("{text}0"),
            text.replacen('f', "g", 1),
        ] {
            assert_eq!(
                parse_payout_cursor(&bad).expect_err(&bad).code(),
                ErrorCode::InvalidParameter
            );
        }
        assert!(parse_withdrawal_cursor(&payout_cursor(key)).is_err());
    }

    #[test]
    fn limits_stay_within_the_page_size() {
        assert_eq!(limit(None, 100).expect("default"), 50);
        assert_eq!(limit(None, 10).expect("default"), 10);
        assert_eq!(limit(Some(100), 100).expect("max"), 100);
        assert!(limit(Some(0), 100).is_err());
        assert!(limit(Some(101), 100).is_err());
    }

    #[test]
    fn times_round_up_to_whole_seconds() {
        let at = |text: &str| ceil_seconds(&validate::timestamp("t", text).expect("time"));
        assert_eq!(at("1970-01-01T00:00:10Z"), 10);
        assert_eq!(at("1970-01-01T00:00:10.001Z"), 11);
        assert_eq!(at("1969-12-31T23:59:59Z"), 0);
    }
}
