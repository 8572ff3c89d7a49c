//! Merchant routes over real settlements: balances equal `balanceOf`, payouts list every credit
//! once across pages, withdrawals list withdrawals and pushes, and a merchant sees only itself.

use alloy::primitives::{Address, U256};
use reqwest::Method;
use serde_json::{Value, json};
use settle_api::Role;

use crate::{
    harness::TestApi,
    onchain::{NATIVE, PLATFORM, RECIPIENT, Scenario, Settled, rfc3339},
};

fn checksum(address: Address) -> String {
    address.to_checksum(None)
}

/// The payout the API shows for leg `leg` of payment `payment` of `settled`.
pub(crate) fn payout(settled: &Settled, payment: usize, leg: usize) -> Value {
    let pay = &settled.pays[payment];
    json!({
        "payment_id": pay.id.to_string(),
        "batch_id": settled.batch.batchId.to_string(),
        "token": checksum(NATIVE),
        "amount": pay.credited()[leg].to_string(),
        "payment_amount": pay.amount.to_string(),
        "share": pay.legs[leg].1,
        "tx_hash": settled.tx_hash.to_string(),
        "block_number": settled.block_number,
        "block_hash": settled.block_hash.to_string(),
        "log_index": settled.log_index,
        "payment_position": payment,
        "leg_position": leg,
    })
}

/// Every item of a listing, following `next_cursor`; also the number of pages.
async fn all_pages(api: &TestApi, path: &str, key: &str, token: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{separator}cursor={c}"),
            None => path.to_owned(),
        };
        let answer = api.get(&url, token).await;
        assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
        pages = pages.checked_add(1).expect("few pages");
        items.extend(answer.body[key].as_array().expect("items").iter().cloned());
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert_eq!(answer.body["next_cursor"], Value::Null);
                return (items, pages);
            }
        }
        assert!(pages < 100, "the listing does not end");
    }
}

#[tokio::test]
async fn balances_equal_balance_of_at_the_indexed_block_and_merchants_see_only_their_own() {
    let s = Scenario::new().await;
    let (env, api) = (&s.env, &s.env.api);
    let (a, b) = (env.merchant_a, env.merchant_b);
    let (head, head_hash) = env.head().await;

    // A: 900,001 (p1) + 250,000 (p2) + 3 (p3's remainder) + 300 (p4) + 500 (p5) - 100 withdrawn.
    let a_chain = env.balance_of(a).await;
    assert_eq!(a_chain, U256::from(1_150_704u64));
    let a_key = api.key(Role::Merchant, &checksum(a)).await;
    let verified = api
        .get(
            &format!("/v1/merchants/{}/balances?verify=true", checksum(a)),
            &a_key,
        )
        .await;
    assert_eq!(verified.status.as_u16(), 200, "{verified:?}");
    let indexed_block = json!({"block_number": head, "block_hash": head_hash.to_string()});
    assert_eq!(
        verified.body,
        json!({
            "address": checksum(a),
            "chain_id": 31337,
            "contract": checksum(env.contract),
            "indexed_block": indexed_block,
            "balances": [{
                "token": checksum(NATIVE),
                "balance": a_chain.to_string(),
                "onchain": a_chain.to_string(),
                "matches": true,
            }],
        })
    );
    let plain = api
        .get(&format!("/v1/merchants/{}/balances", checksum(a)), &a_key)
        .await;
    assert_eq!(
        plain.body["balances"],
        json!([{"token": checksum(NATIVE), "balance": "1150704"}])
    );

    // B: p2's 250,000 stays credited; p3's 2 wei were pushed out after B opted in.
    let b_chain = env.balance_of(b).await;
    assert_eq!(b_chain, U256::from(250_000u64));
    for role in [Role::Auditor, Role::Admin] {
        let key = api.key(role, "alice").await;
        let answer = api
            .get(
                &format!("/v1/merchants/{}/balances?verify=true", checksum(b)),
                &key,
            )
            .await;
        assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
        assert_eq!(
            answer.body["balances"],
            json!([{
                "token": checksum(NATIVE),
                "balance": "250000",
                "onchain": "250000",
                "matches": true,
            }])
        );
        // An address that never moved anything has no balances (and is not an error).
        let nobody = api
            .get(
                &format!(
                    "/v1/merchants/{}/balances?verify=true",
                    checksum(Address::repeat_byte(0x42))
                ),
                &key,
            )
            .await;
        assert_eq!(nobody.body["balances"], json!([]), "{nobody:?}");
        assert_eq!(nobody.body["indexed_block"], indexed_block);
    }
    // A merchant asking for another address: not found, exactly as for an unknown one.
    for route in ["balances", "payouts", "withdrawals"] {
        let other = api
            .get(&format!("/v1/merchants/{}/{route}", checksum(b)), &a_key)
            .await;
        other.assert_problem(404, "not_found");
        let unknown = api
            .get(
                &format!(
                    "/v1/merchants/{}/{route}",
                    checksum(Address::repeat_byte(0x42))
                ),
                &a_key,
            )
            .await;
        unknown.assert_problem(404, "not_found");
        assert_eq!(
            other.body["detail"],
            format!("no merchant {} for this key", checksum(b))
        );
    }
    // A mirror that drifted from the chain (one indexed credit off by one) shows in `matches`.
    sqlx::query(
        "UPDATE indexer.credits SET amount = amount + 1 WHERE payee = $1 AND amount = 250000",
    )
    .bind(b.to_vec())
    .execute(api.db.pool())
    .await
    .expect("tampered");
    let b_key = api.key(Role::Merchant, &checksum(b)).await;
    let drifted = api
        .get(
            &format!("/v1/merchants/{}/balances?verify=true", checksum(b)),
            &b_key,
        )
        .await;
    assert_eq!(
        drifted.body["balances"],
        json!([{
            "token": checksum(NATIVE),
            "balance": "250001",
            "onchain": "250000",
            "matches": false,
        }])
    );
    s.cleanup().await;
}

#[tokio::test]
async fn payouts_list_every_credit_once_across_pages_newest_first_and_filter() {
    let s = Scenario::new().await;
    let (env, api) = (&s.env, &s.env.api);
    let (a, b) = (env.merchant_a, env.merchant_b);
    let a_key = api.key(Role::Merchant, &checksum(a)).await;
    let a_path = format!("/v1/merchants/{}/payouts", checksum(a));

    let expected_a = vec![
        payout(&s.b3, 0, 0),
        payout(&s.b2, 1, 0),
        payout(&s.b2, 0, 0),
        payout(&s.b1, 1, 1),
        payout(&s.b1, 0, 0),
    ];
    // Pages of 2 break inside batch 2 and batch 1; every payout comes exactly once, in order.
    let (items, pages) = all_pages(api, &format!("{a_path}?limit=2"), "payouts", &a_key).await;
    assert_eq!(pages, 3);
    assert_eq!(items, expected_a);
    for limit in [1, 3, 5, 100] {
        let (items, pages) =
            all_pages(api, &format!("{a_path}?limit={limit}"), "payouts", &a_key).await;
        assert_eq!(items, expected_a, "limit {limit}");
        assert_eq!(pages, 5usize.div_ceil(limit), "limit {limit}");
    }
    // The payouts of a batch sum to its credit in the event (A is batch 1's second payee).
    let entry = &s.b1.credits[36..72];
    assert_eq!(&entry[..20], a.as_slice());
    assert_eq!(
        u128::from_be_bytes(entry[20..].try_into().expect("16 bytes")),
        s.b1.pays[0].credited()[0] + s.b1.pays[1].credited()[1]
    );

    // Auditors and admins see anyone's payouts.
    let auditor = api.key(Role::Auditor, "alice").await;
    let (platform, _) = all_pages(
        api,
        &format!("/v1/merchants/{}/payouts?limit=2", checksum(PLATFORM)),
        "payouts",
        &auditor,
    )
    .await;
    assert_eq!(
        platform,
        vec![
            payout(&s.b3, 0, 1),
            payout(&s.b2, 0, 2),
            payout(&s.b1, 0, 1)
        ]
    );
    let b_key = api.key(Role::Merchant, &checksum(b)).await;
    let (b_items, _) = all_pages(
        api,
        &format!("/v1/merchants/{}/payouts", checksum(b)),
        "payouts",
        &b_key,
    )
    .await;
    assert_eq!(b_items, vec![payout(&s.b2, 0, 1), payout(&s.b1, 1, 0)]);
    // One a page: the second page's first chunk of batches is used up without filling it.
    let (b_paged, pages) = all_pages(
        api,
        &format!("/v1/merchants/{}/payouts?limit=1", checksum(b)),
        "payouts",
        &b_key,
    )
    .await;
    assert_eq!((b_paged, pages), (b_items, 2));

    // Blocks: only batch 2's block.
    let block = s.b2.block_number;
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?from_block={block}&to_block={block}"),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b2, 1, 0), payout(&s.b2, 0, 0)]);
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?from_block={}", s.b3.block_number),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b3, 0, 0)]);
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?to_block={}", s.b1.block_number),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b1, 1, 1), payout(&s.b1, 0, 0)]);
    // Times (block timestamps, `from` inclusive, `to` exclusive): batch 2's block up to batch 3's.
    let (t2, t3) = (
        env.timestamp(s.b2.block_number).await,
        env.timestamp(s.b3.block_number).await,
    );
    let (items, _) = all_pages(
        api,
        &format!(
            "{a_path}?from_time={}&to_time={}&limit=1",
            rfc3339(t2),
            rfc3339(t3)
        ),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b2, 1, 0), payout(&s.b2, 0, 0)]);
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?from_time={}", rfc3339(t3)),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b3, 0, 0)]);
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?to_time={}", rfc3339(t2)),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, vec![payout(&s.b1, 1, 1), payout(&s.b1, 0, 0)]);
    // Times after everything indexed, or before the chain began: nothing.
    for query in [
        format!("from_time={}", rfc3339(t3 + 1)),
        "to_time=1970-01-01T00:00:01Z".to_owned(),
        format!("from_block={}&to_time={}", s.b3.block_number, rfc3339(t2)),
    ] {
        let answer = api.get(&format!("{a_path}?{query}"), &a_key).await;
        assert_eq!(
            answer.body,
            json!({"payouts": [], "next_cursor": null}),
            "{query}"
        );
    }
    // Tokens: the native coin is every payout here; another token has none.
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?token={}", checksum(NATIVE)),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, expected_a);
    let (items, _) = all_pages(
        api,
        &format!("{a_path}?token={}", checksum(Address::repeat_byte(0x7e))),
        "payouts",
        &a_key,
    )
    .await;
    assert_eq!(items, Vec::<Value>::new());
    s.cleanup().await;
}

#[tokio::test]
async fn withdrawals_list_withdrawals_and_pushes_newest_first() {
    let s = Scenario::new().await;
    let (env, api) = (&s.env, &s.env.api);
    let (a, b) = (env.merchant_a, env.merchant_b);
    let a_key = api.key(Role::Merchant, &checksum(a)).await;
    let (tx, block, hash, log) = s.withdrawal;
    let (items, pages) = all_pages(
        api,
        &format!("/v1/merchants/{}/withdrawals?limit=1", checksum(a)),
        "withdrawals",
        &a_key,
    )
    .await;
    assert_eq!(pages, 1);
    assert_eq!(
        items,
        vec![json!({
            "kind": "withdrawn",
            "token": checksum(NATIVE),
            "amount": "100",
            "recipient": checksum(RECIPIENT),
            "tx_hash": tx.to_string(),
            "block_number": block,
            "block_hash": hash.to_string(),
            "log_index": log,
        })]
    );

    // B opted in to pushes before batch 2: its 2 wei there left at once. Settle two more batches
    // that push to B, so that B's listing spans pages.
    let more_1 = env
        .settle(
            0,
            &[crate::onchain::pay(
                "p6",
                40,
                &[(b, 500_000), (PLATFORM, 500_000)],
            )],
        )
        .await;
    let more_2 = env
        .settle(1, &[crate::onchain::pay("p7", 9, &[(b, 1_000_000)])])
        .await;
    env.index().await;
    let pushed = |settled: &Settled, amount: &str| {
        let (account, pushed, log_index) = settled.pushed[0];
        assert_eq!((account, pushed.to_string()), (b, amount.to_owned()));
        json!({
            "kind": "pushed_out",
            "token": checksum(NATIVE),
            "amount": amount,
            "recipient": checksum(b),
            "tx_hash": settled.tx_hash.to_string(),
            "block_number": settled.block_number,
            "block_hash": settled.block_hash.to_string(),
            "log_index": log_index,
        })
    };
    let b_key = api.key(Role::Merchant, &checksum(b)).await;
    let (items, pages) = all_pages(
        api,
        &format!("/v1/merchants/{}/withdrawals?limit=2", checksum(b)),
        "withdrawals",
        &b_key,
    )
    .await;
    assert_eq!(pages, 2);
    assert_eq!(
        items,
        vec![
            pushed(&more_2, "9"),
            pushed(&more_1, "20"),
            pushed(&s.b2, "2")
        ]
    );
    // The pushes are not in B's balance, which still equals the chain's.
    let balances = api
        .get(
            &format!("/v1/merchants/{}/balances?verify=true", checksum(b)),
            &b_key,
        )
        .await;
    assert_eq!(balances.body["balances"][0]["balance"], "250000");
    assert_eq!(balances.body["balances"][0]["matches"], true);
    // Filters apply as for payouts.
    let (items, _) = all_pages(
        api,
        &format!(
            "/v1/merchants/{}/withdrawals?from_block={}&to_block={}",
            checksum(b),
            more_1.block_number,
            more_1.block_number
        ),
        "withdrawals",
        &b_key,
    )
    .await;
    assert_eq!(items, vec![pushed(&more_1, "20")]);
    s.cleanup().await;
}

/// Every error each merchant route answers, provoked: 400, 401, 403, 404, 422, 500, 503 here;
/// 429 in its own test.
#[tokio::test]
async fn merchant_routes_answer_every_error_as_problem_json() {
    let mut s = Scenario::new().await;
    let a = checksum(s.env.merchant_a);
    let api = &s.env.api;
    let a_key = api.key(Role::Merchant, &a).await;
    let integrator = api.key(Role::Integrator, "shop").await;
    let lower = a.to_lowercase();
    for route in ["balances", "payouts", "withdrawals"] {
        let path = format!("/v1/merchants/{a}/{route}");
        api.send(Method::GET, &path, None, &[], None)
            .await
            .assert_problem(401, "unauthenticated");
        api.get(
            &path,
            "settle_000000000000_000000000000000000000000000000000000000000000000",
        )
        .await
        .assert_problem(401, "unauthenticated");
        let forbidden = api.get(&path, &integrator).await;
        forbidden.assert_problem(403, "forbidden");
        assert_eq!(
            forbidden.body["detail"],
            "this route is for merchant or auditor keys; this key's role is integrator"
        );
        let bad_address = api
            .get(&format!("/v1/merchants/{lower}/{route}"), &a_key)
            .await;
        bad_address.assert_problem(422, "invalid_address");
        assert_eq!(
            bad_address.body["detail"],
            format!("{lower:?} is not an EIP-55 address: the checksummed form is {a}")
        );
        api.get(&format!("/v1/merchants/0x1234/{route}"), &a_key)
            .await
            .assert_problem(422, "invalid_address");
        api.get(&format!("{path}?colour=blue"), &a_key)
            .await
            .assert_problem(400, "invalid_parameter");
    }
    let balances = format!("/v1/merchants/{a}/balances");
    api.get(&format!("{balances}?verify=maybe"), &a_key)
        .await
        .assert_problem(400, "invalid_parameter");
    for route in ["payouts", "withdrawals"] {
        let path = format!("/v1/merchants/{a}/{route}");
        for (query, detail) in [
            (
                "limit=0",
                "`limit` = 0 is out of range; ask for 1 to 100 items per page".to_owned(),
            ),
            (
                "limit=101",
                "`limit` = 101 is out of range; ask for 1 to 100 items per page".to_owned(),
            ),
            (
                "cursor=nope",
                "`cursor` = \"nope\" is not a cursor of this listing; pass back `next_cursor` unchanged"
                    .to_owned(),
            ),
            (
                "from_block=5&to_block=4",
                "`from_block` (5) is after `to_block` (4)".to_owned(),
            ),
            (
                "from_time=2026-01-02T00:00:00Z&to_time=2026-01-01T00:00:00Z",
                "`from_time` (2026-01-02T00:00:00+00:00) must be before `to_time` (2026-01-01T00:00:00+00:00)"
                    .to_owned(),
            ),
        ] {
            let answer = api.get(&format!("{path}?{query}"), &a_key).await;
            answer.assert_problem(400, "invalid_parameter");
            assert_eq!(answer.body["detail"], detail, "{route}?{query}");
        }
        for query in [
            "from_block=-1",
            "limit=many",
            "from_time=yesterday",
            "to_time=2026-01-01",
        ] {
            api.get(&format!("{path}?{query}"), &a_key)
                .await
                .assert_problem(400, "invalid_parameter");
        }
        // A cursor of the other listing is refused.
        let other_cursor = if route == "payouts" {
            format!("w{}", "0".repeat(32))
        } else {
            format!("o{}", "0".repeat(48))
        };
        api.get(&format!("{path}?cursor={other_cursor}"), &a_key)
            .await
            .assert_problem(400, "invalid_parameter");
        let token = api.get(&format!("{path}?token={}", lower), &a_key).await;
        token.assert_problem(422, "invalid_address");
        assert!(
            token.body["detail"]
                .as_str()
                .expect("detail")
                .starts_with("`token`: "),
            "{token:?}"
        );
    }

    // The chain out of reach: reading `balanceOf` or resolving times answers 503.
    let gone = std::mem::replace(
        &mut s.env.api.chain,
        settle_testkit::TestChain::start().expect("anvil"),
    );
    drop(gone);
    let api = &s.env.api;
    let unavailable = api.get(&format!("{balances}?verify=true"), &a_key).await;
    unavailable.assert_problem(503, "unavailable");
    assert_eq!(unavailable.headers.get("retry-after").expect("retry"), "1");
    for route in ["payouts", "withdrawals"] {
        api.get(
            &format!("/v1/merchants/{a}/{route}?from_time=2026-01-01T00:00:00Z"),
            &a_key,
        )
        .await
        .assert_problem(503, "unavailable");
    }
    // Without the chain, the mirror still answers.
    let indexed = api.get(&balances, &a_key).await;
    assert_eq!(indexed.status.as_u16(), 200, "{indexed:?}");

    // Our side broken (the indexer's schema gone): 500, and nothing about why.
    sqlx::query("ALTER SCHEMA indexer RENAME TO indexer_moved")
        .execute(api.db.pool())
        .await
        .expect("renamed");
    for route in ["balances", "payouts", "withdrawals"] {
        let broken = api.get(&format!("/v1/merchants/{a}/{route}"), &a_key).await;
        broken.assert_problem(500, "internal");
        assert_eq!(
            broken.body["detail"],
            "the request could not be completed; try again later"
        );
    }
    s.cleanup().await;
}

#[tokio::test]
async fn merchant_and_auditor_routes_are_rate_limited_per_key() {
    let api = TestApi::start_with(|c| settle_api::ApiConfig {
        rate_per_sec: 1,
        burst: 1,
        ..c
    })
    .await;
    let merchant = checksum(Address::repeat_byte(0x42));
    for path in [
        format!("/v1/merchants/{merchant}/balances"),
        format!("/v1/merchants/{merchant}/payouts"),
        format!("/v1/merchants/{merchant}/withdrawals"),
        format!("/v1/payments/0x{}/evidence", "11".repeat(32)),
        "/v1/exports/settled.csv?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z".to_owned(),
    ] {
        let key = api.key(Role::Admin, "ops").await;
        let first = api.get(&path, &key).await;
        assert_ne!(first.status.as_u16(), 429, "{path}: {first:?}");
        let limited = api.get(&path, &key).await;
        limited.assert_problem(429, "rate_limited");
        assert_eq!(limited.headers.get("retry-after").expect("retry"), "1");
    }
    api.db.cleanup().await.expect("cleanup");
}
