//! Auditor routes over real settlements: the evidence of a payment matches the chain byte for
//! byte and its `cast` commands run; the CSV export lists every leg of a time range exactly.

use std::{path::PathBuf, process::Command};

use alloy::{
    primitives::{Address, Signature, keccak256},
    providers::Provider,
    sol_types::SolCall,
};
use reqwest::Method;
use serde_json::{Value, json};
use settle_api::Role;
use settle_contracts::{SplitSettlement, digest::batch_digest};

use crate::onchain::{NATIVE, PLATFORM, Scenario, Settled, WHOLE, pay, rfc3339};

fn checksum(address: Address) -> String {
    address.to_checksum(None)
}

/// The bundled `cast` (installed with anvil by scripts/setup).
fn cast_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../node_modules/@foundry-rs/cast-linux-amd64/bin");
    assert!(
        dir.join("cast").is_file(),
        "cast is not installed at {}; run ./scripts/setup",
        dir.display()
    );
    dir
}

/// Runs an evidence command as a shell would, with `RPC` set; returns its stdout.
fn run_cast(command: &str, rpc: &str) -> String {
    let path = format!(
        "{}:{}",
        cast_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("RPC", rpc)
        .env("PATH", path)
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "{command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The evidence the API must give for payment `position` of `settled`.
fn expected_settlement(s: &Scenario, settled: &Settled, position: usize) -> Value {
    let env = &s.env;
    let contract = checksum(env.contract);
    let block = settled.block_number;
    let pay = &settled.pays[position];
    let credited = pay.credited();
    // topic 0, computed here from the event's signature rather than taken from the bindings.
    let topic0 = keccak256(
        "BatchSettled(bytes32,address,address,bytes32,address,uint8,uint256,uint256,bytes,bytes)",
    );
    let total: u128 = settled.pays.iter().map(|p| p.amount).sum();
    json!({
        "chain_id": 31337,
        "contract": contract,
        "batch_id": settled.batch.batchId.to_string(),
        "digest": batch_digest(&settled.batch, 31337, env.contract).to_string(),
        "signer": checksum(env.signer.address()),
        "token": checksum(NATIVE),
        "funder": checksum(env.funder),
        "funding": settled.batch.funding,
        "nonce": settled.batch.nonce.to_string(),
        "total": total.to_string(),
        "tx_hash": settled.tx_hash.to_string(),
        "block_number": block,
        "block_hash": settled.block_hash.to_string(),
        "log_index": settled.log_index,
        "payments": settled.payments.to_string(),
        "credits": settled.credits.to_string(),
        "position": position,
        "amount": pay.amount.to_string(),
        "split": pay.legs.iter().zip(&credited).map(|((payee, share), credited)| json!({
            "payee": checksum(*payee),
            "share": share,
            "credited": credited.to_string(),
        })).collect::<Vec<_>>(),
        "verify": {
            "receipt": format!("cast receipt {} --rpc-url $RPC", settled.tx_hash),
            "logs": format!(
                "cast logs --from-block {block} --to-block {block} --address {contract} {topic0} {} --rpc-url $RPC",
                settled.batch.batchId
            ),
            "signer": format!(
                "cast call {contract} \"isSigner(address)(bool)\" {} --block {block} --rpc-url $RPC",
                checksum(env.signer.address())
            ),
            "transaction": format!("cast tx {} input --rpc-url $RPC", settled.tx_hash),
        },
    })
}

#[tokio::test]
async fn evidence_matches_the_chain_and_its_cast_commands_run() {
    let s = Scenario::new().await;
    let (env, api) = (&s.env, &s.env.api);
    let auditor = api.key(Role::Auditor, "alice").await;
    let p2 = s.b1.pays[1].id;
    let answer = api
        .get(&format!("/v1/payments/{p2}/evidence"), &auditor)
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    let settlement = expected_settlement(&s, &s.b1, 1);
    assert_eq!(
        answer.body,
        json!({"payment_id": p2.to_string(), "settlements": [settlement.clone()]})
    );
    // The packed payments are the signed batch's; p2 splits 500,000 into 250,000 + 250,000.
    assert_eq!(s.b1.payments, s.b1.batch.payments);
    assert_eq!(
        answer.body["settlements"][0]["split"],
        json!([
            {"payee": checksum(env.merchant_b), "share": 500_000, "credited": "250000"},
            {"payee": checksum(env.merchant_a), "share": 500_000, "credited": "250000"},
        ])
    );
    // An admin sees the same; a payment with a rounding remainder splits like the contract.
    let admin = api.key(Role::Admin, "ops").await;
    let p3 = api
        .get(
            &format!("/v1/payments/{}/evidence", s.b2.pays[0].id),
            &admin,
        )
        .await;
    assert_eq!(p3.body["settlements"][0], expected_settlement(&s, &s.b2, 0));
    assert_eq!(
        p3.body["settlements"][0]["split"]
            .as_array()
            .expect("legs")
            .iter()
            .map(|l| l["credited"].as_str().expect("amount").to_owned())
            .collect::<Vec<_>>(),
        ["3", "2", "2"]
    );

    // The commands run against the chain and say what the evidence says.
    let rpc = env.api.chain.endpoint();
    let verify = &answer.body["settlements"][0]["verify"];
    let command = |name: &str| verify[name].as_str().expect("command").to_owned();
    assert_eq!(run_cast(&command("signer"), &rpc).trim(), "true");
    let logs = run_cast(&command("logs"), &rpc);
    let tx = s.b1.tx_hash.to_string();
    assert!(logs.contains(&tx), "{logs}");
    assert!(logs.contains(&s.b1.batch.batchId.to_string()), "{logs}");
    assert_eq!(logs.matches("transactionHash").count(), 1, "{logs}");
    let receipt = run_cast(&command("receipt"), &rpc);
    assert!(receipt.contains(&s.b1.block_hash.to_string()), "{receipt}");
    assert!(receipt.contains("1 (success)"), "{receipt}");
    // The calldata holds the batch and the signature: the signer recovers from the digest.
    let input = run_cast(&command("transaction"), &rpc);
    let input: alloy::primitives::Bytes = input.trim().parse().expect("hex calldata");
    let call = SplitSettlement::settleBatchCall::abi_decode(&input).expect("settleBatch");
    assert_eq!(call.batch, s.b1.batch);
    let signature = Signature::from_raw(&call.signature).expect("signature");
    assert_eq!(
        signature
            .recover_address_from_prehash(&s.b1.digest)
            .expect("recovers"),
        env.signer.address()
    );

    // The same payment id settled again: both settlements, in chain order.
    let again = env.settle(1, &[pay("p2", 10, &[(PLATFORM, WHOLE)])]).await;
    env.index().await;
    let twice = api
        .get(&format!("/v1/payments/{p2}/evidence"), &auditor)
        .await;
    assert_eq!(
        twice.body,
        json!({
            "payment_id": p2.to_string(),
            "settlements": [settlement, expected_settlement(&s, &again, 0)],
        })
    );
    s.cleanup().await;
}

#[tokio::test]
async fn evidence_answers_every_error_as_problem_json() {
    let s = Scenario::new().await;
    let api = &s.env.api;
    let auditor = api.key(Role::Auditor, "alice").await;
    let known = format!("/v1/payments/{}/evidence", s.b1.pays[0].id);
    api.send(Method::GET, &known, None, &[], None)
        .await
        .assert_problem(401, "unauthenticated");
    for (role, owner) in [
        (Role::Merchant, checksum(s.env.merchant_a)),
        (Role::Integrator, "shop".to_owned()),
    ] {
        let key = api.key(role, &owner).await;
        let forbidden = api.get(&known, &key).await;
        forbidden.assert_problem(403, "forbidden");
        assert_eq!(
            forbidden.body["detail"],
            format!("this route is for auditor keys; this key's role is {role}")
        );
    }
    let hex64 = "ab".repeat(32);
    for bad in [
        "0x1234".to_owned(),
        hex64.clone(),
        format!("0x{}", &hex64[1..]),
        format!("0x{}zz", &hex64[2..]),
        format!("0x{hex64}00"),
    ] {
        let answer = api
            .get(&format!("/v1/payments/{bad}/evidence"), &auditor)
            .await;
        answer.assert_problem(400, "invalid_parameter");
        assert_eq!(
            answer.body["detail"],
            format!("`payment_id` = {bad:?} is not 0x and 64 hex digits")
        );
    }
    let unknown = api
        .get(&format!("/v1/payments/0x{hex64}/evidence"), &auditor)
        .await;
    unknown.assert_problem(404, "not_found");
    assert_eq!(
        unknown.body["detail"],
        format!("no settlement of payment 0x{hex64} is indexed")
    );
    sqlx::query("ALTER SCHEMA indexer RENAME TO indexer_moved")
        .execute(api.db.pool())
        .await
        .expect("renamed");
    let broken = api.get(&known, &auditor).await;
    broken.assert_problem(500, "internal");
    assert_eq!(
        broken.body["detail"],
        "the request could not be completed; try again later"
    );
    s.cleanup().await;
}

/// The CSV lines of every leg of `batches`, after the header.
fn csv(batches: &[&Settled]) -> String {
    let mut out =
        "payment_id,batch_id,tx_hash,block_number,token,amount,payee,share,credited\r\n".to_owned();
    for settled in batches {
        for pay in &settled.pays {
            for ((payee, share), credited) in pay.legs.iter().zip(pay.credited()) {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{share},{credited}\r\n",
                    pay.id,
                    settled.batch.batchId,
                    settled.tx_hash,
                    settled.block_number,
                    checksum(NATIVE),
                    pay.amount,
                    checksum(*payee),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn settled_csv_lists_every_leg_of_a_time_range_exactly() {
    let mut s = Scenario::new().await;
    let auditor = s.env.api.key(Role::Auditor, "alice").await;
    let (t1, t2, t3) = (
        s.env.timestamp(s.b1.block_number).await,
        s.env.timestamp(s.b2.block_number).await,
        s.env.timestamp(s.b3.block_number).await,
    );
    let export = |from: u64, to: u64| {
        format!(
            "/v1/exports/settled.csv?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        )
    };
    let api = &s.env.api;
    // `from` inclusive, `to` exclusive: batches 1 and 2, not 3.
    let answer = api.get(&export(t1, t3), &auditor).await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    assert_eq!(answer.content_type, "text/csv");
    assert_eq!(
        answer
            .headers
            .get("content-disposition")
            .expect("attachment"),
        "attachment; filename=\"settled.csv\""
    );
    assert_eq!(answer.text, csv(&[&s.b1, &s.b2]));
    assert_eq!(answer.text.lines().count(), 1 + 2 + 2 + 3 + 1);
    // Sub-second bounds round like block times: (t2 - 0.5 s) still takes batch 2's block.
    let half = api
        .get(
            &format!(
                "/v1/exports/settled.csv?from={}&to={}",
                rfc3339(t2 - 1).replace('Z', ".5Z"),
                rfc3339(t3)
            ),
            &auditor,
        )
        .await;
    assert_eq!(half.text, csv(&[&s.b2]));
    // A range with no batch: the header alone.
    let empty = api.get(&export(t1 - 50, t1), &auditor).await;
    assert_eq!(
        empty.text,
        "payment_id,batch_id,tx_hash,block_number,token,amount,payee,share,credited\r\n"
    );
    // Up to the indexed block's time and no later: a range past it could still grow.
    let (head, _) = s.env.head().await;
    assert_eq!(head, s.b3.block_number);
    let late = api.get(&export(t1, t3 + 1), &auditor).await;
    late.assert_problem(400, "invalid_parameter");
    assert_eq!(
        late.body["detail"],
        format!(
            "`to` ({}) is after the indexed block {head} (timestamp {t3}); later blocks could still fall in the range, so ask for a range that ends by then",
            rfc3339(t3 + 1).replace('Z', "+00:00")
        )
    );
    // Once a later block is indexed, batch 3 can be exported too.
    s.env.advance_time(10).await;
    let _: String = s
        .env
        .api
        .chain
        .provider()
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mined");
    s.env.index().await;
    let (head, _) = s.env.head().await;
    let t_head = s.env.timestamp(head).await;
    let api = &s.env.api;
    let all = api.get(&export(t1, t_head), &auditor).await;
    assert_eq!(all.text, csv(&[&s.b1, &s.b2, &s.b3]));
    let admin = api.key(Role::Admin, "ops").await;
    assert_eq!(
        api.get(&export(t3, t_head), &admin).await.text,
        csv(&[&s.b3])
    );

    // Errors.
    let path = export(t1, t3);
    api.send(Method::GET, &path, None, &[], None)
        .await
        .assert_problem(401, "unauthenticated");
    for role in [Role::Integrator, Role::Merchant] {
        let key = api.key(role, &checksum(s.env.merchant_a)).await;
        api.get(&path, &key).await.assert_problem(403, "forbidden");
    }
    for (query, detail) in [
        (
            format!("from={}&to={}", rfc3339(t3), rfc3339(t1)),
            Some(format!(
                "`from` ({}) must be before `to` ({})",
                rfc3339(t3).replace('Z', "+00:00"),
                rfc3339(t1).replace('Z', "+00:00")
            )),
        ),
        (format!("from={}&to={}", rfc3339(t1), rfc3339(t1)), None),
        (format!("from={}", rfc3339(t1)), None),
        (format!("to={}", rfc3339(t1)), None),
        ("from=yesterday&to=today".to_owned(), None),
        (
            format!("from={}&to={}&format=xlsx", rfc3339(t1), rfc3339(t3)),
            None,
        ),
    ] {
        let answer = api
            .get(&format!("/v1/exports/settled.csv?{query}"), &auditor)
            .await;
        answer.assert_problem(400, "invalid_parameter");
        if let Some(detail) = detail {
            assert_eq!(answer.body["detail"], detail, "{query}");
        }
    }
    // The chain out of reach: 503.
    let gone = std::mem::replace(
        &mut s.env.api.chain,
        settle_testkit::TestChain::start().expect("anvil"),
    );
    drop(gone);
    let api = &s.env.api;
    api.get(&path, &auditor)
        .await
        .assert_problem(503, "unavailable");
    // Our side broken: 500.
    sqlx::query("ALTER SCHEMA indexer RENAME TO indexer_moved")
        .execute(api.db.pool())
        .await
        .expect("renamed");
    api.get(&path, &auditor)
        .await
        .assert_problem(500, "internal");
    s.cleanup().await;
}

#[tokio::test]
async fn nothing_indexed_answers_empty_listings_and_refuses_exports() {
    let api = crate::harness::TestApi::start().await;
    let admin = api.key(Role::Admin, "ops").await;
    let nobody = checksum(Address::repeat_byte(0x42));
    let balances = api
        .get(
            &format!("/v1/merchants/{nobody}/balances?verify=true"),
            &admin,
        )
        .await;
    assert_eq!(
        balances.body,
        json!({
            "address": nobody,
            "chain_id": 31337,
            "contract": checksum(api.contract),
            "indexed_block": null,
            "balances": [],
        })
    );
    let payouts = api
        .get(
            &format!("/v1/merchants/{nobody}/payouts?from_time=2026-01-01T00:00:00Z"),
            &admin,
        )
        .await;
    assert_eq!(payouts.body, json!({"payouts": [], "next_cursor": null}));
    let export = api
        .get(
            "/v1/exports/settled.csv?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            &admin,
        )
        .await;
    export.assert_problem(400, "invalid_parameter");
    assert_eq!(
        export.body["detail"],
        "nothing is indexed yet, so no range can be exported completely"
    );
    // The routes are in the served OpenAPI document, under their tags.
    let openapi = api
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    for (path, tag) in [
        ("/v1/merchants/{address}/balances", "merchants"),
        ("/v1/merchants/{address}/payouts", "merchants"),
        ("/v1/merchants/{address}/withdrawals", "merchants"),
        ("/v1/payments/{payment_id}/evidence", "auditors"),
        ("/v1/exports/settled.csv", "auditors"),
    ] {
        assert_eq!(
            openapi.body["paths"][path]["get"]["tags"],
            json!([tag]),
            "{path}"
        );
    }
    let tags: Vec<&str> = openapi.body["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tags.contains(&"merchants") && tags.contains(&"auditors"),
        "{tags:?}"
    );
    assert_eq!(
        openapi.body["paths"]["/v1/exports/settled.csv"]["get"]["responses"]["200"]["content"]
            .as_object()
            .expect("content")
            .keys()
            .collect::<Vec<_>>(),
        ["text/csv"]
    );
    api.db.cleanup().await.expect("cleanup");
}
