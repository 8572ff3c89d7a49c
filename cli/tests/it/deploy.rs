use std::process::Command;

use settle_testkit::TestChain;

/// Anvil's account 0, the deployer of deploy/config/anvil.toml: a published development key.
const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Runs `settle deploy` with the committed anvil config; (success, stdout, stderr).
fn settle_deploy(rpc: &str, config: &str, manifests: &std::path::Path) -> (bool, String, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO_BIN_EXE_settle"))
        .current_dir(root)
        .env("SETTLE_DEPLOYER_KEY", ANVIL_KEY_0)
        .env("SETTLE_LOG", "error")
        .args(["deploy", "--rpc", rpc, "--config", config, "--manifests"])
        .arg(manifests)
        .output()
        .expect("settle runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("utf-8"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}

#[test]
fn deploy_prints_each_step_then_nothing_to_do() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) =
        settle_deploy(&chain.endpoint(), "deploy/config/anvil.toml", dir.path());
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "deploying deploy/config/anvil.toml on chain 31337 from \
         0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (the key in $SETTLE_DEPLOYER_KEY)"
    );
    assert_eq!(lines.len(), 10, "{stdout}");
    assert!(
        lines[1].starts_with("done     create SettleMultisig at 0x"),
        "{stdout}"
    );
    assert!(
        lines[8].starts_with("done     transfer ownership of the proxy to the timelock 0x"),
        "{stdout}"
    );
    let manifest = dir.path().join("31337.json");
    assert_eq!(
        lines[9],
        format!(
            "deployed on chain 31337 with 8 transaction(s); manifest {} written",
            manifest.display()
        )
    );

    let (ok, again, stderr) =
        settle_deploy(&chain.endpoint(), "deploy/config/anvil.toml", dir.path());
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = again.lines().collect();
    assert!(
        lines[1..9].iter().all(|l| l.starts_with("already  ")),
        "{again}"
    );
    assert_eq!(
        lines[9],
        format!(
            "nothing to do: chain 31337 already has this deployment; manifest {} unchanged",
            manifest.display()
        )
    );
}

#[test]
fn deploy_names_the_config_problem_in_one_line() {
    let chain = TestChain::start_with(|anvil| anvil.chain_id(5)).expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = settle_deploy(&chain.endpoint(), "deploy/config/anvil.toml", dir.path());
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        "settle: error: the config is for chain 31337 but the RPC endpoint serves chain 5; \
         point --rpc at chain 31337 or use that chain's config"
    );
    assert!(!dir.path().join("31337.json").exists() && !dir.path().join("5.json").exists());
}
