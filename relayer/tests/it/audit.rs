use alloy::primitives::{Address, B256};
use settle_relayer::{
    audit::{self, Break, Entry, Purpose},
    intake::MIGRATOR,
};
use settle_testkit::TestDb;

async fn log_with_three_entries() -> TestDb {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    for n in 1u8..=3 {
        let mut tx = db.pool().begin().await.expect("tx");
        let entry = Entry {
            signer: Address::repeat_byte(0x51),
            digest: B256::repeat_byte(n),
            purpose: if n == 3 {
                Purpose::Transaction
            } else {
                Purpose::Batch
            },
            reference: format!("ref-{n}"),
            signed_at_us: 1_700_000_000_000_000_i64.saturating_add(i64::from(n)),
        };
        assert_eq!(
            audit::append(&mut tx, &entry).await.expect("append"),
            i64::from(n)
        );
        tx.commit().await.expect("commit");
    }
    db
}

async fn as_admin(db: &TestDb, sql: &str) {
    // Someone with the power to bypass the trigger: the chain must still show it.
    let mut tx = db.pool().begin().await.expect("tx");
    sqlx::query("ALTER TABLE relayer.signing_log DISABLE TRIGGER signing_log_append_only")
        .execute(&mut *tx)
        .await
        .expect("disable trigger");
    sqlx::query(sql).execute(&mut *tx).await.expect("tamper");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn intact_log_verifies_and_the_app_cannot_change_it() {
    let db = log_with_three_entries().await;
    assert_eq!(audit::verify(db.pool()).await.expect("verify"), Ok(3));
    let err = sqlx::query("DELETE FROM relayer.signing_log WHERE seq = 1")
        .execute(db.pool())
        .await
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn altered_entry_is_found() {
    let db = log_with_three_entries().await;
    as_admin(
        &db,
        "UPDATE relayer.signing_log SET reference = 'forged' WHERE seq = 2",
    )
    .await;
    assert_eq!(
        audit::verify(db.pool()).await.expect("verify"),
        Err(Break::Altered { seq: 2 })
    );
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn deleted_entry_is_found() {
    let db = log_with_three_entries().await;
    as_admin(&db, "DELETE FROM relayer.signing_log WHERE seq = 2").await;
    assert_eq!(
        audit::verify(db.pool()).await.expect("verify"),
        Err(Break::Missing { seq: 2 })
    );
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn relinked_entry_is_found() {
    let db = log_with_three_entries().await;
    as_admin(
        &db,
        "UPDATE relayer.signing_log SET prev_hash = decode(repeat('00', 32), 'hex') WHERE seq = 3",
    )
    .await;
    assert_eq!(
        audit::verify(db.pool()).await.expect("verify"),
        Err(Break::Relinked { seq: 3 })
    );
    db.cleanup().await.expect("cleanup");
}
