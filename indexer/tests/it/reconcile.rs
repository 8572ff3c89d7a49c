//! Reconciliation against the real relayer (SoftHSM2-signed batches sent by its submitter), the
//! real indexer and anvil: clean when everything agrees, and each kind of finding provoked.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
};
use settle_indexer::reconcile::{FindingKind, load_run, reconcile};
use settle_relayer::{
    Batcher, BatcherConfig, HsmSigner, Submitter, SubmitterConfig,
    intake::{InstructionLeg, Intake, IntakeConfig, IntegratorLimits, NewInstruction, TokenRule},
};
use settle_testkit::{TestToken, pkcs11};

use crate::env::{CHAIN_ID, Env, MERCHANT_1, NATIVE, PLATFORM, WHOLE, pay};

fn instruction(key: &str, funder: Address, amount: u128) -> NewInstruction {
    NewInstruction {
        idempotency_key: key.to_owned(),
        chain_id: CHAIN_ID,
        token: NATIVE,
        funder,
        amount,
        legs: vec![
            InstructionLeg {
                payee: MERCHANT_1,
                share: 950_000,
            },
            InstructionLeg {
                payee: PLATFORM,
                share: 50_000,
            },
        ],
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn a_clean_run_has_no_findings_and_each_kind_is_caught() {
    let env = Env::new().await;
    settle_relayer::intake::MIGRATOR
        .run(env.db.pool())
        .await
        .expect("relayer migrations");
    let token = TestToken::create().expect("token");
    let hsm = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
    )
    .expect("hsm");
    let owner = env.chain.addresses()[0];
    let authorised = env
        .settlement(env.contract)
        .setSigner(hsm.address(), true)
        .from(owner)
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(authorised.status());
    settle_testkit::settlement::fund(&env.chain, hsm.address())
        .await
        .expect("funded");

    // The relayer settles three payments in two batches.
    let intake = Intake::new(
        env.db.pool().clone(),
        IntakeConfig {
            tokens: vec![TokenRule {
                chain_id: CHAIN_ID,
                token: NATIVE,
                max_payment: u128::MAX,
            }],
            max_payees: 4,
        },
    );
    let limits = IntegratorLimits {
        max_payment: u128::MAX,
        daily_cap: u128::MAX,
    };
    intake
        .submit(
            "shop",
            &limits,
            &[
                instruction("a", env.funder, 1_000),
                instruction("b", env.funder, 2_000),
                instruction("c", env.funder, 3_000),
            ],
        )
        .await
        .expect("accepted");
    let batcher = |deadline_secs| {
        Batcher::new(
            env.db.pool().clone(),
            BatcherConfig {
                max_payments: 2,
                deadline_secs,
                ..BatcherConfig::new(CHAIN_ID, env.contract)
            },
            &hsm,
        )
    };
    while batcher(3600)
        .sign_next(now())
        .await
        .expect("signs")
        .is_some()
    {}
    let rpc = env.rpc();
    let submitter = Submitter::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        &hsm,
        SubmitterConfig::new(CHAIN_ID, env.contract),
    )
    .await
    .expect("submitter");
    for _ in 0..10 {
        if submitter.tick().await.expect("tick").transitions() == 0 {
            break;
        }
    }
    let indexer = env.indexer(env.config());
    indexer.sync_once().await.expect("indexed");
    let clean = reconcile(env.db.pool(), &rpc, CHAIN_ID, env.contract)
        .await
        .expect("reconciled");
    assert_eq!(clean.findings, Vec::new(), "{}", clean.summary());
    assert!(clean.summary().ends_with(&format!(
        "clean at block {} (contract {} on chain {CHAIN_ID})",
        clean.checkpoint_block, env.contract
    )));

    // Outside the relayer: a batch signed by another authorised key, re-using payment "a"'s id.
    let paid_a = Intake::payment_id("shop", "a");
    let foreign = env
        .settle_with_ids(
            env.contract,
            0,
            &[pay(500, &[(MERCHANT_1, WHOLE)])],
            &[paid_a],
        )
        .await;

    // Our record of the first batch says one wei more than what was signed and settled.
    let intended = settle_relayer::ledger::intended_batches(env.db.pool(), CHAIN_ID, env.contract)
        .await
        .expect("ledger");
    let first = intended[0].batch_id;
    sqlx::query("UPDATE relayer.batches SET total = total + 1 WHERE batch_id = $1")
        .bind(first.as_slice())
        .execute(env.db.pool())
        .await
        .expect("tampered");

    // A batch sent, dropped from the pool and never settled before its deadline passed.
    intake
        .submit("shop", &limits, &[instruction("d", env.funder, 4_000)])
        .await
        .expect("accepted");
    let lost = batcher(5)
        .sign_next(now())
        .await
        .expect("signs")
        .expect("a batch");
    let provider = env.chain.provider();
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("automine off");
    assert_eq!(submitter.tick().await.expect("tick").broadcast, 1);
    let hash: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM relayer.transactions WHERE batch = $1")
            .bind(lost.id)
            .fetch_one(env.db.pool())
            .await
            .expect("hash");
    let _: Option<B256> = provider
        .raw_request("anvil_dropTransaction".into(), (B256::from_slice(&hash),))
        .await
        .expect("dropped");
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .expect("automine on");
    let _: i64 = provider
        .raw_request("evm_increaseTime".into(), (U256::from(600u64),))
        .await
        .expect("time passes");
    env.mine(1).await;

    // The mirror's record of one credit is off by 7.
    indexer.sync_once().await.expect("indexed");
    let credited = sqlx::query(
        "UPDATE indexer.credits SET amount = amount + 7
         WHERE ctid = (SELECT ctid FROM indexer.credits WHERE payee = $1 LIMIT 1)",
    )
    .bind(PLATFORM.as_slice())
    .execute(env.db.pool())
    .await
    .expect("tampered");
    assert_eq!(credited.rows_affected(), 1);

    let run = reconcile(env.db.pool(), &rpc, CHAIN_ID, env.contract)
        .await
        .expect("reconciled");
    let by_kind: BTreeMap<FindingKind, Vec<&settle_indexer::reconcile::Finding>> =
        run.findings.iter().fold(BTreeMap::new(), |mut m, f| {
            m.entry(f.kind).or_default().push(f);
            m
        });
    assert_eq!(
        run.counts(),
        BTreeMap::from([
            (FindingKind::MissingOnchain, 1),
            (FindingKind::UnexpectedOnchain, 1),
            (FindingKind::AmountMismatch, 1),
            (FindingKind::DuplicatePayment, 1),
            (FindingKind::BalanceMismatch, 1),
        ]),
        "{:#?}",
        run.findings
    );
    assert_eq!(
        by_kind[&FindingKind::MissingOnchain][0].batch_id,
        Some(lost.batch.batchId)
    );
    assert_eq!(
        by_kind[&FindingKind::UnexpectedOnchain][0].batch_id,
        Some(foreign)
    );
    let mismatch = by_kind[&FindingKind::AmountMismatch][0];
    assert_eq!(mismatch.batch_id, Some(first));
    assert_eq!(
        (mismatch.expected.as_deref(), mismatch.actual.as_deref()),
        (Some("3001"), Some("3000"))
    );
    let duplicate = by_kind[&FindingKind::DuplicatePayment][0];
    assert_eq!(duplicate.payment_id, Some(paid_a));
    assert_eq!(duplicate.actual.as_deref(), Some("2"));
    let balance = by_kind[&FindingKind::BalanceMismatch][0];
    assert_eq!(balance.account, Some(PLATFORM));
    let onchain: u128 = balance
        .expected
        .as_deref()
        .expect("expected")
        .parse()
        .expect("number");
    let indexed: u128 = balance
        .actual
        .as_deref()
        .expect("actual")
        .parse()
        .expect("number");
    assert_eq!(indexed, onchain + 7);

    // Stored as returned; the CSV has a header and one line per finding.
    let stored = load_run(env.db.pool(), run.id)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(stored, run);
    assert_eq!(run.to_csv().lines().count(), 6);
    assert!(
        run.summary().contains(": 5 findings at block "),
        "{}",
        run.summary()
    );
    env.db.cleanup().await.expect("cleanup");
}
