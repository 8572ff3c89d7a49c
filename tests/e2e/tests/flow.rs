//! 10,000 split payments from three integrators through the REST API, settled by the relayer
//! (SoftHSM2 keys), mirrored by the indexer, reconciled; then a merchant withdraws.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use serde_json::{Value, json};
use settle_api::{Role, auth};
use settle_contracts::SplitSettlement;
use settle_testkit::{TestChain, TestDb, TestToken, pkcs11, settlement::fund};
use tokio::sync::watch;

const PAYMENTS: u64 = 10_000;
const INTEGRATORS: [&str; 3] = ["shop-a", "shop-b", "wallet-c"];
const SHARES: [u32; 3] = [900_000, 70_000, 30_000];
const PLATFORM: Address = Address::repeat_byte(0xc0);
const REFERRER: Address = Address::repeat_byte(0x7e);

fn config(
    db: &str,
    rpc: &str,
    contract: Address,
    block: u64,
    token: &TestToken,
    port: u16,
) -> String {
    format!(
        r#"
[database]
url = "{db}"

[chain]
chain_id = 31337
rpc = ["{rpc}"]
contract = "{contract}"
deployment_block = {block}

[hsm]
module = "{module}"
token = "{label}"
batch_keys = ["batch-1"]
sender_key = "sender-1"

[relayer]
max_payments = 500
max_wait_secs = 0
interval_ms = 50

[indexer]
confirmations = 0
poll_interval_ms = 100
reconcile_every_secs = 0

[api]
listen = "127.0.0.1:{port}"
rate_per_sec = 100000
burst = 100000

[intake]
max_payees = 4
tokens = [{{ address = "0x0000000000000000000000000000000000000000", max_payment = "1000000000000000000" }}]
default_tier = "open"

[intake.tiers.open]
max_payment = "1000000000000000000"
daily_cap = "1000000000000000000000"
"#,
        module = token.module_path().display(),
        label = token.token_label(),
    )
}

/// Every split credits the first leg with the remainder and the others with the floor of their share.
fn credits(amount: u128) -> [u128; 3] {
    let part = |share: u32| {
        amount
            .checked_mul(u128::from(share))
            .expect("small amounts")
            / 1_000_000
    };
    let (platform, referrer) = (part(SHARES[1]), part(SHARES[2]));
    let merchant = amount
        .checked_sub(platform)
        .and_then(|rest| rest.checked_sub(referrer))
        .expect("the floors never exceed the amount");
    [merchant, platform, referrer]
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::arithmetic_side_effects)] // small test amounts, checked by the assertions themselves
async fn ten_thousand_payments_settle_once_index_and_reconcile_clean() {
    let chain = TestChain::start().expect("anvil");
    let db = TestDb::create().await.expect("database");
    let token = TestToken::create().expect("token");
    let pkcs11 = pkcs11().expect("pkcs11");
    let batch_key = settle_relayer::keys::generate_key(
        pkcs11,
        token.token_label(),
        token.user_pin(),
        "batch-1",
    )
    .expect("batch key");
    let sender_key = settle_relayer::keys::generate_key(
        pkcs11,
        token.token_label(),
        token.user_pin(),
        "sender-1",
    )
    .expect("sender key");
    fund(&chain, sender_key).await.expect("funded");

    // The contracts, as `settle deploy` makes them: multisig 2-of-3 behind a timelock.
    let manifests = tempfile::tempdir().expect("tempdir");
    let deployer = chain.signers()[0].clone();
    let deploy = settle_deploy::DeployConfig {
        chain_id: 31337,
        salt: keccak256("e2e"),
        governance: settle_deploy::config::Governance {
            owners: chain.addresses()[1..4].to_vec(),
            threshold: 2,
            min_delay: 60,
            guardian: chain.addresses()[0],
        },
        signers: vec![batch_key],
        tokens: vec![settle_deploy::config::TokenLimits {
            token: Address::ZERO,
            max_payment: 10u128.pow(18),
            daily_cap: 10u128.pow(24),
        }],
        deployer: settle_deploy::config::DeployerConfig::default(),
    };
    let manifest = settle_deploy::deploy(
        &deploy,
        &chain.endpoint(),
        deployer,
        &settle_deploy::DeployOptions::new(manifests.path()),
    )
    .await
    .expect("deployed")
    .manifest;
    let contract = manifest.settlement;
    let funder = chain.addresses()[4];
    let funder_provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[4].clone()))
        .connect_http(chain.endpoint_url());
    let deposited = SplitSettlement::new(contract, &funder_provider)
        .depositNative(funder)
        .value(U256::from(10u128.pow(20)))
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(deposited.status());

    // The whole process: relayer, indexer and API.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let text = config(
        db.url(),
        &chain.endpoint(),
        contract,
        manifest.deployed_block,
        &token,
        port,
    );
    let settings = settle::config::parse("e2e.toml", &text, None).expect("valid config");
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let server = {
        let stop_tx = Arc::clone(&stop_tx);
        let pin = token.user_pin().to_owned();
        let settings = settings.clone();
        tokio::spawn(async move {
            settle::serve::run_parts(&settings, None, Some(pin), stop_tx, stop_rx).await
        })
    };
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = settle::serve::database(&settings).await.expect("database");
    let mut tokens = Vec::new();
    for name in INTEGRATORS {
        tokens.push(
            auth::create_key(&pool, Role::Integrator, name)
                .await
                .expect("key")
                .token,
        );
    }
    let auditor = auth::create_key(&pool, Role::Auditor, "e2e")
        .await
        .expect("key")
        .token;

    // Merchants: five anvil accounts (they can withdraw) and 45 more.
    let merchants: Vec<Address> = chain.addresses()[5..10]
        .iter()
        .copied()
        .chain((0u8..45).map(|i| Address::repeat_byte(i.wrapping_add(0x20))))
        .collect();
    let mut expected: BTreeMap<Address, u128> = BTreeMap::new();
    let mut batches: Vec<Vec<Value>> = vec![Vec::new(); INTEGRATORS.len()];
    for n in 0..PAYMENTS {
        let amount = 1_000_000_000_000u128 + u128::from(n) * 7_919;
        let merchant = merchants[usize::try_from(n % 50).expect("small")];
        for (payee, credit) in [merchant, PLATFORM, REFERRER]
            .into_iter()
            .zip(credits(amount))
        {
            *expected.entry(payee).or_insert(0) += credit;
        }
        let integrator = usize::try_from(n % 3).expect("small");
        batches[integrator].push(json!({
            "idempotency_key": format!("order-{n}"),
            "chain_id": 31337,
            "token": Address::ZERO.to_checksum(None),
            "funder": funder.to_checksum(None),
            "amount": amount.to_string(),
            "splits": [
                {"payee": merchant.to_checksum(None), "share": SHARES[0]},
                {"payee": PLATFORM.to_checksum(None), "share": SHARES[1]},
                {"payee": REFERRER.to_checksum(None), "share": SHARES[2]},
            ],
        }));
    }
    for (payments, token) in batches.iter().zip(&tokens) {
        for chunk in payments.chunks(500) {
            let response = client
                .post(format!("{api}/v1/payments/bulk"))
                .bearer_auth(token)
                .json(&json!({ "payments": chunk }))
                .send()
                .await
                .expect("answered");
            assert_eq!(
                response.status().as_u16(),
                201,
                "{}",
                response.text().await.expect("body")
            );
        }
    }

    // Settled and indexed.
    let rpc = settle::serve::rpc(&settings).expect("rpc");
    let mut settled_batches = 0;
    for _ in 0..1200 {
        let snapshot = settle_relayer::metrics::collect(&pool, &rpc, &[], U256::ZERO, (0, 0))
            .await
            .expect("metrics");
        let settled = snapshot.instructions.get("settled").copied().unwrap_or(0);
        settled_batches = snapshot.batches.get("settled").copied().unwrap_or(0);
        let indexed = settle_indexer::reconcile::indexed_batch_count(&pool, 31337, contract)
            .await
            .expect("count");
        if settled == i64::try_from(PAYMENTS).expect("small") && indexed == settled_batches {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses = settle_relayer::metrics::collect(&pool, &rpc, &[], U256::ZERO, (0, 0))
        .await
        .expect("metrics")
        .instructions;
    assert_eq!(
        statuses,
        BTreeMap::from([(
            "settled".to_owned(),
            i64::try_from(PAYMENTS).expect("small")
        )])
    );
    // 10,000 payments of at most 500 from three integrators' arrival order: at least 20 batches.
    assert!(settled_batches >= 20, "{settled_batches}");

    // Exactly once on chain: every payee holds exactly what the splits credit it; no batch twice.
    let settlement = SplitSettlement::new(contract, chain.provider());
    for (payee, amount) in &expected {
        let onchain = settlement
            .balanceOf(Address::ZERO, *payee)
            .call()
            .await
            .expect("balanceOf");
        assert_eq!(onchain, U256::from(*amount), "balance of {payee}");
    }
    let logs = chain
        .provider()
        .get_logs(
            &Filter::new()
                .address(contract)
                .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("logs");
    let mut ids: Vec<_> = logs.iter().map(|l| l.topics()[1]).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), logs.len());
    assert_eq!(i64::try_from(ids.len()).expect("small"), settled_batches);

    // The mirror agrees through the API, and reconciliation is clean.
    for payee in merchants.iter().take(10).chain([&PLATFORM, &REFERRER]) {
        let body = get(
            &client,
            &format!(
                "{api}/v1/merchants/{}/balances?verify=true",
                payee.to_checksum(None)
            ),
            &auditor,
        )
        .await;
        let row = &body["balances"][0];
        assert_eq!(row["balance"], expected[payee].to_string(), "{body}");
        assert_eq!(row["matches"], true, "{body}");
    }
    let run = settle_indexer::reconcile::reconcile(&pool, &rpc, 31337, contract)
        .await
        .expect("reconciled");
    assert_eq!(run.findings, Vec::new(), "{}", run.summary());

    // A merchant withdraws; the chain and the mirror follow.
    let merchant = merchants[0];
    let merchant_provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[5].clone()))
        .connect_http(chain.endpoint_url());
    let withdrawn = SplitSettlement::new(contract, &merchant_provider)
        .withdraw(Address::ZERO, U256::from(expected[&merchant]), merchant)
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(withdrawn.status());
    let url = format!("{api}/v1/merchants/{}/balances", merchant.to_checksum(None));
    let mut balance = Value::Null;
    for _ in 0..100 {
        balance = get(&client, &url, &auditor).await["balances"][0]["balance"].clone();
        if balance == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(balance, "0");
    let withdrawals = get(
        &client,
        &format!(
            "{api}/v1/merchants/{}/withdrawals",
            merchant.to_checksum(None)
        ),
        &auditor,
    )
    .await;
    assert_eq!(
        withdrawals["withdrawals"][0]["amount"],
        expected[&merchant].to_string(),
        "{withdrawals}"
    );
    let after = settle_indexer::reconcile::reconcile(&pool, &rpc, 31337, contract)
        .await
        .expect("reconciled");
    assert_eq!(after.findings, Vec::new(), "{}", after.summary());

    stop_tx.send(true).expect("stop");
    server.await.expect("joined").expect("stopped cleanly");
    db.cleanup().await.expect("cleanup");
}
