//! The end state every scenario must reach, checked against the chain itself.
//!
//! [`Stack::settle_all`] waits until the relayer has settled every submitted payment and the
//! indexer has mirrored every `BatchSettled` on chain; [`Stack::assert_exact`] then checks that
//! every payment settled exactly once (counted from the chain's logs), that the credits in those
//! logs, `balanceOf` and the API's indexed balances all equal the ledger's sums, and that
//! reconciliation finds nothing.

use std::collections::{BTreeMap, BTreeSet};

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use settle_contracts::{SplitSettlement, decode_payments};

use crate::{CHAIN_ID, Ledger, Stack};

/// One `BatchSettled` on the chain now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledBatch {
    /// The batch id.
    pub batch_id: B256,
    /// The key that signed it.
    pub signer: Address,
    /// The signer's batch nonce.
    pub nonce: U256,
    /// The block that holds it.
    pub block: u64,
    /// The transaction that settled it.
    pub tx: B256,
    /// Its payments' ids, in order.
    pub payment_ids: Vec<B256>,
    /// What it credited each payee.
    pub credits: Vec<(Address, u128)>,
}

/// Every `BatchSettled` of the contract on the chain now, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlements {
    /// The batches.
    pub batches: Vec<SettledBatch>,
}

impl Settlements {
    /// Reads and decodes the contract's `BatchSettled` logs from anvil directly.
    pub async fn read(stack: &Stack) -> Self {
        let logs = stack
            .chain
            .provider()
            .get_logs(
                &Filter::new()
                    .address(stack.contract)
                    .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
                    .from_block(0),
            )
            .await
            .expect("logs");
        let batches = logs
            .iter()
            .map(|log| {
                let event = SplitSettlement::BatchSettled::decode_log(&log.inner)
                    .expect("a BatchSettled log")
                    .data;
                let payment_ids = decode_payments(&event.payments)
                    .expect("packed payments")
                    .into_iter()
                    .map(|p| p.payment_id)
                    .collect();
                let credits = event
                    .credits
                    .chunks(36)
                    .map(|c| {
                        assert_eq!(c.len(), 36, "a credit is 20 + 16 bytes");
                        (
                            Address::from_slice(&c[..20]),
                            u128::from_be_bytes(c[20..].try_into().expect("16 bytes")),
                        )
                    })
                    .collect();
                SettledBatch {
                    batch_id: event.batchId,
                    signer: event.signer,
                    nonce: event.nonce,
                    block: log.block_number.expect("mined"),
                    tx: log.transaction_hash.expect("mined"),
                    payment_ids,
                    credits,
                }
            })
            .collect();
        Self { batches }
    }

    /// Payment id to the key that signed the batch that settled it; panics if one settled twice.
    pub fn signer_of_payments(&self) -> BTreeMap<B256, Address> {
        let mut signers = BTreeMap::new();
        for batch in &self.batches {
            for id in &batch.payment_ids {
                let previous = signers.insert(*id, batch.signer);
                assert!(previous.is_none(), "payment {id} settled twice");
            }
        }
        signers
    }
}

impl Stack {
    /// Waits until the relayer says every payment of `ledger` is settled and the indexer holds
    /// as many settled batches as the chain does.
    pub async fn settle_all(&self, ledger: &Ledger) {
        let total = i64::try_from(ledger.count()).expect("small");
        self.wait_until("every payment settled and indexed", || async {
            let statuses = self.statuses().await;
            if statuses.get("settled").copied().unwrap_or(0) != total || statuses.len() != 1 {
                return false;
            }
            let on_chain = Settlements::read(self).await.batches.len();
            let indexed =
                settle_indexer::reconcile::indexed_batch_count(&self.pool, CHAIN_ID, self.contract)
                    .await
                    .expect("indexed count");
            usize::try_from(indexed).ok() == Some(on_chain)
        })
        .await;
    }

    /// Checks the end state against `ledger` (see the module documentation); answers the chain's
    /// settlements for scenario-specific checks.
    pub async fn assert_exact(&self, ledger: &Ledger) -> Settlements {
        let total = i64::try_from(ledger.count()).expect("small");
        assert_eq!(
            self.statuses().await,
            BTreeMap::from([("settled".to_owned(), total)])
        );

        // Exactly once, from the chain's logs: each batch once, each payment once, all of them.
        let settlements = Settlements::read(self).await;
        let batch_ids: BTreeSet<B256> = settlements.batches.iter().map(|b| b.batch_id).collect();
        assert_eq!(
            batch_ids.len(),
            settlements.batches.len(),
            "a batch settled twice"
        );
        let settled_ids = settlements.signer_of_payments();
        assert_eq!(
            settled_ids.len(),
            usize::try_from(ledger.count()).expect("small")
        );
        let submitted: BTreeSet<B256> = ledger.payment_ids.values().copied().collect();
        assert_eq!(
            settled_ids.keys().copied().collect::<BTreeSet<_>>(),
            submitted,
            "the settled payments are not the submitted ones"
        );
        let relayer_batches = self
            .count("SELECT count(*) FROM relayer.batches WHERE status = 'settled'")
            .await;
        assert_eq!(
            usize::try_from(relayer_batches).expect("count"),
            settlements.batches.len()
        );

        // One credit set per payment: the logs' credits add up to the ledger's sums, exactly.
        let mut credited: BTreeMap<Address, u128> = BTreeMap::new();
        for (payee, amount) in settlements.batches.iter().flat_map(|b| &b.credits) {
            let sum = credited.entry(*payee).or_insert(0);
            *sum = sum.checked_add(*amount).expect("no overflow");
        }
        assert_eq!(credited, ledger.expected, "credits in BatchSettled logs");

        // The chain's balances, and the mirror's through the API, equal the sums.
        let settlement = SplitSettlement::new(self.contract, self.chain.provider());
        for (payee, amount) in &ledger.expected {
            let onchain = settlement
                .balanceOf(Address::ZERO, *payee)
                .call()
                .await
                .expect("balanceOf");
            assert_eq!(onchain, U256::from(*amount), "balanceOf {payee}");
            let body = self
                .get(&format!(
                    "/v1/merchants/{}/balances?verify=true",
                    payee.to_checksum(None)
                ))
                .await;
            let row = &body["balances"][0];
            assert_eq!(
                row["balance"],
                amount.to_string(),
                "indexed {payee}: {body}"
            );
            assert_eq!(row["matches"], true, "indexed {payee}: {body}");
        }

        let run = settle_indexer::reconcile::reconcile(
            &self.pool,
            &settle::serve::rpc(&self.settings).expect("rpc"),
            CHAIN_ID,
            self.contract,
        )
        .await
        .expect("reconciled");
        assert_eq!(run.findings, Vec::new(), "{}", run.summary());
        settlements
    }
}
