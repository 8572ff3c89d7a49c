//! The relayer's gauges, read from its tables and the chain, in Prometheus text format.
//!
//! Everything here is derived from durable state (the queue, the batches and
//! transactions, the sender balances on chain) at the moment of the scrape,
//! so a restart loses nothing; only the signer latency is a process counter
//! (kept by [`crate::hsm::HsmSigner`]).

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
};
use sqlx::PgPool;

use crate::rpc::{RpcError, RpcPool};

/// Why the gauges could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The chain could not be asked for a balance.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// A stored sum is not an integer (it always is; the schema says so).
    #[error("stored {0} is not an integer")]
    Corrupt(&'static str),
}

/// One sender key's gas money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderBalance {
    /// The sender.
    pub sender: Address,
    /// Its balance in wei.
    pub balance: U256,
    /// Whether it is below the warning threshold.
    pub low: bool,
}

/// The relayer's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Instructions by status.
    pub instructions: BTreeMap<String, i64>,
    /// Batches by status.
    pub batches: BTreeMap<String, i64>,
    /// Transactions by status.
    pub transactions: BTreeMap<String, i64>,
    /// Gas used by mined transactions.
    pub gas_used: u128,
    /// Wei paid for it.
    pub fees_paid_wei: u128,
    /// Sender balances.
    pub senders: Vec<SenderBalance>,
    /// Signatures made by the HSM signers of this process, and their total time in microseconds.
    pub signatures: (u64, u64),
}

impl Snapshot {
    /// Instructions waiting to be batched.
    pub fn queue_depth(&self) -> i64 {
        self.instructions.get("accepted").copied().unwrap_or(0)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut lines = vec![format!(
            "# HELP settle_relayer_queue_depth Instructions accepted and not yet batched.\n# TYPE settle_relayer_queue_depth gauge\nsettle_relayer_queue_depth {}",
            self.queue_depth()
        )];
        for (name, help, map) in [
            (
                "settle_relayer_instructions",
                "Instructions by status.",
                &self.instructions,
            ),
            (
                "settle_relayer_batches",
                "Batches by status.",
                &self.batches,
            ),
            (
                "settle_relayer_transactions",
                "Transactions by status.",
                &self.transactions,
            ),
        ] {
            lines.push(format!("# HELP {name} {help}\n# TYPE {name} gauge"));
            for (status, count) in map {
                lines.push(format!("{name}{{status=\"{status}\"}} {count}"));
            }
        }
        lines.push(format!(
            "# HELP settle_relayer_gas_used_total Gas used by mined transactions.\n# TYPE settle_relayer_gas_used_total counter\nsettle_relayer_gas_used_total {}",
            self.gas_used
        ));
        lines.push(format!(
            "# HELP settle_relayer_fees_paid_wei_total Wei paid for gas.\n# TYPE settle_relayer_fees_paid_wei_total counter\nsettle_relayer_fees_paid_wei_total {}",
            self.fees_paid_wei
        ));
        lines.push("# HELP settle_relayer_sender_balance_wei Gas money of each sender key.\n# TYPE settle_relayer_sender_balance_wei gauge".to_owned());
        for s in &self.senders {
            lines.push(format!(
                "settle_relayer_sender_balance_wei{{sender=\"{}\"}} {}",
                s.sender, s.balance
            ));
        }
        lines.push("# HELP settle_relayer_sender_balance_low 1 when a sender's balance is below the warning threshold.\n# TYPE settle_relayer_sender_balance_low gauge".to_owned());
        for s in &self.senders {
            lines.push(format!(
                "settle_relayer_sender_balance_low{{sender=\"{}\"}} {}",
                s.sender,
                u8::from(s.low)
            ));
        }
        let (count, micros) = self.signatures;
        lines.push(format!(
            "# HELP settle_relayer_hsm_signatures_total Signatures made through PKCS#11.\n# TYPE settle_relayer_hsm_signatures_total counter\nsettle_relayer_hsm_signatures_total {count}\n# HELP settle_relayer_hsm_sign_seconds_total Time spent in PKCS#11 signing.\n# TYPE settle_relayer_hsm_sign_seconds_total counter\nsettle_relayer_hsm_sign_seconds_total {}.{:06}",
            micros / 1_000_000,
            micros % 1_000_000
        ));
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

async fn by_status(pool: &PgPool, table: &str) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT status, count(*) FROM relayer.{table} GROUP BY status ORDER BY status"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Reads the gauges; warns in the log for every sender below `low_balance_wei`.
pub async fn collect(
    pool: &PgPool,
    rpc: &RpcPool,
    senders: &[Address],
    low_balance_wei: U256,
    signatures: (u64, u64),
) -> Result<Snapshot, MetricsError> {
    let (gas, fees): (String, String) = sqlx::query_as(
        "SELECT coalesce(sum(gas_used), 0)::text, coalesce(sum(gas_used * effective_gas_price), 0)::text
         FROM relayer.transactions WHERE status = 'mined'",
    )
    .fetch_one(pool)
    .await?;
    let mut balances = Vec::with_capacity(senders.len());
    for sender in senders {
        let sender = *sender;
        let balance = rpc
            .call(
                "eth_getBalance",
                |p| async move { p.get_balance(sender).await },
            )
            .await?;
        let low = balance < low_balance_wei;
        if low {
            tracing::warn!(%sender, %balance, threshold = %low_balance_wei, "sender balance is low; fund it before transactions stall");
        }
        balances.push(SenderBalance {
            sender,
            balance,
            low,
        });
    }
    Ok(Snapshot {
        instructions: by_status(pool, "instructions").await?,
        batches: by_status(pool, "batches").await?,
        transactions: by_status(pool, "transactions").await?,
        gas_used: gas.parse().map_err(|_| MetricsError::Corrupt("gas sum"))?,
        fees_paid_wei: fees.parse().map_err(|_| MetricsError::Corrupt("fee sum"))?,
        senders: balances,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let snapshot = Snapshot {
            instructions: BTreeMap::from([("accepted".to_owned(), 4), ("settled".to_owned(), 9)]),
            batches: BTreeMap::from([("settled".to_owned(), 3)]),
            transactions: BTreeMap::new(),
            gas_used: 300_000,
            fees_paid_wei: 600_000_000_000_000,
            senders: vec![SenderBalance {
                sender: Address::repeat_byte(0xab),
                balance: U256::from(5u8),
                low: true,
            }],
            signatures: (7, 2_500_001),
        };
        let text = snapshot.render();
        for line in [
            "settle_relayer_queue_depth 4",
            "settle_relayer_instructions{status=\"settled\"} 9",
            "settle_relayer_batches{status=\"settled\"} 3",
            "settle_relayer_gas_used_total 300000",
            "settle_relayer_fees_paid_wei_total 600000000000000",
            "settle_relayer_sender_balance_wei{sender=\"0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB\"} 5",
            "settle_relayer_sender_balance_low{sender=\"0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB\"} 1",
            "settle_relayer_hsm_signatures_total 7",
            "settle_relayer_hsm_sign_seconds_total 2.500001",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.starts_with("# HELP settle_relayer_queue_depth"));
    }
}
