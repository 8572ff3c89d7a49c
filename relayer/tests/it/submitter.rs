//! The submitter against real anvil, Postgres and SoftHSM2: happy path, stuck and dropped
//! transactions, reverts, RPC faults, crashes at every transition and two relayers on one database.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use settle_contracts::SplitSettlement;
use settle_relayer::{
    Batcher, BatcherConfig, HsmSigner, RpcConfig, RpcPool, SubmitError, Submitter, SubmitterConfig,
    audit,
    intake::{
        InstructionLeg, Intake, IntakeConfig, IntegratorLimits, MIGRATOR, NewInstruction, TokenRule,
    },
};
use settle_testkit::{FaultMode, FaultProxy, TestChain, TestDb, TestToken, pkcs11};

use crate::chain::{Settlement, native_balance, native_settlement};

/// An anvil-only RPC method, answered into the binding's type.
#[macro_export]
macro_rules! anvil_call {
    ($env:expr, $method:literal, $params:expr) => {
        $env.chain
            .provider()
            .raw_request($method.into(), $params)
            .await
            .expect($method)
    };
}

const PLATFORM: Address = Address::repeat_byte(0x0c);
const SHARE_MERCHANT: u32 = 971_000;
const PLATFORM_SHARE: u32 = 29_000;

/// Database, chain, contract, one HSM key (batch signer and transaction sender) and a funded funder.
pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) chain: TestChain,
    pub(crate) token: TestToken,
    pub(crate) hsm: HsmSigner,
    pub(crate) settlement: Settlement,
    funder: Address,
    intake: Intake,
    next_key: std::sync::atomic::AtomicU32,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl Env {
    pub(crate) async fn new() -> Self {
        let db = TestDb::create().await.expect("database");
        MIGRATOR.run(db.pool()).await.expect("migrations");
        let token = TestToken::create().expect("token");
        let hsm = HsmSigner::open(
            pkcs11().expect("pkcs11"),
            token.token_label(),
            token.user_pin(),
            token.key_label(),
        )
        .expect("hsm signer");
        let chain = TestChain::start().expect("anvil");
        let settlement = native_settlement(&chain, hsm.address()).await;
        fund(&chain, hsm.address()).await;
        let funder = chain.addresses()[1];
        let deposit = settlement
            .depositNative(funder)
            .value(U256::from(10u128.pow(21)))
            .send()
            .await
            .expect("sent");
        assert!(deposit.get_receipt().await.expect("mined").status());
        let intake = Intake::new(
            db.pool().clone(),
            IntakeConfig {
                tokens: vec![TokenRule {
                    chain_id: 31337,
                    token: Address::ZERO,
                    max_payment: u128::MAX,
                }],
                max_payees: 8,
            },
        );
        Self {
            db,
            chain,
            token,
            hsm,
            settlement,
            funder,
            intake,
            next_key: std::sync::atomic::AtomicU32::new(0),
        }
    }

    pub(crate) fn rpc(&self) -> RpcPool {
        RpcPool::new(&[self.chain.endpoint()], RpcConfig::default()).expect("rpc")
    }

    pub(crate) fn config(&self) -> SubmitterConfig {
        SubmitterConfig::new(31337, *self.settlement.address())
    }

    pub(crate) fn batcher_config(&self, max_payments: usize) -> BatcherConfig {
        BatcherConfig {
            max_payments,
            ..BatcherConfig::new(31337, *self.settlement.address())
        }
    }

    /// Submits `amounts` from `funder`, each to a fresh merchant; returns merchant => expected credit.
    pub(crate) async fn submit_from(
        &self,
        funder: Address,
        amounts: &[u128],
    ) -> BTreeMap<Address, u128> {
        let mut expected = BTreeMap::new();
        let mut instructions = Vec::new();
        for amount in amounts {
            let key = self
                .next_key
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .checked_add(1)
                .expect("key");
            let mut merchant = [0u8; 20];
            merchant[0] = 0xee;
            merchant[16..].copy_from_slice(&key.to_be_bytes());
            let merchant = Address::from(merchant);
            // The merchant (leg 0) takes the floor of its share plus the remainder.
            let platform_part = amount
                .checked_mul(u128::from(PLATFORM_SHARE))
                .expect("no overflow")
                / 1_000_000;
            expected.insert(merchant, amount.checked_sub(platform_part).expect("floor"));
            let platform = expected.entry(PLATFORM).or_insert(0);
            *platform = platform.checked_add(platform_part).expect("no overflow");
            instructions.push(NewInstruction {
                idempotency_key: format!("k{key}"),
                chain_id: 31337,
                token: Address::ZERO,
                funder,
                amount: *amount,
                legs: vec![
                    InstructionLeg {
                        payee: merchant,
                        share: SHARE_MERCHANT,
                    },
                    InstructionLeg {
                        payee: PLATFORM,
                        share: PLATFORM_SHARE,
                    },
                ],
            });
        }
        self.intake
            .submit(
                "shop",
                &IntegratorLimits {
                    max_payment: u128::MAX,
                    daily_cap: u128::MAX,
                },
                &instructions,
            )
            .await
            .expect("accepted");
        expected
    }

    pub(crate) async fn submit(&self, amounts: &[u128]) -> BTreeMap<Address, u128> {
        let funder = self.funder;
        self.submit_from(funder, amounts).await
    }

    pub(crate) async fn sign_all(&self, max_payments: usize) -> usize {
        let batcher = Batcher::new(
            self.db.pool().clone(),
            self.batcher_config(max_payments),
            &self.hsm,
        );
        let mut n = 0usize;
        while batcher.sign_next(now()).await.expect("signs").is_some() {
            n = n.checked_add(1).expect("count");
        }
        n
    }

    pub(crate) async fn status_counts(&self, table: &str) -> BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(&format!(
            "SELECT status, count(*) FROM relayer.{table} GROUP BY status"
        ))
        .fetch_all(self.db.pool())
        .await
        .expect("counts")
        .into_iter()
        .collect()
    }

    /// Every payee's on-chain balance equals what it is owed, exactly; and each batch settled once.
    pub(crate) async fn assert_settled_once(&self, expected: &BTreeMap<Address, u128>) {
        for (payee, amount) in expected {
            assert_eq!(
                native_balance(&self.settlement, *payee).await,
                U256::from(*amount),
                "balance of {payee}"
            );
        }
        let logs = self
            .chain
            .provider()
            .get_logs(
                &Filter::new()
                    .address(*self.settlement.address())
                    .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
                    .from_block(0),
            )
            .await
            .expect("logs");
        let mut ids: Vec<B256> = logs.iter().map(|l| l.topics()[1]).collect();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total, "a batch settled twice");
        let settled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM relayer.batches WHERE status = 'settled'")
                .fetch_one(self.db.pool())
                .await
                .expect("count");
        assert_eq!(usize::try_from(settled).expect("count"), total);
    }

    pub(crate) async fn mine(&self) {
        let _: String = anvil_call!(self, "evm_mine", ());
    }
}

async fn fund(chain: &TestChain, who: Address) {
    settle_testkit::settlement::fund(chain, who)
        .await
        .expect("funded");
}

/// Ticks until nothing moves and everything is final, or fails after `rounds`.
pub(crate) async fn run_to_end(submitter: &Submitter<'_>, rounds: usize) {
    for _ in 0..rounds {
        let report = submitter.tick().await.expect("tick");
        if report.transitions() == 0 {
            return;
        }
    }
    panic!("still moving after {rounds} ticks");
}

/// Instructions in, batches signed by the HSM and sent from the HSM key, settled, statuses final.
#[tokio::test]
async fn batches_settle_and_every_status_is_final() {
    let env = Env::new().await;
    let expected = env.submit(&[1_000_003, 2_000_000, 999, 5, 77_777]).await;
    assert_eq!(env.sign_all(2).await, 3);
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    let first = submitter.tick().await.expect("tick");
    assert_eq!((first.signed, first.broadcast), (3, 3));
    run_to_end(&submitter, 10).await;

    env.assert_settled_once(&expected).await;
    assert_eq!(
        env.status_counts("instructions").await,
        BTreeMap::from([("settled".to_owned(), 5)])
    );
    assert_eq!(
        env.status_counts("batches").await,
        BTreeMap::from([("settled".to_owned(), 3)])
    );
    assert_eq!(
        env.status_counts("transactions").await,
        BTreeMap::from([("mined".to_owned(), 3)])
    );
    // Account nonces 0, 1, 2 from the ledger; the ledger's high-water mark is 3.
    let nonces: Vec<i64> =
        sqlx::query_scalar("SELECT nonce FROM relayer.transactions ORDER BY nonce")
            .fetch_all(env.db.pool())
            .await
            .expect("nonces");
    assert_eq!(nonces, vec![0, 1, 2]);
    let next: i64 = sqlx::query_scalar("SELECT next FROM relayer.sender_nonces")
        .fetch_one(env.db.pool())
        .await
        .expect("ledger");
    assert_eq!(next, 3);
    // Each batch carries its transaction and block; 3 batch and 3 transaction signatures are logged.
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM relayer.batches WHERE tx_hash IS NULL OR block_number IS NULL",
    )
    .fetch_one(env.db.pool())
    .await
    .expect("count");
    assert_eq!(missing, 0);
    let purposes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT purpose, count(*) FROM relayer.signing_log GROUP BY purpose ORDER BY purpose",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("log");
    assert_eq!(
        purposes,
        vec![("batch".to_owned(), 3), ("transaction".to_owned(), 3)]
    );
    assert_eq!(audit::verify(env.db.pool()).await.expect("verifies"), Ok(6));

    // The ledger readers outside the relayer use tells the same story.
    let intended =
        settle_relayer::ledger::intended_batches(env.db.pool(), 31337, *env.settlement.address())
            .await
            .expect("ledger");
    assert_eq!(intended.len(), 3);
    assert!(
        intended
            .iter()
            .all(|b| b.status == "settled" && b.tx_hash.is_some())
    );
    let amounts: Vec<Vec<u128>> = intended
        .iter()
        .map(|b| b.payments.iter().map(|p| p.amount).collect())
        .collect();
    assert_eq!(
        amounts,
        vec![vec![1_000_003, 2_000_000], vec![999, 5], vec![77_777]]
    );
    assert_eq!(
        intended.iter().map(|b| b.total).collect::<Vec<_>>(),
        vec![3_000_003, 1_004, 77_777]
    );
    env.db.cleanup().await.expect("cleanup");
}

/// A transaction that does not get into a block is replaced with higher fees at the same nonce.
#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_higher_fees() {
    let env = Env::new().await;
    let expected = env.submit(&[500_000]).await;
    env.sign_all(10).await;
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    let _: () = anvil_call!(env, "evm_setAutomine", (false,));
    let sent = submitter.tick().await.expect("tick");
    assert_eq!(sent.broadcast, 1);
    let first_fee: String = sqlx::query_scalar("SELECT max_fee::text FROM relayer.transactions")
        .fetch_one(env.db.pool())
        .await
        .expect("fee");
    let first_fee: u128 = first_fee.parse().expect("fee");

    // Blocks too small for it: the transaction waits in the pool (anvil evicts, rather than keeps,
    // a transaction priced below the base fee, so block space is what holds it back here).
    let _: bool = anvil_call!(env, "evm_setBlockGasLimit", (U256::from(20_000),));
    let mut bumps = Vec::new();
    for _ in 0..3 {
        env.mine().await;
        let report = submitter.tick().await.expect("tick");
        assert_eq!((report.mined, report.dropped), (0, 0));
        bumps.push(report.bumped);
    }
    // Replaced in the tick after the third block; the node refuses the replacement while blocks
    // are this small, so it stays stored and is sent on a later tick.
    assert_eq!(bumps, vec![0, 0, 1]);
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT nonce, status, max_fee::text FROM relayer.transactions ORDER BY created_at",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].1.as_str()), (0, "replaced"));
    assert_eq!((rows[1].0, rows[1].1.as_str()), (0, "signed"));
    let bumped: u128 = rows[1].2.parse().expect("fee");
    assert!(
        bumped > first_fee.checked_mul(115).expect("no overflow") / 100,
        "{bumped} vs {first_fee}"
    );

    let _: bool = anvil_call!(env, "evm_setBlockGasLimit", (U256::from(30_000_000),));
    assert_eq!(submitter.tick().await.expect("tick").broadcast, 1);
    env.mine().await;
    run_to_end(&submitter, 10).await;
    env.assert_settled_once(&expected).await;
    let statuses: Vec<(String, String)> = sqlx::query_as(
        "SELECT status, max_fee::text FROM relayer.transactions ORDER BY created_at",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("rows");
    assert_eq!(
        statuses,
        vec![
            ("dropped".to_owned(), first_fee.to_string()),
            ("mined".to_owned(), bumped.to_string())
        ]
    );
    env.db.cleanup().await.expect("cleanup");
}

/// Transactions dropped from the pool free their nonces: the ledger rewinds to them instead of
/// jamming on nonces the chain will never see. (anvil drops the later transaction with the
/// earlier one, as a node evicting a gapped sender would.)
#[tokio::test]
async fn a_dropped_transaction_rewinds_the_nonce_ledger() {
    let env = Env::new().await;
    let expected = env.submit(&[1_000, 2_000]).await;
    assert_eq!(env.sign_all(1).await, 2);
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    let _: () = anvil_call!(env, "evm_setAutomine", (false,));
    assert_eq!(submitter.tick().await.expect("tick").broadcast, 2);
    let first: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM relayer.transactions WHERE nonce = 0")
            .fetch_one(env.db.pool())
            .await
            .expect("hash");
    let dropped: Option<B256> =
        anvil_call!(env, "anvil_dropTransaction", (B256::from_slice(&first),));
    assert_eq!(dropped, Some(B256::from_slice(&first)));

    // Empty blocks: nonces 0 and 1 are gone from the pool; the ledger's high-water mark says 2.
    for _ in 0..3 {
        env.mine().await;
    }
    let report = submitter.tick().await.expect("tick");
    assert_eq!(
        (report.dropped, report.requeued, report.signed),
        (2, 2, 2),
        "{report:?}"
    );
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT nonce, status FROM relayer.transactions ORDER BY created_at")
            .fetch_all(env.db.pool())
            .await
            .expect("rows");
    assert_eq!(
        rows,
        vec![
            (0, "dropped".to_owned()),
            (1, "dropped".to_owned()),
            (0, "pending".to_owned()),
            (1, "pending".to_owned())
        ]
    );
    let next: i64 = sqlx::query_scalar("SELECT next FROM relayer.sender_nonces")
        .fetch_one(env.db.pool())
        .await
        .expect("ledger");
    assert_eq!(next, 2);
    env.mine().await;
    run_to_end(&submitter, 10).await;
    env.assert_settled_once(&expected).await;
    env.db.cleanup().await.expect("cleanup");
}

/// A batch the contract refuses records the typed error; the other batches go on.
#[tokio::test]
async fn a_reverting_batch_records_the_typed_error_and_others_settle() {
    let env = Env::new().await;
    let broke = env.chain.addresses()[5];
    let bad = env.submit_from(broke, &[4_242]).await;
    let good = env.submit(&[1_000, 2_000]).await;
    assert_eq!(env.sign_all(10).await, 2);
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    run_to_end(&submitter, 10).await;
    env.assert_settled_once(&good).await;
    for payee in bad.keys().filter(|p| **p != PLATFORM) {
        assert_eq!(native_balance(&env.settlement, *payee).await, U256::ZERO);
    }
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM relayer.batches WHERE funder = $1")
            .bind(broke.as_slice())
            .fetch_one(env.db.pool())
            .await
            .expect("batch");
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(
            format!(
                "InsufficientBalance {{ token: 0x0000000000000000000000000000000000000000, account: {broke:?}, needed: 4242, available: 0 }}"
            )
            .as_str()
        )
    );
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM relayer.instructions WHERE funder = $1 AND status = 'failed'",
    )
    .bind(broke.as_slice())
    .fetch_one(env.db.pool())
    .await
    .expect("count");
    assert_eq!(failed, 1);
    env.db.cleanup().await.expect("cleanup");
}

/// A batch that passes the estimate but reverts in its block: the failure is replayed and decoded.
#[tokio::test]
async fn a_batch_reverted_in_its_block_is_decoded_from_a_replay() {
    let env = Env::new().await;
    let funder = env.chain.addresses()[3];
    let deposit = env
        .settlement
        .depositNative(funder)
        .value(U256::from(10_000u64))
        .send()
        .await
        .expect("sent");
    assert!(deposit.get_receipt().await.expect("mined").status());
    let _ = env.submit_from(funder, &[10_000]).await;
    env.sign_all(10).await;
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    let _: () = anvil_call!(env, "evm_setAutomine", (false,));
    assert_eq!(submitter.tick().await.expect("tick").broadcast, 1);
    // The funder withdraws its deposit in the same block, ahead of the batch (a higher tip). Its gas
    // is fixed: an estimate would run on the pending state, where the batch already spent the deposit.
    let funder_view = SplitSettlement::new(
        *env.settlement.address(),
        alloy::providers::ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(
                env.chain.signers()[3].clone(),
            ))
            .connect_http(env.chain.endpoint_url()),
    );
    let _pending = funder_view
        .withdraw(Address::ZERO, U256::from(10_000u64), funder)
        .gas(200_000)
        .max_priority_fee_per_gas(1_000_000_000_000)
        .max_fee_per_gas(2_000_000_000_000)
        .send()
        .await
        .expect("withdraw sent");
    env.mine().await;
    run_to_end(&submitter, 10).await;
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM relayer.batches")
            .fetch_one(env.db.pool())
            .await
            .expect("batch");
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(
            format!(
                "InsufficientBalance {{ token: 0x0000000000000000000000000000000000000000, account: {funder:?}, needed: 10000, available: 0 }}"
            )
            .as_str()
        )
    );
    env.db.cleanup().await.expect("cleanup");
}

/// One endpoint stalls and another refuses; settlement goes on through the healthy one, and a
/// chain that is unreachable altogether fails the tick with a clear error, then recovers.
#[tokio::test]
async fn rpc_faults_fail_over_and_recover() {
    let env = Env::new().await;
    let expected = env.submit(&[3_000, 4_000, 5_000]).await;
    env.sign_all(1).await;
    let upstream: SocketAddr = format!("127.0.0.1:{}", env.chain.port())
        .parse()
        .expect("addr");
    let stalled = FaultProxy::start(upstream).await.expect("proxy");
    stalled.set(FaultMode::Stall);
    let refusing = FaultProxy::start(upstream).await.expect("proxy");
    refusing.set(FaultMode::Refuse);
    let healthy = FaultProxy::start(upstream).await.expect("proxy");
    let rpc = RpcPool::new(
        &[stalled.url(), refusing.url(), healthy.url()],
        RpcConfig {
            timeout: Duration::from_millis(300),
            rest: Duration::from_secs(60),
        },
    )
    .expect("rpc");
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    run_to_end(&submitter, 10).await;
    env.assert_settled_once(&expected).await;
    let health = rpc.health();
    // Each bad endpoint failed once; from then on its error rate ranked it behind the healthy one.
    assert_eq!(health[0].failures, 1);
    assert_eq!(health[1].failures, 1);
    assert_eq!(health[2].failures, 0);
    assert!(health[2].calls > 10, "{health:?}");

    // Everything down: the tick fails naming the problem; nothing is recorded; back up, it settles.
    let more = env.submit(&[6_000]).await;
    env.sign_all(1).await;
    let only = FaultProxy::start(upstream).await.expect("proxy");
    let single = RpcPool::new(
        &[only.url()],
        RpcConfig {
            timeout: Duration::from_millis(300),
            rest: Duration::from_millis(1),
        },
    )
    .expect("rpc");
    drop(submitter);
    let submitter = start_when_free(&env, &single, &env.hsm).await;
    only.set(FaultMode::Refuse);
    let err = submitter.tick().await.expect_err("chain unreachable");
    assert!(
        matches!(
            err,
            SubmitError::Rpc(settle_relayer::RpcError::Unavailable {
                op: "eth_getBlockByNumber",
                ..
            })
        ),
        "{err}"
    );
    only.set(FaultMode::Pass);
    run_to_end(&submitter, 10).await;
    let mut all = expected.clone();
    for (k, v) in more {
        *all.entry(k).or_insert(0) += v;
    }
    env.assert_settled_once(&all).await;
    env.db.cleanup().await.expect("cleanup");
}

/// The submitter of a crashed process may hold the sender's lock for a moment; wait for it.
async fn start_when_free<'a>(env: &Env, rpc: &'a RpcPool, hsm: &'a HsmSigner) -> Submitter<'a> {
    for _ in 0..100 {
        match Submitter::start(env.db.pool().clone(), env.db.url(), rpc, hsm, env.config()).await {
            Ok(s) => return s,
            Err(SubmitError::SenderBusy(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("start: {e}"),
        }
    }
    panic!("sender lock never freed");
}

/// A crash after each transition in turn (the process's memory lost, the database as committed):
/// the next process resumes and every payment settles exactly once.
#[tokio::test]
async fn a_crash_after_any_transition_resumes_exactly_once() {
    let env = Env::new().await;
    let rpc = env.rpc();
    let mut expected: BTreeMap<Address, u128> = BTreeMap::new();
    // Transitions of one round: signed, broadcast (x2 batches), mined, included, settled.
    for crash_after in 0..12u32 {
        let round = env
            .submit(&[10_000 + u128::from(crash_after), 20_000])
            .await;
        for (k, v) in round {
            *expected.entry(k).or_insert(0) += v;
        }
        env.sign_all(1).await;
        {
            let crashed = start_when_free(&env, &rpc, &env.hsm).await;
            let mut done = 0;
            while done < crash_after {
                let report = crashed
                    .tick_limited(crash_after - done)
                    .await
                    .expect("tick");
                if report.transitions() == 0 {
                    break;
                }
                done += report.transitions();
            }
            // One round has 10 transitions (2 batches: signed, broadcast, mined, included,
            // settled); the crash lands after each of them in turn, and after the last.
            assert_eq!(done, crash_after.min(10));
            // Dropped here: the "process" dies with whatever it had not committed.
        }
        let resumed = start_when_free(&env, &rpc, &env.hsm).await;
        run_to_end(&resumed, 20).await;
        env.assert_settled_once(&expected).await;
    }
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relayer.instructions WHERE status <> 'settled'")
            .fetch_one(env.db.pool())
            .await
            .expect("count");
    assert_eq!(open, 0);
    env.db.cleanup().await.expect("cleanup");
}

/// The relayer's task aborted at arbitrary moments (mid-RPC, mid-transaction), then restarted.
#[tokio::test]
async fn an_aborted_relayer_task_resumes_exactly_once() {
    let env = Env::new().await;
    let expected = env
        .submit(&(1..=12).map(|i| 1_000 * i).collect::<Vec<_>>())
        .await;
    let env = std::sync::Arc::new(env);
    for delay_ms in [5u64, 15, 30, 45, 60, 90, 120, 160] {
        let task = {
            let env = std::sync::Arc::clone(&env);
            tokio::spawn(async move {
                let rpc = env.rpc();
                let submitter = start_when_free(&env, &rpc, &env.hsm).await;
                loop {
                    env.sign_all(2).await;
                    let _ = submitter.tick().await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
    }
    let rpc = env.rpc();
    let submitter = start_when_free(&env, &rpc, &env.hsm).await;
    env.sign_all(2).await;
    run_to_end(&submitter, 20).await;
    env.assert_settled_once(&expected).await;
    let settled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relayer.instructions WHERE status = 'settled'")
            .fetch_one(env.db.pool())
            .await
            .expect("count");
    assert_eq!(settled, 12);
}

/// Two relayers with their own sender keys on one database never send the same batch; a second
/// relayer with the same sender key is refused.
#[tokio::test]
async fn two_relayers_on_one_database_never_double_submit() {
    let env = Env::new().await;
    let expected = env
        .submit(&(1..=20).map(|i| 100 * i).collect::<Vec<_>>())
        .await;
    env.sign_all(2).await;
    let other_token = TestToken::create().expect("token");
    let other = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        other_token.token_label(),
        other_token.user_pin(),
        other_token.key_label(),
    )
    .expect("hsm signer");
    fund(&env.chain, other.address()).await;
    let (rpc_a, rpc_b) = (env.rpc(), env.rpc());
    let a = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc_a,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("a");
    let b = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc_b,
        &other,
        env.config(),
    )
    .await
    .expect("b");
    let same = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc_b,
        &env.hsm,
        env.config(),
    )
    .await;
    assert!(matches!(same, Err(SubmitError::SenderBusy(s)) if s == env.hsm.address()));

    for _ in 0..10 {
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        if ra.expect("a").transitions() == 0 && rb.expect("b").transitions() == 0 {
            break;
        }
    }
    env.assert_settled_once(&expected).await;
    // Every batch went out from exactly one sender, in exactly one transaction; both senders worked.
    let per_batch: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(DISTINCT sender), count(*) FROM relayer.transactions GROUP BY batch",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("rows");
    assert_eq!(per_batch.len(), 10);
    assert!(per_batch.iter().all(|r| *r == (1, 1)), "{per_batch:?}");
    let senders: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT sender) FROM relayer.transactions")
            .fetch_one(env.db.pool())
            .await
            .expect("count");
    assert_eq!(senders, 2);
    env.db.cleanup().await.expect("cleanup");
}

/// A reorg takes away the block that included a batch before it was deep enough: the batch goes
/// back to submitted, its vanished transaction counts as dropped, and it is sent and settles once.
#[tokio::test]
async fn a_reorged_batch_is_followed_until_it_settles_once() {
    let env = Env::new().await;
    let expected = env.submit(&[123_456]).await;
    env.sign_all(10).await;
    let rpc = env.rpc();
    let config = SubmitterConfig {
        confirmations: 3,
        ..env.config()
    };
    let submitter = Submitter::start(env.db.pool().clone(), env.db.url(), &rpc, &env.hsm, config)
        .await
        .expect("submitter");
    assert_eq!(submitter.tick().await.expect("tick").broadcast, 1);
    let seen = submitter.tick().await.expect("tick");
    assert_eq!((seen.mined, seen.included, seen.settled), (1, 1, 0));
    let first_hash: Vec<u8> = sqlx::query_scalar("SELECT block_hash FROM relayer.batches")
        .fetch_one(env.db.pool())
        .await
        .expect("hash");

    // The including block is replaced by an empty one.
    let _: () = anvil_call!(env, "anvil_reorg", (1u64, Vec::<()>::new()));
    let after = submitter.tick().await.expect("tick");
    assert_eq!(after.reorged, 1, "{after:?}");
    assert_eq!(native_balance(&env.settlement, PLATFORM).await, U256::ZERO);

    for _ in 0..20 {
        let report = submitter.tick().await.expect("tick");
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM relayer.instructions WHERE status <> 'settled'",
        )
        .fetch_one(env.db.pool())
        .await
        .expect("count");
        if open == 0 && report.transitions() == 0 {
            break;
        }
        env.mine().await;
    }
    env.assert_settled_once(&expected).await;
    let second_hash: Vec<u8> = sqlx::query_scalar("SELECT block_hash FROM relayer.batches")
        .fetch_one(env.db.pool())
        .await
        .expect("hash");
    assert_ne!(first_hash, second_hash);
    env.db.cleanup().await.expect("cleanup");
}

/// The backends holding an advisory lock in the submitters' namespace.
async fn sender_lock_holders(env: &Env) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database =
           (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("pg_locks")
}

/// Ends backend `pid` and waits until no advisory lock is held.
async fn terminate(env: &Env, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(env.db.pool())
        .await
        .expect("terminate");
    assert!(done);
    // The lock goes with the backend.
    for _ in 0..100 {
        if sender_lock_holders(env).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the terminated backend still holds the lock");
}

/// The database drops the connection holding the sender lock (as a restart does): the next tick
/// takes the lock again; if another process took it in between, the tick stops with `SenderBusy`
/// instead of sending beside it.
#[tokio::test]
async fn a_lost_sender_lock_is_taken_again_or_the_submitter_stops() {
    let env = Env::new().await;
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("submitter");
    let before = sender_lock_holders(&env).await;
    assert_eq!(before.len(), 1, "{before:?}");
    terminate(&env, before[0]).await;
    submitter.tick().await.expect("tick takes the lock again");
    let after = sender_lock_holders(&env).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0], before[0]);

    // Lost again, and this time another process takes the key first.
    terminate(&env, after[0]).await;
    let rpc_other = env.rpc();
    let other = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc_other,
        &env.hsm,
        env.config(),
    )
    .await
    .expect("the other process takes the free key");
    let stopped = submitter.tick().await;
    assert!(
        matches!(stopped, Err(SubmitError::SenderBusy(s)) if s == env.hsm.address()),
        "{stopped:?}"
    );
    other.tick().await.expect("the holder ticks");
}
