//! The indexer's gauges and counters, in Prometheus text format.
//!
//! These are process-local: the durable state (checkpoints, rows) is in Postgres, and these only
//! say how this process has been doing since it started.

use std::fmt::Write as _;

/// One indexer's numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// The chain.
    pub chain_id: u64,
    /// The chain's head at the last sync.
    pub chain_head: u64,
    /// The highest block indexed for every contract, if any.
    pub indexed_block: Option<u64>,
    /// Blocks between the chain's head and the indexed block.
    pub head_lag: u64,
    /// Events (logs) indexed by this process.
    pub events_total: u64,
    /// Events per second over the last sync that indexed anything.
    pub events_per_second: f64,
    /// Reorgs rolled back by this process.
    pub reorgs_total: u64,
    /// Deepest reorg rolled back, in blocks.
    pub deepest_reorg: u64,
    /// Current `eth_getLogs` range, in blocks.
    pub range_size: u64,
    /// Times the range was halved after a failed `eth_getLogs`.
    pub range_shrinks_total: u64,
    /// Syncs that completed.
    pub syncs_total: u64,
    /// Syncs that failed.
    pub sync_failures_total: u64,
}

impl Metrics {
    /// Prometheus text exposition, every series labelled with the chain id.
    pub fn render(&self) -> String {
        Self::render_all(std::slice::from_ref(self))
    }

    /// Prometheus text exposition of several indexers (one per chain): each series once, with a
    /// sample per chain, so every metric family stays one group.
    pub fn render_all(all: &[Self]) -> String {
        let mut out = String::new();
        let rows: Vec<_> = all.iter().map(|m| (m.chain_id, m.series())).collect();
        let Some((_, first)) = rows.first() else {
            return out;
        };
        for (i, (name, kind, help, _)) in first.iter().enumerate() {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (chain, series) in &rows {
                let value = series.get(i).map_or(0.0, |s| s.3);
                let _ = writeln!(out, "{name}{{chain_id=\"{chain}\"}} {value}");
            }
        }
        out
    }

    /// (name, kind, help, value) of every series.
    fn series(&self) -> [(&'static str, &'static str, &'static str, f64); 11] {
        let indexed = self.indexed_block.map_or(-1.0, |b| b as f64);
        [
            (
                "settle_indexer_head_lag_blocks",
                "gauge",
                "Blocks between the chain's head and the indexed block.",
                self.head_lag as f64,
            ),
            (
                "settle_indexer_chain_head",
                "gauge",
                "The chain's head at the last sync.",
                self.chain_head as f64,
            ),
            (
                "settle_indexer_indexed_block",
                "gauge",
                "Highest block indexed for every contract (-1 before the first range).",
                indexed,
            ),
            (
                "settle_indexer_events_total",
                "counter",
                "Events indexed by this process.",
                self.events_total as f64,
            ),
            (
                "settle_indexer_events_per_second",
                "gauge",
                "Events per second over the last sync that indexed events.",
                self.events_per_second,
            ),
            (
                "settle_indexer_reorgs_total",
                "counter",
                "Reorgs rolled back.",
                self.reorgs_total as f64,
            ),
            (
                "settle_indexer_deepest_reorg_blocks",
                "gauge",
                "Deepest reorg rolled back, in blocks.",
                self.deepest_reorg as f64,
            ),
            (
                "settle_indexer_log_range_blocks",
                "gauge",
                "Blocks per eth_getLogs now.",
                self.range_size as f64,
            ),
            (
                "settle_indexer_log_range_shrinks_total",
                "counter",
                "Times eth_getLogs failed and its range was halved.",
                self.range_shrinks_total as f64,
            ),
            (
                "settle_indexer_syncs_total",
                "counter",
                "Syncs completed.",
                self.syncs_total as f64,
            ),
            (
                "settle_indexer_sync_failures_total",
                "counter",
                "Syncs that failed.",
                self.sync_failures_total as f64,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_the_chain() {
        let text = Metrics {
            chain_id: 5,
            head_lag: 3,
            indexed_block: Some(10),
            events_per_second: 12.5,
            reorgs_total: 2,
            ..Metrics::default()
        }
        .render();
        assert!(text.contains("settle_indexer_head_lag_blocks{chain_id=\"5\"} 3\n"));
        assert!(text.contains("settle_indexer_indexed_block{chain_id=\"5\"} 10\n"));
        assert!(text.contains("settle_indexer_events_per_second{chain_id=\"5\"} 12.5\n"));
        assert!(text.contains("settle_indexer_reorgs_total{chain_id=\"5\"} 2\n"));
        assert!(text.contains("# TYPE settle_indexer_events_total counter\n"));
        assert_eq!(text.lines().count(), 33);
    }

    #[test]
    fn several_chains_share_one_group_per_series() {
        let one = Metrics {
            chain_id: 1,
            head_lag: 4,
            ..Metrics::default()
        };
        let two = Metrics {
            chain_id: 10,
            head_lag: 7,
            ..Metrics::default()
        };
        let text = Metrics::render_all(&[one, two]);
        assert!(text.contains(
            "# TYPE settle_indexer_head_lag_blocks gauge\nsettle_indexer_head_lag_blocks{chain_id=\"1\"} 4\nsettle_indexer_head_lag_blocks{chain_id=\"10\"} 7\n"
        ));
        assert_eq!(
            text.matches("# HELP settle_indexer_head_lag_blocks ")
                .count(),
            1
        );
        assert_eq!(text.lines().count(), 11 * 4);
        assert_eq!(Metrics::render_all(&[]), "");
    }
}
