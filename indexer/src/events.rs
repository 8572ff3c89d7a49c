//! Logs into typed rows, decoded with the contract's `sol!` bindings.
//!
//! Decoding is strict: a log the ABI knows but that does not decode, or a batch whose packed
//! payments or credits are malformed, is an error (the mirror must not guess). A log whose first
//! topic the ABI does not know (an event added by a later upgrade) is kept, raw, as governance
//! `Unknown`, so that nothing the contract said is dropped.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    rpc::types::Log,
    sol_types::SolEventInterface,
};
use serde_json::{Value, json};
use settle_contracts::{SplitSettlement::SplitSettlementEvents as Event, decode_payments};

use crate::error::{IndexerError, LogProblem, Result};

/// Bytes of one entry of `BatchSettled.credits`: address + uint128.
const CREDIT_SIZE: usize = 36;

/// Where a log sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) contract: Address,
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    pub(crate) log_index: u64,
    pub(crate) tx_hash: B256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchRow {
    pub(crate) meta: Meta,
    pub(crate) batch_id: B256,
    pub(crate) signer: Address,
    pub(crate) token: Address,
    pub(crate) digest: B256,
    pub(crate) funder: Address,
    pub(crate) funding: u8,
    pub(crate) nonce: U256,
    pub(crate) total: U256,
    pub(crate) payments: Bytes,
}

/// A payment or a credit: one entry of a batch, keyed by the batch's log and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryRow<T> {
    pub(crate) block_hash: B256,
    pub(crate) log_index: u64,
    pub(crate) position: u32,
    /// The payment id, or the payee's address.
    pub(crate) key: T,
    pub(crate) amount: u128,
}

/// A movement of one account's balance: a deposit, withdrawal or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MoveRow {
    pub(crate) meta: Meta,
    pub(crate) token: Address,
    /// The funder (deposit) or the account (withdrawal, push).
    pub(crate) account: Address,
    /// Who paid in (deposit) or the recipient (withdrawal); unused for pushes.
    pub(crate) counterparty: Address,
    pub(crate) amount: U256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushRow {
    pub(crate) pushed_out: bool,
    pub(crate) row: MoveRow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignerRow {
    pub(crate) meta: Meta,
    pub(crate) signer: Address,
    pub(crate) authorised: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GovernanceRow {
    pub(crate) meta: Meta,
    pub(crate) name: &'static str,
    pub(crate) args: Value,
}

/// The rows of one range, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rows {
    pub(crate) batches: Vec<BatchRow>,
    pub(crate) payments: Vec<EntryRow<B256>>,
    pub(crate) credits: Vec<EntryRow<Address>>,
    pub(crate) deposits: Vec<MoveRow>,
    pub(crate) withdrawals: Vec<MoveRow>,
    pub(crate) pushes: Vec<PushRow>,
    pub(crate) signer_changes: Vec<SignerRow>,
    pub(crate) governance: Vec<GovernanceRow>,
}

/// How many rows of each kind were indexed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// `BatchSettled` events.
    pub batches: u64,
    /// Payments inside them.
    pub payments: u64,
    /// Per-payee credits inside them.
    pub credits: u64,
    /// `Deposited` events.
    pub deposits: u64,
    /// `Withdrawn` events.
    pub withdrawals: u64,
    /// `PushedOut` and `PushFailed` events.
    pub pushes: u64,
    /// `SignerSet` events.
    pub signer_changes: u64,
    /// Every other event.
    pub governance: u64,
}

impl EventCounts {
    /// Logs (events) counted, not including the payments and credits inside batches.
    pub const fn events(&self) -> u64 {
        self.batches
            .saturating_add(self.deposits)
            .saturating_add(self.withdrawals)
            .saturating_add(self.pushes)
            .saturating_add(self.signer_changes)
            .saturating_add(self.governance)
    }

    /// Adds `other` to these counts.
    pub const fn add(&mut self, other: &Self) {
        self.batches = self.batches.saturating_add(other.batches);
        self.payments = self.payments.saturating_add(other.payments);
        self.credits = self.credits.saturating_add(other.credits);
        self.deposits = self.deposits.saturating_add(other.deposits);
        self.withdrawals = self.withdrawals.saturating_add(other.withdrawals);
        self.pushes = self.pushes.saturating_add(other.pushes);
        self.signer_changes = self.signer_changes.saturating_add(other.signer_changes);
        self.governance = self.governance.saturating_add(other.governance);
    }
}

fn count(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

impl Rows {
    pub(crate) fn counts(&self) -> EventCounts {
        EventCounts {
            batches: count(self.batches.len()),
            payments: count(self.payments.len()),
            credits: count(self.credits.len()),
            deposits: count(self.deposits.len()),
            withdrawals: count(self.withdrawals.len()),
            pushes: count(self.pushes.len()),
            signer_changes: count(self.signer_changes.len()),
            governance: count(self.governance.len()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    alloy::primitives::hex::encode_prefixed(bytes)
}

fn addr(a: Address) -> Value {
    Value::String(hex(a.as_slice()))
}

/// The log's position, checked against what was asked for.
fn meta(log: &Log, contracts: &[Address], from: u64, to: u64) -> Result<Meta> {
    let bad = |problem| IndexerError::BadLog {
        block: log.block_number,
        log_index: log.log_index,
        problem,
    };
    let block_number = log
        .block_number
        .ok_or_else(|| bad(LogProblem::Missing("blockNumber")))?;
    if block_number < from || block_number > to {
        return Err(bad(LogProblem::OutsideRange { from, to }));
    }
    let contract = log.address();
    if !contracts.contains(&contract) {
        return Err(bad(LogProblem::UnexpectedAddress(contract)));
    }
    Ok(Meta {
        contract,
        block_number,
        block_hash: log
            .block_hash
            .ok_or_else(|| bad(LogProblem::Missing("blockHash")))?,
        log_index: log
            .log_index
            .ok_or_else(|| bad(LogProblem::Missing("logIndex")))?,
        tx_hash: log
            .transaction_hash
            .ok_or_else(|| bad(LogProblem::Missing("transactionHash")))?,
    })
}

/// Decodes the logs of blocks `from..=to` emitted by `contracts`.
pub(crate) fn decode(logs: &[Log], contracts: &[Address], from: u64, to: u64) -> Result<Rows> {
    let mut rows = Rows::default();
    for log in logs.iter().filter(|l| !l.removed) {
        let meta = meta(log, contracts, from, to)?;
        let bad = |problem| IndexerError::BadLog {
            block: Some(meta.block_number),
            log_index: Some(meta.log_index),
            problem,
        };
        let topics = log.topics();
        let known = topics
            .first()
            .is_some_and(|t| Event::SELECTORS.binary_search(&t.0).is_ok());
        if !known {
            rows.governance.push(GovernanceRow {
                meta,
                name: "Unknown",
                args: json!({
                    "topics": topics.iter().map(|t| hex(t.as_slice())).collect::<Vec<_>>(),
                    "data": hex(&log.data().data),
                }),
            });
            continue;
        }
        let event =
            Event::decode_raw_log(topics, &log.data().data).map_err(|e| bad(LogProblem::Abi(e)))?;
        let governance = |name, args| GovernanceRow { meta, name, args };
        match event {
            Event::BatchSettled(e) => {
                let payments =
                    decode_payments(&e.payments).map_err(|e| bad(LogProblem::Payments(e)))?;
                if e.credits.len() % CREDIT_SIZE != 0 {
                    return Err(bad(LogProblem::Credits {
                        len: e.credits.len(),
                    }));
                }
                for (position, p) in (0u32..).zip(payments) {
                    rows.payments.push(EntryRow {
                        block_hash: meta.block_hash,
                        log_index: meta.log_index,
                        position,
                        key: p.payment_id,
                        amount: p.amount,
                    });
                }
                for (position, entry) in (0u32..).zip(e.credits.chunks_exact(CREDIT_SIZE)) {
                    let (payee, amount) = entry.split_at(20);
                    let amount: [u8; 16] = amount.try_into().map_err(|_| {
                        bad(LogProblem::Credits {
                            len: e.credits.len(),
                        })
                    })?;
                    rows.credits.push(EntryRow {
                        block_hash: meta.block_hash,
                        log_index: meta.log_index,
                        position,
                        key: Address::from_slice(payee),
                        amount: u128::from_be_bytes(amount),
                    });
                }
                rows.batches.push(BatchRow {
                    meta,
                    batch_id: e.batchId,
                    signer: e.signer,
                    token: e.token,
                    digest: e.digest,
                    funder: e.funder,
                    funding: e.funding,
                    nonce: e.nonce,
                    total: e.total,
                    payments: e.payments,
                });
            }
            Event::Deposited(e) => rows.deposits.push(MoveRow {
                meta,
                token: e.token,
                account: e.funder,
                counterparty: e.from,
                amount: e.amount,
            }),
            Event::Withdrawn(e) => rows.withdrawals.push(MoveRow {
                meta,
                token: e.token,
                account: e.account,
                counterparty: e.to,
                amount: e.amount,
            }),
            Event::PushedOut(e) => rows.pushes.push(PushRow {
                pushed_out: true,
                row: MoveRow {
                    meta,
                    token: e.token,
                    account: e.account,
                    counterparty: Address::ZERO,
                    amount: e.amount,
                },
            }),
            Event::PushFailed(e) => rows.pushes.push(PushRow {
                pushed_out: false,
                row: MoveRow {
                    meta,
                    token: e.token,
                    account: e.account,
                    counterparty: Address::ZERO,
                    amount: e.amount,
                },
            }),
            Event::SignerSet(e) => rows.signer_changes.push(SignerRow {
                meta,
                signer: e.signer,
                authorised: e.authorised,
            }),
            Event::TokenConfigured(e) => rows.governance.push(governance(
                "TokenConfigured",
                json!({
                    "token": addr(e.token),
                    "enabled": e.enabled,
                    "maxPayment": e.maxPayment.to_string(),
                    "dailyCap": e.dailyCap.to_string(),
                }),
            )),
            Event::GuardianSet(e) => rows.governance.push(governance(
                "GuardianSet",
                json!({ "guardian": addr(e.guardian) }),
            )),
            Event::NonceInvalidated(e) => rows.governance.push(governance(
                "NonceInvalidated",
                json!({ "signer": addr(e.signer), "nonce": e.nonce.to_string() }),
            )),
            Event::PushPreferenceSet(e) => rows.governance.push(governance(
                "PushPreferenceSet",
                json!({ "token": addr(e.token), "account": addr(e.account), "push": e.push }),
            )),
            Event::Upgraded(e) => rows.governance.push(governance(
                "Upgraded",
                json!({ "implementation": addr(e.implementation) }),
            )),
            Event::OwnershipTransferred(e) => rows.governance.push(governance(
                "OwnershipTransferred",
                json!({
                    "previousOwner": addr(e.previousOwner),
                    "newOwner": addr(e.newOwner),
                }),
            )),
            Event::Paused(e) => rows
                .governance
                .push(governance("Paused", json!({ "account": addr(e.account) }))),
            Event::Unpaused(e) => rows.governance.push(governance(
                "Unpaused",
                json!({ "account": addr(e.account) }),
            )),
            Event::Initialized(e) => rows.governance.push(governance(
                "Initialized",
                json!({ "version": e.version.to_string() }),
            )),
            Event::EIP712DomainChanged(_) => rows
                .governance
                .push(governance("EIP712DomainChanged", json!({}))),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{LogData, address, b256},
        sol_types::SolEvent,
    };
    use settle_contracts::{
        Leg, Payment,
        SplitSettlement::{BatchSettled, Deposited, PushFailed},
        encode_payments,
    };

    use super::*;

    const CONTRACT: Address = address!("0x00000000000000000000000000000000000000c0");
    const BLOCK_HASH: B256 =
        b256!("0x1111111111111111111111111111111111111111111111111111111111111111");

    fn rpc_log(data: LogData, block: u64, index: u64) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: CONTRACT,
                data,
            },
            block_hash: Some(BLOCK_HASH),
            block_number: Some(block),
            block_timestamp: None,
            transaction_hash: Some(B256::repeat_byte(0x22)),
            transaction_index: Some(0),
            log_index: Some(index),
            removed: false,
        }
    }

    fn batch_event(credits: Vec<u8>) -> LogData {
        let payments = encode_payments(&[Payment {
            payment_id: B256::repeat_byte(0x33),
            amount: 1000,
            legs: vec![
                Leg {
                    payee: 0,
                    share: 900_000,
                },
                Leg {
                    payee: 1,
                    share: 100_000,
                },
            ],
        }])
        .expect("encode");
        BatchSettled {
            batchId: B256::repeat_byte(0x44),
            signer: Address::repeat_byte(0x55),
            token: Address::ZERO,
            digest: B256::repeat_byte(0x66),
            funder: Address::repeat_byte(0x77),
            funding: 0,
            nonce: U256::from(9),
            total: U256::from(1000),
            payments,
            credits: credits.into(),
        }
        .encode_log_data()
    }

    fn credit(payee: u8, amount: u128) -> Vec<u8> {
        let mut out = vec![payee; 20];
        out.extend_from_slice(&amount.to_be_bytes());
        out
    }

    #[test]
    fn a_batch_becomes_a_batch_its_payments_and_its_credits() {
        let credits = [credit(0xa1, 900), credit(0xa2, 100)].concat();
        let logs = vec![
            rpc_log(batch_event(credits), 7, 3),
            rpc_log(
                Deposited {
                    token: Address::ZERO,
                    funder: Address::repeat_byte(0x77),
                    from: Address::repeat_byte(0x78),
                    amount: U256::from(5),
                }
                .encode_log_data(),
                7,
                4,
            ),
            rpc_log(
                PushFailed {
                    token: Address::ZERO,
                    account: Address::repeat_byte(0xa1),
                    amount: U256::from(900),
                }
                .encode_log_data(),
                8,
                0,
            ),
        ];
        let rows = decode(&logs, &[CONTRACT], 7, 8).expect("decodes");
        assert_eq!(
            rows.counts(),
            EventCounts {
                batches: 1,
                payments: 1,
                credits: 2,
                deposits: 1,
                pushes: 1,
                ..EventCounts::default()
            }
        );
        assert_eq!(rows.counts().events(), 3);
        assert_eq!(rows.batches[0].total, U256::from(1000));
        assert_eq!(rows.batches[0].meta.log_index, 3);
        assert_eq!(rows.payments[0].key, B256::repeat_byte(0x33));
        assert_eq!(rows.payments[0].amount, 1000);
        assert_eq!(
            rows.credits
                .iter()
                .map(|c| (c.position, c.key, c.amount))
                .collect::<Vec<_>>(),
            vec![
                (0, Address::repeat_byte(0xa1), 900),
                (1, Address::repeat_byte(0xa2), 100)
            ]
        );
        assert_eq!(rows.deposits[0].counterparty, Address::repeat_byte(0x78));
        assert!(!rows.pushes[0].pushed_out);
    }

    #[test]
    fn malformed_credits_and_foreign_logs_are_errors() {
        let logs = vec![rpc_log(batch_event(vec![0; 35]), 7, 0)];
        assert!(matches!(
            decode(&logs, &[CONTRACT], 7, 7),
            Err(IndexerError::BadLog {
                block: Some(7),
                log_index: Some(0),
                problem: LogProblem::Credits { len: 35 }
            })
        ));
        let logs = vec![rpc_log(batch_event(credit(1, 1)), 7, 0)];
        assert!(matches!(
            decode(&logs, &[Address::ZERO], 7, 7),
            Err(IndexerError::BadLog {
                problem: LogProblem::UnexpectedAddress(CONTRACT),
                ..
            })
        ));
        assert!(matches!(
            decode(&logs, &[CONTRACT], 8, 9),
            Err(IndexerError::BadLog {
                problem: LogProblem::OutsideRange { from: 8, to: 9 },
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_event_is_kept_raw() {
        let data = LogData::new_unchecked(vec![B256::repeat_byte(0xee)], vec![1, 2].into());
        let rows = decode(&[rpc_log(data, 1, 0)], &[CONTRACT], 1, 1).expect("decodes");
        assert_eq!(rows.governance.len(), 1);
        assert_eq!(rows.governance[0].name, "Unknown");
        assert_eq!(rows.governance[0].args["data"], "0x0102");
    }
}
