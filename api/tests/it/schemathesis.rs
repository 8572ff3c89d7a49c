//! schemathesis (from PyPI, installed by scripts/setup) against the served `/openapi.json`: every
//! generated request, valid or not, must get an answer that is not a server error and that the
//! schema describes.

use std::{path::PathBuf, process::Command};

use settle_api::Role;

use crate::harness::TestApi;

fn schemathesis() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.settle/venv/bin/schemathesis");
    assert!(
        path.is_file(),
        "schemathesis is not installed at {}; run ./scripts/setup",
        path.display()
    );
    path
}

/// Runs schemathesis with `token` (a key of `role`) and returns its exit status and output.
fn run(api: &TestApi, token: &str) -> (bool, String) {
    let report = tempfile::tempdir().expect("tempdir");
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(format!("{}/openapi.json", api.base))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "40",
            "--seed",
            "20261124",
            "--workers",
            "2",
            "--no-color",
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "10",
        ])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report.path())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_schema_holds_under_generated_requests() {
    let api = TestApi::start_with(|c| settle_api::ApiConfig {
        rate_per_sec: 100_000,
        burst: 100_000,
        ..c
    })
    .await;
    for role in [Role::Admin, Role::Integrator] {
        let token = api.key(role, "schemathesis").await;
        let api_ref = &api;
        let (ok, output) = tokio::task::block_in_place(|| run(api_ref, &token));
        assert!(ok, "schemathesis found problems as {role}:\n{output}");
    }
    api.db.cleanup().await.expect("cleanup");
}
