//! `deploy`: bring a chain to the configured deployment, idempotently.
//!
//! Order: the multisig, the timelock (the multisig its only proposer,
//! executor and canceller; no admin but itself), the implementation, the proxy
//! (initialised with the deployer as owner and no guardian), then, as the
//! proxy's owner, the deployer authorises the batch signers, enables the
//! tokens, sets the guardian and finally transfers ownership to the timelock.
//! From then on only the multisig, through the timelock, can change anything.
//!
//! Each step first reads the chain and is skipped when already in place, so
//! a run that stopped half-way resumes and a repeated run sends nothing. When
//! the timelock already owns the proxy and the configuration asks for
//! something else, nothing is sent: the difference is reported as changes for
//! the multisig to make.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, ReceiptResponse, TransactionBuilder, TxSigner},
    primitives::{Address, B256, Bytes, Signature, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, TransactionRequest},
    sol_types::SolEvent,
    transports::http::reqwest::Url,
};
use settle_contracts::{ERC1967Proxy, SettleMultisig, SplitSettlement, TimelockController};

use crate::{
    Manifest, ManifestError,
    config::{DeployConfig, TokenLimits},
    error::{Change, Changes, DeployError},
    outcome::{Mined, Outcome, Step, StepReport, StepStatus},
    plan::{
        CREATE2_FACTORY, CREATE2_FACTORY_CODE_HASH, Contract, Plan, Planned, code_matches,
        implementation_slot,
    },
};

/// Where the manifests live and how long to wait for the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOptions {
    /// The folder of `<chain id>.json` manifests (`deploy/deployments`); created if missing.
    pub manifest_dir: PathBuf,
    /// The longest wait for one transaction's receipt.
    pub receipt_timeout: Duration,
}

impl DeployOptions {
    /// Manifests under `manifest_dir`, two minutes per receipt.
    pub fn new(manifest_dir: impl Into<PathBuf>) -> Self {
        Self {
            manifest_dir: manifest_dir.into(),
            receipt_timeout: Duration::from_secs(120),
        }
    }
}

/// Deploys (or completes, or checks) the deployment `config` describes on the chain at `rpc`,
/// sending from `deployer`, and records it in `options.manifest_dir/<chain id>.json`.
pub async fn deploy<S>(
    config: &DeployConfig,
    rpc: &str,
    deployer: S,
    options: &DeployOptions,
) -> Result<Outcome, DeployError>
where
    S: TxSigner<Signature> + Send + Sync + 'static,
{
    let from = deployer.address();
    if let Some(configured) = config.deployer.address
        && configured != from
    {
        return Err(DeployError::WrongDeployer {
            configured,
            signer: from,
        });
    }
    let url: Url = rpc
        .parse()
        .map_err(|_| DeployError::BadUrl(rpc.to_owned()))?;
    // The nonce is read from the node for every transaction: a cached counter would keep the
    // nonce of a send refused at gas estimation and leave a gap that nothing fills.
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(url)
        .erased();
    let chain = Chain {
        provider,
        from,
        timeout: options.receipt_timeout,
    };

    let chain_id = chain.chain_id().await?;
    if chain_id != config.chain_id {
        return Err(DeployError::WrongChain {
            configured: config.chain_id,
            served: chain_id,
        });
    }
    chain.check_factory(chain_id).await?;

    let plan = Plan::new(config, from);
    let run = Run {
        chain: &chain,
        config,
        plan: &plan,
        chain_id,
        manifest_path: Manifest::path_for(&options.manifest_dir, chain_id),
        manifest_dir: &options.manifest_dir,
    };
    run.go().await
}

/// The RPC side: reads, and transactions from the deployer.
struct Chain {
    provider: DynProvider,
    from: Address,
    timeout: Duration,
}

impl Chain {
    async fn chain_id(&self) -> Result<u64, DeployError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|source| DeployError::Rpc {
                what: "eth_chainId",
                source,
            })
    }

    async fn code(&self, address: Address) -> Result<Bytes, DeployError> {
        self.provider
            .get_code_at(address)
            .await
            .map_err(|source| DeployError::Rpc {
                what: "eth_getCode",
                source,
            })
    }

    async fn check_factory(&self, chain_id: u64) -> Result<(), DeployError> {
        let code = self.code(CREATE2_FACTORY).await?;
        if code.is_empty() {
            return Err(DeployError::NoFactory { chain_id });
        }
        if alloy::primitives::keccak256(&code) != CREATE2_FACTORY_CODE_HASH {
            return Err(DeployError::FactoryMismatch { chain_id });
        }
        Ok(())
    }

    /// Whether `contract` is at `address` with the expected code; an error if other code is.
    async fn has(&self, contract: Contract, address: Address) -> Result<bool, DeployError> {
        let code = self.code(address).await?;
        if code.is_empty() {
            return Ok(false);
        }
        if code_matches(&code, contract.runtime_code()) {
            Ok(true)
        } else {
            Err(DeployError::UnexpectedCode { contract, address })
        }
    }

    /// Sends `tx` and waits for it to be mined successfully.
    async fn send(&self, step: &Step, tx: TransactionRequest) -> Result<Mined, DeployError> {
        let tx = tx.with_from(self.from);
        let pending =
            self.provider
                .send_transaction(tx)
                .await
                .map_err(|source| DeployError::Send {
                    step: Box::new(step.clone()),
                    source,
                })?;
        tracing::info!(%step, tx = %pending.tx_hash(), "sent");
        let receipt = pending
            .with_timeout(Some(self.timeout))
            .get_receipt()
            .await
            .map_err(|source| DeployError::Receipt {
                step: Box::new(step.clone()),
                source,
            })?;
        let tx = receipt.transaction_hash();
        if !receipt.status() {
            return Err(DeployError::Reverted {
                step: Box::new(step.clone()),
                tx,
            });
        }
        Ok(Mined {
            tx,
            block: receipt.block_number().unwrap_or_default(),
        })
    }

    /// Creates `planned` through the factory unless it is there already.
    async fn create(&self, planned: &Planned, salt: B256) -> Result<StepReport, DeployError> {
        let step = Step::Create {
            contract: planned.contract,
            address: planned.address,
        };
        if self.has(planned.contract, planned.address).await? {
            return Ok(StepReport {
                step,
                status: StepStatus::Already,
            });
        }
        let tx = TransactionRequest::default()
            .with_to(CREATE2_FACTORY)
            .with_input(planned.factory_calldata(salt));
        let sent = self.send(&step, tx).await;
        // Anyone may send the same init code first (its result is the same): what counts is
        // that the contract is there now.
        let there = self.has(planned.contract, planned.address).await?;
        match sent {
            Ok(mined) if there => Ok(StepReport {
                step,
                status: mined.into(),
            }),
            Ok(mined) => Err(DeployError::NotCreated {
                contract: planned.contract,
                address: planned.address,
                tx: mined.tx,
            }),
            Err(_) if there => Ok(StepReport {
                step,
                status: StepStatus::Already,
            }),
            Err(e) => Err(e),
        }
    }

    /// The block the proxy was created in, from its first `Upgraded` event.
    async fn creation_block(&self, proxy: Address) -> Result<u64, DeployError> {
        let filter = Filter::new()
            .address(proxy)
            .event_signature(ERC1967Proxy::Upgraded::SIGNATURE_HASH)
            .from_block(0);
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(|source| DeployError::Rpc {
                what: "eth_getLogs",
                source,
            })?;
        logs.iter()
            .filter_map(|log| log.block_number)
            .min()
            .ok_or(DeployError::DeploymentBlockUnknown { proxy })
    }
}

/// Maps a view call's failure.
fn read(
    what: &'static str,
    address: Address,
) -> impl FnOnce(alloy::contract::Error) -> DeployError {
    move |source| DeployError::Read {
        what,
        address,
        source: Box::new(source),
    }
}

/// The governing pair of a deployment.
#[derive(Debug, Clone, Copy)]
struct Governors {
    multisig: Address,
    timelock: Address,
}

/// One run of [`deploy`].
struct Run<'a> {
    chain: &'a Chain,
    config: &'a DeployConfig,
    plan: &'a Plan,
    chain_id: u64,
    manifest_path: PathBuf,
    manifest_dir: &'a Path,
}

impl Run<'_> {
    async fn go(&self) -> Result<Outcome, DeployError> {
        let recorded = self.recorded().await?;
        let proxy = recorded
            .as_ref()
            .map_or(self.plan.proxy.address, |m| m.settlement);

        if !self.chain.has(Contract::Proxy, proxy).await? {
            return self.wire(recorded).await;
        }
        let settlement = SplitSettlement::new(proxy, &self.chain.provider);
        let owner = settlement
            .owner()
            .call()
            .await
            .map_err(read("owner()", proxy))?;
        if owner == self.chain.from {
            if proxy != self.plan.proxy.address {
                return Err(DeployError::UnfinishedDeployment { proxy });
            }
            return self.wire(recorded).await;
        }
        let governors = if owner == self.plan.timelock.address {
            Governors {
                multisig: self.plan.multisig.address,
                timelock: owner,
            }
        } else if let Some(m) = recorded.as_ref().filter(|m| m.timelock == owner) {
            Governors {
                multisig: m.multisig,
                timelock: owner,
            }
        } else {
            return Err(DeployError::UnknownOwner { proxy, owner });
        };
        self.governed(proxy, governors, recorded).await
    }

    /// The manifest of this chain if it records a live deployment this run is about: the planned
    /// one, or (same salt and deployer) the one an earlier build created.
    async fn recorded(&self) -> Result<Option<Manifest>, DeployError> {
        let Some(manifest) = Manifest::read_if_present(&self.manifest_path, self.chain_id)? else {
            return Ok(None);
        };
        if self.chain.code(manifest.settlement).await?.is_empty() {
            // A chain that was reset (anvil) or a manifest copied from elsewhere.
            tracing::warn!(
                path = %self.manifest_path.display(),
                proxy = %manifest.settlement,
                "the manifest records a proxy with no code on this chain; it will be replaced"
            );
            return Ok(None);
        }
        if manifest.settlement != self.plan.proxy.address
            && (manifest.salt != self.plan.salt || manifest.deployer != self.plan.deployer)
        {
            return Err(DeployError::ManifestConflict {
                path: self.manifest_path.clone(),
                recorded: manifest.settlement,
                recorded_salt: manifest.salt,
                recorded_deployer: manifest.deployer,
                planned: self.plan.proxy.address,
            });
        }
        Ok(Some(manifest))
    }

    /// The deployer owns the proxy (or there is none yet): create what is missing and wire it.
    async fn wire(&self, recorded: Option<Manifest>) -> Result<Outcome, DeployError> {
        let plan = self.plan;
        let governors = Governors {
            multisig: plan.multisig.address,
            timelock: plan.timelock.address,
        };
        // A multisig or timelock that exists already may have changed itself since.
        let mut changes = Vec::new();
        if self
            .chain
            .has(Contract::Multisig, governors.multisig)
            .await?
        {
            self.multisig_changes(governors.multisig, &mut changes)
                .await?;
        }
        if self
            .chain
            .has(Contract::Timelock, governors.timelock)
            .await?
        {
            self.timelock_changes(governors, &mut changes).await?;
        }
        if !changes.is_empty() {
            return Err(DeployError::NeedsMultisig {
                proxy: plan.proxy.address,
                multisig: governors.multisig,
                timelock: governors.timelock,
                changes: Changes(changes),
            });
        }

        let mut steps = Vec::new();
        let mut deployed_block = recorded
            .as_ref()
            .filter(|m| m.settlement == plan.proxy.address)
            .map(|m| m.deployed_block);
        for planned in plan.contracts() {
            let report = self.chain.create(planned, plan.salt).await?;
            if planned.contract == Contract::Proxy
                && let StepStatus::Done { block, .. } = report.status
            {
                deployed_block = Some(block);
                // Record the addresses at once: a run that stops before the end resumes from them.
                self.write_manifest(&self.manifest(
                    plan.proxy.address,
                    governors,
                    plan.implementation.address,
                    block,
                ))?;
            }
            steps.push(report);
        }
        let deployed_block = match deployed_block {
            Some(block) => block,
            None => self.chain.creation_block(plan.proxy.address).await?,
        };

        let proxy = plan.proxy.address;
        let settlement = SplitSettlement::new(proxy, &self.chain.provider);
        for &signer in &self.config.signers {
            let step = Step::AuthoriseSigner(signer);
            let authorised = settlement
                .isSigner(signer)
                .call()
                .await
                .map_err(read("isSigner", proxy))?;
            let status = if authorised {
                StepStatus::Already
            } else {
                let tx = settlement
                    .setSigner(signer, true)
                    .into_transaction_request();
                self.chain.send(&step, tx).await?.into()
            };
            steps.push(StepReport { step, status });
        }
        for limits in &self.config.tokens {
            let step = Step::EnableToken(*limits);
            let status = if self.token_change(&settlement, limits).await?.is_none() {
                StepStatus::Already
            } else {
                let tx = settlement
                    .setTokenConfig(limits.token, true, limits.max_payment, limits.daily_cap)
                    .into_transaction_request();
                self.chain.send(&step, tx).await?.into()
            };
            steps.push(StepReport { step, status });
        }
        let guardian = self.config.governance.guardian;
        let step = Step::SetGuardian(guardian);
        let current = settlement
            .guardian()
            .call()
            .await
            .map_err(read("guardian()", proxy))?;
        let status = if current == guardian {
            StepStatus::Already
        } else {
            let tx = settlement.setGuardian(guardian).into_transaction_request();
            self.chain.send(&step, tx).await?.into()
        };
        steps.push(StepReport { step, status });

        // Last: after this only the multisig, through the timelock, can change anything.
        let step = Step::TransferOwnership {
            timelock: governors.timelock,
        };
        let tx = settlement
            .transferOwnership(governors.timelock)
            .into_transaction_request();
        let status = self.chain.send(&step, tx).await?.into();
        steps.push(StepReport { step, status });

        self.finish(
            steps,
            recorded,
            self.manifest(
                proxy,
                governors,
                plan.implementation.address,
                deployed_block,
            ),
        )
    }

    /// The timelock owns the proxy: check everything, send nothing.
    async fn governed(
        &self,
        proxy: Address,
        governors: Governors,
        recorded: Option<Manifest>,
    ) -> Result<Outcome, DeployError> {
        let Governors { multisig, timelock } = governors;
        for (contract, address) in [
            (Contract::Multisig, multisig),
            (Contract::Timelock, timelock),
        ] {
            if !self.chain.has(contract, address).await? {
                return Err(DeployError::UnexpectedCode { contract, address });
            }
        }
        let implementation = self.implementation_of(proxy).await?;
        let mut changes = Vec::new();
        let code = self.chain.code(implementation).await?;
        if !code_matches(&code, Contract::Implementation.runtime_code()) {
            changes.push(Change::Implementation {
                deployed: implementation,
                built: self.plan.implementation.address,
            });
        }
        self.multisig_changes(multisig, &mut changes).await?;
        self.timelock_changes(governors, &mut changes).await?;
        let settlement = SplitSettlement::new(proxy, &self.chain.provider);
        for &signer in &self.config.signers {
            if !settlement
                .isSigner(signer)
                .call()
                .await
                .map_err(read("isSigner", proxy))?
            {
                changes.push(Change::Signer(signer));
            }
        }
        for limits in &self.config.tokens {
            if let Some(change) = self.token_change(&settlement, limits).await? {
                changes.push(change);
            }
        }
        let guardian = settlement
            .guardian()
            .call()
            .await
            .map_err(read("guardian()", proxy))?;
        if guardian != self.config.governance.guardian {
            changes.push(Change::Guardian {
                deployed: guardian,
                configured: self.config.governance.guardian,
            });
        }
        if !changes.is_empty() {
            return Err(DeployError::NeedsMultisig {
                proxy,
                multisig,
                timelock,
                changes: Changes(changes),
            });
        }

        let mut steps = vec![
            Step::Create {
                contract: Contract::Multisig,
                address: multisig,
            },
            Step::Create {
                contract: Contract::Timelock,
                address: timelock,
            },
            Step::Create {
                contract: Contract::Implementation,
                address: implementation,
            },
            Step::Create {
                contract: Contract::Proxy,
                address: proxy,
            },
        ];
        steps.extend(
            self.config
                .signers
                .iter()
                .copied()
                .map(Step::AuthoriseSigner),
        );
        steps.extend(self.config.tokens.iter().copied().map(Step::EnableToken));
        steps.push(Step::SetGuardian(self.config.governance.guardian));
        steps.push(Step::TransferOwnership { timelock });
        let steps = steps
            .into_iter()
            .map(|step| StepReport {
                step,
                status: StepStatus::Already,
            })
            .collect();

        let deployed_block = match recorded.as_ref().filter(|m| m.settlement == proxy) {
            Some(m) => m.deployed_block,
            None => self.chain.creation_block(proxy).await?,
        };
        let manifest = self.manifest(proxy, governors, implementation, deployed_block);
        self.finish(steps, recorded, manifest)
    }

    /// The implementation address in the proxy's ERC-1967 slot.
    async fn implementation_of(&self, proxy: Address) -> Result<Address, DeployError> {
        let word = self
            .chain
            .provider
            .get_storage_at(proxy, implementation_slot())
            .await
            .map_err(|source| DeployError::Rpc {
                what: "eth_getStorageAt",
                source,
            })?;
        Ok(Address::from_word(B256::from(word)))
    }

    /// Differences between the configured owners and threshold and the multisig's.
    async fn multisig_changes(
        &self,
        multisig: Address,
        changes: &mut Vec<Change>,
    ) -> Result<(), DeployError> {
        let gov = &self.config.governance;
        let ms = SettleMultisig::new(multisig, &self.chain.provider);
        let mut deployed = ms
            .getOwners()
            .call()
            .await
            .map_err(read("getOwners()", multisig))?;
        let mut configured = gov.owners.clone();
        deployed.sort();
        configured.sort();
        if deployed != configured {
            changes.push(Change::Owners {
                deployed,
                configured,
            });
        }
        let threshold = ms
            .threshold()
            .call()
            .await
            .map_err(read("threshold()", multisig))?;
        if threshold != U256::from(gov.threshold) {
            changes.push(Change::Threshold {
                deployed: threshold,
                configured: gov.threshold,
            });
        }
        Ok(())
    }

    /// Differences between the configured delay and the timelock's, and whether the multisig
    /// still holds its roles.
    async fn timelock_changes(
        &self,
        Governors { multisig, timelock }: Governors,
        changes: &mut Vec<Change>,
    ) -> Result<(), DeployError> {
        let gov = &self.config.governance;
        let tl = TimelockController::new(timelock, &self.chain.provider);
        let delay = tl
            .getMinDelay()
            .call()
            .await
            .map_err(read("getMinDelay()", timelock))?;
        if delay != U256::from(gov.min_delay) {
            changes.push(Change::Delay {
                deployed: delay,
                configured: gov.min_delay,
            });
        }
        let roles = [
            tl.PROPOSER_ROLE()
                .call()
                .await
                .map_err(read("PROPOSER_ROLE()", timelock))?,
            tl.EXECUTOR_ROLE()
                .call()
                .await
                .map_err(read("EXECUTOR_ROLE()", timelock))?,
            tl.CANCELLER_ROLE()
                .call()
                .await
                .map_err(read("CANCELLER_ROLE()", timelock))?,
        ];
        for role in roles {
            if !tl
                .hasRole(role, multisig)
                .call()
                .await
                .map_err(read("hasRole()", timelock))?
            {
                changes.push(Change::Roles { multisig });
                break;
            }
        }
        Ok(())
    }

    /// How a token's on-chain configuration differs from `limits`, if it does.
    async fn token_change(
        &self,
        settlement: &SplitSettlement::SplitSettlementInstance<&DynProvider>,
        limits: &TokenLimits,
    ) -> Result<Option<Change>, DeployError> {
        let cfg = settlement
            .tokenConfig(limits.token)
            .call()
            .await
            .map_err(read("tokenConfig()", *settlement.address()))?;
        let same =
            cfg.enabled && cfg.maxPayment == limits.max_payment && cfg.dailyCap == limits.daily_cap;
        Ok((!same).then_some(Change::Token {
            configured: *limits,
            enabled: cfg.enabled,
            max_payment: cfg.maxPayment,
            daily_cap: cfg.dailyCap,
        }))
    }

    fn manifest(
        &self,
        proxy: Address,
        governors: Governors,
        implementation: Address,
        deployed_block: u64,
    ) -> Manifest {
        let gov = &self.config.governance;
        Manifest {
            chain_id: self.chain_id,
            settlement: proxy,
            implementation,
            timelock: governors.timelock,
            multisig: governors.multisig,
            owners: gov.owners.clone(),
            threshold: gov.threshold,
            min_delay: gov.min_delay,
            salt: self.plan.salt,
            deployer: self.plan.deployer,
            deployed_block,
        }
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), DeployError> {
        std::fs::create_dir_all(self.manifest_dir).map_err(|source| ManifestError::Io {
            path: self.manifest_dir.to_owned(),
            source,
        })?;
        manifest.write(&self.manifest_path)?;
        Ok(())
    }

    fn finish(
        &self,
        steps: Vec<StepReport>,
        recorded: Option<Manifest>,
        manifest: Manifest,
    ) -> Result<Outcome, DeployError> {
        // Written when it differs from what the run started from (it may have been written
        // half-way through already).
        let manifest_written = recorded.as_ref() != Some(&manifest);
        if manifest_written {
            self.write_manifest(&manifest)?;
        }
        Ok(Outcome {
            chain_id: self.chain_id,
            steps,
            manifest,
            manifest_path: self.manifest_path.clone(),
            manifest_written,
        })
    }
}
