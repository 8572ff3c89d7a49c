use std::{num::NonZeroUsize, sync::Barrier};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, FixedBytes, U256, keccak256},
    providers::{Provider, ProviderBuilder},
};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags},
    mechanism::Mechanism,
    object::Attribute,
    types::AuthPin,
};
use settle_contracts::{Batch, Leg, Payment, digest::batch_digest, encode_payments};
use settle_relayer::{
    HsmError, HsmSigner,
    hsm::{DEFAULT_SESSIONS, HsmOptions},
};
use settle_testkit::{TestChain, TestToken, pkcs11, softhsm};

use crate::chain::{native_balance, native_settlement};

const HALF_N: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

fn open(token: &TestToken) -> HsmSigner {
    HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
    )
    .expect("signer opens")
}

#[test]
fn signs_low_s_and_recovers_to_the_token_key() {
    let token = TestToken::create().expect("token");
    let signer = open(&token);
    assert_eq!(signer.address(), token.address());
    for i in 0u64..64 {
        let hash = keccak256(i.to_be_bytes());
        let sig = signer.sign_prehash(&hash).expect("sign");
        assert!(sig.s() <= HALF_N, "high s for message {i}");
        assert_eq!(
            sig.recover_address_from_prehash(&hash).expect("recover"),
            token.address()
        );
    }
}

#[test]
fn clear_errors_for_wrong_pin_label_and_key() {
    let token = TestToken::create().expect("token");
    let ctx = pkcs11().expect("pkcs11");
    let err = HsmSigner::open(ctx, "no-such-token", token.user_pin(), token.key_label())
        .expect_err("no token");
    assert!(
        matches!(err, HsmError::TokenNotFound(ref l) if l == "no-such-token"),
        "{err}"
    );
    let err = HsmSigner::open(ctx, token.token_label(), "wrong-pin", token.key_label())
        .expect_err("bad pin");
    assert!(matches!(err, HsmError::WrongPin(_)), "{err}");
    let err =
        HsmSigner::open(ctx, token.token_label(), token.user_pin(), "nope").expect_err("no key");
    assert!(
        matches!(err, HsmError::KeyNotFound { ref key, .. } if key == "nope"),
        "{err}"
    );
    assert_eq!(softhsm::KEY_LABEL, token.key_label());
}

/// DER of the P-256 OID 1.2.840.10045.3.1.7.
const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Generates a P-256 key pair labelled `label` on the token: an EC key Ethereum cannot use.
pub(crate) fn p256_key_pair(token: &TestToken, label: &str) {
    let session = token.user_session().expect("session");
    let label = label.as_bytes().to_vec();
    session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(P256_OID_DER.to_vec()),
                Attribute::Label(label.clone()),
                Attribute::Id(vec![0x25, 0x6e]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
                Attribute::Label(label),
                Attribute::Id(vec![0x25, 0x6e]),
            ],
        )
        .expect("P-256 key pair");
}

#[test]
fn a_key_on_another_curve_is_refused() {
    let token = TestToken::create().expect("token");
    p256_key_pair(&token, "p256-key");
    let err = HsmSigner::open(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        "p256-key",
    )
    .expect_err("P-256 is not secp256k1");
    assert!(
        matches!(err, HsmError::NotSecp256k1(ref key) if key == "p256-key"),
        "{err}"
    );
}

fn assert_signs(signer: &HsmSigner, token: &TestToken, message: &[u8]) {
    let hash = keccak256(message);
    let sig = signer.sign_prehash(&hash).expect("sign");
    assert_eq!(
        sig.recover_address_from_prehash(&hash).expect("recover"),
        token.address()
    );
}

fn sessions(n: usize) -> HsmOptions {
    HsmOptions {
        sessions: NonZeroUsize::new(n).expect("non-zero"),
    }
}

#[test]
fn the_pool_signs_from_many_threads_at_once() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 16;
    let token = TestToken::create().expect("token");
    let signer = HsmSigner::open_with(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
        sessions(4),
    )
    .expect("signer opens");
    assert_eq!(signer.sessions(), 4);
    let start = Barrier::new(usize::try_from(THREADS).expect("fits"));
    let signed: Vec<(B256, alloy::primitives::Signature)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (signer, start) = (&signer, &start);
                scope.spawn(move || {
                    start.wait();
                    (0..PER_THREAD)
                        .map(|i| {
                            let hash = keccak256([thread.to_be_bytes(), i.to_be_bytes()].concat());
                            (hash, signer.sign_prehash(&hash).expect("sign"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("worker"))
            .collect()
    });
    assert_eq!(
        u64::try_from(signed.len()).expect("fits"),
        THREADS * PER_THREAD
    );
    for (hash, sig) in signed {
        assert_eq!(
            sig.recover_address_from_prehash(&hash).expect("recover"),
            token.address()
        );
    }
}

#[test]
fn open_keeps_its_signature_and_the_default_pool() {
    let token = TestToken::create().expect("token");
    let signer = open(&token);
    assert_eq!(signer.sessions(), DEFAULT_SESSIONS.get());
    assert_eq!(HsmOptions::default().sessions, DEFAULT_SESSIONS);
    let debug = format!("{signer:?}");
    assert!(!debug.contains(token.user_pin()), "{debug}");
}

/// Login state is per token and process: a logout in any session logs out the signer's sessions.
#[test]
fn signs_again_after_the_token_logs_out() {
    let token = TestToken::create().expect("token");
    let signer = HsmSigner::open_with(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
        sessions(2),
    )
    .expect("signer opens");
    assert_signs(&signer, &token, b"before");
    let session = token.user_session().expect("session");
    session.logout().expect("logout");
    drop(session);
    // Twice round the pool, so every session meets the lost login.
    for i in 0u8..4 {
        assert_signs(&signer, &token, &[b'a', i]);
    }
}

/// The module restarts (`C_Finalize`, `C_Initialize`): every session handle of the process is dead.
///
/// This takes the whole PKCS#11 context down, so it only runs where each test has its own
/// process (cargo-nextest, as `./scripts/test` runs the suite); under `cargo test` it would break
/// the tests running beside it.
#[test]
fn signs_again_after_the_module_restarts() {
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test") {
        eprintln!("skipped: needs a process of its own (run with cargo nextest)");
        return;
    }
    let token = TestToken::create().expect("token");
    let signer = HsmSigner::open_with(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
        sessions(2),
    )
    .expect("signer opens");
    assert_signs(&signer, &token, b"before");
    let ctx = pkcs11().expect("pkcs11");
    ctx.clone().finalize().expect("finalize");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("initialize again");
    for i in 0u8..4 {
        assert_signs(&signer, &token, &[b'r', i]);
    }
}

/// A re-login with a PIN that no longer works is the typed wrong-PIN error, not a PKCS#11 code.
#[test]
fn a_changed_pin_fails_the_re_login_as_wrong_pin() {
    let token = TestToken::create().expect("token");
    let signer = HsmSigner::open_with(
        pkcs11().expect("pkcs11"),
        token.token_label(),
        token.user_pin(),
        token.key_label(),
        sessions(1),
    )
    .expect("signer opens");
    let session = token.user_session().expect("session");
    session
        .set_pin(
            &AuthPin::from(token.user_pin()),
            &AuthPin::from("a-new-user-pin"),
        )
        .expect("set pin");
    session.logout().expect("logout");
    drop(session);
    let err = signer
        .sign_prehash(&keccak256(b"after"))
        .expect_err("the old PIN is refused");
    assert!(
        matches!(err, HsmError::WrongPin(ref label) if label == token.token_label()),
        "{err}"
    );
}

/// The contract accepts a batch whose EIP-712 digest the HSM key signed.
#[tokio::test]
async fn contract_accepts_a_batch_signed_in_the_hsm() {
    let token = TestToken::create().expect("token");
    let hsm = open(&token);
    let chain = TestChain::start().expect("anvil");
    let owner = chain.addresses()[0];
    let settlement = native_settlement(&chain, hsm.address()).await;
    let provider = settlement.provider().clone();

    let merchant = Address::repeat_byte(0x10);
    let platform = Address::repeat_byte(0x20);
    let payments = vec![Payment {
        payment_id: B256::repeat_byte(0xaa),
        amount: 1_000_001,
        legs: vec![
            Leg {
                payee: 0,
                share: 950_000,
            },
            Leg {
                payee: 1,
                share: 50_000,
            },
        ],
    }];
    let batch = Batch {
        batchId: FixedBytes::repeat_byte(0x01),
        nonce: U256::from(42),
        deadline: u64::MAX,
        token: Address::ZERO,
        funder: owner,
        funding: 1,
        payees: vec![merchant, platform],
        payments: encode_payments(&payments).expect("encode"),
    };
    let digest = batch_digest(&batch, chain.chain_id(), *settlement.address());
    assert_eq!(
        settlement
            .batchDigest(batch.clone())
            .call()
            .await
            .expect("digest"),
        digest
    );
    let signature = hsm.sign_prehash(&digest).expect("hsm signs");
    let tx = settlement
        .settleBatch(batch, signature.as_bytes().into())
        .value(U256::from(1_000_001u64))
        .send()
        .await
        .expect("settle sent")
        .get_receipt()
        .await
        .expect("settle mined");
    assert!(tx.status(), "settleBatch reverted");
    // 1,000,001 * 5% = 50,000.05 -> 50,000 to the platform; the merchant takes the rest.
    assert_eq!(
        native_balance(&settlement, merchant).await,
        U256::from(950_001u64)
    );
    assert_eq!(
        native_balance(&settlement, platform).await,
        U256::from(50_000u64)
    );
    assert!(
        settlement
            .isNonceUsed(hsm.address(), U256::from(42))
            .call()
            .await
            .expect("nonce")
    );
    assert_eq!(
        provider
            .get_balance(*settlement.address())
            .await
            .expect("held"),
        U256::from(1_000_001u64)
    );
}

/// The relayer's own transactions: signed in the HSM through alloy's `TxSigner`, mined on anvil.
#[tokio::test]
async fn transactions_signed_in_the_hsm_are_mined() {
    use alloy::{network::TransactionBuilder, rpc::types::TransactionRequest};

    let token = TestToken::create().expect("token");
    let chain = TestChain::start().expect("anvil");
    let hsm = open(&token);
    let sender = hsm.address();
    let bank = ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[0].clone()))
        .connect_http(chain.endpoint_url());
    let fund = TransactionRequest::default()
        .with_to(sender)
        .with_value(U256::from(10u64.pow(18)));
    let funded = bank
        .send_transaction(fund)
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(funded.status());

    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(hsm))
        .connect_http(chain.endpoint_url());
    let recipient = Address::repeat_byte(0x77);
    let pay = TransactionRequest::default()
        .with_to(recipient)
        .with_value(U256::from(12_345u64));
    let receipt = provider
        .send_transaction(pay)
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status());
    assert_eq!(receipt.from, sender);
    assert_eq!(
        provider.get_balance(recipient).await.expect("balance"),
        U256::from(12_345u64)
    );
    assert_eq!(
        provider.get_transaction_count(sender).await.expect("nonce"),
        1
    );
}
