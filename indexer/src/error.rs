//! The indexer's errors.

use alloy::primitives::Address;
use settle_contracts::PaymentError;
use settle_relayer::RpcError;
use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = IndexerError> = std::result::Result<T, E>;

/// Why the indexer stopped or a sync failed.
#[derive(Debug, Error)]
pub enum IndexerError {
    /// The configuration is unusable.
    #[error("indexer config `{key}`: {fix}")]
    Config {
        /// The offending key.
        key: &'static str,
        /// What is wrong and how to fix it.
        fix: &'static str,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The indexer's migrations could not be applied.
    #[error("indexer migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A chain read other than `eth_getLogs` failed on every endpoint, or the node refused it.
    #[error("rpc {op}: {source}")]
    Rpc {
        /// The call.
        op: &'static str,
        /// What went wrong.
        source: RpcError,
    },
    /// `eth_getLogs` failed even for a single block, after halving the range down to it.
    #[error(
        "eth_getLogs failed for blocks {from}..={to} even at the smallest range (1 block): {source}; \
         check the node (or give another endpoint) and restart"
    )]
    LogsFailed {
        /// First block of the last range tried.
        from: u64,
        /// Last block of the last range tried.
        to: u64,
        /// The last failure.
        source: RpcError,
    },
    /// The endpoints serve another chain than the configured one.
    #[error(
        "RPC endpoints serve chain {actual}, but the indexer is configured for chain {expected}"
    )]
    WrongChain {
        /// The configured chain id.
        expected: u64,
        /// What the node said.
        actual: u64,
    },
    /// The chain reorganised below every block the window still holds. Nothing was written.
    #[error(
        "reorg deeper than the window on chain {chain_id}: none of the stored blocks {oldest}..={head} \
         is canonical any more (window {window} blocks); raise `reorg_window`/`confirmations` and \
         re-index from an older checkpoint"
    )]
    ReorgTooDeep {
        /// The chain.
        chain_id: u64,
        /// Oldest block the window held.
        oldest: u64,
        /// Newest block the window held (the indexed head).
        head: u64,
        /// The configured window size.
        window: u64,
    },
    /// The node does not have a block it just reported (a lagging or inconsistent endpoint).
    #[error("the node has no block {number} although its head is at or past it")]
    BlockMissing {
        /// The block asked for.
        number: u64,
    },
    /// The chain kept changing under a range: logs and headers never agreed.
    #[error(
        "blocks {from}..={to} changed while they were read, {attempts} times in a row; \
         the endpoints disagree or the chain is reorganising continuously"
    )]
    ChainUnstable {
        /// First block of the range.
        from: u64,
        /// Last block of the range.
        to: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// A log from the node is not what the contract emits.
    #[error("bad log at block {block:?} index {log_index:?}: {problem}")]
    BadLog {
        /// The log's block, if the node gave one.
        block: Option<u64>,
        /// The log's index in the block, if the node gave one.
        log_index: Option<u64>,
        /// What is wrong with it.
        problem: LogProblem,
    },
    /// Another indexer wrote this chain's window between our read and our write.
    #[error(
        "another indexer is writing chain {chain_id}; run one indexer per chain (this range was not written)"
    )]
    ConcurrentWriter {
        /// The chain.
        chain_id: u64,
    },
    /// A number does not fit the database column (or a stored one is negative).
    #[error("{what} is out of range for the database")]
    OutOfRange {
        /// What did not fit.
        what: &'static str,
    },
}

impl IndexerError {
    /// Whether retrying cannot help: the indexer must stop and an operator must act.
    pub const fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Config { .. }
                | Self::Migrate(_)
                | Self::WrongChain { .. }
                | Self::ReorgTooDeep { .. }
                | Self::BadLog { .. }
                | Self::OutOfRange { .. }
        )
    }
}

/// What is wrong with a log.
#[derive(Debug, Error)]
pub enum LogProblem {
    /// A field a mined log always has is missing (a pending log?).
    #[error("missing {0}")]
    Missing(&'static str),
    /// The log comes from an address the filter did not ask for.
    #[error("emitted by {0}, which is not a configured contract")]
    UnexpectedAddress(Address),
    /// The log is outside the requested block range.
    #[error("outside the requested range {from}..={to}")]
    OutsideRange {
        /// First block asked for.
        from: u64,
        /// Last block asked for.
        to: u64,
    },
    /// The log's topics and data do not decode as the event its first topic names.
    #[error("does not decode as a SplitSettlement event: {0}")]
    Abi(alloy::sol_types::Error),
    /// A `BatchSettled` event's packed payments do not decode.
    #[error("BatchSettled payments: {0}")]
    Payments(PaymentError),
    /// A `BatchSettled` event's credits are not a whole number of 36-byte entries.
    #[error("BatchSettled credits are {len} bytes, not a multiple of 36")]
    Credits {
        /// Their length.
        len: usize,
    },
}
