use alloy::primitives::{Address, U256};
use settle_contracts::{decode_payments, digest::batch_digest};
use settle_relayer::{
    Batcher, BatcherConfig, HsmSigner,
    intake::{
        InstructionLeg, Intake, IntakeConfig, IntegratorLimits, MIGRATOR, NewInstruction, TokenRule,
    },
};
use settle_testkit::{TestChain, TestDb, TestToken, pkcs11};

use crate::chain::{native_balance, native_settlement};

const NATIVE: Address = Address::ZERO;
const MERCHANT_A: Address = Address::repeat_byte(0x0a);
const MERCHANT_B: Address = Address::repeat_byte(0x0b);
const PLATFORM: Address = Address::repeat_byte(0x0c);

fn instruction(key: &str, funder: Address, merchant: Address, amount: u128) -> NewInstruction {
    NewInstruction {
        idempotency_key: key.to_owned(),
        chain_id: 31337,
        token: NATIVE,
        funder,
        amount,
        legs: vec![
            InstructionLeg {
                payee: merchant,
                share: 971_000,
            },
            InstructionLeg {
                payee: PLATFORM,
                share: 29_000,
            },
        ],
    }
}

/// Instructions in, HSM-signed batches persisted, and the contract settles them to the wei.
#[tokio::test]
async fn signed_batches_are_persisted_and_settle_on_chain() {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let token = TestToken::create().expect("token");
    let hsm = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
    )
    .expect("hsm signer");
    let chain = TestChain::start().expect("anvil");
    let (funder_1, funder_2) = (chain.addresses()[1], chain.addresses()[2]);
    let settlement = native_settlement(&chain, hsm.address()).await;
    let deposit = settlement
        .depositNative(funder_1)
        .value(U256::from(10_000_000u64))
        .send()
        .await
        .expect("sent");
    assert!(deposit.get_receipt().await.expect("mined").status());

    let intake = Intake::new(
        db.pool().clone(),
        IntakeConfig {
            tokens: vec![TokenRule {
                chain_id: 31337,
                token: NATIVE,
                max_payment: u128::MAX,
            }],
            max_payees: 8,
        },
    );
    let limits = IntegratorLimits {
        max_payment: u128::MAX,
        daily_cap: u128::MAX,
    };
    intake
        .submit(
            "shop",
            &limits,
            &[
                instruction("a1", funder_1, MERCHANT_A, 1_000_003),
                instruction("b1", funder_1, MERCHANT_B, 2_000_000),
                instruction("other-funder", funder_2, MERCHANT_A, 5),
                instruction("a2", funder_1, MERCHANT_A, 999),
            ],
        )
        .await
        .expect("accepted");

    let config = BatcherConfig {
        max_payments: 100,
        ..BatcherConfig::new(31337, *settlement.address())
    };
    let batcher = Batcher::new(db.pool().clone(), config, &hsm);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = batcher
        .sign_next(now)
        .await
        .expect("batch")
        .expect("something pending");

    // The oldest group: funder 1's three payments, in arrival order, payees ascending.
    assert_eq!(signed.instructions.len(), 3);
    assert_eq!(signed.total, 1_000_003 + 2_000_000 + 999);
    assert_eq!(signed.batch.funder, funder_1);
    assert_eq!(signed.batch.nonce, U256::ZERO);
    assert_eq!(signed.batch.payees, vec![MERCHANT_A, MERCHANT_B, PLATFORM]);
    let payments = decode_payments(&signed.batch.payments).expect("decodes");
    assert_eq!(
        payments.iter().map(|p| p.amount).collect::<Vec<_>>(),
        vec![1_000_003, 2_000_000, 999]
    );
    assert_eq!(payments[0].payment_id, Intake::payment_id("shop", "a1"));
    assert_eq!(
        signed.digest,
        batch_digest(&signed.batch, 31337, *settlement.address())
    );
    assert_eq!(
        signed
            .signature
            .recover_address_from_prehash(&signed.digest)
            .expect("recovers"),
        hsm.address()
    );

    // Durable: the batch row and the instructions' new status.
    let (status, nonce): (String, String) =
        sqlx::query_as("SELECT status, nonce::text FROM relayer.batches WHERE id = $1")
            .bind(signed.id)
            .fetch_one(db.pool())
            .await
            .expect("batch row");
    assert_eq!((status.as_str(), nonce.as_str()), ("signed", "0"));
    let statuses: Vec<(String, String)> = sqlx::query_as(
        "SELECT idempotency_key, status FROM relayer.instructions ORDER BY idempotency_key",
    )
    .fetch_all(db.pool())
    .await
    .expect("statuses");
    assert_eq!(
        statuses,
        [
            ("a1", "signed"),
            ("a2", "signed"),
            ("b1", "signed"),
            ("other-funder", "accepted")
        ]
        .map(|(k, s)| (k.to_owned(), s.to_owned()))
        .to_vec()
    );

    // The contract takes the persisted batch and credits to the wei.
    let receipt = settlement
        .settleBatch(signed.batch.clone(), signed.signature.as_bytes().into())
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status());
    // 1,000,003 * 2.9% = 29,000.087 -> 29,000; 2,000,000 -> 58,000; 999 -> 28.971 -> 28.
    assert_eq!(
        native_balance(&settlement, PLATFORM).await,
        U256::from(29_000u64 + 58_000 + 28)
    );
    assert_eq!(
        native_balance(&settlement, MERCHANT_A).await,
        U256::from(1_000_003u64 - 29_000 + 999 - 28)
    );
    assert_eq!(
        native_balance(&settlement, MERCHANT_B).await,
        U256::from(2_000_000u64 - 58_000)
    );
    assert_eq!(
        native_balance(&settlement, funder_1).await,
        U256::from(10_000_000u64 - 3_001_002)
    );

    // The next batch is funder 2's, with the signer's next nonce; then nothing is left.
    let second = batcher
        .sign_next(now)
        .await
        .expect("batch")
        .expect("pending");
    assert_eq!(
        (second.batch.funder, second.batch.nonce, second.total),
        (funder_2, U256::from(1), 5)
    );
    assert!(batcher.sign_next(now).await.expect("query").is_none());
    // Both signatures are in the audit log, chained.
    assert_eq!(
        settle_relayer::audit::verify(db.pool())
            .await
            .expect("verify"),
        Ok(2)
    );
    db.cleanup().await.expect("cleanup");
}

/// A partial batch waits for `max_wait_secs`; a full one goes at once; the gas ceiling cuts a batch
/// at the last payment that fits.
#[tokio::test]
async fn batches_wait_to_fill_and_stop_at_the_gas_ceiling() {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let token = TestToken::create().expect("token");
    let hsm = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
    )
    .expect("hsm signer");
    let intake = Intake::new(
        db.pool().clone(),
        IntakeConfig {
            tokens: vec![TokenRule {
                chain_id: 31337,
                token: NATIVE,
                max_payment: u128::MAX,
            }],
            max_payees: 8,
        },
    );
    let limits = IntegratorLimits {
        max_payment: u128::MAX,
        daily_cap: u128::MAX,
    };
    let funder = Address::repeat_byte(0x0f);
    let merchant_c = Address::repeat_byte(0x0d);
    intake
        .submit(
            "shop",
            &limits,
            &[
                instruction("1", funder, MERCHANT_A, 10),
                instruction("2", funder, MERCHANT_B, 20),
                instruction("3", funder, merchant_c, 30),
            ],
        )
        .await
        .expect("accepted");
    let contract = Address::repeat_byte(0x55);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();

    // Three pending, room for ten, an hour to wait: nothing yet.
    let waiting = BatcherConfig {
        max_payments: 10,
        max_wait_secs: 3600,
        ..BatcherConfig::new(31337, contract)
    };
    let none = Batcher::new(db.pool().clone(), waiting, &hsm)
        .sign_next(now)
        .await
        .expect("no error");
    assert!(none.is_none());

    // Room for exactly two payments (two merchants and the platform) under the ceiling.
    let ceiling = settle_relayer::batcher::estimate_gas(2, 4, 3);
    let capped = BatcherConfig {
        max_payments: 10,
        gas_ceiling: ceiling,
        ..BatcherConfig::new(31337, contract)
    };
    let batcher = Batcher::new(db.pool().clone(), capped, &hsm);
    let first = batcher
        .sign_next(now)
        .await
        .expect("signs")
        .expect("a batch");
    assert_eq!(first.total, 30);
    assert_eq!(first.batch.payees, vec![MERCHANT_A, MERCHANT_B, PLATFORM]);
    let second = batcher
        .sign_next(now)
        .await
        .expect("signs")
        .expect("a batch");
    assert_eq!(second.total, 30);
    assert_eq!(second.batch.payees, vec![PLATFORM, merchant_c]);
    assert!(batcher.sign_next(now).await.expect("signs").is_none());

    // A full batch does not wait.
    intake
        .submit(
            "shop",
            &limits,
            &[
                instruction("4", funder, MERCHANT_A, 1),
                instruction("5", funder, MERCHANT_B, 2),
            ],
        )
        .await
        .expect("accepted");
    let full = BatcherConfig {
        max_payments: 2,
        max_wait_secs: 3600,
        ..BatcherConfig::new(31337, contract)
    };
    let batch = Batcher::new(db.pool().clone(), full, &hsm)
        .sign_next(now)
        .await
        .expect("signs")
        .expect("a full batch");
    assert_eq!(batch.total, 3);
    db.cleanup().await.expect("cleanup");
}
