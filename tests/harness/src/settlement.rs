//! A SplitSettlement proxy on a [`TestChain`], deployed from the committed artifacts and configured
//! for the native coin, owned (and guarded) by anvil account 0.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    sol_types::SolCall,
};
use settle_contracts::{ERC1967Proxy, SplitSettlement};

use crate::{Error, Result, TestChain};

/// The proxy, as seen through its owner.
pub type Settlement = SplitSettlement::SplitSettlementInstance<DynProvider>;

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Chain(format!("{what}: {e}"))
}

async fn confirm<N: alloy::network::Network>(
    what: &str,
    pending: std::result::Result<
        alloy::providers::PendingTransactionBuilder<N>,
        alloy::contract::Error,
    >,
) -> Result<()> {
    let receipt = pending
        .map_err(|e| failed(what, e))?
        .get_receipt()
        .await
        .map_err(|e| failed(what, e))?;
    if alloy::network::ReceiptResponse::status(&receipt) {
        Ok(())
    } else {
        Err(Error::Chain(format!("{what}: reverted")))
    }
}

/// Deploys implementation and proxy, authorises `signer` and enables the native coin without limits.
pub async fn native_settlement(chain: &TestChain, signer: Address) -> Result<Settlement> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(chain.signers()[0].clone()))
        .connect_http(chain.endpoint_url())
        .erased();
    let owner = chain.addresses()[0];
    let implementation = SplitSettlement::deploy(&provider)
        .await
        .map_err(|e| failed("deploying the implementation", e))?;
    let init = SplitSettlement::initializeCall {
        owner_: owner,
        guardian_: owner,
    }
    .abi_encode();
    let proxy = ERC1967Proxy::deploy(&provider, *implementation.address(), init.into())
        .await
        .map_err(|e| failed("deploying the proxy", e))?;
    let settlement = SplitSettlement::new(*proxy.address(), provider);
    confirm("setSigner", settlement.setSigner(signer, true).send().await).await?;
    confirm(
        "setTokenConfig",
        settlement
            .setTokenConfig(Address::ZERO, true, u128::MAX, u128::MAX)
            .send()
            .await,
    )
    .await?;
    Ok(settlement)
}

/// Gives `who` 100 ether of gas money.
pub async fn fund(chain: &TestChain, who: Address) -> Result<()> {
    chain
        .provider()
        .raw_request::<_, ()>("anvil_setBalance".into(), (who, U256::from(10u128.pow(20))))
        .await
        .map_err(|e| failed("anvil_setBalance", e))
}

/// Deposits `amount` wei of the native coin into `funder`'s balance, paid by the owner.
pub async fn deposit_native(settlement: &Settlement, funder: Address, amount: U256) -> Result<()> {
    confirm(
        "depositNative",
        settlement.depositNative(funder).value(amount).send().await,
    )
    .await
}
