//! Operations routes, authentication, rate limits and the error contract.

use reqwest::Method;
use serde_json::json;
use settle_api::Role;

use crate::harness::TestApi;

#[tokio::test]
async fn health_readiness_openapi_and_docs_answer() {
    let api = TestApi::start().await;
    let health = api.send(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status.as_u16(), 200);
    assert_eq!(health.body, json!({"status": "ok"}));

    let ready = api.send(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status.as_u16(), 200, "{ready:?}");
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["database"], "ok");
    assert!(
        ready.body["chain"]
            .as_str()
            .expect("text")
            .starts_with("ok, block ")
    );

    let openapi = api
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    assert_eq!(openapi.status.as_u16(), 200);
    assert_eq!(openapi.body["info"]["title"], "settle");
    assert!(openapi.body["paths"]["/readyz"]["get"].is_object());
    let docs = api.send(Method::GET, "/docs", None, &[], None).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(docs.text.contains("<code>/readyz</code>"), "{}", docs.text);

    let metrics = api.send(Method::GET, "/metrics", None, &[], None).await;
    assert_eq!(metrics.status.as_u16(), 200);
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "settle_relayer_queue_depth 0"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("settle_api_responses_total{class=\"2xx_3xx\"}")
    );
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn readiness_fails_when_the_chain_is_gone() {
    let mut api = TestApi::start().await;
    // Replace the chain with a fresh one and drop it: the configured endpoint no longer answers.
    let gone = std::mem::replace(
        &mut api.chain,
        settle_testkit::TestChain::start().expect("anvil"),
    );
    drop(gone);
    let ready = api.send(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status.as_u16(), 503, "{ready:?}");
    assert_eq!(ready.body["status"], "not_ready");
    assert_eq!(ready.body["database"], "ok");
    assert!(
        ready.body["chain"]
            .as_str()
            .expect("text")
            .starts_with("unreachable")
    );
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn unknown_routes_methods_and_request_ids() {
    let api = TestApi::start().await;
    let missing = api
        .send(Method::GET, "/v1/nothing-here", None, &[], None)
        .await;
    missing.assert_problem(404, "not_found");
    let wrong = api.send(Method::POST, "/healthz", None, &[], None).await;
    wrong.assert_problem(405, "method_not_allowed");
    // A request id is made when the client sends none, and echoed when it does.
    let made = missing
        .headers
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .expect("ascii");
    assert_eq!(made.len(), 36, "{made}");
    let echoed = api
        .send(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "trace-me-42")],
            None,
        )
        .await;
    assert_eq!(
        echoed.headers.get("x-request-id").expect("echoed"),
        "trace-me-42"
    );
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn keys_authenticate_and_rate_limits_answer_429_with_retry_after() {
    let api = TestApi::start_with(|c| settle_api::ApiConfig {
        rate_per_sec: 1,
        burst: 2,
        ..c
    })
    .await;
    let token = api.key(Role::Auditor, "alice").await;
    // A route that needs a key: the metrics of... any authenticated route; use an unknown key first.
    let unknown = api
        .get(
            "/v1/whoami",
            "settle_000000000000_000000000000000000000000000000000000000000000000",
        )
        .await;
    unknown.assert_problem(401, "unauthenticated");
    let none = api.send(Method::GET, "/v1/whoami", None, &[], None).await;
    none.assert_problem(401, "unauthenticated");
    let malformed = api
        .send(
            Method::GET,
            "/v1/whoami",
            None,
            &[("authorization", "Basic abc")],
            None,
        )
        .await;
    malformed.assert_problem(401, "unauthenticated");
    let me = api.get("/v1/whoami", &token).await;
    assert_eq!(me.status.as_u16(), 200, "{me:?}");
    assert_eq!(me.body, json!({"role": "auditor", "owner": "alice"}));
    let _second = api.get("/v1/whoami", &token).await;
    let limited = api.get("/v1/whoami", &token).await;
    limited.assert_problem(429, "rate_limited");
    assert_eq!(
        limited.headers.get("retry-after").expect("retry-after"),
        "1"
    );
    // Revoked keys are unknown.
    let other = settle_api::auth::create_key(api.db.pool(), Role::Integrator, "shop")
        .await
        .expect("key");
    assert!(
        settle_api::auth::revoke_key(api.db.pool(), other.id)
            .await
            .expect("revoked")
    );
    api.get("/v1/whoami", &other.token)
        .await
        .assert_problem(401, "unauthenticated");
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn merchant_keys_need_an_eip55_owner() {
    let api = TestApi::start().await;
    let err = settle_api::auth::create_key(api.db.pool(), Role::Merchant, "0xabc")
        .await
        .expect_err("bad owner");
    assert_eq!(
        err.to_string(),
        "a merchant key's owner is the merchant's EIP-55 address, not \"0xabc\""
    );
    api.db.cleanup().await.expect("cleanup");
}
