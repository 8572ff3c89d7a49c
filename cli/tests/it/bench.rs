//! `settle bench --quick --json`: every section runs against its own anvil, database and a test
//! token, and prints one JSON object with the documented figures. Speeds are never asserted;
//! what the bench measures on the chain and in the database is.

use settle_testkit::{TestToken, postgres};
use sqlx::{Connection, PgConnection};

/// The figures docs/benchmarks.md promises, each a number.
const NAMES: [&str; 13] = [
    "gas_per_credit_warm_100",
    "gas_per_credit_cold_100",
    "gas_per_payment_realistic",
    "gas_baseline_ratio_100",
    "indexer_events_per_s",
    "indexer_copy_ratio",
    "api_get_rps",
    "api_get_p99_ms",
    "api_get_pgbench_ratio",
    "api_bulk_payments_per_s",
    "e2e_payments_per_s",
    "hsm_signs_per_s",
    "hsm_sign_ratio",
];

#[tokio::test]
async fn the_quick_bench_reports_every_figure() {
    let token = TestToken::create().expect("token");
    let out = tempfile::tempdir().expect("tempdir");
    let prefix = format!(
        "settle_bench_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let output = crate::settle_on(&token)
        .args(["bench", "--quick", "--json", "--database-prefix", &prefix])
        .args(["--token", token.token_label()])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("settle bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut admin = PgConnection::connect(&postgres::admin_url())
        .await
        .expect("admin");
    for section in ["gas", "indexer", "api", "e2e"] {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {prefix}_{section} WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await
        .expect("dropped");
    }
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line"))
            .expect("the last line is JSON");
    for name in NAMES {
        assert!(report[name].is_number(), "{name} missing in {report}");
    }
    // What the chain and the database say is exact, whatever the machine's speed.
    assert_eq!(report["indexer_credits"], 100_000, "{report}");
    assert_eq!(report["e2e_payments"], 2_000, "{report}");
    assert_eq!(report["gas_floor_per_credit_warm"], 5_320, "{report}");
    // Gas moves only with the contract (and by a few units with the signature's zero bytes): the
    // realistic batch's figure is the one contracts/.gas-snapshot pins through Foundry (3,909).
    let realistic = report["gas_per_payment_realistic"].as_u64().expect("gas");
    assert!((3_890..=3_930).contains(&realistic), "{report}");
    let warm = report["gas_per_credit_warm_100"].as_f64().expect("warm");
    let cold = report["gas_per_credit_cold_100"].as_f64().expect("cold");
    assert!(warm > 5_320.0 && warm < cold, "{report}");
    for plot in ["gas_per_credit.png", "api_latency.png", "e2e_latency.png"] {
        let bytes = std::fs::read(out.path().join(plot)).expect("plot written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{plot} is a PNG");
    }
}
