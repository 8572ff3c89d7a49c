use std::process::{Command, Output};

use alloy::primitives::{Address, B256};
use settle_relayer::{
    audit::{self, Entry, Purpose},
    intake::MIGRATOR,
};
use settle_testkit::{TestDb, TestToken, softhsm};

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
