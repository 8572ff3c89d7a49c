//! The indexer's and the relayer's migrations share sqlx's table and run in either order.

use settle_testkit::TestDb;
use sqlx::PgPool;

async fn schemas(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata
         WHERE schema_name IN ('indexer', 'relayer') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("schemas")
}

async fn versions(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE version BETWEEN 100000 AND 199999),
                count(*) FILTER (WHERE version BETWEEN 200000 AND 299999)
         FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(pool)
    .await
    .expect("versions")
}

#[tokio::test]
async fn relayer_then_indexer_then_again() {
    let db = TestDb::create().await.expect("database");
    settle_relayer::intake::MIGRATOR
        .run(db.pool())
        .await
        .expect("relayer first");
    settle_indexer::migrate(db.pool())
        .await
        .expect("indexer second");
    settle_indexer::migrate(db.pool())
        .await
        .expect("indexer again is a no-op");
    settle_relayer::intake::MIGRATOR
        .run(db.pool())
        .await
        .expect("relayer again is a no-op");
    assert_eq!(schemas(db.pool()).await, ["indexer", "relayer"]);
    let relayer_count =
        i64::try_from(settle_relayer::intake::MIGRATOR.iter().count()).expect("few migrations");
    let indexer_count =
        i64::try_from(settle_indexer::MIGRATOR.iter().count()).expect("few migrations");
    assert_eq!(versions(db.pool()).await, (relayer_count, indexer_count));
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn indexer_then_relayer() {
    let db = TestDb::create().await.expect("database");
    settle_indexer::migrate(db.pool())
        .await
        .expect("indexer first");
    settle_relayer::intake::MIGRATOR
        .run(db.pool())
        .await
        .expect("relayer second: it must ignore the indexer's versions");
    settle_indexer::migrate(db.pool())
        .await
        .expect("indexer again is a no-op");
    assert_eq!(schemas(db.pool()).await, ["indexer", "relayer"]);
    let relayer_count =
        i64::try_from(settle_relayer::intake::MIGRATOR.iter().count()).expect("few migrations");
    let indexer_count =
        i64::try_from(settle_indexer::MIGRATOR.iter().count()).expect("few migrations");
    assert_eq!(versions(db.pool()).await, (relayer_count, indexer_count));
    db.cleanup().await.expect("cleanup");
}
