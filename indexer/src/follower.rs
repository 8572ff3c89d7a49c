//! The follower: backfill, then follow the head, one checked range at a time.
//!
//! A sync reads the chain's head, then repeats: check that the window's newest block is still
//! canonical (else find the fork point and roll back), read the next range's logs with one
//! `eth_getLogs` for every contract, read the headers of the range's recent blocks, check that
//! logs, headers and window agree, and write rows + window + checkpoints in one transaction.
//! The range halves when `eth_getLogs` fails and doubles after a full range succeeds.

use std::{
    future::Future,
    io::{IsTerminal, Write as _},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{providers::Provider, rpc::types::Filter};
use settle_relayer::RpcPool;
use sqlx::PgPool;

use crate::{
    config::IndexerConfig,
    error::{IndexerError, Result},
    events::{self, EventCounts},
    metrics::Metrics,
    reorg::{self, BlockRef},
    store::{self, Header, RangeWrite},
};

/// Times in a row a range may be found inconsistent (the chain moved while it was read).
const MAX_UNSTABLE: u32 = 8;
/// Longest wait between retries of a failing sync in [`Indexer::run`].
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Block headers asked for at once.
const HEADERS_IN_FLIGHT: u64 = 16;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A reorg that was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorg {
    /// The newest stored block that was still canonical; rows above it were deleted.
    pub fork_point: u64,
    /// The indexed head before the rollback.
    pub old_head: u64,
    /// `old_head - fork_point`.
    pub depth: u64,
    /// Events deleted.
    pub events_removed: u64,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// The chain's head when the sync started.
    pub head: u64,
    /// The block the sync indexed up to: `head - confirmations`.
    pub target: u64,
    /// The highest block indexed for every contract after the sync, if any.
    pub indexed_to: Option<u64>,
    /// Ranges written.
    pub ranges: u64,
    /// Blocks covered by them.
    pub blocks: u64,
    /// Rows written, per kind.
    pub counts: EventCounts,
    /// Reorgs rolled back, in order.
    pub reorgs: Vec<Reorg>,
    /// Times `eth_getLogs` failed and the range was halved.
    pub range_shrinks: u64,
    /// Smallest range (blocks) `eth_getLogs` answered.
    pub smallest_range: Option<u64>,
    /// Largest range (blocks) `eth_getLogs` answered.
    pub largest_range: Option<u64>,
    /// Whether the sync reached `target` (false when stopped by a range limit).
    pub caught_up: bool,
    /// How long it took.
    pub elapsed: Duration,
}

impl SyncReport {
    /// Events (logs) written per second of the sync.
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.counts.events() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Follows one chain's settlement contracts into Postgres.
#[derive(Debug)]
pub struct Indexer {
    pool: PgPool,
    rpc: Arc<RpcPool>,
    config: IndexerConfig,
    chain_id: i64,
    range: Mutex<u64>,
    chain_checked: AtomicBool,
    metrics: Mutex<Metrics>,
}

impl Indexer {
    /// An indexer writing to `pool` (migrated with [`crate::MIGRATOR`]) and reading the chain
    /// through `rpc`. Checks the configuration.
    pub fn new(pool: PgPool, rpc: Arc<RpcPool>, config: IndexerConfig) -> Result<Self> {
        config.validate()?;
        let chain_id = store::to_i64(config.chain_id, "chain id")?;
        let metrics = Metrics {
            chain_id: config.chain_id,
            range_size: config.initial_range,
            ..Metrics::default()
        };
        Ok(Self {
            pool,
            rpc,
            range: Mutex::new(config.initial_range),
            config,
            chain_id,
            chain_checked: AtomicBool::new(false),
            metrics: Mutex::new(metrics),
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &IndexerConfig {
        &self.config
    }

    /// The chain this indexer follows.
    pub const fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// The `eth_getLogs` range the next read starts with.
    pub fn range_size(&self) -> u64 {
        *self.range.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_range_size(&self, size: u64) {
        *self.range.lock().unwrap_or_else(PoisonError::into_inner) = size;
        self.update_metrics(|m| m.range_size = size);
    }

    fn update_metrics(&self, update: impl FnOnce(&mut Metrics)) {
        update(&mut self.metrics.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// This process's numbers; `metrics().render()` is the Prometheus text.
    pub fn metrics(&self) -> Metrics {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Indexes from the checkpoint up to the chain's head minus the confirmations, in as many
    /// ranges as it takes, rolling back reorgs on the way.
    pub async fn sync_once(&self) -> Result<SyncReport> {
        self.sync(None).await
    }

    /// Like [`Self::sync_once`], but stops after writing `max_ranges` ranges.
    pub async fn sync_ranges(&self, max_ranges: u64) -> Result<SyncReport> {
        self.sync(Some(max_ranges)).await
    }

    /// Syncs until `shutdown` resolves: at once while behind, every `poll_interval` once caught up,
    /// with a growing pause after failures. Returns the first error that retrying cannot fix
    /// (a reorg deeper than the window, the wrong chain, a log that does not decode).
    ///
    /// Stopping in the middle of a range is safe: its transaction is not committed.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                outcome = self.sync_once() => outcome,
            };
            let wait = match outcome {
                Ok(report) => {
                    failures = 0;
                    if report.counts.events() > 0 {
                        tracing::info!(
                            chain_id = self.config.chain_id,
                            indexed_to = report.indexed_to,
                            events = report.counts.events(),
                            reorgs = report.reorgs.len(),
                            "indexed"
                        );
                    }
                    self.config.poll_interval
                }
                Err(err) if err.is_fatal() => {
                    tracing::error!(chain_id = self.config.chain_id, error = %err, "indexer stopped");
                    return Err(err);
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let wait = self
                        .config
                        .poll_interval
                        .max(Duration::from_millis(100))
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(
                        chain_id = self.config.chain_id,
                        error = %err,
                        failures,
                        retry_in = ?wait,
                        "sync failed"
                    );
                    wait
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn sync(&self, max_ranges: Option<u64>) -> Result<SyncReport> {
        let outcome = self.sync_inner(max_ranges).await;
        self.update_metrics(|m| match &outcome {
            Ok(report) => {
                m.syncs_total = m.syncs_total.saturating_add(1);
                if report.counts.events() > 0 {
                    m.events_per_second = report.events_per_second();
                }
            }
            Err(_) => m.sync_failures_total = m.sync_failures_total.saturating_add(1),
        });
        outcome
    }

    async fn sync_inner(&self, max_ranges: Option<u64>) -> Result<SyncReport> {
        let started = Instant::now();
        self.check_chain().await?;
        let head = self
            .rpc
            .call(
                "eth_blockNumber",
                |p| async move { p.get_block_number().await },
            )
            .await
            .map_err(|source| IndexerError::Rpc {
                op: "eth_blockNumber",
                source,
            })?;
        let target = head.saturating_sub(self.config.confirmations);
        let mut report = SyncReport {
            head,
            target,
            indexed_to: None,
            ranges: 0,
            blocks: 0,
            counts: EventCounts::default(),
            reorgs: Vec::new(),
            range_shrinks: 0,
            smallest_range: None,
            largest_range: None,
            caught_up: false,
            elapsed: Duration::ZERO,
        };
        let mut progress: Option<Progress> = None;
        let mut unstable = 0u32;
        loop {
            let state = store::state(
                &self.pool,
                self.chain_id,
                &self.config.contracts,
                self.config.from_block,
            )
            .await?;
            if let Some(stored_head) = state.head {
                let canonical = self.header(stored_head.number).await?;
                if canonical.map(|h| h.block.hash) != Some(stored_head.hash) {
                    let reorg = self.roll_back(&stored_head).await?;
                    tracing::warn!(
                        chain_id = self.config.chain_id,
                        fork_point = reorg.fork_point,
                        depth = reorg.depth,
                        events_removed = reorg.events_removed,
                        "reorg rolled back"
                    );
                    self.update_metrics(|m| {
                        m.reorgs_total = m.reorgs_total.saturating_add(1);
                        m.deepest_reorg = m.deepest_reorg.max(reorg.depth);
                    });
                    report.reorgs.push(reorg);
                    continue;
                }
            }
            report.indexed_to = state.next.checked_sub(1);
            self.update_metrics(|m| {
                m.chain_head = head;
                m.indexed_block = report.indexed_to;
                m.head_lag = head.saturating_sub(report.indexed_to.unwrap_or(0));
            });
            let from = state.next;
            if from > target {
                report.caught_up = true;
                break;
            }
            if max_ranges.is_some_and(|max| report.ranges >= max) {
                break;
            }
            let progress = progress.get_or_insert_with(|| {
                Progress::new(self.config.chain_id, from, target, self.config.max_range)
            });

            let (to, logs) = self.fetch_logs(from, target, &mut report).await?;
            let rows = events::decode(&logs, &self.config.contracts, from, to)?;
            // Headers for the blocks a reorg could still replace (those within the window of the
            // head), and always the range's last block, which becomes the checkpoint.
            let recent = head
                .saturating_sub(self.config.reorg_window)
                .saturating_add(1);
            let first_header = from.max(recent).min(to);
            let headers = self.headers(first_header, to).await?;
            let stored = store::blocks_between(
                &self.pool,
                self.chain_id,
                first_header.saturating_sub(1),
                to,
            )
            .await?;
            let refs: Vec<BlockRef> = headers.iter().map(|h| h.block).collect();
            let log_blocks = logs
                .iter()
                .filter_map(|l| Some((l.block_number?, l.block_hash?)));
            if let Err(mismatch) = reorg::check_range(&stored, &refs, log_blocks) {
                unstable = unstable.saturating_add(1);
                tracing::warn!(
                    from,
                    to,
                    ?mismatch,
                    "the chain moved while the range was read; retrying"
                );
                if unstable >= MAX_UNSTABLE {
                    return Err(IndexerError::ChainUnstable {
                        from,
                        to,
                        attempts: unstable,
                    });
                }
                continue;
            }
            unstable = 0;
            let last = refs
                .last()
                .copied()
                .ok_or(IndexerError::BlockMissing { number: to })?;
            store::write_range(
                &self.pool,
                self.chain_id,
                &self.config.contracts,
                &RangeWrite {
                    expected_head: state.head.as_ref(),
                    headers: &headers,
                    rows: &rows,
                    to: &last,
                    window: self.config.reorg_window,
                },
            )
            .await?;
            let counts = rows.counts();
            report.ranges = report.ranges.saturating_add(1);
            report.blocks = report
                .blocks
                .saturating_add(to.saturating_sub(from).saturating_add(1));
            report.counts.add(&counts);
            report.indexed_to = Some(to);
            self.update_metrics(|m| {
                m.events_total = m.events_total.saturating_add(counts.events());
                m.indexed_block = Some(to);
                m.head_lag = head.saturating_sub(to);
            });
            progress.update(to, report.counts.events());
        }
        if let Some(progress) = &mut progress {
            progress.finish();
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Checks once per process that the endpoints serve the configured chain.
    async fn check_chain(&self) -> Result<()> {
        if self.chain_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let actual = self
            .rpc
            .call("eth_chainId", |p| async move { p.get_chain_id().await })
            .await
            .map_err(|source| IndexerError::Rpc {
                op: "eth_chainId",
                source,
            })?;
        if actual != self.config.chain_id {
            return Err(IndexerError::WrongChain {
                expected: self.config.chain_id,
                actual,
            });
        }
        self.chain_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The chain's block at `number`, if it has one.
    async fn header(&self, number: u64) -> Result<Option<Header>> {
        fetch_header(&self.rpc, number).await
    }

    /// The chain's blocks `from..=to`, ascending, fetched [`HEADERS_IN_FLIGHT`] at a time.
    async fn headers(&self, from: u64, to: u64) -> Result<Vec<Header>> {
        let mut headers = Vec::new();
        let mut next = from;
        while next <= to {
            let last = next
                .saturating_add(HEADERS_IN_FLIGHT.saturating_sub(1))
                .min(to);
            let mut tasks = tokio::task::JoinSet::new();
            for number in next..=last {
                let rpc = Arc::clone(&self.rpc);
                tasks.spawn(async move {
                    fetch_header(&rpc, number)
                        .await?
                        .ok_or(IndexerError::BlockMissing { number })
                });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(header) => headers.push(header?),
                    // A fetch task only panics if the runtime is shutting down.
                    Err(err) => std::panic::resume_unwind(err.into_panic()),
                }
            }
            next = match last.checked_add(1) {
                Some(n) => n,
                None => break,
            };
        }
        headers.sort_unstable_by_key(|h| h.block.number);
        Ok(headers)
    }

    /// Reads the logs of `from..` (at most up to `max_to`), halving the range on failures and
    /// doubling it after a full range succeeds. Returns the range's last block and its logs.
    async fn fetch_logs(
        &self,
        from: u64,
        max_to: u64,
        report: &mut SyncReport,
    ) -> Result<(u64, Vec<alloy::rpc::types::Log>)> {
        loop {
            let size = self.range_size().max(1);
            let to = from.saturating_add(size.saturating_sub(1)).min(max_to);
            let span = to.saturating_sub(from).saturating_add(1);
            let filter = Filter::new()
                .address(self.config.contracts.clone())
                .from_block(from)
                .to_block(to);
            let filter = &filter;
            match self
                .rpc
                .call(
                    "eth_getLogs",
                    move |p| async move { p.get_logs(filter).await },
                )
                .await
            {
                Ok(logs) => {
                    if span == size {
                        self.set_range_size(size.saturating_mul(2).min(self.config.max_range));
                    }
                    report.smallest_range =
                        Some(report.smallest_range.map_or(span, |s| s.min(span)));
                    report.largest_range = Some(report.largest_range.map_or(span, |s| s.max(span)));
                    return Ok((to, logs));
                }
                Err(source) if span <= 1 => {
                    return Err(IndexerError::LogsFailed { from, to, source });
                }
                Err(source) => {
                    let smaller = (span / 2).max(1);
                    tracing::warn!(from, to, next = smaller, error = %source, "eth_getLogs failed; halving the range");
                    self.set_range_size(smaller);
                    report.range_shrinks = report.range_shrinks.saturating_add(1);
                    self.update_metrics(|m| {
                        m.range_shrinks_total = m.range_shrinks_total.saturating_add(1);
                    });
                }
            }
        }
    }

    /// Finds the fork point under `stored_head` (the newest stored block the chain still has)
    /// and rolls everything above it back; refuses when no stored block is canonical.
    async fn roll_back(&self, stored_head: &BlockRef) -> Result<Reorg> {
        let window = store::window_newest_first(&self.pool, self.chain_id).await?;
        for block in &window {
            let canonical = self.header(block.number).await?;
            if canonical.map(|h| h.block.hash) == Some(block.hash) {
                let events_removed =
                    store::roll_back(&self.pool, self.chain_id, stored_head, block).await?;
                return Ok(Reorg {
                    fork_point: block.number,
                    old_head: stored_head.number,
                    depth: stored_head.number.saturating_sub(block.number),
                    events_removed,
                });
            }
        }
        Err(IndexerError::ReorgTooDeep {
            chain_id: self.config.chain_id,
            oldest: window.last().map_or(stored_head.number, |b| b.number),
            head: stored_head.number,
            window: self.config.reorg_window,
        })
    }
}

/// Asks the chain for its block at `number`.
async fn fetch_header(rpc: &RpcPool, number: u64) -> Result<Option<Header>> {
    let block = rpc
        .call("eth_getBlockByNumber", move |p| async move {
            p.get_block_by_number(number.into()).await
        })
        .await
        .map_err(|source| IndexerError::Rpc {
            op: "eth_getBlockByNumber",
            source,
        })?;
    let Some(block) = block else {
        return Ok(None);
    };
    if block.header.number != number {
        return Err(IndexerError::BlockMissing { number });
    }
    Ok(Some(Header {
        block: BlockRef {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
        },
        timestamp: block.header.timestamp,
    }))
}

/// The progress line of a long backfill, drawn on stderr only when it is a terminal.
#[derive(Debug)]
struct Progress {
    chain_id: u64,
    first: u64,
    total: u64,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    fn new(chain_id: u64, first: u64, target: u64, max_range: u64) -> Self {
        let total = target.saturating_sub(first).saturating_add(1);
        let long = total > max_range;
        Self {
            chain_id,
            first,
            total: if long && std::io::stderr().is_terminal() {
                total
            } else {
                0
            },
            started: Instant::now(),
            drawn: None,
        }
    }

    fn update(&mut self, indexed_to: u64, events: u64) {
        if self.total == 0 || self.drawn.is_some_and(|d| d.elapsed() < PROGRESS_EVERY) {
            return;
        }
        let done = indexed_to
            .saturating_sub(self.first)
            .saturating_add(1)
            .min(self.total);
        let line = progress_line(
            self.chain_id,
            done,
            self.total,
            events,
            self.started.elapsed(),
        );
        let mut stderr = std::io::stderr().lock();
        // A progress line that cannot be drawn is not worth failing the sync for.
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
        self.drawn = Some(Instant::now());
    }

    fn finish(&mut self) {
        if self.drawn.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// `chain 1: blocks 400/1000 (40%), 1234 events/s, ETA 1m30s`.
fn progress_line(chain_id: u64, done: u64, total: u64, events: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let eta = if done == 0 {
        "?".to_owned()
    } else {
        let left = seconds * (total.saturating_sub(done) as f64) / done as f64;
        let left = Duration::from_secs_f64(left.clamp(0.0, 1e9)).as_secs();
        format!("{}m{:02}s", left / 60, left % 60)
    };
    format!("chain {chain_id}: blocks {done}/{total} ({percent}%), {rate:.0} events/s, ETA {eta}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_blocks_rate_and_eta() {
        assert_eq!(
            progress_line(1, 250, 1000, 500, Duration::from_secs(10)),
            "chain 1: blocks 250/1000 (25%), 50 events/s, ETA 0m30s"
        );
        assert_eq!(
            progress_line(7, 0, 10, 0, Duration::ZERO),
            "chain 7: blocks 0/10 (0%), 0 events/s, ETA ?"
        );
    }
}
