use alloy::primitives::{Address, keccak256};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use settle_relayer::{
    HsmError, HsmSigner,
    intake::MIGRATOR,
    keys::{self, KeyError, KeyInfo, KeyRegistry, KeyRole, KeyStatus},
};
use settle_testkit::{TestDb, TestToken, pkcs11};

use crate::hsm::p256_key_pair;

const CHAIN: u64 = 31337;
const CONTRACT: Address = Address::repeat_byte(0xc0);

#[test]
fn a_generated_key_signs_through_the_hsm_signer() {
    let token = TestToken::create().expect("token");
    let ctx = pkcs11().expect("pkcs11");
    let address = keys::generate_key(ctx, token.token_label(), token.user_pin(), "rotation-1")
        .expect("generated");
    assert_ne!(address, token.address());

    let signer = HsmSigner::open(ctx, token.token_label(), token.user_pin(), "rotation-1")
        .expect("signer opens");
    assert_eq!(signer.address(), address);
    let hash = keccak256(b"rotated");
    let sig = signer.sign_prehash(&hash).expect("sign");
    assert_eq!(
        sig.recover_address_from_prehash(&hash).expect("recover"),
        address
    );

    // The private half can sign and nothing else, and can never be read out.
    let session = token.user_session().expect("session");
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"rotation-1".to_vec()),
        ])
        .expect("find");
    assert_eq!(private.len(), 1);
    let mut flags: Vec<(AttributeType, bool)> = session
        .get_attributes(
            private[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Sign,
                AttributeType::Derive,
                AttributeType::Token,
            ],
        )
        .expect("attributes")
        .into_iter()
        .filter_map(|a| match a {
            Attribute::Sensitive(v)
            | Attribute::Extractable(v)
            | Attribute::Sign(v)
            | Attribute::Derive(v)
            | Attribute::Token(v) => Some((a.attribute_type(), v)),
            _ => None,
        })
        .collect();
    flags.sort();
    let mut expected = vec![
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
        (AttributeType::Sign, true),
        (AttributeType::Derive, false),
        (AttributeType::Token, true),
    ];
    expected.sort();
    assert_eq!(flags, expected);
}

#[test]
fn a_taken_label_is_refused() {
    let token = TestToken::create().expect("token");
    let ctx = pkcs11().expect("pkcs11");
    let taken = |label: &str| {
        let err = keys::generate_key(ctx, token.token_label(), token.user_pin(), label)
            .expect_err("label taken");
        assert!(
            matches!(err, KeyError::LabelTaken { token: ref t, label: ref l }
                if t == token.token_label() && l == label),
            "{err}"
        );
    };
    taken(token.key_label());
    keys::generate_key(ctx, token.token_label(), token.user_pin(), "rotation-1").expect("first");
    taken("rotation-1");
    assert_eq!(
        keys::list_keys(ctx, token.token_label(), token.user_pin())
            .expect("list")
            .len(),
        2
    );
}

#[test]
fn list_shows_every_secp256k1_pair_and_nothing_else() {
    let token = TestToken::create().expect("token");
    let ctx = pkcs11().expect("pkcs11");
    let generated = keys::generate_key(ctx, token.token_label(), token.user_pin(), "rotation-1")
        .expect("generated");
    p256_key_pair(&token, "p256-key");

    let listed = keys::list_keys(ctx, token.token_label(), token.user_pin()).expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].label, "rotation-1");
    assert_eq!(listed[0].address, generated);
    assert_eq!(listed[0].id.len(), 32, "16 random bytes in hex");
    assert_eq!(
        listed[1],
        KeyInfo {
            label: token.key_label().to_owned(),
            id: alloy::hex::encode(token.key_id()),
            address: token.address(),
        }
    );

    let err = keys::list_keys(ctx, token.token_label(), "wrong-pin").expect_err("bad pin");
    assert!(
        matches!(err, KeyError::Hsm(HsmError::WrongPin(ref l)) if l == token.token_label()),
        "{err}"
    );
}

async fn registry() -> (TestDb, KeyRegistry) {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let registry = KeyRegistry::new(db.pool().clone());
    (db, registry)
}

async fn statuses(registry: &KeyRegistry) -> Vec<(String, Address, KeyRole, KeyStatus, bool)> {
    registry
        .list(CHAIN, CONTRACT)
        .await
        .expect("list")
        .into_iter()
        .map(|k| {
            assert_eq!((k.chain_id, k.contract), (CHAIN, CONTRACT));
            (k.label, k.address, k.role, k.status, k.retired_at.is_some())
        })
        .collect()
}

#[tokio::test]
async fn rotation_moves_the_old_key_to_retiring_then_retired() {
    let (db, registry) = registry().await;
    let (a, b) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let batch = KeyRole::Batch;

    assert_eq!(
        registry
            .activate(CHAIN, CONTRACT, batch, "key-a", a)
            .await
            .expect("activate a"),
        None
    );
    assert_eq!(
        registry
            .activate(CHAIN, CONTRACT, batch, "key-b", b)
            .await
            .expect("activate b"),
        Some(a)
    );
    let active = registry
        .active(CHAIN, CONTRACT, batch)
        .await
        .expect("active")
        .expect("one active key");
    assert_eq!((active.label.as_str(), active.address), ("key-b", b));
    assert_eq!(active.status, KeyStatus::Active);
    assert_eq!(
        registry
            .active(CHAIN, CONTRACT, KeyRole::Sender)
            .await
            .expect("active"),
        None
    );
    assert_eq!(
        statuses(&registry).await,
        vec![
            ("key-a".to_owned(), a, batch, KeyStatus::Retiring, false),
            ("key-b".to_owned(), b, batch, KeyStatus::Active, false),
        ]
    );
    // Activating the active key is a no-op; under another label it is refused.
    assert_eq!(
        registry
            .activate(CHAIN, CONTRACT, batch, "key-b", b)
            .await
            .expect("again"),
        None
    );
    let err = registry
        .activate(CHAIN, CONTRACT, batch, "renamed", b)
        .await
        .expect_err("label mismatch");
    assert!(
        matches!(err, KeyError::LabelMismatch { address, ref registered, ref given }
            if address == b && registered == "key-b" && given == "renamed"),
        "{err}"
    );

    let err = registry
        .retire(CHAIN, CONTRACT, batch, b)
        .await
        .expect_err("active");
    assert!(
        matches!(err, KeyError::NotRetiring { address, status: KeyStatus::Active } if address == b),
        "{err}"
    );
    registry
        .retire(CHAIN, CONTRACT, batch, a)
        .await
        .expect("retire a");
    assert_eq!(
        statuses(&registry).await,
        vec![
            ("key-a".to_owned(), a, batch, KeyStatus::Retired, true),
            ("key-b".to_owned(), b, batch, KeyStatus::Active, false),
        ]
    );
    let err = registry
        .retire(CHAIN, CONTRACT, batch, a)
        .await
        .expect_err("twice");
    assert!(
        matches!(err, KeyError::NotRetiring { address, status: KeyStatus::Retired } if address == a),
        "{err}"
    );
    let err = registry
        .activate(CHAIN, CONTRACT, batch, "key-a", a)
        .await
        .expect_err("retired is final");
    assert!(
        matches!(err, KeyError::Retired(address) if address == a),
        "{err}"
    );
    let stranger = Address::repeat_byte(0x5e);
    let err = registry
        .retire(CHAIN, CONTRACT, batch, stranger)
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, KeyError::NotRegistered(address) if address == stranger),
        "{err}"
    );
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn a_retiring_key_can_be_activated_again() {
    let (db, registry) = registry().await;
    let (a, b) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let sender = KeyRole::Sender;
    registry
        .activate(CHAIN, CONTRACT, sender, "key-a", a)
        .await
        .expect("a");
    registry
        .activate(CHAIN, CONTRACT, sender, "key-b", b)
        .await
        .expect("b");
    assert_eq!(
        registry
            .activate(CHAIN, CONTRACT, sender, "key-a", a)
            .await
            .expect("roll back"),
        Some(b)
    );
    assert_eq!(
        statuses(&registry).await,
        vec![
            ("key-a".to_owned(), a, sender, KeyStatus::Active, false),
            ("key-b".to_owned(), b, sender, KeyStatus::Retiring, false),
        ]
    );
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn the_database_allows_one_active_key_per_contract_and_role() {
    let (db, _registry) = registry().await;
    let insert = |address: u8, role: &'static str| {
        sqlx::query(
            "INSERT INTO relayer.signer_keys (chain_id, contract, label, address, role, status)
             VALUES ($1, $2, $3, $4, $5, 'active')",
        )
        .bind(i64::try_from(CHAIN).expect("fits"))
        .bind(CONTRACT.as_slice().to_vec())
        .bind(format!("key-{address:02x}"))
        .bind(Address::repeat_byte(address).as_slice().to_vec())
        .bind(role)
        .execute(db.pool())
    };
    insert(0xa1, "batch").await.expect("first active batch key");
    let err = insert(0xb2, "batch")
        .await
        .expect_err("second active batch key");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("signer_keys_one_active"),
        "{err}"
    );
    insert(0xb2, "sender")
        .await
        .expect("the sender role has its own active key");
    db.cleanup().await.expect("cleanup");
}
