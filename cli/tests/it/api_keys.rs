//! `settle keys api create | revoke` against a real Postgres.

use std::process::Command;

use settle_api::{Role, auth};
use settle_testkit::TestDb;

fn settle(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_settle"))
        .args(["keys", "api"])
        .args(args)
        .env("SETTLE_DATABASE_URL", db.url())
        .output()
        .expect("runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn api_keys_are_issued_once_and_revoked() {
    let db = TestDb::create().await.expect("database");
    let (ok, out, err) = settle(&db, &["create", "--role", "integrator", "--owner", "shop"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id = lines[0]
        .strip_prefix("created integrator key ")
        .and_then(|rest| rest.strip_suffix(" for \"shop\""))
        .expect("first line names the key");
    let token = lines[1]
        .strip_prefix("token (shown once): ")
        .expect("token line");
    let principal = auth::authenticate(db.pool(), token)
        .await
        .expect("query")
        .expect("the token authenticates");
    assert_eq!(
        (principal.role, principal.owner.as_str()),
        (Role::Integrator, "shop")
    );
    assert_eq!(principal.key_id.to_string(), id);

    let (ok, out, _) = settle(&db, &["revoke", "--id", id]);
    assert!(ok);
    assert_eq!(out, format!("revoked key {id}\n"));
    assert!(
        auth::authenticate(db.pool(), token)
            .await
            .expect("query")
            .is_none()
    );
    let (ok, _, err) = settle(&db, &["revoke", "--id", id]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!("settle: error: no live API key with id {id}; list keys in api.api_keys")
    );

    let (ok, _, err) = settle(&db, &["create", "--role", "merchant", "--owner", "0xabc"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "settle: error: a merchant key's owner is the merchant's EIP-55 address, not \"0xabc\""
    );
    db.cleanup().await.expect("cleanup");
}
