//! Batch key rotation through the running relayer, on real anvil, Postgres and SoftHSM2.

use std::{collections::BTreeMap, time::Duration};

use alloy::primitives::{Address, U256};
use settle_relayer::{
    Batcher, HsmSigner,
    keys::{KeyRegistry, KeyRole, KeyStatus, generate_key},
    service::{Relayer, RelayerConfig, RotationError, retire_batch_key},
};
use settle_testkit::pkcs11;

use crate::submitter::Env;

fn merge(into: &mut BTreeMap<Address, u128>, from: BTreeMap<Address, u128>) {
    for (payee, amount) in from {
        let entry = into.entry(payee).or_insert(0);
        *entry = entry.checked_add(amount).expect("no overflow");
    }
}

/// Batches signed by the old key settle after the new key takes over; the old key is retired only
/// when nothing of it is in flight and the chain has dropped it, after which it signs nothing the
/// contract accepts.
#[tokio::test]
async fn a_rotated_key_lets_its_batches_settle_then_retires() {
    let env = Env::new().await;
    let old = &env.hsm;
    let new_address = generate_key(
        pkcs11().expect("pkcs11"),
        env.token.token_label(),
        env.token.user_pin(),
        "batch-2",
    )
    .expect("generated");
    let new = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        env.token.token_label(),
        env.token.user_pin(),
        "batch-2",
    )
    .expect("opened");
    assert_eq!(new.address(), new_address);

    let contract = *env.settlement.address();
    let registry = KeyRegistry::new(env.db.pool().clone());
    registry
        .activate(
            31337,
            contract,
            KeyRole::Batch,
            env.token.key_label(),
            old.address(),
        )
        .await
        .expect("activated");
    let rpc = env.rpc();
    let config = RelayerConfig {
        batcher: env.batcher_config(2),
        submitter: settle_relayer::SubmitterConfig {
            confirmations: 2,
            ..env.config()
        },
        interval: Duration::from_millis(20),
        max_batches_per_step: 10,
    };
    let relayer = Relayer::start(
        env.db.pool().clone(),
        env.db.url(),
        &rpc,
        vec![old, &new],
        old,
        config,
    )
    .await
    .expect("relayer");

    // Two batches signed by the old key, sent, mined, not yet confirmed.
    let mut expected = env.submit(&[1_000, 2_000, 3_000, 4_000]).await;
    let first = relayer.step().await.expect("step");
    assert_eq!((first.batches_signed, first.submitted.broadcast), (2, 2));

    // Governance authorises the new key; the registry makes it active.
    let authorise = env
        .settlement
        .setSigner(new.address(), true)
        .send()
        .await
        .expect("sent");
    assert!(authorise.get_receipt().await.expect("mined").status());
    let previous = registry
        .activate(31337, contract, KeyRole::Batch, "batch-2", new.address())
        .await
        .expect("rotated");
    assert_eq!(previous, Some(old.address()));
    assert_eq!(
        relayer.active_batch_key().await.expect("active").address(),
        new.address()
    );
    let early = retire_batch_key(env.db.pool(), &rpc, 31337, contract, old.address()).await;
    assert!(
        matches!(early, Err(RotationError::StillInFlight(2))),
        "{early:?}"
    );

    merge(&mut expected, env.submit(&[5_000, 6_000]).await);
    for _ in 0..20 {
        let report = relayer.step().await.expect("step");
        if report.batches_signed == 0 && report.submitted.transitions() == 0 {
            break;
        }
        env.mine().await;
    }
    env.assert_settled_once(&expected).await;
    let signers: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT signer, count(*) FROM relayer.batches WHERE status = 'settled' GROUP BY signer ORDER BY count(*) DESC",
    )
    .fetch_all(env.db.pool())
    .await
    .expect("signers");
    assert_eq!(
        signers,
        vec![(old.address().to_vec(), 2), (new.address().to_vec(), 1)]
    );

    // Nothing in flight, but the chain still accepts the old key: not yet.
    let authorised = retire_batch_key(env.db.pool(), &rpc, 31337, contract, old.address()).await;
    assert!(
        matches!(authorised, Err(RotationError::StillAuthorised(a)) if a == old.address()),
        "{authorised:?}"
    );
    let removed = env
        .settlement
        .setSigner(old.address(), false)
        .send()
        .await
        .expect("sent");
    assert!(removed.get_receipt().await.expect("mined").status());
    retire_batch_key(env.db.pool(), &rpc, 31337, contract, old.address())
        .await
        .expect("retired");
    let keys = registry.list(31337, contract).await.expect("list");
    let statuses: BTreeMap<Address, KeyStatus> =
        keys.iter().map(|k| (k.address, k.status)).collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            (old.address(), KeyStatus::Retired),
            (new.address(), KeyStatus::Active)
        ])
    );

    // A stale process still signing with the old key gets nothing past the contract.
    let stale = env.submit(&[7_000]).await;
    Batcher::new(env.db.pool().clone(), env.batcher_config(2), old)
        .sign_next(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs(),
        )
        .await
        .expect("signs")
        .expect("a batch");
    relayer.step().await.expect("step");
    let (status, error): (String, Option<String>) = sqlx::query_as(
        "SELECT status, error FROM relayer.batches WHERE signer = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(old.address().as_slice())
    .fetch_one(env.db.pool())
    .await
    .expect("batch");
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(format!("UnauthorizedSigner {{ signer: {:?} }}", old.address()).as_str())
    );
    for payee in stale.keys().filter(|p| !expected.contains_key(*p)) {
        assert_eq!(
            crate::chain::native_balance(&env.settlement, *payee).await,
            U256::ZERO
        );
    }
    env.db.cleanup().await.expect("cleanup");
}
