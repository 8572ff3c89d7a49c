//! A SplitSettlement proxy on anvil, configured for the native coin, shared by the tests.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    sol_types::SolCall,
};
use settle_contracts::{ERC1967Proxy, SplitSettlement};
use settle_testkit::TestChain;

/// The proxy, as seen through anvil account 0 (its owner and guardian).
pub(crate) type Settlement = SplitSettlement::SplitSettlementInstance<DynProvider>;

/// Deploys implementation and proxy, authorises `signer` and enables the native coin without limits.
pub(crate) async fn native_settlement(chain: &TestChain, signer: Address) -> Settlement {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[0].clone()))
        .connect_http(chain.endpoint_url())
        .erased();
    let owner = chain.addresses()[0];
    let implementation = SplitSettlement::deploy(&provider)
        .await
        .expect("implementation");
    let init = SplitSettlement::initializeCall {
        owner_: owner,
        guardian_: owner,
    }
    .abi_encode();
    let proxy = ERC1967Proxy::deploy(&provider, *implementation.address(), init.into())
        .await
        .expect("proxy");
    let settlement = SplitSettlement::new(*proxy.address(), provider);
    let signer_set = settlement
        .setSigner(signer, true)
        .send()
        .await
        .expect("sent");
    assert!(signer_set.get_receipt().await.expect("mined").status());
    let configured = settlement
        .setTokenConfig(Address::ZERO, true, u128::MAX, u128::MAX)
        .send()
        .await
        .expect("sent");
    assert!(configured.get_receipt().await.expect("mined").status());
    settlement
}

/// `who`'s internal balance of the native coin.
pub(crate) async fn native_balance(settlement: &Settlement, who: Address) -> U256 {
    settlement
        .balanceOf(Address::ZERO, who)
        .call()
        .await
        .expect("balanceOf")
}
