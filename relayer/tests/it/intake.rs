use alloy::primitives::{Address, B256};
use settle_relayer::intake::{
    InstructionLeg, InstructionStatus, Intake, IntakeConfig, IntakeError, IntegratorLimits,
    InvalidInstruction, LimitKind, MIGRATOR, NewInstruction, TokenRule,
};
use settle_testkit::TestDb;

const CHAIN: u64 = 31337;
const USD: Address = Address::repeat_byte(0xd0);
const MERCHANT: Address = Address::repeat_byte(0x01);
const PLATFORM: Address = Address::repeat_byte(0x02);
const FUNDER: Address = Address::repeat_byte(0xf0);

const LIMITS: IntegratorLimits = IntegratorLimits {
    max_payment: 1_000_000,
    daily_cap: 5_000_000,
};

async fn intake() -> (TestDb, Intake) {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let config = IntakeConfig {
        tokens: vec![TokenRule {
            chain_id: CHAIN,
            token: USD,
            max_payment: 2_000_000,
        }],
        max_payees: 4,
    };
    let intake = Intake::new(db.pool().clone(), config);
    (db, intake)
}

fn instruction(key: &str, amount: u128) -> NewInstruction {
    NewInstruction {
        idempotency_key: key.to_owned(),
        chain_id: CHAIN,
        token: USD,
        funder: FUNDER,
        amount,
        legs: vec![
            InstructionLeg {
                payee: MERCHANT,
                share: 970_000,
            },
            InstructionLeg {
                payee: PLATFORM,
                share: 30_000,
            },
        ],
    }
}

async fn count(db: &TestDb) -> (i64, i64) {
    let instructions: i64 = sqlx::query_scalar("SELECT count(*) FROM relayer.instructions")
        .fetch_one(db.pool())
        .await
        .expect("count");
    let legs: i64 = sqlx::query_scalar("SELECT count(*) FROM relayer.instruction_legs")
        .fetch_one(db.pool())
        .await
        .expect("count");
    (instructions, legs)
}

#[tokio::test]
async fn accepted_instruction_is_durable_with_its_legs() {
    let (db, intake) = intake().await;
    let accepted = intake
        .submit("shop-1", &LIMITS, &[instruction("order-1", 12_345)])
        .await
        .expect("accepted");
    assert_eq!(accepted.len(), 1);
    assert!(!accepted[0].replayed);
    assert_eq!(accepted[0].status, InstructionStatus::Accepted);
    assert_eq!(
        accepted[0].payment_id,
        Intake::payment_id("shop-1", "order-1")
    );

    let (amount, status, payment_id): (String, String, Vec<u8>) = sqlx::query_as(
        "SELECT amount::text, status, payment_id FROM relayer.instructions WHERE id = $1",
    )
    .bind(accepted[0].id)
    .fetch_one(db.pool())
    .await
    .expect("row");
    assert_eq!((amount.as_str(), status.as_str()), ("12345", "accepted"));
    assert_eq!(B256::from_slice(&payment_id), accepted[0].payment_id);
    let legs: Vec<(i16, Vec<u8>, i32)> = sqlx::query_as(
        "SELECT position, payee, share FROM relayer.instruction_legs WHERE instruction_id = $1 ORDER BY position",
    )
    .bind(accepted[0].id)
    .fetch_all(db.pool())
    .await
    .expect("legs");
    assert_eq!(
        legs,
        vec![
            (0, MERCHANT.to_vec(), 970_000),
            (1, PLATFORM.to_vec(), 30_000)
        ]
    );
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn same_key_same_body_replays_and_different_body_conflicts() {
    let (db, intake) = intake().await;
    let first = intake
        .submit("shop-1", &LIMITS, &[instruction("order-1", 500)])
        .await
        .expect("first");
    let again = intake
        .submit("shop-1", &LIMITS, &[instruction("order-1", 500)])
        .await
        .expect("replay");
    assert_eq!(again[0].id, first[0].id);
    assert!(again[0].replayed);
    let err = intake
        .submit("shop-1", &LIMITS, &[instruction("order-1", 501)])
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, IntakeError::IdempotencyConflict { index: 0, ref key } if key == "order-1"),
        "{err}"
    );
    // The same key under another integrator is another payment.
    let other = intake
        .submit("shop-2", &LIMITS, &[instruction("order-1", 501)])
        .await
        .expect("other");
    assert_ne!(other[0].id, first[0].id);
    assert_ne!(other[0].payment_id, first[0].payment_id);
    assert_eq!(count(&db).await, (2, 4));
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn invalid_instructions_are_typed_and_nothing_is_stored() {
    let (db, intake) = intake().await;
    let mut cases: Vec<(NewInstruction, InvalidInstruction)> = Vec::new();
    let mut i = instruction("", 1);
    cases.push((i.clone(), InvalidInstruction::BadKey));
    i = instruction("k", 0);
    cases.push((i.clone(), InvalidInstruction::ZeroAmount));
    i = instruction("k", 1);
    i.token = Address::repeat_byte(0xee);
    cases.push((
        i.clone(),
        InvalidInstruction::UnknownToken {
            chain_id: CHAIN,
            token: Address::repeat_byte(0xee),
        },
    ));
    i = instruction("k", 2_000_001);
    cases.push((
        i.clone(),
        InvalidInstruction::AboveTokenMax {
            amount: 2_000_001,
            max: 2_000_000,
        },
    ));
    i = instruction("k", 1);
    i.legs.clear();
    cases.push((i.clone(), InvalidInstruction::NoLegs));
    i = instruction("k", 1);
    i.legs = (1..=5)
        .map(|b| InstructionLeg {
            payee: Address::repeat_byte(b),
            share: 200_000,
        })
        .collect();
    cases.push((
        i.clone(),
        InvalidInstruction::TooManyPayees { count: 5, max: 4 },
    ));
    i = instruction("k", 1);
    i.legs[1].payee = Address::ZERO;
    cases.push((i.clone(), InvalidInstruction::ZeroPayee { leg: 1 }));
    i = instruction("k", 1);
    i.legs[1].payee = MERCHANT;
    cases.push((
        i.clone(),
        InvalidInstruction::DuplicatePayee {
            leg: 1,
            payee: MERCHANT,
        },
    ));
    i = instruction("k", 1);
    i.legs[1].share = 0;
    cases.push((i.clone(), InvalidInstruction::ZeroShare { leg: 1 }));
    i = instruction("k", 1);
    i.legs[1].share = 30_001;
    cases.push((
        i.clone(),
        InvalidInstruction::SharesMismatch { sum: 1_000_001 },
    ));

    for (bad, expected) in cases {
        // A valid instruction first: the whole call is refused, and the error names index 1.
        let err = intake
            .submit("shop-1", &LIMITS, &[instruction("ok", 1), bad])
            .await
            .expect_err("invalid");
        match err {
            IntakeError::Invalid { index: 1, reason } => assert_eq!(reason, expected),
            other => panic!("expected Invalid at 1 with {expected:?}, got {other}"),
        }
    }
    let err = intake
        .submit(
            "shop-1",
            &LIMITS,
            &[instruction("twice", 1), instruction("twice", 1)],
        )
        .await
        .expect_err("repeated key");
    assert!(
        matches!(
            err,
            IntakeError::Invalid {
                index: 1,
                reason: InvalidInstruction::RepeatedKey(_)
            }
        ),
        "{err}"
    );
    assert_eq!(count(&db).await, (0, 0));
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn integrator_limits_single_and_rolling_day() {
    let (db, intake) = intake().await;
    let err = intake
        .submit("shop-1", &LIMITS, &[instruction("big", 1_000_001)])
        .await
        .expect_err("single");
    assert!(
        matches!(
            err,
            IntakeError::OverLimit {
                index: 0,
                kind: LimitKind::SinglePayment,
                requested: 1_000_001,
                available: 1_000_000
            }
        ),
        "{err}"
    );
    // 5 x 1,000,000 fills the day; within one call the earlier instructions count too.
    let batch: Vec<_> = (0..5)
        .map(|n| instruction(&format!("o{n}"), 1_000_000))
        .collect();
    intake
        .submit("shop-1", &LIMITS, &batch)
        .await
        .expect("up to the cap");
    let err = intake
        .submit("shop-1", &LIMITS, &[instruction("o5", 1)])
        .await
        .expect_err("over the day");
    assert!(
        matches!(
            err,
            IntakeError::OverLimit {
                index: 0,
                kind: LimitKind::DailyCap,
                requested: 1,
                available: 0
            }
        ),
        "{err}"
    );
    // Another integrator has its own cap.
    intake
        .submit("shop-2", &LIMITS, &[instruction("o5", 1)])
        .await
        .expect("own cap");
    // A day later the old payments no longer count.
    sqlx::query("UPDATE relayer.instructions SET created_at = created_at - interval '25 hours' WHERE integrator = 'shop-1'")
        .execute(db.pool())
        .await
        .expect("age");
    intake
        .submit("shop-1", &LIMITS, &[instruction("o5", 1_000_000)])
        .await
        .expect("new day");
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn bulk_submit_is_atomic_and_exact() {
    let (db, intake) = intake().await;
    let limits = IntegratorLimits {
        max_payment: u128::MAX,
        daily_cap: u128::MAX,
    };
    let many: Vec<_> = (0..1_000u32)
        .map(|n| instruction(&format!("bulk-{n}"), u128::from(n) + 1))
        .collect();
    let accepted = intake.submit("shop-1", &limits, &many).await.expect("bulk");
    assert_eq!(accepted.len(), 1_000);
    assert_eq!(count(&db).await, (1_000, 2_000));
    let sum: String = sqlx::query_scalar("SELECT sum(amount)::text FROM relayer.instructions")
        .fetch_one(db.pool())
        .await
        .expect("sum");
    assert_eq!(sum, (1..=1_000u64).sum::<u64>().to_string());
    // Replaying the whole call returns the same ids, in order.
    let again = intake
        .submit("shop-1", &limits, &many)
        .await
        .expect("replay");
    assert_eq!(
        again.iter().map(|a| a.id).collect::<Vec<_>>(),
        accepted.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|a| a.replayed));
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn concurrent_submissions_of_one_key_store_it_once() {
    let (db, intake) = intake().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let intake = intake.clone();
            tokio::spawn(async move {
                intake
                    .submit("shop-1", &LIMITS, &[instruction("race", 7)])
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("join").expect("accepted")[0].id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id for one key");
    assert_eq!(count(&db).await, (1, 2));
    db.cleanup().await.expect("cleanup");
}
