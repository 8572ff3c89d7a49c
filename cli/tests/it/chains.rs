//! `settle serve --only indexer` following two chains and two contracts on the main chain from one
//! settle.toml (`[indexer] contracts` and `[[indexer.chains]]`): every deposit on each lands once,
//! under its own chain id and contract.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use settle_testkit::{
    TestChain, TestDb, TestToken,
    settlement::{deposit_native, native_settlement},
    softhsm,
};
use sqlx::Row;

/// (chain id, contract, funder, amount) of every indexed deposit, sorted.
async fn deposits(db: &TestDb) -> Vec<(i64, Vec<u8>, Vec<u8>, String)> {
    let rows = sqlx::query(
        "SELECT chain_id, contract::bytea AS contract, funder::bytea AS funder, amount::text AS amount
         FROM indexer.deposits ORDER BY chain_id, contract, amount",
    )
    .fetch_all(db.pool())
    .await
    .unwrap_or_default();
    rows.iter()
        .map(|r| {
            (
                r.get("chain_id"),
                r.get("contract"),
                r.get("funder"),
                r.get("amount"),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_process_indexes_several_chains_and_contracts() {
    let main = TestChain::start().expect("main chain");
    let other = TestChain::start_with(|a| a.chain_id(1_337)).expect("second chain");
    let db = TestDb::create().await.expect("db");
    let token = TestToken::create().expect("token");
    let signer = Address::repeat_byte(0x51);
    let funder = Address::repeat_byte(0xf0);
    // Each deployment's provider keeps its own nonce for the deployer: deposit before the next.
    let first = native_settlement(&main, signer)
        .await
        .expect("first contract");
    deposit_native(&first, funder, U256::from(11u64))
        .await
        .expect("deposit");
    let second = native_settlement(&main, signer)
        .await
        .expect("second contract");
    deposit_native(&second, funder, U256::from(22u64))
        .await
        .expect("deposit");
    let third = native_settlement(&other, signer)
        .await
        .expect("contract on chain 1337");
    for amount in [33u64, 44] {
        deposit_native(&third, funder, U256::from(amount))
            .await
            .expect("deposit");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settle.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[database]
url = "{db}"

[chain]
chain_id = 31337
rpc = ["{main_rpc}"]
contract = "{first}"

[hsm]
module = "{module}"
token = "{label}"
batch_keys = ["{key}"]
sender_key = "{key}"

[indexer]
confirmations = 0
poll_interval_ms = 50
reconcile_every_secs = 0
contracts = ["{second}"]

[[indexer.chains]]
chain_id = 1337
rpc = ["{other_rpc}"]
contracts = ["{third}"]
deployment_block = 0

[intake]
tokens = [{{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000" }}]
default_tier = "open"

[intake.tiers.open]
max_payment = "1000"
daily_cap = "1000000"
"#,
            db = db.url(),
            main_rpc = main.endpoint(),
            other_rpc = other.endpoint(),
            first = first.address(),
            second = second.address(),
            third = third.address(),
            module = token.module_path().display(),
            label = token.token_label(),
            key = token.key_label(),
        ),
    )
    .expect("settle.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_settle"))
        .args(["serve", "--only", "indexer", "--config"])
        .arg(&path)
        .env(
            softhsm::CONF_ENV,
            std::env::var_os(softhsm::CONF_ENV)
                .expect("SOFTHSM2_CONF is set by .cargo/config.toml"),
        )
        .env("SETTLE_HSM_PIN", token.user_pin())
        .env_remove("SETTLE_DATABASE_URL")
        .env("SETTLE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("settle serve starts");

    let expected: Vec<(i64, Vec<u8>, Vec<u8>, String)> = {
        let mut rows = vec![
            (
                31_337i64,
                first.address().to_vec(),
                funder.to_vec(),
                "11".to_owned(),
            ),
            (
                31_337,
                second.address().to_vec(),
                funder.to_vec(),
                "22".to_owned(),
            ),
            (
                1_337,
                third.address().to_vec(),
                funder.to_vec(),
                "33".to_owned(),
            ),
            (
                1_337,
                third.address().to_vec(),
                funder.to_vec(),
                "44".to_owned(),
            ),
        ];
        rows.sort();
        rows
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        seen = deposits(&db).await;
        if seen.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both chains' checkpoints are at their heads.
    let checkpoints: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT chain_id, count(*) FROM indexer.checkpoints GROUP BY chain_id ORDER BY chain_id",
    )
    .fetch_all(db.pool())
    .await
    .expect("checkpoints");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("exit");
    seen.sort();
    assert_eq!(seen, expected);
    assert_eq!(checkpoints, vec![(1_337, 1), (31_337, 2)]);
    assert!(status.success(), "settle serve exited with {status}");
    db.cleanup().await.expect("cleanup");
}
