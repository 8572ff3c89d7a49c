use alloy::{
    primitives::{Address, keccak256},
    signers::k256::ecdsa::{
        RecoveryId, Signature, VerifyingKey, signature::hazmat::PrehashVerifier,
    },
};
use cryptoki::{
    mechanism::Mechanism,
    object::{Attribute, AttributeType},
};
use settle_testkit::{TestToken, pkcs11};

#[test]
fn token_key_signs_a_digest_that_verifies_against_the_returned_public_key()
-> settle_testkit::Result<()> {
    let token = TestToken::create()?;
    assert_eq!(token.public_key().len(), 65);
    assert_eq!(token.public_key()[0], 0x04);

    let digest = keccak256(b"settle: pay 70/30");
    let session = token.user_session()?;
    let key = token.private_key(&session)?;
    let raw = session.sign(&Mechanism::Ecdsa, key, digest.as_slice())?;
    assert_eq!(raw.len(), 64, "CKM_ECDSA returns r || s");

    let verifying_key = VerifyingKey::from_sec1_bytes(token.public_key()).expect("sec1 point");
    let signature = Signature::from_slice(&raw).expect("r || s");
    // k256 rejects high-s; SoftHSM does not normalise.
    let signature = signature.normalize_s().unwrap_or(signature);
    verifying_key
        .verify_prehash(digest.as_slice(), &signature)
        .expect("signature verifies against the token's public key");

    // Exactly one recovery id gives back the token's key (how v is found).
    let matching: Vec<u8> = (0..2_u8)
        .filter(|&v| {
            let id = RecoveryId::from_byte(v).expect("0 or 1");
            VerifyingKey::recover_from_prehash(digest.as_slice(), &signature, id).ok()
                == Some(verifying_key)
        })
        .collect();
    assert_eq!(matching.len(), 1);

    assert_eq!(token.address(), Address::from_public_key(&verifying_key));
    assert_eq!(
        token.address(),
        alloy::signers::utils::public_key_to_address(&verifying_key)
    );
    let xy_hash = keccak256(&token.public_key()[1..]);
    assert_eq!(token.address().as_slice(), &xy_hash[12..]);
    Ok(())
}

#[test]
fn private_key_is_sensitive_and_never_leaves_the_token() -> settle_testkit::Result<()> {
    let token = TestToken::create()?;
    let session = token.user_session()?;
    let key = token.private_key(&session)?;

    let attrs = session.get_attributes(
        key,
        &[
            AttributeType::Token,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Sign,
            AttributeType::Label,
            AttributeType::Id,
        ],
    )?;
    assert!(attrs.contains(&Attribute::Token(true)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Sign(true)), "{attrs:?}");
    assert!(
        attrs.contains(&Attribute::Label(b"settle-test-key".to_vec())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&Attribute::Id(token.key_id().to_vec())),
        "{attrs:?}"
    );

    // cryptoki 0.12 turns CKR_ATTRIBUTE_SENSITIVE into "attribute left out".
    let value = session.get_attributes(key, &[AttributeType::Value])?;
    assert_eq!(
        value,
        Vec::<Attribute>::new(),
        "private scalar must not be readable"
    );
    Ok(())
}

#[test]
fn two_tokens_get_different_slots_labels_and_keys() -> settle_testkit::Result<()> {
    let first = TestToken::create()?;
    let second = TestToken::create()?;
    assert_ne!(first.slot(), second.slot());
    assert_ne!(first.token_label(), second.token_label());
    assert_ne!(first.public_key(), second.public_key());
    assert_ne!(first.address(), second.address());

    let ctx = pkcs11()?;
    for token in [&first, &second] {
        let info = ctx.get_token_info(token.slot())?;
        assert!(info.token_initialized());
        assert!(info.user_pin_initialized());
        assert_eq!(info.label(), token.token_label());
        assert_eq!(token.token_label().len(), 32);
    }
    Ok(())
}
