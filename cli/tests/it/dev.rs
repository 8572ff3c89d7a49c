//! `settle dev --exit`: the whole system on one machine, driven through its REST API, as
//! `./scripts/dev` runs it (with a test token, database and folder of its own).

use settle_testkit::{TestToken, postgres};
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn the_demo_settles_every_payment_and_reconciles_clean() {
    let token = TestToken::create().expect("token");
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!(
        "settle_dev_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let output = crate::settle_on(&token)
        .args([
            "dev",
            "--demo",
            "300",
            "--exit",
            "--anvil-port",
            "0",
            "--api-port",
            "0",
        ])
        .args(["--dev-database", &database, "--token", token.token_label()])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("settle dev runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut admin = PgConnection::connect(&postgres::admin_url())
        .await
        .expect("admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("dropped");
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line"))
            .expect("the last line is JSON");
    assert_eq!(summary["requested"], 300, "{stdout}");
    assert_eq!(summary["settled"], 300, "{stdout}");
    assert_eq!(summary["reconciliation"], "clean", "{stdout}");
    let gas = summary["gas_per_payment"].as_u64().expect("gas");
    assert!(gas > 0, "{stdout}");
    assert!(
        stdout.contains("settle dev: key        integrator demo-shop: settle_"),
        "{stdout}"
    );
    // The written configuration runs the same system with `settle serve`.
    let written =
        std::fs::read_to_string(dir.path().join("settle.toml")).expect("settle.toml written");
    assert!(
        written.contains(&format!("token = \"{}\"", token.token_label())),
        "{written}"
    );
    assert!(dir.path().join("deployments/31337.json").is_file());
}
