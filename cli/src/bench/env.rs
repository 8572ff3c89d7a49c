//! What a bench section runs against: its own anvil, its own fresh database, the HSM keys, the
//! contracts deployed through the deploy library, a bench ERC-20 and a funded funder.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use settle_contracts::{
    Batch, Leg, Payment, SplitSettlement, digest::batch_digest, encode_payments,
};
use settle_relayer::hsm::HsmSigner;

use super::BenchArgs;
use crate::{
    demo::{self, BATCH_KEY, SENDER_KEY},
    dev::{DevArgs, DevStack},
    keys::Hsm,
};

mod contracts {
    #![allow(missing_docs, unreachable_pub)]
    alloy::sol!(
        #[sol(rpc)]
        BenchToken,
        "../contracts/artifacts/BenchToken.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        NaiveSplitter,
        "../contracts/artifacts/NaiveSplitter.json"
    );
}
pub(crate) use contracts::{BenchToken, NaiveSplitter};

/// The chain id of anvil.
pub(crate) const CHAIN_ID: u64 = 31337;
/// The native coin.
pub(crate) const NATIVE: Address = Address::ZERO;
/// Tokens minted to (and deposited for) the funder: far above anything a run pays.
const FUNDS: u128 = 10u128.pow(27);

/// A section's running environment. Dropping it stops its anvil.
pub struct BenchEnv {
    stack: DevStack,
    /// The section's fresh database.
    pub database_url: String,
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The HSM.
    pub hsm: Hsm,
    /// The batch key on the HSM (authorised on the contract).
    pub batch_signer: Arc<HsmSigner>,
    /// The deployed contracts.
    pub manifest: settle_deploy::Manifest,
    /// anvil's account that funds batches (its deposits pay for them) and sends them.
    pub funder: PrivateKeySigner,
    /// A provider sending as the funder.
    pub provider: DynProvider,
    /// The bench ERC-20 (enabled on the contract).
    pub erc20: Address,
    next_nonce: AtomicU64,
}

impl std::fmt::Debug for BenchEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchEnv")
            .field("rpc", &self.rpc())
            .field("settlement", &self.manifest.settlement)
            .finish()
    }
}

/// One line naming the machine the figures come from.
pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / (1024 * 1024)));
    format!("{cpus} CPUs ({model}){memory}")
}

impl BenchEnv {
    /// Starts anvil, makes the database `settle_bench_<name>` afresh, makes sure the HSM holds
    /// the batch and sender keys, deploys, and funds the funder in the native coin and the bench
    /// ERC-20 (minted, approved and deposited).
    pub async fn start(args: &BenchArgs, name: &str) -> anyhow::Result<Self> {
        let dev = DevArgs {
            database_url: args.database_url.clone(),
            anvil_port: 0,
            anvil: args.anvil.clone(),
            demo: 0,
            exit: true,
            api_port: 0,
            dev_database: format!("{}_{name}", args.database_prefix),
            token: args.token.clone(),
            dir: args.out.join(name),
        };
        let stack = DevStack::start(&dev).await?;
        let database_url = demo::fresh_database(&dev.database_url, &dev.dev_database).await?;
        let (module, hsm) =
            demo::dev_keys_on(&args.token, |line| eprintln!("settle bench: {line}"))?;
        let batch_signer = Arc::new(hsm.signer(BATCH_KEY, 2)?);
        let dev_keys = stack.signers();
        let funder = dev_keys
            .get(4)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("anvil gave fewer than 5 development accounts"))?;
        let rpc = stack.rpc_endpoint();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(funder.clone()))
            .connect_http(rpc.parse()?)
            .erased();
        // The token first: the deployment enables it.
        let erc20 = *BenchToken::deploy(&provider).await?.address();
        let manifest = demo::deploy_dev(
            &dev.dir,
            &rpc,
            &dev_keys,
            &[batch_signer.address()],
            &[NATIVE, erc20],
        )
        .await?;
        let settlement = SplitSettlement::new(manifest.settlement, &provider);
        let token = BenchToken::new(erc20, &provider);
        let funds = U256::from(FUNDS);
        anyhow::ensure!(
            token
                .mint(funder.address(), funds.saturating_mul(U256::from(2u8)))
                .send()
                .await?
                .get_receipt()
                .await?
                .status(),
            "minting the bench token reverted"
        );
        anyhow::ensure!(
            token
                .approve(manifest.settlement, U256::MAX)
                .send()
                .await?
                .get_receipt()
                .await?
                .status(),
            "approving the settlement reverted"
        );
        anyhow::ensure!(
            settlement
                .deposit(erc20, funder.address(), funds)
                .send()
                .await?
                .get_receipt()
                .await?
                .status(),
            "the ERC-20 deposit reverted"
        );
        let _: () = provider
            .raw_request(
                "anvil_setBalance".into(),
                (funder.address(), U256::from(10u128.pow(30))),
            )
            .await?;
        anyhow::ensure!(
            settlement
                .depositNative(funder.address())
                .value(U256::from(10u128.pow(28)))
                .send()
                .await?
                .get_receipt()
                .await?
                .status(),
            "the native deposit reverted"
        );
        let sender = hsm.address_of(SENDER_KEY)?;
        let _: () = provider
            .raw_request(
                "anvil_setBalance".into(),
                (sender, U256::from(10u128.pow(24))),
            )
            .await?;
        Ok(Self {
            stack,
            database_url,
            module,
            token_label: args.token.clone(),
            hsm,
            batch_signer,
            manifest,
            funder,
            provider,
            erc20,
            // Far from anything the relayer allocates on this contract.
            next_nonce: AtomicU64::new(1 << 40),
        })
    }

    /// anvil's endpoint.
    pub fn rpc(&self) -> String {
        self.stack.rpc_endpoint()
    }

    /// anvil's development accounts.
    pub fn dev_keys(&self) -> Vec<PrivateKeySigner> {
        self.stack.signers()
    }

    /// A batch of `payments` (amount, legs of (payee, share)) in `token`, drawn from the
    /// funder's deposit, signed by the HSM batch key. Payees are sorted and indexed here.
    pub fn signed_batch(
        &self,
        token: Address,
        payments: &[(u128, Vec<(Address, u32)>)],
    ) -> anyhow::Result<(Batch, Bytes)> {
        let mut payees: Vec<Address> = payments
            .iter()
            .flat_map(|(_, legs)| legs.iter().map(|(payee, _)| *payee))
            .collect();
        payees.sort_unstable();
        payees.dedup();
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let mut packed = Vec::with_capacity(payments.len());
        for (i, (amount, legs)) in payments.iter().enumerate() {
            let mut out = Vec::with_capacity(legs.len());
            for (payee, share) in legs {
                let index = payees
                    .binary_search(payee)
                    .map_err(|_| anyhow::anyhow!("payee {payee} not listed"))?;
                out.push(Leg {
                    payee: u16::try_from(index)?,
                    share: *share,
                });
            }
            packed.push(Payment {
                payment_id: keccak256(format!("bench-{nonce}-{i}")),
                amount: *amount,
                legs: out,
            });
        }
        let batch = Batch {
            batchId: keccak256(format!("bench-batch-{nonce}")),
            nonce: U256::from(nonce),
            deadline: u64::MAX >> 1,
            token,
            funder: self.funder.address(),
            funding: 0,
            payees,
            payments: encode_payments(&packed)?,
        };
        let digest: B256 = batch_digest(&batch, CHAIN_ID, self.manifest.settlement);
        let signature = self.batch_signer.sign_prehash(&digest)?;
        Ok((batch, Bytes::copy_from_slice(&signature.as_bytes())))
    }

    /// Sends a signed batch from the funder and returns the gas its receipt reports.
    pub async fn settle(
        &self,
        token: Address,
        payments: &[(u128, Vec<(Address, u32)>)],
    ) -> anyhow::Result<u64> {
        let (batch, signature) = self.signed_batch(token, payments)?;
        let receipt = SplitSettlement::new(self.manifest.settlement, &self.provider)
            .settleBatch(batch, signature)
            .send()
            .await?
            .get_receipt()
            .await?;
        anyhow::ensure!(
            receipt.status(),
            "settleBatch reverted in {}",
            receipt.transaction_hash
        );
        Ok(receipt.gas_used)
    }
}

/// `count` distinct addresses derived from `seed`, sorted.
pub(crate) fn payees(seed: &str, count: usize) -> Vec<Address> {
    let mut out: Vec<Address> = (0..count)
        .map(|i| Address::from_word(keccak256(format!("{seed}-{i}"))))
        .collect();
    out.sort_unstable();
    out
}

/// Splits 1,000,000 parts per million into `legs` near-equal shares (the first takes the rest).
pub(crate) fn equal_shares(legs: usize) -> Vec<u32> {
    let Ok(n) = u32::try_from(legs.max(1)) else {
        return vec![settle_contracts::split::SCALE];
    };
    let each = settle_contracts::split::SCALE.checked_div(n).unwrap_or(0);
    let rest = settle_contracts::split::SCALE.saturating_sub(each.saturating_mul(n));
    (0..n)
        .map(|i| {
            if i == 0 {
                each.saturating_add(rest)
            } else {
                each
            }
        })
        .collect()
}

/// Payments paying each of `payees` once: payments of up to 100 legs with equal shares.
pub(crate) fn one_credit_each(
    payees: &[Address],
    per_leg: u128,
) -> Vec<(u128, Vec<(Address, u32)>)> {
    payees
        .chunks(100)
        .map(|chunk| {
            let shares = equal_shares(chunk.len());
            let legs: Vec<(Address, u32)> = chunk.iter().copied().zip(shares).collect();
            let amount = per_leg.saturating_mul(u128::try_from(legs.len()).unwrap_or(1));
            (amount, legs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_the_scale() {
        for legs in [1usize, 3, 7, 100] {
            let shares = equal_shares(legs);
            assert_eq!(shares.len(), legs);
            assert_eq!(shares.iter().sum::<u32>(), 1_000_000);
        }
        assert_eq!(equal_shares(3), vec![333_334, 333_333, 333_333]);
    }

    #[test]
    fn payees_are_distinct_and_sorted() {
        let p = payees("x", 250);
        assert_eq!(p.len(), 250);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        let batches = one_credit_each(&p, 10);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].1.len(), 50);
        assert_eq!(batches[2].0, 500);
    }
}
