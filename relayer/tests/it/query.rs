//! The reads the API makes: the status-change feed never skips a change that commits late, and a
//! cancel is atomic with the batcher's `FOR UPDATE SKIP LOCKED` claim.

use std::time::Duration;

use alloy::primitives::Address;
use settle_relayer::{
    intake::{
        InstructionLeg, InstructionStatus, Intake, IntakeConfig, IntegratorLimits, MIGRATOR,
        NewInstruction, TokenRule,
    },
    query::{self, CancelError, ChangeCursor, Scope, StatusChange},
};
use settle_testkit::TestDb;
use uuid::Uuid;

const LIMITS: IntegratorLimits = IntegratorLimits {
    max_payment: u128::MAX,
    daily_cap: u128::MAX,
};

/// A database with `count` accepted instructions of "shop"; answers their ids in order.
async fn accepted(count: usize) -> (TestDb, Vec<Uuid>) {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let intake = Intake::new(
        db.pool().clone(),
        IntakeConfig {
            tokens: vec![TokenRule {
                chain_id: 31337,
                token: Address::ZERO,
                max_payment: u128::MAX,
            }],
            max_payees: 4,
        },
    );
    let instructions: Vec<NewInstruction> = (0..count)
        .map(|i| NewInstruction {
            idempotency_key: format!("k-{i}"),
            chain_id: 31337,
            token: Address::ZERO,
            funder: Address::repeat_byte(0xf0),
            amount: 1_000,
            legs: vec![InstructionLeg {
                payee: Address::repeat_byte(0x0a),
                share: 1_000_000,
            }],
        })
        .collect();
    let ids = intake
        .submit("shop", &LIMITS, &instructions)
        .await
        .expect("accepted")
        .into_iter()
        .map(|a| a.id)
        .collect();
    (db, ids)
}

/// Reads the feed until it answers `count` changes (other transactions on the server may hold the
/// horizon back for a moment), failing after 30 s.
async fn feed(db: &TestDb, after: ChangeCursor, count: usize) -> Vec<StatusChange> {
    for _ in 0..600 {
        let changes = query::status_changes(db.pool(), after, 100)
            .await
            .expect("feed");
        if changes.len() >= count {
            return changes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the feed did not reach {count} changes");
}

#[tokio::test]
async fn the_feed_never_skips_a_change_that_commits_late() {
    let (db, ids) = accepted(2).await;
    let (first, second) = (ids[0], ids[1]);

    // An older transaction changes the first instruction and stays open...
    let mut older = db.pool().begin().await.expect("begin");
    sqlx::query(
        "UPDATE relayer.instructions SET status = 'signed', updated_at = now() WHERE id = $1",
    )
    .bind(first)
    .execute(&mut *older)
    .await
    .expect("update");
    // ...while a younger one changes the second and commits.
    let cancelled = query::cancel(db.pool(), Scope::Integrator("shop"), second)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, InstructionStatus::Cancelled);

    // A reader that took the younger change now and moved its cursor past it would never see the
    // older one: so the feed answers nothing until the older transaction is over.
    let early = query::status_changes(db.pool(), ChangeCursor::default(), 100)
        .await
        .expect("feed");
    assert_eq!(early, Vec::new());

    older.commit().await.expect("commit");
    let changes = feed(&db, ChangeCursor::default(), 2).await;
    let seen: Vec<(Uuid, InstructionStatus, InstructionStatus)> = changes
        .iter()
        .map(|c| (c.instruction, c.from, c.to))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                first,
                InstructionStatus::Accepted,
                InstructionStatus::Signed
            ),
            (
                second,
                InstructionStatus::Accepted,
                InstructionStatus::Cancelled
            ),
        ]
    );
    assert!(changes.iter().all(|c| c.integrator == "shop"));
    assert!(changes[0].cursor < changes[1].cursor);
    // Cursors resume exactly after a change.
    let rest = query::status_changes(db.pool(), changes[0].cursor, 100)
        .await
        .expect("feed");
    assert_eq!(rest, changes[1..].to_vec());
    let none = query::status_changes(db.pool(), changes[1].cursor, 100)
        .await
        .expect("feed");
    assert_eq!(none, Vec::new());
    // An update that leaves the status as it was is not a change.
    sqlx::query("UPDATE relayer.instructions SET updated_at = now() WHERE id = $1")
        .bind(first)
        .execute(db.pool())
        .await
        .expect("touch");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let none = query::status_changes(db.pool(), changes[1].cursor, 100)
        .await
        .expect("feed");
    assert_eq!(none, Vec::new());
    db.cleanup().await.expect("cleanup");
}

/// Waits until a session of this database waits on a lock.
async fn until_blocked(db: &TestDb) {
    for _ in 0..600 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db.pool())
        .await
        .expect("activity");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cancel never waited on the claim");
}

#[tokio::test]
async fn a_cancel_is_atomic_with_the_batchers_claim() {
    let (db, ids) = accepted(2).await;
    let (claimed, free) = (ids[0], ids[1]);

    // The batcher's claim, as `Batcher::sign_next` makes it.
    let claim_sql = "SELECT id FROM relayer.instructions WHERE status = 'accepted' AND id = $1
                     FOR UPDATE SKIP LOCKED";
    let mut batcher = db.pool().begin().await.expect("begin");
    let rows = sqlx::query(claim_sql)
        .bind(claimed)
        .fetch_all(&mut *batcher)
        .await
        .expect("claim");
    assert_eq!(rows.len(), 1);
    // A cancel of the claimed instruction waits for the batcher...
    let pool = db.pool().clone();
    let cancelling =
        tokio::spawn(async move { query::cancel(&pool, Scope::Integrator("shop"), claimed).await });
    until_blocked(&db).await;
    // ...which signs it and commits: the cancel then finds it no longer accepted.
    sqlx::query(
        "UPDATE relayer.instructions SET status = 'signed', updated_at = now() WHERE id = $1",
    )
    .bind(claimed)
    .execute(&mut *batcher)
    .await
    .expect("signed");
    batcher.commit().await.expect("commit");
    match cancelling.await.expect("joined") {
        Err(CancelError::NotCancellable { status }) => {
            assert_eq!(status, InstructionStatus::Signed);
        }
        other => panic!("expected not cancellable, got {other:?}"),
    }

    // The other way round: a cancel first, and the batcher's claim no longer sees it.
    let cancelled = query::cancel(db.pool(), Scope::Integrator("shop"), free)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, InstructionStatus::Cancelled);
    let rows = sqlx::query(claim_sql)
        .bind(free)
        .fetch_all(db.pool())
        .await
        .expect("claim");
    assert_eq!(rows.len(), 0);
    // Cancelling again answers it unchanged; another integrator does not find it.
    let again = query::cancel(db.pool(), Scope::Integrator("shop"), free)
        .await
        .expect("idempotent");
    assert_eq!(again, cancelled);
    assert!(matches!(
        query::cancel(db.pool(), Scope::Integrator("rival"), free).await,
        Err(CancelError::NotFound)
    ));
    assert!(matches!(
        query::cancel(db.pool(), Scope::All, Uuid::new_v4()).await,
        Err(CancelError::NotFound)
    ));
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn reads_are_scoped_to_their_integrator() {
    let (db, ids) = accepted(3).await;
    let mine = query::instruction(db.pool(), Scope::Integrator("shop"), ids[0])
        .await
        .expect("read")
        .expect("found");
    assert_eq!(mine.integrator, "shop");
    assert_eq!(mine.legs.len(), 1);
    assert_eq!(mine.batch, None);
    assert_eq!(
        query::instruction(db.pool(), Scope::Integrator("rival"), ids[0])
            .await
            .expect("read"),
        None
    );
    // Listing pages by arrival, newest first, each exactly once.
    let filter = query::Filter {
        scope: Scope::Integrator("shop"),
        status: None,
        payee: None,
        from: None,
        to: None,
    };
    let first = query::list(db.pool(), &filter, None, 2)
        .await
        .expect("page");
    assert_eq!(
        first.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let second = query::list(db.pool(), &filter, first.next, 2)
        .await
        .expect("page");
    assert_eq!(
        second.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(second.next, None);
    let rival = query::Filter {
        scope: Scope::Integrator("rival"),
        ..filter
    };
    assert_eq!(
        query::list(db.pool(), &rival, None, 10)
            .await
            .expect("page")
            .items,
        Vec::new()
    );
    // In the given order, missing ids left out.
    let some = query::instructions(db.pool(), &[ids[1], Uuid::new_v4(), ids[0]])
        .await
        .expect("read");
    assert_eq!(
        some.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    db.cleanup().await.expect("cleanup");
}
