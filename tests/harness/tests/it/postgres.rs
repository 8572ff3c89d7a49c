use settle_testkit::{Error, TestDb, postgres::admin_connection};
use sqlx::Row;

async fn database_exists(name: &str) -> bool {
    let mut admin = admin_connection().await.expect("admin connection");
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .expect("query pg_database")
}

#[tokio::test]
async fn fresh_database_round_trips_rows_and_is_dropped_by_cleanup() -> settle_testkit::Result<()> {
    let db = TestDb::create().await?;
    let name = db.name().to_owned();
    assert!(name.starts_with("settle_test_"));
    assert_eq!(name.len(), "settle_test_".len() + 32);
    assert!(
        db.url().contains(&format!("/{name}")),
        "url {} names the db",
        db.url()
    );
    assert!(database_exists(&name).await);

    sqlx::query("CREATE TABLE payee (id BIGINT PRIMARY KEY, share_bps INT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("create table");
    sqlx::query("INSERT INTO payee (id, share_bps) VALUES ($1, $2), ($3, $4)")
        .bind(1_i64)
        .bind(7_000_i32)
        .bind(2_i64)
        .bind(3_000_i32)
        .execute(db.pool())
        .await
        .expect("insert");
    let rows: Vec<(i64, i32)> = sqlx::query_as("SELECT id, share_bps FROM payee ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("select");
    assert_eq!(rows, vec![(1, 7_000), (2, 3_000)]);

    // The URL reaches the same database from an independent connection.
    let other = sqlx::PgPool::connect(db.url())
        .await
        .expect("connect by url");
    let current: String = sqlx::query("SELECT current_database()")
        .fetch_one(&other)
        .await
        .expect("current_database")
        .get(0);
    assert_eq!(current, name);
    // Left open on purpose: cleanup must force it out.

    db.cleanup().await?;
    assert!(!database_exists(&name).await);
    Ok(())
}

#[tokio::test]
async fn dropping_without_cleanup_still_drops_the_database() -> settle_testkit::Result<()> {
    let db = TestDb::create().await?;
    let name = db.name().to_owned();
    sqlx::query("SELECT 1")
        .execute(db.pool())
        .await
        .expect("use the pool");
    drop(db);
    assert!(!database_exists(&name).await);
    Ok(())
}

#[tokio::test]
async fn two_databases_are_distinct() -> settle_testkit::Result<()> {
    let a = TestDb::create().await?;
    let b = TestDb::create().await?;
    assert_ne!(a.name(), b.name());
    a.cleanup().await?;
    b.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn unreachable_server_is_a_typed_error_naming_the_fix() {
    let err = TestDb::create_at("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(&err, Error::PostgresConnect { host, port: 1, .. } if host == "127.0.0.1"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("SETTLE_TEST_DATABASE_URL"), "{message}");
    assert!(message.contains("./scripts/setup"), "{message}");
}
