//! What the indexer follows and how.

use std::time::Duration;

use alloy::primitives::Address;

use crate::error::{IndexerError, Result};

/// One chain's indexer: which contracts, from where, how cautiously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexerConfig {
    /// The chain (checked against the endpoints' `eth_chainId`).
    pub chain_id: u64,
    /// The SplitSettlement proxies to follow, all read with one `eth_getLogs`.
    pub contracts: Vec<Address>,
    /// The first block to index (the earliest deployment block of the contracts).
    pub from_block: u64,
    /// Blocks behind the chain's head the indexer stays (0 follows the head itself).
    pub confirmations: u64,
    /// Recent blocks kept to find the fork point of a reorg; a deeper reorg stops the indexer.
    pub reorg_window: u64,
    /// Blocks per `eth_getLogs` at start.
    pub initial_range: u64,
    /// Most blocks per `eth_getLogs`; the range halves on failures and doubles after successes.
    pub max_range: u64,
    /// Wait between syncs once caught up (used by [`crate::Indexer::run`]).
    pub poll_interval: Duration,
}

impl IndexerConfig {
    /// Defaults for a public chain: 2 confirmations, a 128-block window, ranges of 500 up to 5,000
    /// blocks, a sync every 2 s.
    pub fn new(chain_id: u64, contracts: Vec<Address>, from_block: u64) -> Self {
        Self {
            chain_id,
            contracts,
            from_block,
            confirmations: 2,
            reorg_window: 128,
            initial_range: 500,
            max_range: 5_000,
            poll_interval: Duration::from_secs(2),
        }
    }

    /// Checks the values, naming the key and the fix.
    pub fn validate(&self) -> Result<()> {
        let fail = |key, fix| Err(IndexerError::Config { key, fix });
        if self.chain_id == 0 || i64::try_from(self.chain_id).is_err() {
            return fail("chain_id", "must be between 1 and 2^63-1");
        }
        if self.contracts.is_empty() {
            return fail("contracts", "give at least one contract address");
        }
        let mut sorted = self.contracts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.contracts.len() {
            return fail("contracts", "a contract is listed twice; list each once");
        }
        if self.reorg_window == 0 {
            return fail("reorg_window", "must be at least 1 block (128 is usual)");
        }
        if self.initial_range == 0 {
            return fail("initial_range", "must be at least 1 block");
        }
        if self.max_range < self.initial_range {
            return fail("max_range", "must be at least initial_range");
        }
        if i64::try_from(self.from_block).is_err() {
            return fail("from_block", "must be below 2^63");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> IndexerConfig {
        IndexerConfig::new(1, vec![Address::repeat_byte(1)], 0)
    }

    #[test]
    fn names_the_key() {
        assert!(valid().validate().is_ok());
        let cases = [
            (
                IndexerConfig {
                    contracts: vec![],
                    ..valid()
                },
                "contracts",
            ),
            (
                IndexerConfig {
                    contracts: vec![Address::repeat_byte(1), Address::repeat_byte(1)],
                    ..valid()
                },
                "contracts",
            ),
            (
                IndexerConfig {
                    reorg_window: 0,
                    ..valid()
                },
                "reorg_window",
            ),
            (
                IndexerConfig {
                    initial_range: 0,
                    ..valid()
                },
                "initial_range",
            ),
            (
                IndexerConfig {
                    max_range: 10,
                    initial_range: 11,
                    ..valid()
                },
                "max_range",
            ),
            (
                IndexerConfig {
                    chain_id: 0,
                    ..valid()
                },
                "chain_id",
            ),
        ];
        for (config, key) in cases {
            match config.validate() {
                Err(IndexerError::Config { key: got, .. }) => assert_eq!(got, key),
                other => panic!("{key}: expected a config error, got {other:?}"),
            }
        }
    }
}
