//! The shared vectors in `contracts/vectors`: every split case, and every batch case's packed
//! payments, credits, total and EIP-712 digest, then the batch settled through the contract.

use ink::{H256, U256};
use serde_json::Value;

use super::*;
use crate::{Batch, Error, FUNDING_PULL, split_settlement::BatchSettled};

const SPLIT: &str = include_str!("../../../vectors/split.json");
const BATCHES: &str = include_str!("../../../vectors/batches.json");

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn address(v: &Value) -> Address {
    Address::from_slice(&hex(v.as_str().unwrap()))
}

fn dec_u128(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

fn cases(json: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(json).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

#[ink::test]
fn every_split_vector_splits_as_expected() {
    // given every case of split.json as a one-payment batch, leg i paying payee i
    let w = World::bare();
    let cases = cases(SPLIT);
    assert_eq!(cases.len(), 19);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let amount = dec_u128(&case["amount"]);
        let shares: Vec<u32> = case["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| u32::try_from(s.as_u64().unwrap()).unwrap())
            .collect();
        let expected: Vec<u128> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(dec_u128)
            .collect();
        let legs: Vec<(u16, u32)> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| (u16::try_from(i).unwrap(), *s))
            .collect();
        let b = batch(
            1,
            token(),
            FUNDING_DEPOSIT,
            payees(legs.len()),
            &[pay(1, amount, &legs)],
        );

        // when the contract previews it
        let preview = w.c.preview_credits(b);

        // then every leg gets exactly the expected amount and the legs sum to the amount
        assert_eq!(preview, Ok((expected, amount)), "{name}");
    }
}

struct Case {
    name: String,
    chain_id: u64,
    contract: Address,
    batch: Batch,
    packed: Vec<u8>,
    credits: Vec<u128>,
    total: u128,
    digest: H256,
}

fn batch_cases() -> Vec<Case> {
    cases(BATCHES)
        .into_iter()
        .map(|case| {
            let b = &case["batch"];
            let payments: Vec<Pay> = case["payments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| Pay {
                    id: hex(p["paymentId"].as_str().unwrap()).try_into().unwrap(),
                    amount: dec_u128(&p["amount"]),
                    legs: p["legs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| {
                            (
                                u16::try_from(l["payee"].as_u64().unwrap()).unwrap(),
                                u32::try_from(l["share"].as_u64().unwrap()).unwrap(),
                            )
                        })
                        .collect(),
                })
                .collect();
            let expected = &case["expected"];
            Case {
                name: case["name"].as_str().unwrap().to_owned(),
                chain_id: case["chainId"].as_u64().unwrap(),
                contract: address(&case["verifyingContract"]),
                batch: Batch {
                    batch_id: H256::from_slice(&hex(b["batchId"].as_str().unwrap())),
                    nonce: U256::from_dec_str(b["nonce"].as_str().unwrap()).unwrap(),
                    deadline: b["deadline"].as_str().unwrap().parse().unwrap(),
                    token: address(&b["token"]),
                    funder: address(&b["funder"]),
                    funding: u8::try_from(b["funding"].as_u64().unwrap()).unwrap(),
                    payees: b["payees"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(address)
                        .collect(),
                    payments: pack(&payments),
                },
                packed: hex(expected["packedPayments"].as_str().unwrap()),
                credits: expected["credits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(dec_u128)
                    .collect(),
                total: dec_u128(&expected["total"]),
                digest: H256::from_slice(&hex(expected["digest"].as_str().unwrap())),
            }
        })
        .collect()
}

#[ink::test]
fn every_batch_vector_packs_credits_and_hashes_as_on_the_evm() {
    let cases = batch_cases();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = &case.name;
        // given the contract deployed at the vector's address with its chain id
        let w = World::bare_at(case.contract, case.chain_id, 0);

        // when the vector's payments are packed, previewed and hashed
        let preview = w.c.preview_credits(case.batch.clone());
        let digest = w.c.batch_digest(case.batch.clone());

        // then the bytes, credits, total and digest are the EVM contract's
        assert_eq!(case.batch.payments, case.packed, "{name}");
        assert_eq!(preview, Ok((case.credits.clone(), case.total)), "{name}");
        assert_eq!(digest, Ok(case.digest), "{name}");
    }
}

#[ink::test]
fn every_batch_vector_settles_with_the_expected_credits() {
    for case in batch_cases() {
        let name = &case.name;
        // given the contract at the vector's address, limits wide open, the funder funded
        let mut w = World::bare_at(case.contract, case.chain_id, 0);
        let b = case.batch.clone();
        set_now(b.deadline.min(T0));
        w.govern(Action::SetSigner {
            signer: w.signer.address,
            authorised: true,
        });
        w.govern(Action::SetTokenConfig {
            token: b.token,
            enabled: true,
            max_payment: u128::MAX,
            daily_cap: u128::MAX,
        });
        w.govern(Action::SetCustodian(custodian()));
        if b.funding == FUNDING_DEPOSIT {
            if b.token == NATIVE {
                paying(stranger(), case.total, || w.c.deposit_native(b.funder)).unwrap();
            } else {
                as_caller(custodian());
                w.c.deposit(b.token, b.funder, case.total).unwrap();
            }
        }
        let signature = w.sign(&b);

        // when the signed batch is submitted
        let result = if b.funding == FUNDING_PULL {
            paying(b.funder, case.total, || {
                w.c.settle_batch(b.clone(), signature)
            })
        } else {
            as_caller(stranger());
            w.c.settle_batch(b.clone(), signature)
        };

        // then (pull funding of a token aside, which this contract cannot do) every
        // payee holds its expected credit and the event carries the EVM digest
        if b.funding == FUNDING_PULL && b.token != NATIVE {
            assert_eq!(result, Err(Error::PullNotSupported(b.token)), "{name}");
            continue;
        }
        assert_eq!(result, Ok(case.digest), "{name}");
        for (payee, credit) in b.payees.iter().zip(&case.credits) {
            assert_eq!(w.c.balance_of(b.token, *payee), *credit, "{name}");
        }
        assert_eq!(w.c.held(b.token), case.total, "{name}");
        let settled = events::<BatchSettled>().pop().unwrap();
        assert_eq!(settled.digest, case.digest, "{name}");
        assert_eq!(
            settled.credits,
            b.payees
                .iter()
                .copied()
                .zip(case.credits.iter().copied())
                .collect::<Vec<_>>(),
            "{name}"
        );
    }
}
