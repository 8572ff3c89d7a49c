//! The reorg window: the last indexed blocks as (number, hash, parent hash).
//!
//! When a new block's parent hash does not match the hash we hold at its
//! height minus one, the chain reorganised. The fork point is found by walking
//! back through the window until our hash equals the canonical one; everything
//! above it is rolled back and re-applied. A reorg deeper than the window stops
//! the indexer instead of guessing.

use std::collections::VecDeque;

use alloy::primitives::B256;
use thiserror::Error;

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

/// Why the window cannot take a block.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReorgError {
    /// The block does not follow the window's head.
    #[error("block {got} does not follow the window's head {head}")]
    NotNext {
        /// The window's head height.
        head: u64,
        /// The offered block's height.
        got: u64,
    },
    /// The chain reorganised below the oldest block the window keeps.
    #[error(
        "reorg deeper than the window: no common ancestor in blocks {oldest}..={head}; \
         raise the window size or re-index from an older checkpoint"
    )]
    TooDeep {
        /// Oldest height held.
        oldest: u64,
        /// Head height held.
        head: u64,
    },
}

/// What happens when a block is offered to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The block extends the head.
    Extended,
    /// The block's parent is not our head: the chain reorganised.
    Reorg,
}

/// The last `capacity` blocks indexed.
#[derive(Debug, Clone)]
pub struct ReorgWindow {
    blocks: VecDeque<BlockRef>,
    capacity: usize,
}

impl ReorgWindow {
    /// An empty window keeping at most `capacity` blocks (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            blocks: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The newest block held.
    pub fn head(&self) -> Option<&BlockRef> {
        self.blocks.back()
    }

    /// Offers the next block: extends the window, or reports a reorg and
    /// leaves the window unchanged.
    pub fn advance(&mut self, block: BlockRef) -> Result<Advance, ReorgError> {
        if let Some(head) = self.blocks.back() {
            if head.number.checked_add(1) != Some(block.number) {
                return Err(ReorgError::NotNext {
                    head: head.number,
                    got: block.number,
                });
            }
            if head.hash != block.parent_hash {
                return Ok(Advance::Reorg);
            }
        }
        self.blocks.push_back(block);
        if self.blocks.len() > self.capacity {
            self.blocks.pop_front();
        }
        Ok(Advance::Extended)
    }

    /// Finds the newest block we hold that is still canonical, given the
    /// canonical hash at a height, and drops everything above it. Returns the
    /// fork point's height: rows above it must be rolled back.
    pub fn rewind<F>(&mut self, mut canonical_hash: F) -> Result<u64, ReorgError>
    where
        F: FnMut(u64) -> Option<B256>,
    {
        let (oldest, head) = match (self.blocks.front(), self.blocks.back()) {
            (Some(o), Some(h)) => (o.number, h.number),
            _ => return Err(ReorgError::TooDeep { oldest: 0, head: 0 }),
        };
        while let Some(block) = self.blocks.back() {
            if canonical_hash(block.number) == Some(block.hash) {
                return Ok(block.number);
            }
            self.blocks.pop_back();
        }
        Err(ReorgError::TooDeep { oldest, head })
    }
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

    fn window_of(range: std::ops::RangeInclusive<u64>, capacity: usize) -> ReorgWindow {
        let mut w = ReorgWindow::new(capacity);
        for n in range {
            assert_eq!(w.advance(block(0, n, 0)), Ok(Advance::Extended));
        }
        w
    }

    #[test]
    fn finds_fork_point_and_drops_orphans() {
        let mut w = window_of(10..=20, 64);
        // The canonical chain replaced blocks 18.. (fork 1 from 18 on).
        assert_eq!(w.advance(block(1, 21, 1)), Ok(Advance::Reorg));
        let fork = w.rewind(|n| Some(if n >= 18 { hash(1, n) } else { hash(0, n) }));
        assert_eq!(fork, Ok(17));
        assert_eq!(w.head().map(|b| b.number), Some(17));
        assert_eq!(w.advance(block(1, 18, 0)), Ok(Advance::Extended));
    }

    #[test]
    fn reorg_deeper_than_window_is_an_error() {
        let mut w = window_of(10..=20, 5);
        let err = w.rewind(|n| Some(hash(9, n)));
        assert_eq!(
            err,
            Err(ReorgError::TooDeep {
                oldest: 16,
                head: 20
            })
        );
    }

    #[test]
    fn gap_is_rejected() {
        let mut w = window_of(1..=3, 8);
        assert_eq!(
            w.advance(block(0, 5, 0)),
            Err(ReorgError::NotNext { head: 3, got: 5 })
        );
    }
}
