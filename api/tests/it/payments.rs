//! Payments: submit, replay, read, list and cancel, and every mistake a client can make.

use alloy::primitives::Address;
use reqwest::Method;
use serde_json::{Value, json};
use settle_api::Role;
use settle_relayer::Intake;
use sqlx::types::chrono::{DateTime, Utc};

use crate::{
    batches::{Hsm, sign_all},
    harness::{Answer, TestApi},
};

pub(crate) const NATIVE: &str = "0x0000000000000000000000000000000000000000";

/// An EIP-55 address of 20 equal bytes (bytes with letters, so the checksum shows in the case).
pub(crate) fn addr(byte: u8) -> String {
    Address::repeat_byte(byte).to_checksum(None)
}

pub(crate) fn merchant() -> String {
    addr(0xaa)
}

fn platform() -> String {
    addr(0xbb)
}

fn referrer() -> String {
    addr(0xcc)
}

pub(crate) fn funder() -> String {
    addr(0xdd)
}

/// A three-way payment of `amount` from `funder`: 90 % merchant, 7 % platform, 3 % referrer.
pub(crate) fn payment_from(amount: &str, funder: &str) -> Value {
    json!({
        "chain_id": 31337,
        "token": NATIVE,
        "funder": funder,
        "amount": amount,
        "splits": [
            {"payee": merchant(), "share": 900_000},
            {"payee": platform(), "share": 70_000},
            {"payee": referrer(), "share": 30_000},
        ],
    })
}

pub(crate) fn payment(amount: &str) -> Value {
    payment_from(amount, &funder())
}

/// POST /v1/payments with an idempotency key.
pub(crate) async fn create(api: &TestApi, token: &str, key: &str, body: &Value) -> Answer {
    api.send(
        Method::POST,
        "/v1/payments",
        Some(token),
        &[("idempotency-key", key)],
        Some(body),
    )
    .await
}

/// Creates a payment that must be accepted; answers its body.
pub(crate) async fn created(api: &TestApi, token: &str, key: &str, body: &Value) -> Value {
    let answer = create(api, token, key, body).await;
    assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    answer.body
}

pub(crate) fn id_of(payment: &Value) -> String {
    payment["id"].as_str().expect("id").to_owned()
}

/// A time the API wrote: RFC 3339, UTC, microseconds, within a minute of now.
pub(crate) fn assert_recent(value: &Value) {
    let text = value.as_str().expect("a time");
    assert_eq!(text.len(), 27, "{text}");
    assert!(text.ends_with('Z'), "{text}");
    let at = DateTime::parse_from_rfc3339(text).expect("rfc 3339");
    let age = Utc::now().signed_duration_since(at.with_timezone(&Utc));
    assert!(age.num_seconds().abs() < 60, "{text} is not recent");
}

/// `payment` without its server-made values (id and times), which are checked separately.
pub(crate) fn without_ids(payment: &Value) -> Value {
    let mut payment = payment.clone();
    for field in ["id", "created_at", "updated_at"] {
        payment
            .as_object_mut()
            .expect("object")
            .remove(field)
            .expect(field);
    }
    payment
}

#[tokio::test]
async fn a_payment_is_accepted_read_and_replayed() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let body = payment("1500001");

    let first = create(&api, &shop, "order-1", &body).await;
    assert_eq!(first.status.as_u16(), 201, "{first:?}");
    assert_eq!(first.content_type, "application/json");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(
        without_ids(&first.body),
        json!({
            "payment_id": Intake::payment_id("shop", "order-1").to_string(),
            "integrator": "shop",
            "idempotency_key": "order-1",
            "status": "accepted",
            "chain_id": 31337,
            "token": NATIVE,
            "funder": funder(),
            "amount": "1500001",
            // Legs 1 and 2 take the floor of their share; leg 0 the rest, so credits sum to the amount.
            "splits": [
                {"payee": merchant(), "share": 900_000, "credit": "1350001"},
                {"payee": platform(), "share": 70_000, "credit": "105000"},
                {"payee": referrer(), "share": 30_000, "credit": "45000"},
            ],
            "batch": null,
        })
    );
    assert_recent(&first.body["created_at"]);
    assert_eq!(first.body["created_at"], first.body["updated_at"]);
    let id = id_of(&first.body);
    assert_eq!(
        uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(),
        4
    );

    // The same key and body: the same payment, 200 instead of 201, marked as a replay.
    let again = create(&api, &shop, "order-1", &body).await;
    assert_eq!(again.status.as_u16(), 200, "{again:?}");
    assert_eq!(again.body, first.body);
    assert_eq!(
        again.headers.get("idempotent-replayed").expect("marked"),
        "true"
    );

    let read = api.get(&format!("/v1/payments/{id}"), &shop).await;
    assert_eq!(read.status.as_u16(), 200, "{read:?}");
    assert_eq!(read.body, first.body);

    // Keys are per integrator: another integrator may use "order-1" for its own payment.
    let other = api.key(Role::Integrator, "other-shop").await;
    let theirs = created(&api, &other, "order-1", &body).await;
    assert_ne!(theirs["id"], first.body["id"]);
    assert_eq!(
        theirs["payment_id"],
        Intake::payment_id("other-shop", "order-1").to_string()
    );
    api.db.cleanup().await.expect("cleanup");
}

/// Sends `body` to POST /v1/payments as `token` with key `key`, and checks the problem.
async fn refused(
    api: &TestApi,
    token: &str,
    key: &str,
    body: &Value,
    status: u16,
    code: &str,
) -> String {
    let answer = create(api, token, key, body).await;
    answer.assert_problem(status, code);
    answer.body["detail"].as_str().expect("detail").to_owned()
}

#[tokio::test]
async fn every_submission_mistake_has_its_code() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let good = payment("1000");

    // The body's shape.
    let answer = api
        .send_raw_with(
            Method::POST,
            "/v1/payments",
            &shop,
            &[("idempotency-key", "k-raw")],
            "application/json",
            b"{\"chain_id\": ".to_vec(),
        )
        .await;
    answer.assert_problem(400, "malformed_body");
    let mut unknown = good.clone();
    unknown["memo"] = json!("hi");
    let detail = refused(&api, &shop, "k-unknown", &unknown, 400, "unknown_field").await;
    assert!(detail.contains("unknown field `memo`"), "{detail}");
    let mut number = good.clone();
    number["amount"] = json!(5);
    let detail = refused(&api, &shop, "k-number", &number, 400, "wrong_type").await;
    assert!(
        detail.contains("invalid type: integer `5`, expected a string"),
        "{detail}"
    );
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("funder");
    refused(&api, &shop, "k-missing", &missing, 400, "wrong_type").await;
    let answer = api
        .send_raw_with(
            Method::POST,
            "/v1/payments",
            &shop,
            &[("idempotency-key", "k-raw")],
            "text/plain",
            good.to_string().into_bytes(),
        )
        .await;
    answer.assert_problem(415, "unsupported_media_type");
    // Over the 64 KiB body limit.
    let mut padded = good.clone();
    padded["splits"] = json!(vec![json!({"payee": merchant(), "share": 1}); 2_000]);
    let answer = api
        .send_raw_with(
            Method::POST,
            "/v1/payments",
            &shop,
            &[("idempotency-key", "k-raw")],
            "application/json",
            padded.to_string().into_bytes(),
        )
        .await;
    answer.assert_problem(413, "body_too_large");

    // The values.
    let mut fraction = good.clone();
    fraction["amount"] = json!("1.5");
    let detail = refused(&api, &shop, "k-fraction", &fraction, 422, "invalid_amount").await;
    assert_eq!(
        detail,
        "`amount` = \"1.5\" is not a decimal integer; write the amount in base units as a decimal integer string, e.g. \"1500000\""
    );
    let mut zero = good.clone();
    zero["amount"] = json!("0");
    refused(&api, &shop, "k-zero", &zero, 422, "invalid_amount").await;
    let mut lower = good.clone();
    lower["funder"] = json!(funder().to_lowercase());
    let detail = refused(&api, &shop, "k-lower", &lower, 422, "invalid_address").await;
    assert_eq!(
        detail,
        format!(
            "`funder`: {:?} is not an EIP-55 address: the checksummed form is {}",
            funder().to_lowercase(),
            funder()
        )
    );
    let mut lower_payee = good.clone();
    lower_payee["splits"][2]["payee"] = json!(referrer().to_lowercase());
    let detail = refused(
        &api,
        &shop,
        "k-lower-payee",
        &lower_payee,
        422,
        "invalid_address",
    )
    .await;
    assert!(detail.starts_with("`splits[2].payee`: "), "{detail}");
    let mut zero_payee = good.clone();
    zero_payee["splits"][1]["payee"] = json!(NATIVE);
    let detail = refused(
        &api,
        &shop,
        "k-zero-payee",
        &zero_payee,
        422,
        "invalid_address",
    )
    .await;
    assert_eq!(
        detail,
        "leg 1: the payee is the zero address; credits to it could never be withdrawn"
    );
    let mut short = good.clone();
    short["splits"][0]["share"] = json!(899_999);
    let detail = refused(&api, &shop, "k-short", &short, 422, "shares_mismatch").await;
    assert_eq!(
        detail,
        "shares sum to 999999, not 1000000 (shares are parts per million)"
    );
    let mut zero_share = good.clone();
    zero_share["splits"] = json!([
        {"payee": merchant(), "share": 1_000_000},
        {"payee": platform(), "share": 0},
    ]);
    refused(
        &api,
        &shop,
        "k-zero-share",
        &zero_share,
        422,
        "shares_mismatch",
    )
    .await;
    let mut none = good.clone();
    none["splits"] = json!([]);
    refused(&api, &shop, "k-none", &none, 422, "shares_mismatch").await;
    let mut twice = good.clone();
    twice["splits"] = json!([
        {"payee": merchant(), "share": 500_000},
        {"payee": merchant(), "share": 500_000},
    ]);
    let detail = refused(&api, &shop, "k-twice", &twice, 422, "duplicate_payee").await;
    assert_eq!(
        detail,
        format!(
            "leg 1: payee {} appears twice; merge its shares into one split",
            merchant()
        )
    );
    let mut five = good.clone();
    five["splits"] = json!(
        (1u8..=5)
            .map(|b| json!({"payee": addr(b.wrapping_mul(0x1b)), "share": 200_000}))
            .collect::<Vec<_>>()
    );
    let detail = refused(&api, &shop, "k-five", &five, 422, "too_many_payees").await;
    assert_eq!(detail, "5 payees; at most 4 are allowed per payment");
    let mut token = good.clone();
    token["token"] = json!(addr(0xee));
    let detail = refused(&api, &shop, "k-token", &token, 422, "unknown_token").await;
    assert_eq!(
        detail,
        format!(
            "token {} on chain 31337 is not supported; ask the operator which tokens are accepted",
            addr(0xee)
        )
    );
    let mut chain = good.clone();
    chain["chain_id"] = json!(1);
    refused(&api, &shop, "k-chain", &chain, 422, "unknown_token").await;
    let mut huge = good.clone();
    huge["amount"] = json!("1000000000000000000000001");
    let detail = refused(&api, &shop, "k-huge", &huge, 422, "limit_exceeded").await;
    assert!(detail.contains("the token's per-payment limit"), "{detail}");

    // The idempotency key.
    let answer = api
        .send(Method::POST, "/v1/payments", Some(&shop), &[], Some(&good))
        .await;
    answer.assert_problem(400, "idempotency_key_missing");
    refused(&api, &shop, "  ", &good, 400, "idempotency_key_missing").await;
    refused(
        &api,
        &shop,
        &"k".repeat(256),
        &good,
        400,
        "invalid_parameter",
    )
    .await;
    created(&api, &shop, "k-1", &good).await;
    let mut other = good.clone();
    other["amount"] = json!("1001");
    let detail = refused(&api, &shop, "k-1", &other, 409, "idempotency_conflict").await;
    assert_eq!(
        detail,
        "the idempotency key \"k-1\" was used before with a different request; use a new key for a new payment"
    );

    // Who may submit: the key is checked before anything else.
    let merchant_key = api.key(Role::Merchant, &merchant()).await;
    let answer = api
        .send(
            Method::POST,
            "/v1/payments",
            Some(&merchant_key),
            &[],
            Some(&json!({})),
        )
        .await;
    answer.assert_problem(403, "forbidden");
    for role in [Role::Auditor, Role::Admin] {
        let key = api.key(role, "someone").await;
        refused(&api, &key, "k-2", &good, 403, "forbidden").await;
    }
    let answer = api
        .send(
            Method::POST,
            "/v1/payments",
            None,
            &[("idempotency-key", "k-3")],
            Some(&good),
        )
        .await;
    answer.assert_problem(401, "unauthenticated");

    // Nothing refused was stored: the one accepted payment is all there is.
    let list = api.get("/v1/payments", &shop).await;
    assert_eq!(
        list.body["payments"].as_array().expect("list").len(),
        1,
        "{list:?}"
    );
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn integrator_limits_name_the_limit_and_what_remains() {
    let api = TestApi::start().await;
    // The harness gives "small-shop" a 1,000 single-payment limit and a 1,500 rolling daily cap.
    let small = api.key(Role::Integrator, "small-shop").await;
    let detail = refused(&api, &small, "a", &payment("1001"), 422, "limit_exceeded").await;
    assert_eq!(
        detail,
        "the amount 1001 is above this integrator's single-payment limit of 1000"
    );
    created(&api, &small, "b", &payment("1000")).await;
    let detail = refused(&api, &small, "c", &payment("600"), 422, "limit_exceeded").await;
    assert_eq!(
        detail,
        "the amount 600 exceeds this integrator's rolling 24-hour cap for this token; 500 remains"
    );
    // A cancelled payment no longer counts against the cap.
    let d = created(&api, &small, "d", &payment("500")).await;
    refused(&api, &small, "e", &payment("1"), 422, "limit_exceeded").await;
    let cancel = api
        .send(
            Method::POST,
            &format!("/v1/payments/{}/cancel", id_of(&d)),
            Some(&small),
            &[],
            None,
        )
        .await;
    assert_eq!(cancel.status.as_u16(), 200, "{cancel:?}");
    created(&api, &small, "e", &payment("500")).await;
    api.db.cleanup().await.expect("cleanup");
}

fn bulk_item(key: &str, amount: &str) -> Value {
    let mut item = payment(amount);
    item["idempotency_key"] = json!(key);
    item
}

async fn bulk(api: &TestApi, token: &str, items: Vec<Value>) -> Answer {
    api.send(
        Method::POST,
        "/v1/payments/bulk",
        Some(token),
        &[],
        Some(&json!({ "payments": items })),
    )
    .await
}

#[tokio::test]
async fn bulk_submissions_are_atomic_and_replay() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let items: Vec<Value> = (0..3)
        .map(|i| bulk_item(&format!("b-{i}"), "1000"))
        .collect();
    let first = bulk(&api, &shop, items.clone()).await;
    assert_eq!(first.status.as_u16(), 201, "{first:?}");
    assert_eq!(
        (
            first.body["created"].clone(),
            first.body["replayed"].clone()
        ),
        (json!(3), json!(0))
    );
    let payments = first.body["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 3);
    for (i, p) in payments.iter().enumerate() {
        assert_eq!(without_ids(p), fresh_view(&format!("b-{i}")));
        // The same payment as the single read answers.
        let read = api.get(&format!("/v1/payments/{}", id_of(p)), &shop).await;
        assert_eq!(&read.body, p);
    }

    // All replayed: 200 and the same payments.
    let again = bulk(&api, &shop, items.clone()).await;
    assert_eq!(again.status.as_u16(), 200, "{again:?}");
    assert_eq!(again.body["payments"], first.body["payments"]);
    assert_eq!(
        (
            again.body["created"].clone(),
            again.body["replayed"].clone()
        ),
        (json!(0), json!(3))
    );

    // One bad payment refuses the whole request, naming it; the good new one is not stored.
    let mut mixed = vec![bulk_item("b-new", "1000"), bulk_item("b-bad", "1000")];
    mixed[1]["splits"][0]["share"] = json!(1);
    let answer = bulk(&api, &shop, mixed).await;
    answer.assert_problem(422, "shares_mismatch");
    assert_eq!(
        answer.body["detail"],
        "payments[1]: shares sum to 100001, not 1000000 (shares are parts per million)"
    );
    let mut lower = vec![bulk_item("b-new", "1000")];
    lower[0]["token"] = json!(addr(0xee).to_lowercase());
    let answer = bulk(&api, &shop, lower).await;
    answer.assert_problem(422, "invalid_address");
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .starts_with("`payments[0].token`: "),
        "{answer:?}"
    );
    let answer = bulk(
        &api,
        &shop,
        vec![bulk_item("b-new", "1000"), bulk_item("b-0", "999")],
    )
    .await;
    answer.assert_problem(409, "idempotency_conflict");
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .starts_with("payments[1]: "),
        "{answer:?}"
    );
    let answer = bulk(
        &api,
        &shop,
        vec![bulk_item("b-x", "1000"), bulk_item("b-x", "1000")],
    )
    .await;
    answer.assert_problem(409, "idempotency_conflict");
    let answer = bulk(&api, &shop, vec![bulk_item("", "1000")]).await;
    answer.assert_problem(400, "idempotency_key_missing");
    let answer = bulk(&api, &shop, vec![bulk_item("nul\u{0}key", "1000")]).await;
    answer.assert_problem(400, "invalid_parameter");
    let answer = bulk(&api, &shop, vec![bulk_item(&"k".repeat(256), "1000")]).await;
    answer.assert_problem(400, "invalid_parameter");
    assert_eq!(
        answer.body["detail"],
        "payments[0]: the idempotency key must be 1 to 255 bytes"
    );
    let mut unknown = bulk_item("b-u", "1000");
    unknown["memo"] = json!(1);
    bulk(&api, &shop, vec![unknown])
        .await
        .assert_problem(400, "unknown_field");
    let small = api.key(Role::Integrator, "small-shop").await;
    let answer = bulk(
        &api,
        &small,
        vec![bulk_item("s-1", "1000"), bulk_item("s-2", "1000")],
    )
    .await;
    answer.assert_problem(422, "limit_exceeded");
    assert_eq!(
        answer.body["detail"],
        "payments[1]: the amount 1000 exceeds this integrator's rolling 24-hour cap for this token; 500 remains"
    );
    let merchant_key = api.key(Role::Merchant, &merchant()).await;
    bulk(&api, &merchant_key, vec![bulk_item("m", "1")])
        .await
        .assert_problem(403, "forbidden");
    // 1,001 payments: over the 64 KiB body limit first.
    let many: Vec<Value> = (0..1_001)
        .map(|i| bulk_item(&format!("m-{i}"), "1"))
        .collect();
    bulk(&api, &shop, many)
        .await
        .assert_problem(413, "body_too_large");

    let list = api.get("/v1/payments?limit=100", &shop).await;
    assert_eq!(
        list.body["payments"].as_array().expect("list").len(),
        3,
        "{list:?}"
    );
    api.db.cleanup().await.expect("cleanup");
}

/// The view, without ids and times, of a fresh payment of 1000 made by [`payment`] under `key`.
fn fresh_view(key: &str) -> Value {
    json!({
        "payment_id": Intake::payment_id("shop", key).to_string(),
        "integrator": "shop",
        "idempotency_key": key,
        "status": "accepted",
        "chain_id": 31337,
        "token": NATIVE,
        "funder": funder(),
        "amount": "1000",
        "splits": [
            {"payee": merchant(), "share": 900_000, "credit": "900"},
            {"payee": platform(), "share": 70_000, "credit": "70"},
            {"payee": referrer(), "share": 30_000, "credit": "30"},
        ],
        "batch": null,
    })
}

#[tokio::test]
async fn more_than_a_thousand_payments_in_one_request_is_over_the_limit() {
    let api = TestApi::start_with(|c| settle_api::ApiConfig {
        max_body_bytes: 4 * 1024 * 1024,
        ..c
    })
    .await;
    let shop = api.key(Role::Integrator, "shop").await;
    let many: Vec<Value> = (0..1_001)
        .map(|i| bulk_item(&format!("m-{i}"), "1"))
        .collect();
    let answer = bulk(&api, &shop, many).await;
    answer.assert_problem(422, "limit_exceeded");
    assert_eq!(
        answer.body["detail"],
        "1001 payments in one request; at most 1000 are allowed, send the rest in another request"
    );
    let thousand: Vec<Value> = (0..1_000)
        .map(|i| bulk_item(&format!("m-{i}"), "1"))
        .collect();
    let answer = bulk(&api, &shop, thousand).await;
    assert_eq!(answer.status.as_u16(), 201);
    assert_eq!(answer.body["created"], 1_000);
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn payments_are_visible_to_their_integrator_auditors_and_admins_only() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let rival = api.key(Role::Integrator, "rival").await;
    let auditor = api.key(Role::Auditor, "alice").await;
    let admin = api.key(Role::Admin, "ops").await;
    let merchant_key = api.key(Role::Merchant, &merchant()).await;
    let mine = created(&api, &shop, "p-1", &payment("1000")).await;
    let path = format!("/v1/payments/{}", id_of(&mine));

    for key in [&auditor, &admin] {
        let read = api.get(&path, key).await;
        assert_eq!(read.status.as_u16(), 200, "{read:?}");
        assert_eq!(read.body, mine);
    }
    // Another integrator's payment does not exist for it.
    let hidden = api.get(&path, &rival).await;
    hidden.assert_problem(404, "not_found");
    assert_eq!(
        hidden.body["detail"],
        format!("no payment {}", id_of(&mine))
    );
    api.get(&path, &merchant_key)
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/payments/not-a-uuid", &shop)
        .await
        .assert_problem(400, "invalid_parameter");
    api.get(&format!("/v1/payments/{}", uuid::Uuid::new_v4()), &shop)
        .await
        .assert_problem(404, "not_found");
    api.send(Method::GET, &path, None, &[], None)
        .await
        .assert_problem(401, "unauthenticated");
    // Listings are scoped the same way.
    let theirs = api.get("/v1/payments", &rival).await;
    assert_eq!(theirs.body, json!({"payments": [], "next_cursor": null}));
    let all = api.get("/v1/payments", &auditor).await;
    assert_eq!(all.body, json!({"payments": [mine], "next_cursor": null}));
    api.get("/v1/payments", &merchant_key)
        .await
        .assert_problem(403, "forbidden");
    api.db.cleanup().await.expect("cleanup");
}

/// Every page of `path` (which has a query string) as `token`, following `next_cursor`.
async fn walk(api: &TestApi, path: &str, token: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let page = api.get(&url, token).await;
        assert_eq!(page.status.as_u16(), 200, "{page:?}");
        pages.push(page.body["payments"].as_array().expect("payments").clone());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 100, "the walk does not end");
    }
}

#[tokio::test]
async fn pages_walk_every_payment_exactly_once_and_filters_apply() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let rival = api.key(Role::Integrator, "rival").await;
    // 23 payments in one transaction (one created_at: paging must not rely on time), then 2 more.
    let items: Vec<Value> = (0..23)
        .map(|i| bulk_item(&format!("w-{i:02}"), "1000"))
        .collect();
    let first = bulk(&api, &shop, items).await;
    assert_eq!(first.status.as_u16(), 201, "{first:?}");
    let later_a = created(&api, &shop, "w-23", &payment("1000")).await;
    let mut to_other = payment("1000");
    to_other["splits"] = json!([{"payee": addr(0xab), "share": 1_000_000}]);
    let later_b = created(&api, &shop, "w-24", &to_other).await;
    created(&api, &rival, "r-1", &payment("1000")).await;

    let pages = walk(&api, "/v1/payments?limit=5", &shop).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 5]
    );
    let keys: Vec<String> = pages
        .iter()
        .flatten()
        .map(|p| p["idempotency_key"].as_str().expect("key").to_owned())
        .collect();
    // Newest first, each exactly once.
    let expected: Vec<String> = (0..25).rev().map(|i| format!("w-{i:02}")).collect();
    assert_eq!(keys, expected);
    let pages = walk(&api, "/v1/payments?limit=7", &shop).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7, 7, 7, 4]
    );

    // Status: cancel two, find exactly those.
    for p in [&later_a, &later_b] {
        let cancel = api
            .send(
                Method::POST,
                &format!("/v1/payments/{}/cancel", id_of(p)),
                Some(&shop),
                &[],
                None,
            )
            .await;
        assert_eq!(cancel.status.as_u16(), 200, "{cancel:?}");
    }
    let cancelled = walk(&api, "/v1/payments?status=cancelled&limit=1", &shop).await;
    let ids: Vec<&Value> = cancelled.iter().flatten().map(|p| &p["id"]).collect();
    assert_eq!(ids, vec![&later_b["id"], &later_a["id"]]);
    let accepted = walk(&api, "/v1/payments?status=accepted&limit=100", &shop).await;
    assert_eq!(accepted.concat().len(), 23);

    // Merchant: only the payment whose split pays 0xab...
    let paid = api
        .get(&format!("/v1/payments?merchant={}", addr(0xab)), &shop)
        .await;
    let paid = paid.body["payments"].as_array().expect("list").clone();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["id"], later_b["id"]);
    let paid = walk(
        &api,
        &format!("/v1/payments?merchant={}&limit=10", merchant()),
        &shop,
    )
    .await;
    assert_eq!(paid.concat().len(), 24);

    // Time: `from` includes its instant, `to` excludes it.
    let at = later_a["created_at"].as_str().expect("time");
    let since = walk(&api, &format!("/v1/payments?from={at}&limit=100"), &shop).await;
    assert_eq!(since.concat().len(), 2);
    let before = walk(&api, &format!("/v1/payments?to={at}&limit=100"), &shop).await;
    assert_eq!(before.concat().len(), 23);
    let none = api
        .get("/v1/payments?from=2099-01-01T00:00:00Z", &shop)
        .await;
    assert_eq!(none.body, json!({"payments": [], "next_cursor": null}));

    // An auditor walks everyone's.
    let auditor = api.key(Role::Auditor, "alice").await;
    let everything = walk(&api, "/v1/payments?limit=9", &auditor).await;
    assert_eq!(everything.concat().len(), 26);

    // Malformed parameters.
    for bad in [
        "/v1/payments?cursor=bogus",
        "/v1/payments?cursor=d0000000000000001",
        "/v1/payments?limit=0",
        "/v1/payments?limit=101",
        "/v1/payments?limit=many",
        "/v1/payments?status=lost",
        "/v1/payments?sort=asc",
        "/v1/payments?from=yesterday",
        "/v1/payments?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
    ] {
        api.get(bad, &shop)
            .await
            .assert_problem(400, "invalid_parameter");
    }
    let lower = api
        .get(
            &format!("/v1/payments?merchant={}", merchant().to_lowercase()),
            &shop,
        )
        .await;
    lower.assert_problem(400, "invalid_parameter");
    assert!(
        lower.body["detail"]
            .as_str()
            .expect("detail")
            .starts_with("`merchant`: "),
        "{lower:?}"
    );
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn a_payment_can_be_cancelled_until_it_is_batched() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let rival = api.key(Role::Integrator, "rival").await;
    let auditor = api.key(Role::Auditor, "alice").await;
    let admin = api.key(Role::Admin, "ops").await;
    let first = created(&api, &shop, "c-1", &payment("1000")).await;
    let second = created(&api, &shop, "c-2", &payment("2000")).await;
    let third = created(&api, &shop, "c-3", &payment("3000")).await;
    let cancel = |p: &Value, token: &str| {
        let path = format!("/v1/payments/{}/cancel", id_of(p));
        let token = token.to_owned();
        let api = &api;
        async move { api.send(Method::POST, &path, Some(&token), &[], None).await }
    };

    // Only its integrator (or an admin) may cancel; for another integrator it does not exist.
    cancel(&first, &rival)
        .await
        .assert_problem(404, "not_found");
    cancel(&first, &auditor)
        .await
        .assert_problem(403, "forbidden");
    api.send(
        Method::POST,
        "/v1/payments/nope/cancel",
        Some(&shop),
        &[],
        None,
    )
    .await
    .assert_problem(400, "invalid_parameter");
    api.send(
        Method::POST,
        &format!("/v1/payments/{}/cancel", uuid::Uuid::new_v4()),
        Some(&shop),
        &[],
        None,
    )
    .await
    .assert_problem(404, "not_found");

    let done = cancel(&first, &shop).await;
    assert_eq!(done.status.as_u16(), 200, "{done:?}");
    let mut expected = without_ids(&first);
    expected["status"] = json!("cancelled");
    assert_eq!(without_ids(&done.body), expected);
    assert_eq!(done.body["id"], first["id"]);
    assert_eq!(done.body["created_at"], first["created_at"]);
    assert_recent(&done.body["updated_at"]);
    // A retried cancel answers the same.
    let again = cancel(&first, &shop).await;
    assert_eq!(again.status.as_u16(), 200, "{again:?}");
    assert_eq!(again.body, done.body);
    // An admin may cancel any integrator's.
    let by_admin = cancel(&third, &admin).await;
    assert_eq!(by_admin.body["status"], "cancelled", "{by_admin:?}");

    // The batcher signs what is left (only the second); then it is no longer cancellable.
    let hsm = Hsm::new();
    let signed = sign_all(&api, &hsm, api.contract).await;
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].instructions.len(), 1);
    assert_eq!(signed[0].instructions[0].to_string(), id_of(&second));
    let refused = cancel(&second, &shop).await;
    refused.assert_problem(409, "not_cancellable");
    assert_eq!(
        refused.body["detail"],
        format!(
            "payment {} is signed; only an accepted payment (not yet in a batch) can be cancelled",
            id_of(&second)
        )
    );
    let read = api
        .get(&format!("/v1/payments/{}", id_of(&second)), &shop)
        .await;
    assert_eq!(read.body["status"], "signed");
    assert_eq!(
        read.body["batch"],
        json!({
            "id": signed[0].id.to_string(),
            "batch_id": signed[0].batch.batchId.to_string(),
            "status": "signed",
            "position": 0,
            "tx_hash": null,
            "block_number": null,
            "error": null,
        })
    );
    // The cancelled one stayed out of the batch.
    let read = api
        .get(&format!("/v1/payments/{}", id_of(&first)), &shop)
        .await;
    assert_eq!(read.body, done.body);
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn the_new_routes_document_their_problems_and_security() {
    let api = TestApi::start().await;
    let openapi = api
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await
        .body;
    let routes = [
        ("/v1/payments", "post"),
        ("/v1/payments", "get"),
        ("/v1/payments/bulk", "post"),
        ("/v1/payments/{id}", "get"),
        ("/v1/payments/{id}/cancel", "post"),
        ("/v1/batches/{id}", "get"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{id}/deliveries", "get"),
    ];
    for (path, method) in routes {
        let operation = &openapi["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert_eq!(
            operation["security"],
            json!([{"api_key": []}]),
            "{method} {path}"
        );
        let responses = operation["responses"].as_object().expect("responses");
        for status in ["401", "403", "429", "500"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        for (status, response) in responses {
            let content = response["content"].as_object().expect("content");
            let problem = status.starts_with('4') || status.starts_with('5');
            assert_eq!(
                content.contains_key("application/problem+json"),
                problem,
                "{method} {path} {status}"
            );
        }
    }
    let create = &openapi["paths"]["/v1/payments"]["post"];
    assert_eq!(create["parameters"][0]["name"], "Idempotency-Key");
    assert_eq!(create["parameters"][0]["in"], "header");
    assert!(openapi["components"]["schemas"]["Event"].is_object());
    api.db.cleanup().await.expect("cleanup");
}
