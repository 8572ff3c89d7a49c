//! `settle-deploy` against a real anvil (and SoftHSM2 for the HSM deployer).

mod deploy;
mod governance;
mod upgrade;
mod verify;

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use settle_deploy::{
    DeployConfig, DeployOptions,
    config::{DeployerConfig, Governance, TokenLimits},
};
use settle_testkit::TestChain;

/// Anvil's accounts by role: 0 deploys, 1-3 own the multisig, 4 guards, 5 signs batches.
pub(crate) const DEPLOYER: usize = 0;
pub(crate) const OWNERS: [usize; 3] = [1, 2, 3];
pub(crate) const GUARDIAN: usize = 4;
pub(crate) const SIGNER: usize = 5;
/// Sends the multisig's transactions in the governance tests (anyone may).
pub(crate) const RELAY: usize = 9;
/// The timelock delay the tests configure, in seconds.
pub(crate) const DELAY: u64 = 3600;

/// A USDC-like token address (no code needed: the settlement only stores its limits).
pub(crate) const TOKEN: Address = Address::repeat_byte(0x7c);

/// The configuration the tests deploy: 2-of-3 owners, one signer, the native coin and a token.
pub(crate) fn config(chain: &TestChain) -> DeployConfig {
    let at = |i: usize| chain.addresses()[i];
    DeployConfig {
        chain_id: chain.chain_id(),
        salt: alloy::primitives::keccak256("settle/test"),
        governance: Governance {
            owners: OWNERS.iter().map(|&i| at(i)).collect(),
            threshold: 2,
            min_delay: DELAY,
            guardian: at(GUARDIAN),
        },
        signers: vec![at(SIGNER)],
        tokens: vec![
            TokenLimits {
                token: Address::ZERO,
                max_payment: 10u128.pow(20),
                daily_cap: 10u128.pow(22),
            },
            TokenLimits {
                token: TOKEN,
                max_payment: 5_000_000_000,
                daily_cap: 1_000_000_000_000,
            },
        ],
        deployer: DeployerConfig {
            address: Some(at(DEPLOYER)),
            key: None,
        },
    }
}

/// Manifests in a temporary folder.
pub(crate) fn options(dir: &tempfile::TempDir) -> DeployOptions {
    DeployOptions::new(dir.path().join("deployments"))
}

pub(crate) fn deployer(chain: &TestChain) -> PrivateKeySigner {
    chain.signers()[DEPLOYER].clone()
}

/// A provider sending from anvil account `index`. It asks the node for each nonce: the cached
/// default keeps the nonce of a call refused at gas estimation, and the next send would wait forever.
pub(crate) fn provider_for(chain: &TestChain, index: usize) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(chain.signers()[index].clone()))
        .connect_http(chain.endpoint_url())
        .erased()
}

/// The account's transaction count.
pub(crate) async fn nonce(chain: &TestChain, who: Address) -> u64 {
    chain
        .provider()
        .get_transaction_count(who)
        .await
        .expect("nonce")
}

/// What the CREATE2 factory itself answers for `calldata` (an `eth_call`, nothing mined): the
/// address it would create at, as an oracle independent of our CREATE2 arithmetic.
pub(crate) async fn factory_says(chain: &TestChain, calldata: alloy::primitives::Bytes) -> Address {
    let tx = TransactionRequest::default()
        .with_to(settle_deploy::CREATE2_FACTORY)
        .with_input(calldata);
    let out = chain.provider().call(tx).await.expect("factory call");
    Address::from_slice(&out)
}

/// Moves anvil's clock forward by `seconds` and mines a block.
pub(crate) async fn advance(chain: &TestChain, seconds: u64) {
    let provider = chain.provider();
    provider
        .raw_request::<_, i64>("evm_increaseTime".into(), (U256::from(seconds),))
        .await
        .expect("evm_increaseTime");
    provider
        .raw_request::<_, String>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
}
