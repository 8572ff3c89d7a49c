//! The reorg window's rules: what a freshly read range must agree with before it is written.
//!
//! The window itself lives in `indexer.blocks` (so it survives restarts) as (number, hash,
//! parent hash): dense for the blocks near the chain's head, plus the last block of every range.
//! A sync first asks whether the newest stored block is still canonical; if it is, so is
//! everything below it (hashes chain). If not, the fork point is the highest stored block whose
//! hash the chain still has, and everything above it is rolled back in one transaction. A reorg
//! below the oldest stored block stops the indexer instead of guessing.
//!
//! Between that check and the write the chain can still move, so the headers of the new range are
//! checked here against each other, against the stored blocks, and against the block hashes its
//! logs carry.

use std::collections::BTreeMap;

use alloy::primitives::B256;

/// A block as the window remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent's hash.
    pub parent_hash: B256,
}

/// Why a freshly read range does not fit: the chain moved while it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The header at `number` is not the child of the block below it (fetched or stored).
    Unlinked {
        /// The header's height.
        number: u64,
    },
    /// The headers are not consecutive heights.
    Gap {
        /// The height expected next.
        expected: u64,
        /// The height found.
        got: u64,
    },
    /// A stored block at `number` has another hash than the fetched header.
    Changed {
        /// The height.
        number: u64,
    },
    /// A log at `number` carries another block hash than the fetched header.
    LogFromOtherBlock {
        /// The height.
        number: u64,
    },
}

/// Checks that `headers` (ascending, consecutive) form a chain, extend the stored block just below
/// the first one (if stored), equal the stored blocks at the same heights, and carry every log
/// (`(number, block hash)`) that falls within their heights.
pub fn check_range(
    stored: &[BlockRef],
    headers: &[BlockRef],
    logs: impl IntoIterator<Item = (u64, B256)>,
) -> Result<(), Mismatch> {
    let stored: BTreeMap<u64, &BlockRef> = stored.iter().map(|b| (b.number, b)).collect();
    let mut previous: Option<&BlockRef> = None;
    for header in headers {
        match previous {
            Some(prev) => {
                let expected = prev.number.saturating_add(1);
                if header.number != expected {
                    return Err(Mismatch::Gap {
                        expected,
                        got: header.number,
                    });
                }
                if header.parent_hash != prev.hash {
                    return Err(Mismatch::Unlinked {
                        number: header.number,
                    });
                }
            }
            None => {
                let below = header.number.checked_sub(1).and_then(|n| stored.get(&n));
                if below.is_some_and(|b| b.hash != header.parent_hash) {
                    return Err(Mismatch::Unlinked {
                        number: header.number,
                    });
                }
            }
        }
        if stored
            .get(&header.number)
            .is_some_and(|b| b.hash != header.hash)
        {
            return Err(Mismatch::Changed {
                number: header.number,
            });
        }
        previous = Some(header);
    }
    if let (Some(first), Some(last)) = (headers.first(), headers.last()) {
        for (number, hash) in logs {
            if number < first.number || number > last.number {
                continue;
            }
            let index = usize::try_from(number.saturating_sub(first.number)).unwrap_or(usize::MAX);
            if headers.get(index).is_none_or(|h| h.hash != hash) {
                return Err(Mismatch::LogFromOtherBlock { number });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(fork: u8, n: u64) -> B256 {
        let mut bytes = [0u8; 32];
        bytes[0] = fork;
        bytes[24..].copy_from_slice(&n.to_be_bytes());
        B256::from(bytes)
    }

    fn block(fork: u8, n: u64, parent_fork: u8) -> BlockRef {
        BlockRef {
            number: n,
            hash: hash(fork, n),
            parent_hash: hash(parent_fork, n.saturating_sub(1)),
        }
    }

    fn chain(fork: u8, range: std::ops::RangeInclusive<u64>) -> Vec<BlockRef> {
        range.map(|n| block(fork, n, fork)).collect()
    }

    #[test]
    fn a_consistent_range_passes() {
        let stored = chain(0, 5..=9);
        let headers = chain(0, 10..=14);
        let logs = [(10, hash(0, 10)), (14, hash(0, 14)), (3, hash(7, 3))];
        assert_eq!(check_range(&stored, &headers, logs), Ok(()));
        assert_eq!(check_range(&[], &[], [(1, hash(0, 1))]), Ok(()));
    }

    #[test]
    fn a_range_on_another_fork_than_the_stored_head_is_unlinked() {
        let stored = chain(0, 5..=9);
        let mut headers = chain(1, 10..=12);
        headers[0].parent_hash = hash(1, 9);
        assert_eq!(
            check_range(&stored, &headers, []),
            Err(Mismatch::Unlinked { number: 10 })
        );
    }

    #[test]
    fn headers_that_do_not_chain_or_skip_are_refused() {
        let mut headers = chain(0, 10..=12);
        headers[2].parent_hash = hash(3, 11);
        assert_eq!(
            check_range(&[], &headers, []),
            Err(Mismatch::Unlinked { number: 12 })
        );
        let skipping = vec![block(0, 10, 0), block(0, 12, 0)];
        assert_eq!(
            check_range(&[], &skipping, []),
            Err(Mismatch::Gap {
                expected: 11,
                got: 12
            })
        );
    }

    #[test]
    fn a_stored_block_that_changed_is_refused() {
        let stored = chain(0, 8..=11);
        let mut headers = chain(0, 10..=12);
        headers[1] = block(2, 11, 0);
        headers[2].parent_hash = hash(2, 11);
        assert_eq!(
            check_range(&stored, &headers, []),
            Err(Mismatch::Changed { number: 11 })
        );
    }

    #[test]
    fn a_log_from_an_orphaned_block_is_refused() {
        let headers = chain(0, 10..=12);
        assert_eq!(
            check_range(&[], &headers, [(10, hash(0, 10)), (11, hash(4, 11))]),
            Err(Mismatch::LogFromOtherBlock { number: 11 })
        );
    }
}
