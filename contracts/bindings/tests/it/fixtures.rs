//! The shared test vectors in `contracts/vectors`, typed.
//!
//! The JSON is the spec: its expected values were computed independently of
//! this crate (see each file's `_comment`). Numbers that exceed 2^53 are
//! decimal strings there.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::Deserialize;
use settle_contracts::{Batch, Leg, Payment};

const SPLIT_JSON: &str = include_str!("../../../vectors/split.json");
const BATCHES_JSON: &str = include_str!("../../../vectors/batches.json");

/// One case of `split.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitCase {
    pub(crate) name: String,
    #[serde(deserialize_with = "decimal")]
    pub(crate) amount: u128,
    pub(crate) shares: Vec<u32>,
    #[serde(deserialize_with = "decimals")]
    pub(crate) expected: Vec<u128>,
}

/// One case of `batches.json`, with the batch assembled as the contract takes it.
#[derive(Debug)]
pub(crate) struct BatchCase {
    pub(crate) name: String,
    pub(crate) chain_id: u64,
    pub(crate) verifying_contract: Address,
    /// `payments` holds the vector's `packedPayments`.
    pub(crate) batch: Batch,
    pub(crate) payments: Vec<Payment>,
    pub(crate) expected: Expected,
}

/// What a batch case must produce.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Expected {
    pub(crate) packed_payments: Bytes,
    #[serde(deserialize_with = "decimals")]
    pub(crate) credits: Vec<u128>,
    #[serde(deserialize_with = "decimal")]
    pub(crate) total: u128,
    pub(crate) digest: B256,
}

#[derive(Deserialize)]
struct File<T> {
    cases: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBatchCase {
    name: String,
    chain_id: u64,
    verifying_contract: Address,
    batch: RawBatch,
    payments: Vec<RawPayment>,
    expected: Expected,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBatch {
    batch_id: B256,
    #[serde(deserialize_with = "decimal")]
    nonce: U256,
    #[serde(deserialize_with = "decimal")]
    deadline: u64,
    token: Address,
    funder: Address,
    funding: u8,
    payees: Vec<Address>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPayment {
    payment_id: B256,
    #[serde(deserialize_with = "decimal")]
    amount: u128,
    legs: Vec<RawLeg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeg {
    payee: u16,
    share: u32,
}

fn decimal<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(de)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn decimals<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    Vec::<String>::deserialize(de)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Every case of `split.json`.
pub(crate) fn split_cases() -> Vec<SplitCase> {
    serde_json::from_str::<File<SplitCase>>(SPLIT_JSON)
        .expect("contracts/vectors/split.json matches SplitCase")
        .cases
}

/// Every case of `batches.json`.
pub(crate) fn batch_cases() -> Vec<BatchCase> {
    serde_json::from_str::<File<RawBatchCase>>(BATCHES_JSON)
        .expect("contracts/vectors/batches.json matches RawBatchCase")
        .cases
        .into_iter()
        .map(|raw| BatchCase {
            name: raw.name,
            chain_id: raw.chain_id,
            verifying_contract: raw.verifying_contract,
            batch: Batch {
                batchId: raw.batch.batch_id,
                nonce: raw.batch.nonce,
                deadline: raw.batch.deadline,
                token: raw.batch.token,
                funder: raw.batch.funder,
                funding: raw.batch.funding,
                payees: raw.batch.payees,
                payments: raw.expected.packed_payments.clone(),
            },
            payments: raw
                .payments
                .into_iter()
                .map(|p| Payment {
                    payment_id: p.payment_id,
                    amount: p.amount,
                    legs: p
                        .legs
                        .into_iter()
                        .map(|l| Leg {
                            payee: l.payee,
                            share: l.share,
                        })
                        .collect(),
                })
                .collect(),
            expected: raw.expected,
        })
        .collect()
}
