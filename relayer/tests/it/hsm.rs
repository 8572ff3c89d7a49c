use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, FixedBytes, U256, keccak256},
    providers::{Provider, ProviderBuilder},
};
use settle_contracts::{Batch, Leg, Payment, digest::batch_digest, encode_payments};
use settle_relayer::{HsmError, HsmSigner};
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
