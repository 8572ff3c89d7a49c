//! One anvil chain, one fresh database, SplitSettlement proxies for the native coin, and helpers
//! that settle batches signed by an anvil key, plus the checks every test makes: the indexed
//! state against the chain's.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    rpc::types::Filter,
    signers::{Signer, local::PrivateKeySigner},
    sol_types::{SolCall, SolEvent},
};
use settle_contracts::{
    Batch, ERC1967Proxy, Leg, Payment, SplitSettlement, digest::batch_digest, encode_payments,
};
use settle_indexer::{Indexer, IndexerConfig, MIGRATOR};
use settle_relayer::{RpcConfig, RpcPool};
use settle_testkit::{TestChain, TestDb};
use sqlx::{PgPool, Row};

/// anvil's chain id.
pub(crate) const CHAIN_ID: u64 = 31337;
/// The native coin.
pub(crate) const NATIVE: Address = Address::ZERO;
/// A platform fee payee.
pub(crate) const PLATFORM: Address = Address::repeat_byte(0x0c);
/// Plain merchants (never push, never withdraw).
pub(crate) const MERCHANT_1: Address = Address::repeat_byte(0xa1);
pub(crate) const MERCHANT_2: Address = Address::repeat_byte(0xa2);
/// Parts per million of a whole payment.
pub(crate) const WHOLE: u32 = 1_000_000;
/// What the funder deposits at start, in wei.
pub(crate) const INITIAL_DEPOSIT: u128 = 1_000_000_000_000_000_000;

/// A payment of `amount` split over `(payee, share)` legs (the first takes the remainder).
pub(crate) fn pay(amount: u128, legs: &[(Address, u32)]) -> (u128, Vec<(Address, u32)>) {
    (amount, legs.to_vec())
}

/// A deployed proxy.
pub(crate) struct Deployed {
    pub(crate) proxy: Address,
    pub(crate) implementation: Address,
    pub(crate) block: u64,
}

pub(crate) type Settlement = SplitSettlement::SplitSettlementInstance<DynProvider>;

/// The chain, the database and one deployed proxy with a funded funder.
pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) chain: TestChain,
    /// The first proxy.
    pub(crate) contract: Address,
    /// The first proxy's implementation: a contract without `receive`, so a push to it fails.
    pub(crate) implementation: Address,
    /// The block the first proxy was deployed in.
    pub(crate) deploy_block: u64,
    /// Deposits into every proxy and funds deposit-funded batches (anvil account 1).
    pub(crate) funder: Address,
    /// Signs batches (anvil account 9).
    signer: PrivateKeySigner,
    next_nonce: AtomicU64,
}

impl Env {
    /// anvil, a migrated database, a proxy, and `INITIAL_DEPOSIT` deposited by the funder.
    pub(crate) async fn new() -> Self {
        let db = TestDb::create().await.expect("database");
        MIGRATOR.run(db.pool()).await.expect("indexer migrations");
        let chain = TestChain::start().expect("anvil");
        let signer = chain.signers()[9].clone();
        let funder = chain.addresses()[1];
        let mut env = Self {
            db,
            chain,
            contract: Address::ZERO,
            implementation: Address::ZERO,
            deploy_block: 0,
            funder,
            signer,
            next_nonce: AtomicU64::new(1),
        };
        let deployed = env.deploy().await;
        env.contract = deployed.proxy;
        env.implementation = deployed.implementation;
        env.deploy_block = deployed.block;
        env.deposit(deployed.proxy, INITIAL_DEPOSIT).await;
        env
    }

    /// A provider signing for every dev account. Nonces are asked of the node each time, so it
    /// stays right after `evm_revert`.
    pub(crate) fn provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(self.chain.wallet())
            .connect_http(self.chain.endpoint_url())
            .erased()
    }

    pub(crate) fn settlement(&self, contract: Address) -> Settlement {
        SplitSettlement::new(contract, self.provider())
    }

    /// Deploys implementation and proxy (owner: account 0), authorises the batch signer and
    /// enables the native coin without limits.
    pub(crate) async fn deploy(&self) -> Deployed {
        let provider = self.provider();
        let owner = self.chain.addresses()[0];
        let implementation = SplitSettlement::deploy(&provider)
            .await
            .expect("implementation");
        let init = SplitSettlement::initializeCall {
            owner_: owner,
            guardian_: owner,
        }
        .abi_encode();
        let deploy =
            ERC1967Proxy::deploy_builder(&provider, *implementation.address(), init.into())
                .send()
                .await
                .expect("proxy sent")
                .get_receipt()
                .await
                .expect("proxy mined");
        let proxy = deploy.contract_address.expect("proxy address");
        let block = deploy.block_number.expect("proxy block");
        let settlement = self.settlement(proxy);
        let set = settlement
            .setSigner(self.signer.address(), true)
            .send()
            .await
            .expect("sent");
        assert!(set.get_receipt().await.expect("mined").status());
        let configured = settlement
            .setTokenConfig(NATIVE, true, u128::MAX, u128::MAX)
            .send()
            .await
            .expect("sent");
        assert!(configured.get_receipt().await.expect("mined").status());
        Deployed {
            proxy,
            implementation: *implementation.address(),
            block,
        }
    }

    pub(crate) async fn deposit(&self, contract: Address, amount: u128) {
        let receipt = self
            .settlement(contract)
            .depositNative(self.funder)
            .from(self.funder)
            .value(U256::from(amount))
            .send()
            .await
            .expect("deposit sent")
            .get_receipt()
            .await
            .expect("deposit mined");
        assert!(receipt.status(), "deposit");
    }

    /// `account` (a dev account) opts in to pushes of the native coin.
    pub(crate) async fn opt_in_push(&self, contract: Address, account: Address) {
        let receipt = self
            .settlement(contract)
            .setPushPreference(NATIVE, true)
            .from(account)
            .send()
            .await
            .expect("preference sent")
            .get_receipt()
            .await
            .expect("preference mined");
        assert!(receipt.status(), "setPushPreference");
    }

    /// A contract account opts in to pushes, through anvil's impersonation.
    pub(crate) async fn opt_in_push_as_contract(&self, contract: Address, account: Address) {
        let provider = self.provider();
        provider
            .anvil_impersonate_account(account)
            .await
            .expect("impersonate");
        provider
            .anvil_set_balance(account, U256::from(10u128.pow(18)))
            .await
            .expect("fund");
        let unsigned = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .connect_http(self.chain.endpoint_url())
            .erased();
        let receipt = SplitSettlement::new(contract, unsigned)
            .setPushPreference(NATIVE, true)
            .from(account)
            .send()
            .await
            .expect("impersonated preference sent")
            .get_receipt()
            .await
            .expect("impersonated preference mined");
        assert!(receipt.status(), "setPushPreference as a contract");
        provider
            .anvil_stop_impersonating_account(account)
            .await
            .expect("stop impersonating");
    }

    pub(crate) async fn withdraw(&self, contract: Address, account: Address, amount: u128) {
        let receipt = self
            .settlement(contract)
            .withdraw(NATIVE, U256::from(amount), Address::repeat_byte(0x99))
            .from(account)
            .send()
            .await
            .expect("withdraw sent")
            .get_receipt()
            .await
            .expect("withdraw mined");
        assert!(receipt.status(), "withdraw");
    }

    /// Settles one batch on `contract`, drawn from the funder's deposit (`funding` 0) or paid
    /// with the call (`funding` 1). Returns its id.
    pub(crate) async fn settle(
        &self,
        contract: Address,
        funding: u8,
        payments: &[(u128, Vec<(Address, u32)>)],
    ) -> B256 {
        self.settle_with_ids(contract, funding, payments, &[]).await
    }

    /// Like [`Self::settle`], with the first payments' ids given by `ids` (the rest made fresh).
    pub(crate) async fn settle_with_ids(
        &self,
        contract: Address,
        funding: u8,
        payments: &[(u128, Vec<(Address, u32)>)],
        ids: &[B256],
    ) -> B256 {
        let mut payees: Vec<Address> = payments
            .iter()
            .flat_map(|(_, legs)| legs.iter().map(|(payee, _)| *payee))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        payees.sort_unstable();
        let packed: Vec<Payment> = payments
            .iter()
            .enumerate()
            .map(|(i, (amount, legs))| Payment {
                payment_id: ids.get(i).copied().unwrap_or_else(|| {
                    keccak256(self.next_nonce.fetch_add(1, Ordering::SeqCst).to_be_bytes())
                }),
                amount: *amount,
                legs: legs
                    .iter()
                    .map(|(payee, share)| Leg {
                        payee: u16::try_from(payees.binary_search(payee).expect("payee listed"))
                            .expect("few payees"),
                        share: *share,
                    })
                    .collect(),
            })
            .collect();
        let total: u128 = payments
            .iter()
            .map(|(amount, _)| *amount)
            .fold(0u128, |sum, a| sum.checked_add(a).expect("small total"));
        let nonce = self.next_nonce.fetch_add(1, Ordering::SeqCst);
        let batch = Batch {
            batchId: keccak256(format!("batch-{nonce}")),
            nonce: U256::from(nonce),
            deadline: u64::MAX >> 1,
            token: NATIVE,
            funder: self.funder,
            funding,
            payees,
            payments: encode_payments(&packed).expect("encode"),
        };
        let digest = batch_digest(&batch, CHAIN_ID, contract);
        let signature = self.signer.sign_hash(&digest).await.expect("sign");
        let value = if funding == 1 {
            U256::from(total)
        } else {
            U256::ZERO
        };
        let batch_id = batch.batchId;
        let receipt = self
            .settlement(contract)
            .settleBatch(batch, Bytes::copy_from_slice(&signature.as_bytes()))
            .from(self.funder)
            .value(value)
            .send()
            .await
            .expect("settle sent")
            .get_receipt()
            .await
            .expect("settle mined");
        assert!(receipt.status(), "settleBatch");
        batch_id
    }

    pub(crate) async fn mine(&self, blocks: u64) {
        if blocks == 0 {
            return;
        }
        self.provider()
            .anvil_mine(Some(blocks), None)
            .await
            .expect("anvil_mine");
    }

    pub(crate) async fn head(&self) -> u64 {
        self.provider().get_block_number().await.expect("head")
    }

    pub(crate) async fn snapshot(&self) -> U256 {
        self.provider()
            .anvil_snapshot()
            .await
            .expect("evm_snapshot")
    }

    pub(crate) async fn revert(&self, id: U256) {
        assert!(
            self.provider().anvil_revert(id).await.expect("evm_revert"),
            "reverted"
        );
    }

    pub(crate) fn rpc(&self) -> Arc<RpcPool> {
        rpc_to(&self.chain.endpoint())
    }

    /// Follows the first proxy from its deployment, at the head (no confirmations), with a small
    /// range so that even short chains take several ranges.
    pub(crate) fn config(&self) -> IndexerConfig {
        IndexerConfig {
            confirmations: 0,
            reorg_window: 128,
            initial_range: 8,
            max_range: 64,
            poll_interval: Duration::from_millis(20),
            ..IndexerConfig::new(CHAIN_ID, vec![self.contract], self.deploy_block)
        }
    }

    pub(crate) fn indexer(&self, config: IndexerConfig) -> Indexer {
        Indexer::new(self.db.pool().clone(), self.rpc(), config).expect("valid config")
    }
}

pub(crate) fn rpc_to(url: &str) -> Arc<RpcPool> {
    Arc::new(
        RpcPool::new(
            &[url.to_owned()],
            RpcConfig {
                timeout: Duration::from_secs(5),
                rest: Duration::from_millis(200),
            },
        )
        .expect("rpc"),
    )
}

/// Rows per indexer table.
pub(crate) async fn table_counts(pool: &PgPool) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for table in settle_indexer::EVENT_ROW_TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM indexer.{table}"))
            .fetch_one(pool)
            .await
            .expect("count");
        counts.insert(table, n);
    }
    counts
}

/// The expected counts, in the order of [`table_counts`].
pub(crate) fn counts(
    [
        batches,
        payments,
        credits,
        deposits,
        withdrawals,
        pushes,
        signer_changes,
        governance,
    ]: [i64; 8],
) -> BTreeMap<&'static str, i64> {
    BTreeMap::from([
        ("batches", batches),
        ("payments", payments),
        ("credits", credits),
        ("deposits", deposits),
        ("withdrawals", withdrawals),
        ("pushes", pushes),
        ("signer_changes", signer_changes),
        ("governance", governance),
    ])
}

/// Every indexed row of every table (and the window and checkpoints), as text, in key order:
/// two databases that indexed the same chain must be equal here.
pub(crate) async fn dump(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for (table, order) in [
        ("batches", "chain_id, block_number, log_index"),
        ("payments", "chain_id, block_hash, log_index, position"),
        ("credits", "chain_id, block_hash, log_index, position"),
        ("deposits", "chain_id, block_number, log_index"),
        ("withdrawals", "chain_id, block_number, log_index"),
        ("pushes", "chain_id, block_number, log_index"),
        ("signer_changes", "chain_id, block_number, log_index"),
        ("governance", "chain_id, block_number, log_index"),
        ("checkpoints", "chain_id, contract"),
        ("blocks", "chain_id, number"),
    ] {
        let except = if table == "checkpoints" {
            " - 'updated_at'"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT (to_jsonb(t){except})::text AS row FROM indexer.{table} t ORDER BY {order}"
        ))
        .fetch_all(pool)
        .await
        .expect("dump");
        for row in rows {
            out.push(format!("{table}: {}", row.get::<String, _>("row")));
        }
    }
    out
}

/// The view's balances: (contract, token, account) => balance.
pub(crate) async fn indexed_balances(pool: &PgPool) -> BTreeMap<(Address, Address, Address), U256> {
    sqlx::query(
        "SELECT contract, token, account, balance::text AS balance FROM indexer.balances
         WHERE chain_id = $1",
    )
    .bind(i64::try_from(CHAIN_ID).expect("chain id"))
    .fetch_all(pool)
    .await
    .expect("balances")
    .iter()
    .map(|row| {
        let address = |column: &str| Address::from_slice(row.get::<&[u8], _>(column));
        let balance: String = row.get("balance");
        (
            (address("contract"), address("token"), address("account")),
            balance.parse::<U256>().expect("integer balance"),
        )
    })
    .collect()
}

impl Env {
    /// For every (contract, token, account) the view knows, and every account in `accounts` on
    /// every contract in `contracts`: the view's balance equals `balanceOf` on chain. Returns how
    /// many balances were compared.
    pub(crate) async fn assert_balances_match(
        &self,
        contracts: &[Address],
        accounts: &[Address],
    ) -> usize {
        let indexed = indexed_balances(self.db.pool()).await;
        let mut keys: BTreeSet<(Address, Address, Address)> = indexed.keys().copied().collect();
        for contract in contracts {
            for account in accounts {
                keys.insert((*contract, NATIVE, *account));
            }
        }
        for (contract, token, account) in &keys {
            let on_chain = self
                .settlement(*contract)
                .balanceOf(*token, *account)
                .call()
                .await
                .expect("balanceOf");
            let mirrored = indexed
                .get(&(*contract, *token, *account))
                .copied()
                .unwrap_or(U256::ZERO);
            assert_eq!(
                mirrored, on_chain,
                "balance of {account} in {token} on {contract}: indexed vs chain"
            );
        }
        keys.len()
    }

    /// Batch ids settled on `contracts`, read from the chain directly.
    pub(crate) async fn chain_batch_ids(&self, contracts: &[Address]) -> BTreeSet<B256> {
        let filter = Filter::new()
            .address(contracts.to_vec())
            .event_signature(SplitSettlement::BatchSettled::SIGNATURE_HASH)
            .from_block(0)
            .to_block(alloy::eips::BlockNumberOrTag::Latest);
        self.provider()
            .get_logs(&filter)
            .await
            .expect("logs")
            .iter()
            .map(|log| {
                SplitSettlement::BatchSettled::decode_log(&log.inner)
                    .expect("BatchSettled")
                    .batchId
            })
            .collect()
    }

    pub(crate) async fn indexed_batch_ids(&self) -> BTreeSet<B256> {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT batch_id FROM indexer.batches")
            .fetch_all(self.db.pool())
            .await
            .expect("batch ids")
            .iter()
            .map(|id| B256::from_slice(id))
            .collect()
    }

    /// The window's blocks all carry the chain's hashes.
    pub(crate) async fn assert_window_canonical(&self) {
        let rows = sqlx::query("SELECT number, hash FROM indexer.blocks ORDER BY number")
            .fetch_all(self.db.pool())
            .await
            .expect("window");
        assert!(!rows.is_empty(), "the window holds blocks");
        for row in rows {
            let number = u64::try_from(row.get::<i64, _>("number")).expect("number");
            let block = self
                .provider()
                .get_block_by_number(number.into())
                .await
                .expect("block")
                .expect("the chain has the block");
            assert_eq!(
                row.get::<&[u8], _>("hash"),
                block.header.hash.as_slice(),
                "stored hash of block {number}"
            );
        }
    }
}
