//! The SplitSettlement proxy on anvil, configured for the native coin, shared by the tests.

use alloy::primitives::{Address, U256};
use settle_testkit::TestChain;

/// The proxy, as seen through anvil account 0 (its owner and guardian).
pub(crate) type Settlement = settle_testkit::settlement::Settlement;

/// Deploys implementation and proxy, authorises `signer` and enables the native coin without limits.
pub(crate) async fn native_settlement(chain: &TestChain, signer: Address) -> Settlement {
    settle_testkit::settlement::native_settlement(chain, signer)
        .await
        .expect("settlement deployed")
}

/// `who`'s internal balance of the native coin.
pub(crate) async fn native_balance(settlement: &Settlement, who: Address) -> U256 {
    settlement
        .balanceOf(Address::ZERO, who)
        .call()
        .await
        .expect("balanceOf")
}
