use std::process::{Command, Output};

use alloy::primitives::{Address, B256};
use settle_relayer::{
    audit::{self, Entry, Purpose},
    intake::MIGRATOR,
    keys::{KeyRegistry, KeyStatus, SignerKey},
};
use settle_testkit::{TestChain, TestDb, TestToken, settlement::native_settlement, softhsm};

/// `settle` with the token's module and the SoftHSM2 config the tests use, and a quiet log.
fn settle(token: &TestToken) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_settle"));
    cmd.env(
        softhsm::CONF_ENV,
        std::env::var_os(softhsm::CONF_ENV).expect("SOFTHSM2_CONF is set by .cargo/config.toml"),
    )
    .env("SETTLE_PKCS11_MODULE", token.module_path())
    .env("SETTLE_HSM_PIN", token.user_pin())
    .env("SETTLE_LOG", "error");
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let output = cmd.output().expect("settle runs");
    let stdout = String::from_utf8(output.stdout.clone()).expect("utf-8 stdout");
    let stderr = String::from_utf8(output.stderr.clone()).expect("utf-8 stderr");
    (output, stdout, stderr)
}

/// The rows of `settle keys list`, split into (label, id, address).
fn rows(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "{line}");
            (fields[0].into(), fields[1].into(), fields[2].into())
        })
        .collect()
}

#[test]
fn keys_list_shows_the_token_key() {
    let token = TestToken::create().expect("token");
    let (output, stdout, stderr) =
        run(settle(&token).args(["keys", "list", "--token", token.token_label()]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.starts_with("LABEL "), "{stdout}");
    assert_eq!(
        rows(&stdout),
        vec![(
            token.key_label().to_owned(),
            alloy::hex::encode(token.key_id()),
            token.address().to_string(),
        )]
    );
    assert!(!stdout.contains(token.user_pin()) && !stderr.contains(token.user_pin()));
}

#[test]
fn keys_create_adds_a_key_that_list_shows() {
    let token = TestToken::create().expect("token");
    let (output, stdout, stderr) = run(settle(&token).args([
        "keys",
        "create",
        "--token",
        token.token_label(),
        "--label",
        "rotation-1",
    ]));
    assert!(output.status.success(), "{stderr}");
    let prefix = format!(
        "created key \"rotation-1\" on token {:?}: ",
        token.token_label()
    );
    let address: Address = stdout
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"))
        .parse()
        .expect("an address");

    let (output, stdout, stderr) =
        run(settle(&token).args(["keys", "list", "--token", token.token_label()]));
    assert!(output.status.success(), "{stderr}");
    let listed: Vec<(String, String)> = rows(&stdout)
        .into_iter()
        .map(|(label, _, address)| (label, address))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("rotation-1".to_owned(), address.to_string()),
            (token.key_label().to_owned(), token.address().to_string()),
        ]
    );

    let (output, _, stderr) = run(settle(&token).args([
        "keys",
        "create",
        "--token",
        token.token_label(),
        "--label",
        "rotation-1",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "settle: error: token {:?} already holds an object labelled \"rotation-1\"; \
             choose another label\n",
            token.token_label()
        )
    );
}

#[test]
fn keys_list_without_a_pin_names_the_fix() {
    let token = TestToken::create().expect("token");
    let (output, stdout, stderr) = run(settle(&token).env_remove("SETTLE_HSM_PIN").args([
        "keys",
        "list",
        "--token",
        token.token_label(),
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "settle: error: SETTLE_HSM_PIN is not set; export the token's user PIN\n"
    );
}

#[tokio::test]
async fn keys_audit_reports_an_intact_then_a_broken_log() {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    for n in 1u8..=2 {
        let mut tx = db.pool().begin().await.expect("tx");
        let entry = Entry {
            signer: Address::repeat_byte(0x51),
            digest: B256::repeat_byte(n),
            purpose: Purpose::Batch,
            reference: format!("ref-{n}"),
            signed_at_us: i64::from(n),
        };
        audit::append(&mut tx, &entry).await.expect("append");
        tx.commit().await.expect("commit");
    }
    let audit = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_settle"));
        cmd.env("SETTLE_LOG", "error")
            .args(["keys", "audit", "--database-url", db.url()]);
        run(&mut cmd)
    };
    let (output, stdout, stderr) = audit();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "signing log intact: 2 entries\n");

    // Someone with the power to bypass the append-only trigger.
    let mut tx = db.pool().begin().await.expect("tx");
    sqlx::query("ALTER TABLE relayer.signing_log DISABLE TRIGGER signing_log_append_only")
        .execute(&mut *tx)
        .await
        .expect("disable trigger");
    sqlx::query("UPDATE relayer.signing_log SET reference = 'forged' WHERE seq = 2")
        .execute(&mut *tx)
        .await
        .expect("tamper");
    tx.commit().await.expect("commit");

    let (output, stdout, stderr) = audit();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "settle: error: signing log broken: entry 2 was altered: its content does not match \
         its hash; compare it with a backup before the relayer signs again\n"
    );
    db.cleanup().await.expect("cleanup");
}

/// `settle` with a quiet log and nothing else: for commands that need no token.
fn settle_plain() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_settle"));
    cmd.env("SETTLE_LOG", "error");
    cmd
}

/// `settle keys create` of `label`; the new key's address.
fn create_key(token: &TestToken, label: &str) -> Address {
    let (output, stdout, stderr) = run(settle(token).args([
        "keys",
        "create",
        "--token",
        token.token_label(),
        "--label",
        label,
    ]));
    assert!(output.status.success(), "{stderr}");
    stdout
        .trim_end()
        .rsplit_once(": ")
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"))
        .1
        .parse()
        .expect("an address")
}

/// The rows `settle keys registry` must print for `keys`, as (role, status, label, address,
/// activated, retired).
fn registry_rows(keys: &[SignerKey]) -> Vec<Vec<String>> {
    let time = |at: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>| {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    keys.iter()
        .map(|k| {
            vec![
                k.role.as_str().to_owned(),
                k.status.as_str().to_owned(),
                k.label.clone(),
                k.address.to_string(),
                time(k.activated_at),
                k.retired_at.map_or_else(|| "-".to_owned(), time),
            ]
        })
        .collect()
}

/// The table of `settle keys registry`: its header and its rows split on whitespace.
fn table(stdout: &str) -> (String, Vec<Vec<String>>) {
    let mut lines = stdout.lines();
    let header = lines
        .next()
        .expect("a header")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let rows = lines
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Key A, then key B, become the active batch key; A is retired only once the contract no longer
/// authorises it.
#[tokio::test]
async fn keys_rotate_twice_then_retire_the_old_key() {
    let db = TestDb::create().await.expect("database");
    let token = TestToken::create().expect("token");
    let chain = TestChain::start().expect("anvil");
    let a = create_key(&token, "batch-a");
    let b = create_key(&token, "batch-b");
    let settlement = native_settlement(&chain, a).await.expect("settlement");
    let contract = settlement.address().to_string();
    let chain_id = chain.chain_id().to_string();
    let (a_hex, b_hex) = (a.to_string(), b.to_string());

    let rotate = |label: &str| {
        run(settle(&token).args([
            "keys",
            "rotate",
            "--database-url",
            db.url(),
            "--chain-id",
            &chain_id,
            "--contract",
            &contract,
            "--token",
            token.token_label(),
            "--label",
            label,
        ]))
    };
    let (output, stdout, stderr) = rotate("batch-a");
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "active batch key of {contract} on chain {chain_id}: \"batch-a\" {a}\n\
             retiring: none (no batch key was active)\n\
             next: the contract must authorise {a} through governance (setSigner({a}, true)) \
             before batches signed by it can settle\n"
        )
    );
    let (output, stdout, stderr) = rotate("batch-b");
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "active batch key of {contract} on chain {chain_id}: \"batch-b\" {b}\n\
             retiring: \"batch-a\" {a}\n\
             next: the contract must authorise {b} through governance (setSigner({b}, true)) \
             before batches signed by it can settle; later, once governance has removed {a} \
             (setSigner({a}, false)), run `settle keys retire --chain-id {chain_id} \
             --contract {contract} --rpc URL --address {a}`\n"
        )
    );

    // The database URL from the environment this time.
    let registry = || {
        run(settle_plain().env("SETTLE_DATABASE_URL", db.url()).args([
            "keys",
            "registry",
            "--chain-id",
            &chain_id,
            "--contract",
            &contract,
        ]))
    };
    let listed = || async {
        KeyRegistry::new(db.pool().clone())
            .list(chain.chain_id(), *settlement.address())
            .await
            .expect("registry")
    };
    let keys = listed().await;
    let statuses: Vec<(Address, KeyStatus)> = keys.iter().map(|k| (k.address, k.status)).collect();
    assert_eq!(
        statuses,
        vec![(a, KeyStatus::Retiring), (b, KeyStatus::Active)]
    );
    let (output, stdout, stderr) = registry();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        table(&stdout),
        (
            "ROLE STATUS LABEL ADDRESS ACTIVATED RETIRED".to_owned(),
            registry_rows(&keys)
        )
    );
    let (_, rows) = table(&stdout);
    assert_eq!(
        rows[0][..4],
        ["batch", "retiring", "batch-a", a_hex.as_str()]
    );
    assert_eq!(rows[1][..4], ["batch", "active", "batch-b", b_hex.as_str()]);

    let retire = |chain_id: &str, address: &str| {
        run(settle_plain().args([
            "keys",
            "retire",
            "--database-url",
            db.url(),
            "--rpc",
            &chain.endpoint(),
            "--chain-id",
            chain_id,
            "--contract",
            &contract,
            "--address",
            address,
        ]))
    };
    let (output, stdout, stderr) = retire("1", &a_hex);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "settle: error: --rpc serves chain {chain_id}, not --chain-id 1; point --rpc at the \
             contract's chain\n"
        )
    );
    let (output, stdout, stderr) = retire(&chain_id, &b_hex);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "settle: error: key registry: key {b} is active, not retiring; only a retiring key \
             can be retired\n"
        )
    );
    let (output, stdout, stderr) = retire(&chain_id, &a_hex);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "settle: error: the contract still authorises {a}; remove it through governance \
             (setSigner(key, false)) first\n"
        )
    );
    assert_eq!(listed().await, keys, "a refused retirement changes nothing");

    let removed = settlement.setSigner(a, false).send().await.expect("sent");
    assert!(removed.get_receipt().await.expect("mined").status());
    let (output, stdout, stderr) = retire(&chain_id, &a_hex);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!("retired batch key {a} of {contract} on chain {chain_id}\n")
    );

    let keys = listed().await;
    let (output, stdout, stderr) = registry();
    assert!(output.status.success(), "{stderr}");
    let (_, rows) = table(&stdout);
    assert_eq!(rows, registry_rows(&keys));
    assert_eq!(
        rows[0][..4],
        ["batch", "retired", "batch-a", a_hex.as_str()]
    );
    assert_ne!(rows[0][5], "-", "a retired key shows when");
    assert_eq!(rows[1][..4], ["batch", "active", "batch-b", b_hex.as_str()]);
    assert_eq!(rows[1][5], "-");
    db.cleanup().await.expect("cleanup");
}

#[test]
fn keys_rotate_and_retire_name_the_flag_of_a_bad_address() {
    // Nothing listens there: the address is refused before anything is reached.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let (output, stdout, stderr) = run(settle_plain().env_remove("SETTLE_HSM_PIN").args([
        "keys",
        "rotate",
        "--database-url",
        nowhere,
        "--chain-id",
        "1",
        "--contract",
        "0x123",
        "--token",
        "t",
        "--label",
        "k",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "settle: error: invalid --contract \"0x123\": an address has 40 hex digits after 0x, \
         not 3\n"
    );

    // One case flipped in a checksummed address.
    let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
    let (output, stdout, stderr) = run(settle_plain().args([
        "keys",
        "retire",
        "--database-url",
        nowhere,
        "--rpc",
        "http://127.0.0.1:1",
        "--chain-id",
        "1",
        "--contract",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "--address",
        bad,
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "settle: error: invalid --address \"{bad}\": the mixed-case address fails its EIP-55 \
             checksum; check it for typos\n"
        )
    );
}
