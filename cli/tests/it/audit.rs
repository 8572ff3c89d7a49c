//! `settle audit verify-deployment` against a real anvil deployment and a real compile of the
//! pinned sources (cached under the test target directory: the tests compile once between them).

use std::{path::Path, process::Command};

use alloy::{
    primitives::{Address, B256, Bytes},
    providers::Provider,
};
use settle_contracts::SplitSettlement;
use settle_deploy::{
    Manifest,
    plan::implementation_slot,
    verify::{self, Shipped},
};
use settle_testkit::TestChain;

/// Runs `settle ARGS` from the repository root with anvil's key 0 as the deployer;
/// (success, stdout, stderr).
fn settle(chain: &TestChain, args: &[&str]) -> (bool, String, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO_BIN_EXE_settle"))
        .current_dir(root)
        .env(
            "SETTLE_DEPLOYER_KEY",
            chain.signers()[0].to_bytes().to_string(),
        )
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

/// The compile cache all tests of this binary share.
fn cache_dir() -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("settle-verify-cache")
        .display()
        .to_string()
}

/// `settle audit verify-deployment --rpc RPC EXTRA.. --cache-dir <shared>`.
fn verify_deployment(chain: &TestChain, extra: &[&str]) -> (bool, String, String) {
    let rpc = chain.endpoint();
    let cache = cache_dir();
    let mut args = vec!["audit", "verify-deployment", "--rpc", &rpc];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--cache-dir", &cache]);
    settle(chain, &args)
}

async fn set_implementation(chain: &TestChain, proxy: Address, implementation: Address) {
    chain
        .provider()
        .raw_request::<_, bool>(
            "anvil_setStorageAt".into(),
            (proxy, implementation_slot(), implementation.into_word()),
        )
        .await
        .expect("anvil_setStorageAt");
}

async fn set_code(chain: &TestChain, address: Address, code: Vec<u8>) {
    chain
        .provider()
        .raw_request::<_, ()>("anvil_setCode".into(), (address, Bytes::from(code)))
        .await
        .expect("anvil_setCode");
}

#[tokio::test]
async fn verify_deployment_matches_then_names_the_first_difference() {
    let chain = TestChain::start().expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let deployments = dir.path().join("deployments");
    let (ok, _, stderr) = settle(
        &chain,
        &[
            "deploy",
            "--rpc",
            &chain.endpoint(),
            "--config",
            "deploy/config/anvil.toml",
            "--manifests",
            path(&deployments),
        ],
    );
    assert!(ok, "{stderr}");
    let manifest_path = deployments.join("31337.json");
    let manifest = Manifest::read(&manifest_path, 31337).expect("manifest");
    let proxy = manifest.settlement;
    let expected = verify::committed(Shipped::SplitSettlement).expect("artifact");
    let len = expected.code.len();

    let (ok, stdout, stderr) = verify_deployment(&chain, &["--manifest", path(&manifest_path)]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("compiled contracts with solc 0.8.30+commit.73712a01"),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!(
            "match: SplitSettlement at {} (implementation of proxy {proxy}), {len} bytes, \
             288 immutable bytes masked",
            manifest.implementation
        )
    );
    assert_eq!(
        lines[2],
        format!("match: ERC1967Proxy at {proxy} (the proxy), 87 bytes, 0 immutable bytes masked")
    );
    assert_eq!(
        lines[3],
        format!(
            "match: SettleMultisig at {} (the manifest's multisig), 4177 bytes, \
             224 immutable bytes masked",
            manifest.multisig
        )
    );

    // Another deployment of the same build: its immutables (address(this), the EIP-712 domain)
    // differ and are masked; the implementation is read from the slot, not the manifest.
    let other = *SplitSettlement::deploy(chain.provider())
        .await
        .expect("implementation")
        .address();
    set_implementation(&chain, proxy, other).await;
    let (ok, stdout, stderr) = verify_deployment(&chain, &["--settlement", &proxy.to_string()]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[1..],
        [
            format!(
                "match: SplitSettlement at {other} (implementation of proxy {proxy}), {len} bytes, \
                 288 immutable bytes masked"
            ),
            format!(
                "match: ERC1967Proxy at {proxy} (the proxy), 87 bytes, 0 immutable bytes masked"
            ),
            "SettleMultisig not checked: pass --manifest to name the multisig".to_owned(),
        ]
    );

    // One byte changed, outside the immutables.
    let onchain = chain.provider().get_code_at(other).await.expect("code");
    let offset = 1000;
    assert!(
        expected
            .immutables
            .iter()
            .all(|&(start, length)| offset < start || offset >= start.saturating_add(length))
    );
    let mut tampered = onchain.to_vec();
    tampered[offset] ^= 0x01;
    set_code(&chain, other, tampered.clone()).await;
    let (ok, stdout, stderr) = verify_deployment(&chain, &["--manifest", path(&manifest_path)]);
    assert!(!ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!(
            "MISMATCH: SplitSettlement at {other} (implementation of proxy {proxy}): \
             first difference at byte offset 1000 (opcode context: {}): expected 0x{:02x} on-chain 0x{:02x}",
            verify::opcode_context(&expected.code, offset),
            expected.code[offset],
            tampered[offset]
        )
    );
    assert!(lines[2].starts_with("match: ERC1967Proxy"), "{stdout}");
    assert!(lines[3].starts_with("match: SettleMultisig"), "{stdout}");
    assert_eq!(
        stderr.trim_end(),
        "settle: error: 1 of 3 contract(s) differ from the pinned sources; \
         this deployment does not run the code in contracts"
    );

    // One byte more: the lengths are named.
    let mut longer = onchain.to_vec();
    longer.push(0x00);
    set_code(&chain, other, longer).await;
    let (ok, stdout, _) = verify_deployment(&chain, &["--settlement", &proxy.to_string()]);
    assert!(!ok);
    assert_eq!(
        stdout.lines().nth(1).expect("settlement line"),
        format!(
            "MISMATCH: SplitSettlement at {other} (implementation of proxy {proxy}): \
             first difference at byte offset {len} (opcode context: past the end of the expected code): \
             expected (end of code) on-chain 0x00; lengths differ: expected {len} bytes, on-chain {} bytes",
            len + 1
        )
    );

    // Sources that are not there.
    let missing = dir.path().join("contracts");
    let (ok, _, stderr) = verify_deployment(
        &chain,
        &[
            "--manifest",
            path(&manifest_path),
            "--contracts",
            path(&missing),
        ],
    );
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: {} is missing; run from the repository root (or pass --contracts DIR) \
             and install node_modules with scripts/setup",
            missing.display()
        )
    );
}

#[tokio::test]
async fn verify_deployment_names_a_wrong_chain_and_a_missing_contract() {
    let chain = TestChain::start_with(|anvil| anvil.chain_id(5)).expect("anvil");
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest_path = Manifest::path_for(dir.path(), 31337);
    Manifest {
        chain_id: 31337,
        settlement: Address::repeat_byte(0x11),
        implementation: Address::repeat_byte(0x22),
        timelock: Address::repeat_byte(0x33),
        multisig: Address::repeat_byte(0x44),
        owners: vec![Address::repeat_byte(0x55)],
        threshold: 1,
        min_delay: 60,
        salt: B256::repeat_byte(7),
        deployer: Address::repeat_byte(0x66),
        deployed_block: 1,
    }
    .write(&manifest_path)
    .expect("manifest");

    let (ok, stdout, stderr) = verify_deployment(&chain, &["--manifest", path(&manifest_path)]);
    assert!(!ok);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: {} is for chain 31337 but the RPC endpoint serves chain 5; \
             point --rpc at chain 31337 or pass the manifest of chain 5",
            manifest_path.display()
        )
    );

    let nothing = Address::repeat_byte(0x99);
    let (ok, _, stderr) = verify_deployment(&chain, &["--settlement", &nothing.to_string()]);
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: no code at {nothing} (the proxy) on chain 5; \
             check --rpc and the address (--settlement or the manifest)"
        )
    );

    // Code, but no implementation in the ERC-1967 slot.
    set_code(&chain, nothing, vec![0x00]).await;
    let (ok, _, stderr) = verify_deployment(&chain, &["--settlement", &nothing.to_string()]);
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "settle: error: {nothing} has no implementation in its ERC-1967 slot; \
             pass the SplitSettlement proxy's address"
        )
    );
}
