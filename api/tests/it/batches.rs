//! Batches: a batch settled for real on anvil (signed in SoftHSM, sent by the submitter) read back
//! with its on-chain record, and a batch that reverted with its typed error.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
};
use reqwest::Method;
use serde_json::{Value, json};
use settle_api::Role;
use settle_relayer::{
    Batcher, BatcherConfig, HsmSigner, RpcConfig, RpcPool, SignedBatch, Submitter, SubmitterConfig,
};
use settle_testkit::{TestToken, pkcs11, settlement};

use crate::{
    harness::TestApi,
    payments::{NATIVE, assert_recent, created, id_of, merchant, payment_from},
};

/// A SoftHSM token with one key, opened as a signer (the signer is dropped before its token).
pub(crate) struct Hsm {
    pub(crate) signer: HsmSigner,
    _token: TestToken,
}

impl Hsm {
    pub(crate) fn new() -> Self {
        let token = TestToken::create().expect("token");
        let signer = HsmSigner::open(
            pkcs11().expect("pkcs11"),
            token.token_label(),
            token.user_pin(),
            token.key_label(),
        )
        .expect("hsm signer");
        Self {
            signer,
            _token: token,
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Signs every pending instruction into batches for `contract`, as the relayer's batcher does.
pub(crate) async fn sign_all(api: &TestApi, hsm: &Hsm, contract: Address) -> Vec<SignedBatch> {
    let batcher = Batcher::new(
        api.db.pool().clone(),
        BatcherConfig::new(31337, contract),
        &hsm.signer,
    );
    let mut signed = Vec::new();
    while let Some(batch) = batcher.sign_next(now()).await.expect("signs") {
        signed.push(batch);
    }
    signed
}

/// The contract on the API's chain, with the HSM key authorised and paying gas.
async fn deploy(api: &TestApi, hsm: &Hsm) -> settlement::Settlement {
    let deployed = settlement::native_settlement(&api.chain, hsm.signer.address())
        .await
        .expect("deployed");
    settlement::fund(&api.chain, hsm.signer.address())
        .await
        .expect("funded");
    deployed
}

/// Drives the submitter until nothing moves.
async fn submit_all(api: &TestApi, hsm: &Hsm, contract: Address) {
    let rpc = RpcPool::new(&[api.chain.endpoint()], RpcConfig::default()).expect("rpc");
    let submitter = Submitter::start(
        api.db.pool().clone(),
        api.db.url(),
        &rpc,
        &hsm.signer,
        SubmitterConfig::new(31337, contract),
    )
    .await
    .expect("submitter");
    for _ in 0..20 {
        if submitter.tick().await.expect("tick").transitions() == 0 {
            return;
        }
    }
    panic!("the submitter is still moving after 20 ticks");
}

async fn mine(api: &TestApi, blocks: u64) {
    for _ in 0..blocks {
        let _: String = api
            .chain
            .provider()
            .raw_request("evm_mine".into(), ())
            .await
            .expect("mined");
    }
}

#[tokio::test]
async fn a_settled_batch_answers_its_on_chain_record_and_confirmations() {
    let api = TestApi::start().await;
    let hsm = Hsm::new();
    let settlement = deploy(&api, &hsm).await;
    let contract = *settlement.address();
    let funder = api.chain.addresses()[1];
    settlement::deposit_native(&settlement, funder, U256::from(10u128.pow(18)))
        .await
        .expect("deposit");
    let shop = api.key(Role::Integrator, "shop").await;
    let funder_text = funder.to_checksum(None);
    let first = created(&api, &shop, "s-1", &payment_from("1500000", &funder_text)).await;
    let second = created(&api, &shop, "s-2", &payment_from("2500001", &funder_text)).await;
    let signed = sign_all(&api, &hsm, contract).await;
    assert_eq!(signed.len(), 1);
    let batch = &signed[0];
    submit_all(&api, &hsm, contract).await;

    let answer = api.get(&format!("/v1/batches/{}", batch.id), &shop).await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    let body = answer.body.clone();
    // The transaction and block it names are the chain's.
    let tx_hash = body["tx_hash"].as_str().expect("tx hash");
    let receipt = api
        .chain
        .provider()
        .get_transaction_receipt(tx_hash.parse().expect("hash"))
        .await
        .expect("receipt")
        .expect("mined");
    assert!(receipt.status());
    let block = receipt.block_number.expect("block");
    let latest = api.chain.provider().get_block_number().await.expect("head");
    let signer = hsm.signer.address().to_checksum(None);
    assert_eq!(
        without_times(&body),
        json!({
            "id": batch.id.to_string(),
            "batch_id": batch.batch.batchId.to_string(),
            "chain_id": 31337,
            "contract": contract.to_checksum(None),
            "token": NATIVE,
            "funder": funder_text,
            "signer": signer,
            "nonce": "0",
            "deadline": batch.batch.deadline,
            "digest": batch.digest.to_string(),
            "status": "settled",
            "sender": signer,
            "tx_hash": receipt.transaction_hash.to_string(),
            "block_number": block,
            "block_hash": receipt.block_hash.expect("block hash").to_string(),
            "confirmations": depth(latest, block, 0),
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price.to_string(),
            "error": null,
            "payment_count": 2,
            "total": "4000001",
        })
    );
    assert_recent(&body["created_at"]);
    assert_recent(&body["updated_at"]);

    // Confirmations are read from the chain at each request.
    mine(&api, 3).await;
    let later = api.get(&format!("/v1/batches/{}", batch.id), &shop).await;
    assert_eq!(later.body["confirmations"], depth(latest, block, 3));
    // The on-chain batch id names the same batch; auditors and admins see it too.
    let auditor = api.key(Role::Auditor, "alice").await;
    let by_chain_id = api
        .get(&format!("/v1/batches/{}", batch.batch.batchId), &auditor)
        .await;
    assert_eq!(by_chain_id.body, later.body);

    // Its payments are settled and point at it.
    for (p, position) in [(&first, 0), (&second, 1)] {
        let read = api.get(&format!("/v1/payments/{}", id_of(p)), &shop).await;
        assert_eq!(read.body["status"], "settled");
        assert_eq!(
            read.body["batch"],
            json!({
                "id": batch.id.to_string(),
                "batch_id": batch.batch.batchId.to_string(),
                "status": "settled",
                "position": position,
                "tx_hash": receipt.transaction_hash.to_string(),
                "block_number": block,
                "error": null,
            })
        );
    }

    // Other callers and malformed ids.
    let rival = api.key(Role::Integrator, "rival").await;
    api.get(&format!("/v1/batches/{}", batch.id), &rival)
        .await
        .assert_problem(404, "not_found");
    let merchant = api.key(Role::Merchant, &merchant()).await;
    api.get(&format!("/v1/batches/{}", batch.id), &merchant)
        .await
        .assert_problem(403, "forbidden");
    api.get(&format!("/v1/batches/{}", uuid::Uuid::new_v4()), &shop)
        .await
        .assert_problem(404, "not_found");
    api.get(&format!("/v1/batches/0x{}", "00".repeat(32)), &shop)
        .await
        .assert_problem(404, "not_found");
    for bad in [
        "42",
        "0x1234",
        "not-a-batch",
        &format!("0x{}", "zz".repeat(32)),
    ] {
        api.get(&format!("/v1/batches/{bad}"), &shop)
            .await
            .assert_problem(400, "invalid_parameter");
    }
    api.send(
        Method::GET,
        &format!("/v1/batches/{}", batch.id),
        None,
        &[],
        None,
    )
    .await
    .assert_problem(401, "unauthenticated");
    api.db.cleanup().await.expect("cleanup");
}

/// Confirmations of a block `block` when the head was `latest` and `more` blocks were mined since.
fn depth(latest: u64, block: u64, more: u64) -> u64 {
    latest
        .checked_add(more)
        .and_then(|head| head.checked_add(1))
        .and_then(|head| head.checked_sub(block))
        .expect("the head is at or above the block")
}

fn without_times(body: &Value) -> Value {
    let mut body = body.clone();
    let object = body.as_object_mut().expect("object");
    object.remove("created_at").expect("created_at");
    object.remove("updated_at").expect("updated_at");
    body
}

#[tokio::test]
async fn a_reverted_batch_answers_its_typed_error() {
    let api = TestApi::start().await;
    let hsm = Hsm::new();
    let settlement = deploy(&api, &hsm).await;
    let contract = *settlement.address();
    // This funder never deposited: the batch reverts with InsufficientBalance.
    let broke = api.chain.addresses()[3];
    let shop = api.key(Role::Integrator, "shop").await;
    let p = created(
        &api,
        &shop,
        "f-1",
        &payment_from("4242", &broke.to_checksum(None)),
    )
    .await;
    let signed = sign_all(&api, &hsm, contract).await;
    assert_eq!(signed.len(), 1);
    submit_all(&api, &hsm, contract).await;

    let error = format!(
        "InsufficientBalance {{ token: 0x0000000000000000000000000000000000000000, account: {broke:?}, needed: 4242, available: 0 }}"
    );
    let answer = api
        .get(&format!("/v1/batches/{}", signed[0].id), &shop)
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    assert_eq!(answer.body["status"], "failed");
    assert_eq!(answer.body["error"], error.as_str());
    assert_eq!(answer.body["tx_hash"], Value::Null);
    assert_eq!(answer.body["block_number"], Value::Null);
    assert_eq!(answer.body["confirmations"], Value::Null);
    assert_eq!(answer.body["payment_count"], 1);
    assert_eq!(answer.body["total"], "4242");
    let read = api.get(&format!("/v1/payments/{}", id_of(&p)), &shop).await;
    assert_eq!(read.body["status"], "failed");
    assert_eq!(read.body["batch"]["status"], "failed");
    assert_eq!(read.body["batch"]["error"], error.as_str());
    api.db.cleanup().await.expect("cleanup");
}
