//! Webhooks: registration, and deliveries to a real HTTP receiver on a loopback port that is
//! signed, retried after a failure and logged.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use settle_api::{
    Role,
    webhooks::{DeliveryConfig, Worker},
};
use sha2::Sha256;

use crate::{
    harness::{Answer, TestApi},
    payments::{assert_recent, created, id_of, payment},
};

/// What the receiver got: each request's signature header and body.
#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<(String, String)>>>,
    /// Answer 500 to this many requests first, then 200 (`usize::MAX`: always 500).
    fail_first: usize,
}

impl Inbox {
    fn received(&self) -> Vec<(String, String)> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn hook(State(inbox): State<Inbox>, headers: HeaderMap, body: String) -> StatusCode {
    let signature = headers
        .get("settle-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut received = inbox
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    received.push((signature, body));
    if received.len() <= inbox.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// An HTTP receiver on a loopback port; stops with the returned guard.
struct Receiver {
    url: String,
    inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver(fail_first: usize) -> Receiver {
    let inbox = Inbox {
        received: Arc::default(),
        fail_first,
    };
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    });
    Receiver { url, inbox, task }
}

async fn register(api: &TestApi, token: &str, url: &str) -> Answer {
    api.send(
        Method::POST,
        "/v1/webhooks",
        Some(token),
        &[],
        Some(&json!({ "url": url })),
    )
    .await
}

/// Passes of `worker` until `done` holds (or fails after 30 s).
async fn pass_until(worker: &Worker, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now()
        .checked_add(Duration::from_secs(30))
        .expect("deadline");
    loop {
        worker.deliver_once().await.expect("pass");
        if done().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition did not hold within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn immediate_retries(max_attempts: u32) -> DeliveryConfig {
    DeliveryConfig {
        backoff_base: Duration::ZERO,
        max_attempts,
        timeout: Duration::from_secs(5),
        ..DeliveryConfig::default()
    }
}

/// Checks `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` and that `t` is recent.
fn assert_signed(header: &str, secret: &str, body: &str) {
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=...,v1=...");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(v1, alloy::hex::encode(mac.finalize().into_bytes()));
    let sent: u64 = t.parse().expect("unix time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(now.abs_diff(sent) < 60, "t={sent} is not now ({now})");
}

async fn deliveries(api: &TestApi, token: &str, endpoint: &str) -> Value {
    let answer = api
        .get(&format!("/v1/webhooks/{endpoint}/deliveries"), token)
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    answer.body
}

#[tokio::test]
async fn a_failed_delivery_is_retried_signed_and_logged() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let rival = api.key(Role::Integrator, "rival").await;
    let receiver = receiver(1).await;

    let registered = register(&api, &shop, &receiver.url).await;
    assert_eq!(registered.status.as_u16(), 201, "{registered:?}");
    let endpoint = registered.body["id"].as_str().expect("id").to_owned();
    let secret = registered.body["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(secret.len(), 70, "{secret}");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(registered.body["integrator"], "shop");
    assert_eq!(registered.body["url"], receiver.url.as_str());
    assert_recent(&registered.body["created_at"]);

    // A status change of the shop's payment (and one of a rival's, which must not reach the shop).
    let p = created(&api, &shop, "w-1", &payment("1000")).await;
    let theirs = created(&api, &rival, "w-1", &payment("1000")).await;
    for (q, key) in [(&p, &shop), (&theirs, &rival)] {
        let cancel = api
            .send(
                Method::POST,
                &format!("/v1/payments/{}/cancel", id_of(q)),
                Some(key),
                &[],
                None,
            )
            .await;
        assert_eq!(cancel.status.as_u16(), 200, "{cancel:?}");
    }

    let worker = Worker::new(api.state.clone(), immediate_retries(10)).expect("worker");
    pass_until(&worker, async || !receiver.inbox.received().is_empty()).await;
    // The first attempt got a 500: logged, pending, due again.
    let log = deliveries(&api, &shop, &endpoint).await;
    let first = &log["deliveries"][0];
    assert_eq!(first["status"], "pending", "{log}");
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["last_status_code"], 500);
    assert_eq!(first["delivered_at"], Value::Null);
    assert_recent(&first["next_retry_at"]);
    assert_eq!(
        first["log"][0]["error"],
        "the endpoint answered 500 Internal Server Error"
    );

    pass_until(&worker, async || receiver.inbox.received().len() >= 2).await;
    let received = receiver.inbox.received();
    assert_eq!(received.len(), 2, "one event, two attempts: {received:?}");
    // The same event both times, each signed.
    assert_eq!(received[0].1, received[1].1);
    for (signature, body) in &received {
        assert_signed(signature, &secret, body);
    }
    let event: Value = serde_json::from_str(&received[1].1).expect("json");
    let now = api.get(&format!("/v1/payments/{}", id_of(&p)), &shop).await;
    assert_eq!(now.body["status"], "cancelled");
    assert_eq!(event["type"], "payment.status_changed");
    assert_eq!(event["previous_status"], "accepted");
    assert_eq!(event["payment"], now.body);
    assert_eq!(event["created_at"], now.body["updated_at"]);

    let log = deliveries(&api, &shop, &endpoint).await;
    let delivery = &log["deliveries"][0];
    assert_recent(&delivery["created_at"]);
    assert_recent(&delivery["delivered_at"]);
    for attempt in 0..2 {
        assert_recent(&delivery["log"][attempt]["at"]);
    }
    assert_eq!(
        json!({
            "deliveries": [{
                "id": delivery["id"],
                "event_id": event["id"],
                "event": "payment.status_changed",
                "payment": p["id"],
                "payment_status": "cancelled",
                "status": "delivered",
                "attempts": 2,
                "last_status_code": 200,
                "next_retry_at": null,
                "delivered_at": delivery["delivered_at"],
                "created_at": delivery["created_at"],
                "log": [
                    {
                        "attempt": 1,
                        "status_code": 500,
                        "error": "the endpoint answered 500 Internal Server Error",
                        "at": delivery["log"][0]["at"],
                    },
                    {
                        "attempt": 2,
                        "status_code": 200,
                        "error": null,
                        "at": delivery["log"][1]["at"],
                    },
                ],
            }],
            "next_cursor": null,
        }),
        log
    );
    // Delivered means done: further passes send nothing.
    worker.deliver_once().await.expect("pass");
    assert_eq!(receiver.inbox.received().len(), 2);
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn deliveries_are_given_up_after_the_last_attempt() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let failing = receiver(usize::MAX).await;
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        format!("http://{}/hook", listener.local_addr().expect("addr"))
    };
    let failing_id = register(&api, &shop, &failing.url).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let closed_id = register(&api, &shop, &closed).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let p = created(&api, &shop, "g-1", &payment("1000")).await;
    api.send(
        Method::POST,
        &format!("/v1/payments/{}/cancel", id_of(&p)),
        Some(&shop),
        &[],
        None,
    )
    .await;

    let worker = Worker::new(api.state.clone(), immediate_retries(3)).expect("worker");
    let done = async || {
        let a = deliveries(&api, &shop, &failing_id).await;
        let b = deliveries(&api, &shop, &closed_id).await;
        a["deliveries"][0]["status"] == "failed" && b["deliveries"][0]["status"] == "failed"
    };
    pass_until(&worker, done).await;
    assert_eq!(failing.inbox.received().len(), 3);
    let log = deliveries(&api, &shop, &failing_id).await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["next_retry_at"], Value::Null);
    assert_eq!(delivery["delivered_at"], Value::Null);
    let codes: Vec<&Value> = delivery["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, vec![&json!(500), &json!(500), &json!(500)]);
    let log = deliveries(&api, &shop, &closed_id).await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], Value::Null);
    for attempt in delivery["log"].as_array().expect("log") {
        assert_eq!(attempt["status_code"], Value::Null);
        let error = attempt["error"].as_str().expect("error");
        assert!(error.starts_with("could not connect"), "{error}");
    }
    // Given up means done.
    worker.deliver_once().await.expect("pass");
    assert_eq!(failing.inbox.received().len(), 3);
    api.db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn webhook_routes_check_their_callers_and_input() {
    let api = TestApi::start().await;
    let shop = api.key(Role::Integrator, "shop").await;
    let rival = api.key(Role::Integrator, "rival").await;
    let auditor = api.key(Role::Auditor, "alice").await;
    let merchant = api.key(Role::Merchant, &crate::payments::merchant()).await;

    let mine = register(&api, &shop, "https://shop.example.com/settle").await;
    assert_eq!(mine.status.as_u16(), 201, "{mine:?}");
    let theirs = register(&api, &rival, "http://rival.example.com:8080/hooks?v=1").await;
    assert_eq!(theirs.status.as_u16(), 201, "{theirs:?}");
    assert_ne!(mine.body["secret"], theirs.body["secret"]);

    // Listings never show secrets, and are scoped.
    let list = api.get("/v1/webhooks", &shop).await;
    assert_eq!(
        list.body,
        json!({"webhooks": [{
            "id": mine.body["id"],
            "integrator": "shop",
            "url": "https://shop.example.com/settle",
            "created_at": mine.body["created_at"],
        }]})
    );
    let all = api.get("/v1/webhooks", &auditor).await;
    assert_eq!(all.body["webhooks"].as_array().expect("list").len(), 2);
    api.get("/v1/webhooks", &merchant)
        .await
        .assert_problem(403, "forbidden");

    // Deliveries: empty, another's is not found, and parameters are checked.
    let id = mine.body["id"].as_str().expect("id");
    assert_eq!(
        deliveries(&api, &shop, id).await,
        json!({"deliveries": [], "next_cursor": null})
    );
    api.get(&format!("/v1/webhooks/{id}/deliveries"), &rival)
        .await
        .assert_problem(404, "not_found");
    for bad in [
        "/v1/webhooks/not-a-uuid/deliveries".to_owned(),
        format!("/v1/webhooks/{id}/deliveries?cursor=p0000000000000001"),
        format!("/v1/webhooks/{id}/deliveries?limit=0"),
        format!("/v1/webhooks/{id}/deliveries?page=2"),
    ] {
        api.get(&bad, &shop)
            .await
            .assert_problem(400, "invalid_parameter");
    }

    // Registration input.
    for bad in [
        "",
        "shop.example.com/hook",
        "ftp://shop.example.com/",
        "https://u:p@shop.example.com/",
    ] {
        let answer = register(&api, &shop, bad).await;
        answer.assert_problem(422, "invalid_url");
    }
    api.send(
        Method::POST,
        "/v1/webhooks",
        Some(&shop),
        &[],
        Some(&json!({"url": "https://a.example.com/", "events": ["all"]})),
    )
    .await
    .assert_problem(400, "unknown_field");
    api.send(
        Method::POST,
        "/v1/webhooks",
        Some(&shop),
        &[],
        Some(&json!({"url": 7})),
    )
    .await
    .assert_problem(400, "wrong_type");
    api.send_raw(
        Method::POST,
        "/v1/webhooks",
        &shop,
        "application/json",
        b"{".to_vec(),
    )
    .await
    .assert_problem(400, "malformed_body");
    api.send_raw(
        Method::POST,
        "/v1/webhooks",
        &shop,
        "text/plain",
        b"{}".to_vec(),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    for key in [&merchant, &auditor] {
        register(&api, key, "https://x.example.com/")
            .await
            .assert_problem(403, "forbidden");
    }
    // At most 16 endpoints per integrator.
    for i in 1..16 {
        let answer = register(&api, &shop, &format!("https://shop.example.com/{i}")).await;
        assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    }
    let answer = register(&api, &shop, "https://shop.example.com/17").await;
    answer.assert_problem(422, "limit_exceeded");
    assert_eq!(
        answer.body["detail"],
        "this integrator already has 16 webhook endpoints, the most allowed"
    );
    api.db.cleanup().await.expect("cleanup");
}
