//! `settle upgrade` end to end: deploy with the anvil config (owners = anvil 1..3, 2 of 3, 60 s),
//! propose a second implementation, approve, schedule, wait, upgrade.

use std::{path::Path, process::Command};

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    providers::Provider,
};
use settle_contracts::SplitSettlement;
use settle_testkit::TestChain;

/// Runs `settle upgrade ARGS` with the anvil keys 1..3 and 9 in OWNER1..3 and SENDER;
/// (success, stdout, stderr).
fn settle(chain: &TestChain, args: &[&str]) -> (bool, String, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let key = |i: usize| chain.signers()[i].to_bytes().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_settle"))
        .current_dir(root)
        .env("SETTLE_DEPLOYER_KEY", key(0))
        .env("OWNER1", key(1))
        .env("OWNER2", key(2))
        .env("OWNER3", key(3))
        .env("STRANGER", key(8))
        .env("SENDER", key(9))
        .env("SETTLE_LOG", "error")
        .args(args)
        .output()
        .expect("settle runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("utf-8"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The implementation in the proxy's ERC-1967 slot.
async fn implementation(chain: &TestChain, proxy: Address) -> Address {
    let slot = U256::from_be_bytes(keccak256("eip1967.proxy.implementation").0)
        .wrapping_sub(U256::from(1));
    let word = chain
        .provider()
        .get_storage_at(proxy, slot)
        .await
        .expect("slot");
    Address::from_word(B256::from(word))
}

async fn advance(chain: &TestChain, seconds: u64) {
    let provider = chain.provider();
    provider
        .raw_request::<_, i64>("evm_increaseTime".into(), (U256::from(seconds),))
        .await
        .expect("evm_increaseTime");
    provider
        .raw_request::<_, String>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
}

#[tokio::test]
async fn upgrade_goes_through_approve_schedule_and_execute() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let rpc = chain.endpoint();
    let deployments = dir.path().join("deployments");
    let (ok, _, stderr) = settle(
        &chain,
        &[
            "deploy",
            "--rpc",
            &rpc,
            "--config",
            "deploy/config/anvil.toml",
            "--manifests",
            path(&deployments),
        ],
    );
    assert!(ok, "{stderr}");
    let manifest_path = deployments.join("31337.json");
    let manifest = settle_deploy::Manifest::read(&manifest_path, 31337).expect("manifest");
    let new = *SplitSettlement::deploy(chain.provider())
        .await
        .expect("implementation")
        .address();
    let proposal = dir.path().join("proposal.json");
    let propose = |implementation: String| {
        settle(
            &chain,
            &[
                "upgrade",
                "propose",
                "--rpc",
                &rpc,
                "--manifest",
                path(&manifest_path),
                "--implementation",
                &implementation,
                "--new-layout",
                "contracts/artifacts/SplitSettlement.json",
                "--out",
                path(&proposal),
            ],
        )
    };

    // An address without code is refused.
    let (ok, _, stderr) = propose(Address::repeat_byte(0x99).to_string());
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: {} has no code on this chain; deploy the new implementation first",
            Address::repeat_byte(0x99)
        )
    );
    assert!(!proposal.exists());

    let (ok, stdout, stderr) = propose(new.to_string());
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("proposed: upgrade proxy "), "{stdout}");

    let approve = |var: &str| {
        settle(
            &chain,
            &[
                "upgrade",
                "approve",
                "--proposal",
                path(&proposal),
                "--owner-key-env",
                var,
            ],
        )
    };
    let execute = || {
        settle(
            &chain,
            &[
                "upgrade",
                "execute",
                "--rpc",
                &rpc,
                "--proposal",
                path(&proposal),
                "--sender-key-env",
                "SENDER",
            ],
        )
    };

    let (ok, _, stderr) = approve("STRANGER");
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: {} is not an owner of the multisig {}; only its owners approve",
            chain.addresses()[8],
            manifest.multisig
        )
    );

    let (ok, stdout, stderr) = approve("OWNER2");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 of 2 signature(s)"), "{stdout}");
    let (ok, _, stderr) = execute();
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        "settle: error: threshold not met: the proposal has 1 signature(s), the multisig needs 2; \
         ask another owner to run `settle upgrade approve`"
    );

    let (ok, _, stderr) = approve("OWNER1");
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = execute();
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("scheduled in transaction "), "{stdout}");

    let (ok, _, stderr) = execute();
    assert!(!ok);
    assert!(
        stderr.starts_with("settle: error: too early: the timelock allows execution at ")
            && stderr.trim_end().ends_with(" s")
            && stderr.lines().count() == 1,
        "{stderr}"
    );

    advance(&chain, 61).await;
    let (ok, stdout, stderr) = execute();
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("upgraded: proxy "), "{stdout}");
    assert_eq!(implementation(&chain, manifest.settlement).await, new);

    // State kept: the batch signer the deployment authorised still is.
    let settlement = SplitSettlement::new(manifest.settlement, chain.provider());
    assert!(
        settlement
            .isSigner(chain.addresses()[5])
            .call()
            .await
            .expect("isSigner")
    );

    let (ok, stdout, stderr) = settle(
        &chain,
        &[
            "upgrade",
            "status",
            "--rpc",
            &rpc,
            "--proposal",
            path(&proposal),
        ],
    );
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[1], "signatures: 2/2 (schedule), 2/2 (execute)");
    assert_eq!(lines[2], "timelock: executed");
    assert_eq!(lines[3], format!("proxy implementation: {new}"));
}
