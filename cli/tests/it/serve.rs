//! `settle serve --only relayer` as a real process, killed with SIGKILL mid-flow and restarted:
//! every instruction settles exactly once.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use settle_contracts::SplitSettlement;
use settle_relayer::intake::{
    InstructionLeg, Intake, IntakeConfig, IntegratorLimits, MIGRATOR, NewInstruction, TokenRule,
};
use settle_testkit::{
    TestChain, TestDb, TestToken,
    settlement::{Settlement, deposit_native, fund, native_settlement},
    softhsm,
};

const PLATFORM: Address = Address::repeat_byte(0x0c);

thread_local! {
    /// The running process's log, shown when a wait times out.
    static LOG: std::cell::RefCell<std::path::PathBuf> = std::cell::RefCell::default();
}

fn config(
    chain: &TestChain,
    db: &TestDb,
    token: &TestToken,
    contract: Address,
    api_port: u16,
) -> String {
    format!(
        r#"
[database]
url = "{db}"

[chain]
chain_id = {chain_id}
rpc = ["{rpc}"]
contract = "{contract}"

[hsm]
module = "{module}"
token = "{token}"
batch_keys = ["{key}"]
sender_key = "{key}"

[relayer]
max_payments = 2
max_wait_secs = 0
gas_ceiling = 15000000
deadline_secs = 3600
confirmations = 1
max_in_flight = 4
bump_after_blocks = 3
bump_percent = 15
drop_after_blocks = 3
max_fee_cap_wei = "1000000000000"
low_balance_wei = "1000"
interval_ms = 20

[indexer]
confirmations = 0
poll_interval_ms = 50
reconcile_every_secs = 1

[api]
listen = "127.0.0.1:{api_port}"

[intake]
tokens = [{{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000000000000" }}]
default_tier = "open"

[intake.tiers.open]
max_payment = "1000000000000"
daily_cap = "1000000000000000"
"#,
        db = db.url(),
        chain_id = chain.chain_id(),
        rpc = chain.endpoint(),
        module = token.module_path().display(),
        token = token.token_label(),
        key = token.key_label(),
    )
}

fn spawn(path: &std::path::Path, token: &TestToken, only: Option<&str>) -> Child {
    LOG.with(|l| *l.borrow_mut() = path.with_extension("log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_settle"));
    command.arg("serve");
    if let Some(part) = only {
        command.args(["--only", part]);
    }
    command
        .arg("--config")
        .arg(path)
        .env(
            softhsm::CONF_ENV,
            std::env::var_os(softhsm::CONF_ENV)
                .expect("SOFTHSM2_CONF is set by .cargo/config.toml"),
        )
        .env("SETTLE_HSM_PIN", token.user_pin())
        .env_remove("SETTLE_DATABASE_URL")
        .env("SETTLE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path.with_extension("log")).expect("log file"))
        .spawn()
        .expect("settle serve starts")
}

/// Polls the API's `/readyz` until it answers 200; returns the body.
async fn wait_ready(port: u16) -> String {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && response.status().is_success()
        {
            return response.text().await.expect("body");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the API never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .expect("count")
}

/// Waits until `sql` counts at least `at_least`, or fails after 60 s.
async fn wait_for(db: &TestDb, sql: &str, at_least: i64) {
    let started = Instant::now();
    while count(db, sql).await < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {sql} >= {at_least}; the process said:\n{}",
            std::fs::read_to_string(LOG.with(|l| l.borrow().clone())).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn submit(
    intake: &Intake,
    funder: Address,
    round: u32,
    expected: &mut BTreeMap<Address, u128>,
) {
    let mut instructions = Vec::new();
    for i in 0..4u32 {
        let amount = u128::from(
            round
                .checked_mul(10)
                .and_then(|r| r.checked_add(i))
                .expect("small"),
        )
        .checked_add(1_000)
        .expect("small");
        let mut merchant = [0u8; 20];
        merchant[0] = 0xee;
        merchant[12..16].copy_from_slice(&round.to_be_bytes());
        merchant[16..].copy_from_slice(&i.to_be_bytes());
        let merchant = Address::from(merchant);
        let platform_part = amount.checked_mul(29_000).expect("small") / 1_000_000;
        expected.insert(merchant, amount.checked_sub(platform_part).expect("floor"));
        let platform = expected.entry(PLATFORM).or_insert(0);
        *platform = platform.checked_add(platform_part).expect("small");
        instructions.push(NewInstruction {
            idempotency_key: format!("r{round}-{i}"),
            chain_id: 31337,
            token: Address::ZERO,
            funder,
            amount,
            legs: vec![
                InstructionLeg {
                    payee: merchant,
                    share: 971_000,
                },
                InstructionLeg {
                    payee: PLATFORM,
                    share: 29_000,
                },
            ],
        });
    }
    intake
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
}

async fn assert_exactly_once(
    chain: &TestChain,
    settlement: &Settlement,
    expected: &BTreeMap<Address, u128>,
) {
    for (payee, amount) in expected {
        let balance = settlement
            .balanceOf(Address::ZERO, *payee)
            .call()
            .await
            .expect("balanceOf");
        assert_eq!(balance, U256::from(*amount), "balance of {payee}");
    }
    let logs = chain
        .provider()
        .get_logs(
            &Filter::new()
                .address(*settlement.address())
                .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("logs");
    let mut ids: Vec<B256> = logs.iter().map(|l| l.topics()[1]).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "a batch settled twice");
}

/// SIGKILL after a batch is signed, after a transaction is stored, and after a batch settles; each
/// restart resumes, and a final SIGTERM stops the process cleanly.
#[tokio::test]
async fn a_relayer_process_killed_at_each_stage_settles_everything_once() {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let token = TestToken::create().expect("token");
    let chain = TestChain::start().expect("anvil");
    let settlement = native_settlement(&chain, token.address())
        .await
        .expect("settlement");
    fund(&chain, token.address()).await.expect("funded");
    let funder = chain.addresses()[1];
    deposit_native(&settlement, funder, U256::from(10u128.pow(18)))
        .await
        .expect("deposit");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settle.toml");
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    std::fs::write(
        &path,
        config(&chain, &db, &token, *settlement.address(), api_port),
    )
    .expect("config written");
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

    let mut expected = BTreeMap::new();
    let stages = [
        "SELECT count(*) FROM relayer.batches",
        "SELECT count(*) FROM relayer.transactions",
        "SELECT count(*) FROM relayer.batches WHERE status = 'settled'",
    ];
    for (round, stage) in (0u32..).zip(stages) {
        let before = count(&db, stage).await;
        submit(&intake, funder, round, &mut expected).await;
        let mut child = spawn(&path, &token, Some("relayer"));
        wait_for(&db, stage, before.checked_add(1).expect("small")).await;
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reaped");
        assert!(!status.success(), "killed, not exited: {status}");
    }

    // The whole process this time: relayer, indexer (with reconciliation) and API.
    let mut child = spawn(&path, &token, None);
    wait_for(
        &db,
        "SELECT count(*) FROM relayer.instructions WHERE status = 'settled'",
        12,
    )
    .await;
    let ready = wait_ready(api_port).await;
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");
    assert!(ready.contains("\"hsm\":\"ok\""), "{ready}");
    // One process, one /metrics: the relayer's gauges with its signers' counters, and the indexer's.
    let metrics = reqwest::get(format!("http://127.0.0.1:{api_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let signatures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("settle_relayer_hsm_signatures_total "))
        .expect("signature counter")
        .parse()
        .expect("a number");
    assert!(signatures > 0, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("settle_indexer_indexed_block")),
        "{metrics}"
    );
    wait_for(
        &db,
        "SELECT count(*) FROM indexer.reconciliation_runs WHERE findings = 0",
        1,
    )
    .await;
    let pid = i32::try_from(child.id()).expect("pid");
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let status = child.wait().expect("exits");
    assert!(status.success(), "SIGTERM stops it cleanly: {status}");

    assert_exactly_once(&chain, &settlement, &expected).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM relayer.instructions WHERE status <> 'settled'"
        )
        .await,
        0
    );
    db.cleanup().await.expect("cleanup");
}
