//! The chain side of scenarios: governance through the multisig and timelock, anvil's clock,
//! mining and snapshots, and the proxy's implementation slot.

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider},
    signers::Signer,
};
use settle_contracts::SettleMultisig;
use settle_deploy::multisig::{TimelockCall, sign_operation};
use tokio::{sync::watch, task::JoinHandle};

use crate::{CHAIN_ID, Stack};

#[allow(missing_docs, clippy::too_many_arguments)] // generated from the contract's ABI
mod generated {
    alloy::sol!(
        /// The test-only upgrade target (`contracts/test/mocks/SplitSettlementV2.sol`): V1's
        /// logic and storage, `version()` "2" and a `newFeature()` V1 does not have.
        #[sol(rpc)]
        SplitSettlementV2,
        "../../contracts/artifacts/SplitSettlementV2.json"
    );
}
pub use generated::SplitSettlementV2;

/// Anvil account that sends governance transactions (owners only sign).
const GOVERNANCE_SENDER: usize = 9;

/// The implementation in `proxy`'s ERC-1967 slot.
pub async fn implementation(provider: &DynProvider, proxy: Address) -> Address {
    settle_deploy::upgrade::implementation_of(provider, proxy)
        .await
        .expect("implementation slot")
}

/// Moves anvil's clock `seconds` ahead and mines a block.
pub async fn advance(provider: &DynProvider, seconds: u64) {
    provider
        .raw_request::<_, i64>("evm_increaseTime".into(), (U256::from(seconds),))
        .await
        .expect("evm_increaseTime");
    mine(provider).await;
}

/// Mines one block.
pub async fn mine(provider: &DynProvider) {
    provider
        .raw_request::<_, String>("evm_mine".into(), ())
        .await
        .expect("evm_mine");
}

/// Turns anvil's automine on or off.
pub async fn automine(provider: &DynProvider, on: bool) {
    provider
        .raw_request::<_, ()>("evm_setAutomine".into(), (on,))
        .await
        .expect("evm_setAutomine");
}

/// Takes a snapshot of the chain; [`revert`] goes back to it.
pub async fn snapshot(provider: &DynProvider) -> U256 {
    provider
        .raw_request::<_, U256>("evm_snapshot".into(), ())
        .await
        .expect("evm_snapshot")
}

/// Reverts the chain to `snapshot`: every block after it is gone.
pub async fn revert(provider: &DynProvider, snapshot: U256) {
    let reverted = provider
        .raw_request::<_, bool>("evm_revert".into(), (snapshot,))
        .await
        .expect("evm_revert");
    assert!(reverted, "snapshot {snapshot} unknown");
}

/// A task mining a block every `every` until dropped or stopped, so confirmations and "blocks
/// since sent" advance when no transaction does.
#[derive(Debug)]
pub struct Miner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Miner {
    /// Starts mining on `provider`.
    pub fn start(provider: DynProvider, every: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(every) => {}
                }
                // A failed mine (anvil busy reverting) is retried on the next beat.
                let _ = provider
                    .raw_request::<_, String>("evm_mine".into(), ())
                    .await;
            }
        });
        Self { stop, task }
    }

    /// Stops mining and waits for the task.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.expect("miner joined");
    }
}

impl Stack {
    /// Has the timelock call `target.data` through the multisig: owners 1 and 2 sign the
    /// schedule, anvil's clock passes the 60 s delay, they sign the execution, and anvil account
    /// 9 sends both. Answers the block that executed it.
    pub async fn govern(&self, target: Address, data: Bytes) -> u64 {
        let provider = self.wallet(GOVERNANCE_SENDER);
        let multisig = SettleMultisig::new(self.manifest.multisig, &provider);
        let nonce = multisig.nonce().call().await.expect("nonce");
        let salt = keccak256(
            [
                b"settle/e2e".as_slice(),
                data.as_ref(),
                &nonce.to_be_bytes::<32>(),
            ]
            .concat(),
        );
        let call = TimelockCall::new(target, data, salt);
        let owners: Vec<&(dyn Signer + Send + Sync)> = self.chain.signers()[1..3]
            .iter()
            .map(|s| s as &(dyn Signer + Send + Sync))
            .collect();
        let schedule = call.schedule(self.manifest.timelock, self.manifest.min_delay, nonce);
        let execute = call.execute(
            self.manifest.timelock,
            nonce.checked_add(U256::from(1)).expect("small"),
        );
        let mut block = 0;
        for (step, operation) in [("schedule", schedule), ("execute", execute)] {
            if step == "execute" {
                advance(&provider, self.manifest.min_delay.saturating_add(1)).await;
            }
            let signatures = sign_operation(&owners, &operation, CHAIN_ID, self.manifest.multisig)
                .await
                .expect("owners sign");
            let receipt = multisig
                .execute(
                    operation.target,
                    operation.value,
                    operation.data.clone(),
                    signatures,
                )
                .send()
                .await
                .expect("sent")
                .get_receipt()
                .await
                .expect("mined");
            assert!(receipt.status(), "{step} reverted");
            block = receipt.block_number.expect("block");
        }
        assert_eq!(
            multisig.nonce().call().await.expect("nonce"),
            nonce.checked_add(U256::from(2)).expect("small")
        );
        block
    }

    /// The hash of block `number` now, if the chain has it.
    pub async fn block_hash(&self, number: u64) -> Option<B256> {
        self.chain
            .provider()
            .get_block_by_number(number.into())
            .await
            .expect("block")
            .map(|b| b.header.hash)
    }
}
