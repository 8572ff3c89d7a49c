//! Real on-chain data for the merchant and auditor routes: a SplitSettlement proxy deployed on the
//! harness's anvil, batches signed with an anvil key and settled, and the indexer run over them
//! into the harness's database. The API is served with `contract` set to the deployed proxy.

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::Provider,
    signers::{Signer, local::PrivateKeySigner},
    sol_types::SolEvent,
};
use settle_api::ApiConfig;
use settle_contracts::{
    Batch, Leg, Payment, SplitSettlement, digest::batch_digest, encode_payments, split::split,
};
use settle_indexer::{Indexer, IndexerConfig};
use settle_relayer::{RpcConfig, RpcPool};
use settle_testkit::{
    TestChain,
    settlement::{self, Settlement},
};

use crate::harness::TestApi;

/// anvil's chain id.
pub(crate) const CHAIN_ID: u64 = 31337;
/// The native coin.
pub(crate) const NATIVE: Address = Address::ZERO;
/// A platform fee payee (no key: never withdraws).
pub(crate) const PLATFORM: Address = Address::repeat_byte(0x0c);
/// Where merchant A's withdrawals go.
pub(crate) const RECIPIENT: Address = Address::repeat_byte(0x99);
/// Parts per million of a whole payment.
pub(crate) const WHOLE: u32 = 1_000_000;

/// A payment to settle: its id, amount and `(payee, share)` legs (the first takes the remainder).
#[derive(Debug, Clone)]
pub(crate) struct Pay {
    pub(crate) id: B256,
    pub(crate) amount: u128,
    pub(crate) legs: Vec<(Address, u32)>,
}

/// The payment id named `name`.
pub(crate) fn payment_id(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

pub(crate) fn pay(name: &str, amount: u128, legs: &[(Address, u32)]) -> Pay {
    Pay {
        id: payment_id(name),
        amount,
        legs: legs.to_vec(),
    }
}

impl Pay {
    /// What each leg credits, in leg order, by the contract's split.
    pub(crate) fn credited(&self) -> Vec<u128> {
        let shares: Vec<u32> = self.legs.iter().map(|(_, s)| *s).collect();
        split(self.amount, &shares).expect("valid split")
    }
}

/// A batch as it settled, read back from its receipt.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    pub(crate) batch: Batch,
    pub(crate) pays: Vec<Pay>,
    pub(crate) digest: B256,
    pub(crate) tx_hash: B256,
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    pub(crate) log_index: u64,
    /// The event's `credits`, as emitted.
    pub(crate) credits: Bytes,
    /// The event's `payments`, as emitted.
    pub(crate) payments: Bytes,
    /// The `PushedOut` events of the transaction: (account, amount, log index).
    pub(crate) pushed: Vec<(Address, U256, u64)>,
}

/// The served API over a chain with a deployed, funded proxy.
pub(crate) struct OnChain {
    pub(crate) api: TestApi,
    pub(crate) settlement: Settlement,
    pub(crate) contract: Address,
    pub(crate) deploy_block: u64,
    /// Signs batches (anvil account 9).
    pub(crate) signer: PrivateKeySigner,
    /// Funds deposit-funded batches (anvil account 1).
    pub(crate) funder: Address,
    /// Merchant A (anvil account 2): withdraws.
    pub(crate) merchant_a: Address,
    /// Merchant B (anvil account 3): opts in to pushes.
    pub(crate) merchant_b: Address,
    next_nonce: std::sync::atomic::AtomicU64,
}

impl OnChain {
    /// anvil with the proxy (signer: account 9), 10 ether deposited for the funder, and the API
    /// served for that proxy with `configure` applied on top.
    pub(crate) async fn start_with(configure: impl FnOnce(ApiConfig) -> ApiConfig) -> Self {
        let chain = TestChain::start().expect("anvil");
        let signer = chain.signers()[9].clone();
        let funder = chain.addresses()[1];
        let merchant_a = chain.addresses()[2];
        let merchant_b = chain.addresses()[3];
        let deployed = settlement::native_settlement(&chain, signer.address())
            .await
            .expect("deployed");
        let contract = *deployed.address();
        settlement::deposit_native(&deployed, funder, U256::from(10u128.pow(19)))
            .await
            .expect("deposited");
        let api = TestApi::start_on(chain, |c| configure(ApiConfig { contract, ..c })).await;
        assert_eq!(api.contract, contract);
        Self {
            api,
            settlement: deployed,
            contract,
            // The proxy's constructor ran at or after block 1; indexing from 0 costs nothing here.
            deploy_block: 0,
            signer,
            funder,
            merchant_a,
            merchant_b,
            next_nonce: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub(crate) async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// A proxy handle that sends from any dev account (`.from(account)`).
    fn as_anyone(&self) -> SplitSettlement::SplitSettlementInstance<alloy::providers::DynProvider> {
        SplitSettlement::new(self.contract, self.api.chain.provider())
    }

    /// `account` (a dev account) opts in to pushes of the native coin.
    pub(crate) async fn opt_in_push(&self, account: Address) {
        let receipt = self
            .as_anyone()
            .setPushPreference(NATIVE, true)
            .from(account)
            .send()
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        assert!(receipt.status(), "setPushPreference");
    }

    /// `account` withdraws `amount` of the native coin to [`RECIPIENT`]; returns the receipt's
    /// (tx hash, block number, block hash, log index of `Withdrawn`).
    pub(crate) async fn withdraw(&self, account: Address, amount: u128) -> (B256, u64, B256, u64) {
        let receipt = self
            .as_anyone()
            .withdraw(NATIVE, U256::from(amount), RECIPIENT)
            .from(account)
            .send()
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        assert!(receipt.status(), "withdraw");
        let log = receipt
            .inner
            .logs()
            .iter()
            .find(|l| l.topic0() == Some(&SplitSettlement::Withdrawn::SIGNATURE_HASH))
            .expect("Withdrawn");
        (
            receipt.transaction_hash,
            receipt.block_number.expect("block"),
            receipt.block_hash.expect("hash"),
            log.log_index.expect("index"),
        )
    }

    /// Signs and settles one batch of `pays`, drawn from the funder's deposit (`funding` 0) or
    /// paid with the call (`funding` 1).
    pub(crate) async fn settle(&self, funding: u8, pays: &[Pay]) -> Settled {
        let mut payees: Vec<Address> = pays
            .iter()
            .flat_map(|p| p.legs.iter().map(|(payee, _)| *payee))
            .collect();
        payees.sort_unstable();
        payees.dedup();
        let packed: Vec<Payment> = pays
            .iter()
            .map(|p| Payment {
                payment_id: p.id,
                amount: p.amount,
                legs: p
                    .legs
                    .iter()
                    .map(|(payee, share)| Leg {
                        payee: u16::try_from(payees.binary_search(payee).expect("listed"))
                            .expect("few payees"),
                        share: *share,
                    })
                    .collect(),
            })
            .collect();
        let total: u128 = pays.iter().map(|p| p.amount).sum();
        let nonce = self
            .next_nonce
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let batch = Batch {
            batchId: keccak256(format!("batch-{nonce}")),
            nonce: U256::from(nonce),
            deadline: u64::MAX >> 1,
            token: NATIVE,
            funder: self.funder,
            funding,
            payees,
            payments: encode_payments(&packed).expect("encode"),
        };
        let digest = batch_digest(&batch, CHAIN_ID, self.contract);
        let signature = self.signer.sign_hash(&digest).await.expect("sign");
        let value = if funding == 1 {
            U256::from(total)
        } else {
            U256::ZERO
        };
        let receipt = self
            .settlement
            .settleBatch(batch.clone(), Bytes::copy_from_slice(&signature.as_bytes()))
            .value(value)
            .send()
            .await
            .expect("settle sent")
            .get_receipt()
            .await
            .expect("settle mined");
        assert!(receipt.status(), "settleBatch");
        let log = receipt
            .inner
            .logs()
            .iter()
            .find(|l| l.topic0() == Some(&SplitSettlement::BatchSettled::SIGNATURE_HASH))
            .expect("BatchSettled");
        let event = SplitSettlement::BatchSettled::decode_log(&log.inner).expect("decodes");
        let pushed = receipt
            .inner
            .logs()
            .iter()
            .filter(|l| l.topic0() == Some(&SplitSettlement::PushedOut::SIGNATURE_HASH))
            .map(|l| {
                let e = SplitSettlement::PushedOut::decode_log(&l.inner).expect("decodes");
                (e.account, e.amount, l.log_index.expect("index"))
            })
            .collect();
        assert_eq!(event.digest, digest, "the contract's digest is ours");
        Settled {
            batch,
            pays: pays.to_vec(),
            digest,
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.expect("block"),
            block_hash: receipt.block_hash.expect("hash"),
            log_index: log.log_index.expect("index"),
            credits: event.credits.clone(),
            payments: event.payments.clone(),
            pushed,
        }
    }

    /// Runs the indexer over the chain up to its head, into the API's database.
    pub(crate) async fn index(&self) {
        let rpc = std::sync::Arc::new(
            RpcPool::new(&[self.api.chain.endpoint()], RpcConfig::default()).expect("rpc"),
        );
        let config = IndexerConfig {
            confirmations: 0,
            poll_interval: Duration::from_millis(20),
            ..IndexerConfig::new(CHAIN_ID, vec![self.contract], self.deploy_block)
        };
        let indexer =
            Indexer::new(self.api.db.pool().clone(), rpc, config).expect("indexer config");
        let report = indexer.sync_once().await.expect("indexed");
        assert!(report.caught_up, "{report:?}");
    }

    /// The chain's head and its hash.
    pub(crate) async fn head(&self) -> (u64, B256) {
        let provider = self.api.chain.provider();
        let number = provider.get_block_number().await.expect("head");
        let block = provider
            .get_block_by_number(number.into())
            .await
            .expect("block")
            .expect("exists");
        (number, block.header.hash)
    }

    /// A block's timestamp.
    pub(crate) async fn timestamp(&self, number: u64) -> u64 {
        self.api
            .chain
            .provider()
            .get_block_by_number(number.into())
            .await
            .expect("block")
            .expect("exists")
            .header
            .timestamp
    }

    /// `balanceOf(token, account)` on chain now.
    pub(crate) async fn balance_of(&self, account: Address) -> U256 {
        self.settlement
            .balanceOf(NATIVE, account)
            .call()
            .await
            .expect("balanceOf")
    }

    /// Makes the next block's timestamp at least `seconds` after the head's, so that tests can
    /// put time boundaries between blocks.
    pub(crate) async fn advance_time(&self, seconds: u64) {
        let _: serde_json::Value = self
            .api
            .chain
            .provider()
            .raw_request("evm_increaseTime".into(), (seconds,))
            .await
            .expect("evm_increaseTime");
    }
}

/// An RFC 3339 time for Unix `seconds`.
pub(crate) fn rfc3339(seconds: u64) -> String {
    sqlx::types::chrono::DateTime::from_timestamp(i64::try_from(seconds).expect("time"), 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The shared story: three batches (two drawn from the deposit, one paid with the call), a
/// merchant that opts in to pushes between the first and second, a withdrawal, and 100 s between
/// the batches' blocks so that times can separate them.
pub(crate) struct Scenario {
    pub(crate) env: OnChain,
    /// Batch 1: p1 (A 90% + platform 10%), p2 (B 50% + A 50%).
    pub(crate) b1: Settled,
    /// Batch 2, after B opted in to pushes: p3 (7 wei over A, B, platform), p4 (all to A).
    pub(crate) b2: Settled,
    /// Batch 3, paid with the call: p5 (A 50% + platform 50%).
    pub(crate) b3: Settled,
    /// A's withdrawal of 100 wei, between batches 2 and 3: (tx, block, block hash, log index).
    pub(crate) withdrawal: (B256, u64, B256, u64),
}

impl Scenario {
    /// Drops the test's database.
    pub(crate) async fn cleanup(self) {
        self.env.api.db.cleanup().await.expect("cleanup");
    }

    pub(crate) async fn new() -> Self {
        Self::on(OnChain::start().await).await
    }

    pub(crate) async fn on(env: OnChain) -> Self {
        let (a, b) = (env.merchant_a, env.merchant_b);
        env.advance_time(100).await;
        let b1 = env
            .settle(
                0,
                &[
                    pay("p1", 1_000_001, &[(a, 900_000), (PLATFORM, 100_000)]),
                    pay("p2", 500_000, &[(b, 500_000), (a, 500_000)]),
                ],
            )
            .await;
        env.opt_in_push(b).await;
        env.advance_time(100).await;
        let b2 = env
            .settle(
                0,
                &[
                    pay("p3", 7, &[(a, 333_333), (b, 333_333), (PLATFORM, 333_334)]),
                    pay("p4", 300, &[(a, WHOLE)]),
                ],
            )
            .await;
        let withdrawal = env.withdraw(a, 100).await;
        env.advance_time(100).await;
        let b3 = env
            .settle(1, &[pay("p5", 1_000, &[(a, 500_000), (PLATFORM, 500_000)])])
            .await;
        env.index().await;
        Self {
            env,
            b1,
            b2,
            b3,
            withdrawal,
        }
    }
}
