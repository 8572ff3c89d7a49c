//! Reconciliation runs through the API: listed, fetched, and only for auditors.

use reqwest::Method;
use settle_api::Role;
use settle_relayer::{RpcConfig, RpcPool};

use crate::onchain::{OnChain, PLATFORM, WHOLE, pay};

#[tokio::test]
async fn auditors_read_runs_and_their_findings() {
    let chain = OnChain::start().await;
    let settled = chain
        .settle(0, &[pay("r1", 1_000, &[(PLATFORM, WHOLE)])])
        .await;
    chain.index().await;
    // Nothing was signed by the relayer here: the batch is unexpected on chain.
    let rpc = RpcPool::new(&[chain.api.chain.endpoint()], RpcConfig::default()).expect("rpc");
    let run =
        settle_indexer::reconcile::reconcile(chain.api.db.pool(), &rpc, 31337, chain.contract)
            .await
            .expect("reconciled");
    assert_eq!(run.findings.len(), 1);

    let api = &chain.api;
    let auditor = api.key(Role::Auditor, "alice").await;
    let list = api.get("/v1/reconciliation/runs", &auditor).await;
    assert_eq!(list.status.as_u16(), 200, "{list:?}");
    let runs = list.body["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], run.id.to_string());
    assert_eq!(runs[0]["finding_count"], 1);
    assert_eq!(runs[0]["contract"], chain.contract.to_checksum(None));
    let finding = &runs[0]["findings"][0];
    assert_eq!(finding["kind"], "unexpected_onchain");
    assert_eq!(finding["batch_id"], settled.batch.batchId.to_string());
    assert_eq!(finding["actual"], "1000");

    let one = api
        .get(&format!("/v1/reconciliation/runs/{}", run.id), &auditor)
        .await;
    assert_eq!(one.status.as_u16(), 200);
    assert_eq!(one.body, runs[0]);

    let merchant = api.key(Role::Merchant, &PLATFORM.to_checksum(None)).await;
    api.get("/v1/reconciliation/runs", &merchant)
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/reconciliation/runs/not-a-uuid", &auditor)
        .await
        .assert_problem(400, "invalid_parameter");
    api.get(
        &format!("/v1/reconciliation/runs/{}", uuid::Uuid::nil()),
        &auditor,
    )
    .await
    .assert_problem(404, "not_found");
    api.send(Method::GET, "/v1/reconciliation/runs", None, &[], None)
        .await
        .assert_problem(401, "unauthenticated");
}
