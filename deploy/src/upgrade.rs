//! Upgrading the settlement proxy through the multisig and the timelock, from a proposal file.
//!
//! A [`Proposal`] holds the two multisig operations an upgrade takes: one that schedules
//! `upgradeToAndCall(new, "")` on the timelock (multisig nonce `n`) and one that executes it
//! once the delay has passed (nonce `n + 1`). Owners sign both digests offline
//! ([`Proposal::approve`]); anyone then sends them ([`execute`]), the schedule first, the
//! execution after the delay. Nothing here holds keys: signers and providers are handed in.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::Signer,
    sol_types::SolCall,
    transports::http::reqwest::Url,
};
use serde::{Deserialize, Serialize};
use settle_contracts::{SettleMultisig, SplitSettlement, TimelockController};
use thiserror::Error;

use crate::{
    Manifest,
    multisig::{ApprovalError, Operation, TimelockCall, operation_digest, sign_operation},
    plan::implementation_slot,
};

/// How long a sent transaction may take to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an upgrade step stopped.
#[derive(Debug, Error)]
pub enum UpgradeError {
    /// The RPC endpoint is not a URL.
    #[error("RPC endpoint {0:?} is not a valid URL; use http(s)://host:port")]
    BadUrl(String),
    /// A read from the node failed.
    #[error("RPC call {what} failed: {source}; check the endpoint")]
    Rpc {
        /// What was asked.
        what: &'static str,
        /// The transport's failure.
        source: alloy::transports::TransportError,
    },
    /// A contract read failed.
    #[error("reading {what} from {address} failed: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// The contract.
        address: Address,
        /// The failure.
        source: Box<alloy::contract::Error>,
    },
    /// The endpoint serves another chain than the manifest or proposal is for.
    #[error(
        "{file} is for chain {expected} but the RPC endpoint serves chain {served}; point --rpc at chain {expected}"
    )]
    WrongChain {
        /// The manifest or proposal.
        file: String,
        /// Its chain.
        expected: u64,
        /// The endpoint's chain.
        served: u64,
    },
    /// The new implementation address holds no code.
    #[error("{0} has no code on this chain; deploy the new implementation first")]
    NoCode(Address),
    /// The new implementation is not a UUPS implementation.
    #[error(
        "{0} is not a UUPS implementation (its proxiableUUID() is not the ERC-1967 implementation slot); refusing to upgrade to it"
    )]
    NotUups(Address),
    /// The proxy already runs the proposed implementation.
    #[error("the proxy {proxy} already runs {implementation}; nothing to upgrade")]
    AlreadyCurrent {
        /// The proxy.
        proxy: Address,
        /// Its implementation.
        implementation: Address,
    },
    /// The new storage layout moves or retypes an existing slot.
    #[error("{0}")]
    Layout(#[from] LayoutError),
    /// The approver is not an owner of the multisig.
    #[error("{signer} is not an owner of the multisig {multisig}; only its owners approve")]
    NotOwner {
        /// The approving key's address.
        signer: Address,
        /// The multisig.
        multisig: Address,
    },
    /// Signing failed.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// Fewer owners approved than the multisig requires.
    #[error(
        "threshold not met: the proposal has {have} signature(s), the multisig needs {need}; ask another owner to run `settle upgrade approve`"
    )]
    ThresholdNotMet {
        /// Signatures in the proposal.
        have: usize,
        /// The multisig's threshold.
        need: u64,
    },
    /// The timelock does not allow the execution yet.
    #[error(
        "too early: the timelock allows execution at {}, in {wait} s",
        utc(*ready_at)
    )]
    TooEarly {
        /// When the operation becomes ready, unix seconds.
        ready_at: u64,
        /// Seconds from the latest block until then.
        wait: u64,
    },
    /// The upgrade has been executed already.
    #[error("the upgrade to {0} has been executed already; nothing to do")]
    AlreadyDone(Address),
    /// The multisig's nonce moved past the one the owners signed.
    #[error(
        "the multisig's nonce is {current} but this step was signed for nonce {signed}; another operation went first, propose again"
    )]
    StaleNonce {
        /// The multisig's nonce now.
        current: U256,
        /// The nonce in the proposal.
        signed: U256,
    },
    /// A transaction could not be sent or was not mined.
    #[error("cannot send {step}: {source}")]
    Send {
        /// The step.
        step: &'static str,
        /// The failure.
        source: Box<alloy::contract::Error>,
    },
    /// A transaction's receipt did not come.
    #[error("{step}: no receipt: {source}")]
    Receipt {
        /// The step.
        step: &'static str,
        /// The failure.
        source: Box<alloy::providers::PendingTransactionError>,
    },
    /// A transaction reverted.
    #[error("{step} reverted in transaction {tx}")]
    Reverted {
        /// The step.
        step: &'static str,
        /// The transaction.
        tx: B256,
    },
    /// The proposal file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The proposal file is not a proposal.
    #[error("{path}: not a valid upgrade proposal: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: serde_json::Error,
    },
    /// The proposal's digests do not match its operations (an edited file).
    #[error(
        "the proposal's {which} digest does not match its operation; the file was edited, propose again"
    )]
    Tampered {
        /// `schedule` or `execute`.
        which: &'static str,
    },
}

/// `unix` seconds as `YYYY-MM-DD hh:mm:ss UTC` (proleptic Gregorian, Howard Hinnant's
/// `civil_from_days`), or the bare number past the year 9999.
pub fn utc(unix: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31 23:59:59
    if unix > MAX {
        return format!("unix time {unix}");
    }
    // Every value below is bounded by `unix <= MAX`, far from any integer limit.
    #[allow(clippy::arithmetic_side_effects)]
    let (y, m, d, secs) = {
        let days = unix / 86_400;
        let secs = unix % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u64::from(m <= 2);
        (y, m, d, secs)
    };
    #[allow(clippy::arithmetic_side_effects)] // secs < 86 400
    let (h, min, s) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02} UTC")
}

/// Why a new storage layout is not compatible with the committed one.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// A layout file is not a solc `storageLayout`.
    #[error("{path}: not a solc storageLayout ({reason})")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// An existing variable changed slot, offset or type.
    #[error(
        "storage layout changed: `{label}` was {old} and is {new} in the new layout; an upgrade must keep existing slots"
    )]
    Changed {
        /// The variable.
        label: String,
        /// Its old place and type.
        old: String,
        /// Its new place and type.
        new: String,
    },
}

/// One multisig operation of the proposal, with the owners' signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposedOperation {
    /// The address the multisig calls (the timelock).
    pub target: Address,
    /// The wei sent.
    pub value: U256,
    /// The calldata.
    pub data: Bytes,
    /// The multisig nonce it is signed for.
    pub nonce: U256,
    /// Its EIP-712 digest, what owners sign.
    pub digest: B256,
    /// The owners' signatures, ordered by owner address.
    pub signatures: Vec<OwnerSignature>,
}

/// One owner's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerSignature {
    /// The owner.
    pub owner: Address,
    /// 65 bytes `r ‖ s ‖ v`.
    pub signature: Bytes,
}

impl ProposedOperation {
    fn new(operation: Operation, chain_id: u64, multisig: Address) -> Self {
        let digest = operation_digest(&operation, chain_id, multisig);
        Self {
            target: operation.target,
            value: operation.value,
            data: operation.data,
            nonce: operation.nonce,
            digest,
            signatures: Vec::new(),
        }
    }

    /// The multisig operation.
    pub fn operation(&self) -> Operation {
        Operation {
            target: self.target,
            value: self.value,
            data: self.data.clone(),
            nonce: self.nonce,
        }
    }

    fn signatures(&self) -> Vec<Bytes> {
        self.signatures
            .iter()
            .map(|s| s.signature.clone())
            .collect()
    }
}

/// An upgrade of the settlement proxy, as owners approve it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proposal {
    /// The chain.
    pub chain_id: u64,
    /// The multisig that proposes to and executes through the timelock.
    pub multisig: Address,
    /// The timelock that owns the proxy.
    pub timelock: Address,
    /// The settlement proxy.
    pub proxy: Address,
    /// The implementation the proxy ran when proposed.
    pub previous_implementation: Address,
    /// The new implementation.
    pub implementation: Address,
    /// What the new implementation's `version()` answered, if it did.
    pub version: Option<String>,
    /// The multisig's owners when proposed.
    pub owners: Vec<Address>,
    /// Signatures the multisig required when proposed.
    pub threshold: u64,
    /// The delay the schedule asks for, in seconds.
    pub delay: u64,
    /// The timelock's salt for the call.
    pub salt: B256,
    /// The timelock's id of the call (`hashOperation`).
    pub timelock_id: B256,
    /// The multisig operation that schedules the upgrade on the timelock.
    pub schedule: ProposedOperation,
    /// The multisig operation that executes it once the delay has passed.
    pub execute: ProposedOperation,
}

impl Proposal {
    /// The timelock call: `proxy.upgradeToAndCall(implementation, "")`.
    pub fn call(&self) -> TimelockCall {
        upgrade_call(self.proxy, self.implementation, self.salt)
    }

    /// Reads a proposal file and checks its digests against its operations.
    pub fn read(path: &Path) -> Result<Self, UpgradeError> {
        let text = std::fs::read_to_string(path).map_err(|source| UpgradeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let proposal: Self = serde_json::from_str(&text).map_err(|source| UpgradeError::Parse {
            path: path.to_owned(),
            source,
        })?;
        proposal.check()?;
        Ok(proposal)
    }

    /// Writes the proposal (pretty JSON, trailing newline), atomically.
    pub fn write(&self, path: &Path) -> Result<(), UpgradeError> {
        let io = |source| UpgradeError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| UpgradeError::Parse {
                path: path.to_owned(),
                source,
            })?;
        text.push('\n');
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The operations must be the upgrade the header names, and the digests theirs: an owner
    /// signs a digest, so it must not be able to say one thing and sign another.
    fn check(&self) -> Result<(), UpgradeError> {
        let call = self.call();
        let expected = [
            (
                "schedule",
                &self.schedule,
                call.schedule(self.timelock, self.delay, self.schedule.nonce),
            ),
            (
                "execute",
                &self.execute,
                call.execute(self.timelock, self.execute.nonce),
            ),
        ];
        for (which, proposed, operation) in expected {
            if proposed.operation() != operation
                || proposed.digest != operation_digest(&operation, self.chain_id, self.multisig)
                || call.id() != self.timelock_id
            {
                return Err(UpgradeError::Tampered { which });
            }
        }
        Ok(())
    }

    /// Signs both operations with `owner` and records the signatures, ordered by owner address.
    /// Signing again replaces that owner's earlier signatures.
    pub async fn approve(
        &mut self,
        owner: &(dyn Signer + Send + Sync),
    ) -> Result<(), UpgradeError> {
        let address = owner.address();
        if !self.owners.contains(&address) {
            return Err(UpgradeError::NotOwner {
                signer: address,
                multisig: self.multisig,
            });
        }
        for proposed in [&mut self.schedule, &mut self.execute] {
            let signed = sign_operation(
                &[owner],
                &proposed.operation(),
                self.chain_id,
                self.multisig,
            )
            .await?;
            let signature = signed.into_iter().next().unwrap_or_default();
            proposed.signatures.retain(|s| s.owner != address);
            proposed.signatures.push(OwnerSignature {
                owner: address,
                signature,
            });
            proposed.signatures.sort_by_key(|s| s.owner);
        }
        Ok(())
    }
}

/// The timelock call that upgrades `proxy` to `implementation`.
pub fn upgrade_call(proxy: Address, implementation: Address, salt: B256) -> TimelockCall {
    TimelockCall::new(
        proxy,
        SplitSettlement::upgradeToAndCallCall {
            newImplementation: implementation,
            data: Bytes::new(),
        }
        .abi_encode(),
        salt,
    )
}

/// A read-only provider for `rpc`.
pub fn connect(rpc: &str) -> Result<DynProvider, UpgradeError> {
    let url: Url = rpc
        .parse()
        .map_err(|_| UpgradeError::BadUrl(rpc.to_owned()))?;
    Ok(ProviderBuilder::new().connect_http(url).erased())
}

/// A provider for `rpc` that sends from `sender`. The nonce is read from the node for each
/// transaction: a cached counter keeps the nonce of a send refused at gas estimation.
pub fn connect_sender<S>(rpc: &str, sender: S) -> Result<DynProvider, UpgradeError>
where
    S: alloy::network::TxSigner<alloy::primitives::Signature> + Send + Sync + 'static,
{
    let url: Url = rpc
        .parse()
        .map_err(|_| UpgradeError::BadUrl(rpc.to_owned()))?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(sender))
        .connect_http(url)
        .erased())
}

async fn check_chain(
    provider: &DynProvider,
    file: String,
    expected: u64,
) -> Result<(), UpgradeError> {
    let served = provider
        .get_chain_id()
        .await
        .map_err(|source| UpgradeError::Rpc {
            what: "eth_chainId",
            source,
        })?;
    if served != expected {
        return Err(UpgradeError::WrongChain {
            file,
            expected,
            served,
        });
    }
    Ok(())
}

/// The implementation in `proxy`'s ERC-1967 slot.
pub async fn implementation_of(
    provider: &DynProvider,
    proxy: Address,
) -> Result<Address, UpgradeError> {
    let word = provider
        .get_storage_at(proxy, implementation_slot())
        .await
        .map_err(|source| UpgradeError::Rpc {
            what: "eth_getStorageAt",
            source,
        })?;
    Ok(Address::from_word(B256::from(word)))
}

/// Builds the proposal to upgrade the proxy of `manifest` (read from `manifest_path`) to
/// `implementation`, after checking the chain, that the implementation is UUPS, and reading the
/// multisig's owners, threshold and nonce.
pub async fn propose(
    provider: &DynProvider,
    manifest: &Manifest,
    manifest_path: &Path,
    implementation: Address,
) -> Result<Proposal, UpgradeError> {
    check_chain(
        provider,
        manifest_path.display().to_string(),
        manifest.chain_id,
    )
    .await?;
    let code = provider
        .get_code_at(implementation)
        .await
        .map_err(|source| UpgradeError::Rpc {
            what: "eth_getCode",
            source,
        })?;
    if code.is_empty() {
        return Err(UpgradeError::NoCode(implementation));
    }
    let new = SplitSettlement::new(implementation, provider);
    match new.proxiableUUID().call().await {
        Ok(uuid) if U256::from_be_bytes(uuid.0) == implementation_slot() => {}
        _ => return Err(UpgradeError::NotUups(implementation)),
    }
    let version = new.version().call().await.ok();
    let previous_implementation = implementation_of(provider, manifest.settlement).await?;
    if previous_implementation == implementation {
        return Err(UpgradeError::AlreadyCurrent {
            proxy: manifest.settlement,
            implementation,
        });
    }

    let multisig = SettleMultisig::new(manifest.multisig, provider);
    let read = |what| {
        move |source| UpgradeError::Read {
            what,
            address: manifest.multisig,
            source: Box::new(source),
        }
    };
    let nonce = multisig.nonce().call().await.map_err(read("nonce()"))?;
    let owners = multisig
        .getOwners()
        .call()
        .await
        .map_err(read("getOwners()"))?;
    let threshold = multisig
        .threshold()
        .call()
        .await
        .map_err(read("threshold()"))?;
    let delay = TimelockController::new(manifest.timelock, provider)
        .getMinDelay()
        .call()
        .await
        .map_err(|source| UpgradeError::Read {
            what: "getMinDelay()",
            address: manifest.timelock,
            source: Box::new(source),
        })?;

    // The salt binds the call to this multisig nonce, so proposing the same implementation again
    // later is another timelock operation.
    let salt = keccak256(
        [
            b"settle/upgrade".as_slice(),
            implementation.as_slice(),
            &nonce.to_be_bytes::<32>(),
        ]
        .concat(),
    );
    let call = upgrade_call(manifest.settlement, implementation, salt);
    let delay = u64::try_from(delay).unwrap_or(u64::MAX);
    let schedule = call.schedule(manifest.timelock, delay, nonce);
    let execute = call.execute(manifest.timelock, nonce.saturating_add(U256::from(1)));
    Ok(Proposal {
        chain_id: manifest.chain_id,
        multisig: manifest.multisig,
        timelock: manifest.timelock,
        proxy: manifest.settlement,
        previous_implementation,
        implementation,
        version,
        owners,
        threshold: u64::try_from(threshold).unwrap_or(u64::MAX),
        delay,
        salt,
        timelock_id: call.id(),
        schedule: ProposedOperation::new(schedule, manifest.chain_id, manifest.multisig),
        execute: ProposedOperation::new(execute, manifest.chain_id, manifest.multisig),
    })
}

/// Where the timelock is with the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelockState {
    /// Not scheduled.
    Unscheduled,
    /// Scheduled; executable from `ready_at` (unix seconds).
    Scheduled {
        /// When it becomes ready.
        ready_at: u64,
    },
    /// Executed.
    Done,
}

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Owners that signed the schedule.
    pub schedule_signatures: usize,
    /// Owners that signed the execution.
    pub execute_signatures: usize,
    /// The multisig's threshold now.
    pub threshold: u64,
    /// The multisig's nonce now.
    pub multisig_nonce: U256,
    /// The timelock's state of the call.
    pub timelock: TimelockState,
    /// The latest block's timestamp.
    pub now: u64,
    /// The proxy's implementation now.
    pub implementation: Address,
}

/// Reads where `proposal` stands on the chain.
pub async fn status(provider: &DynProvider, proposal: &Proposal) -> Result<Status, UpgradeError> {
    check_chain(provider, "the proposal".into(), proposal.chain_id).await?;
    let multisig = SettleMultisig::new(proposal.multisig, provider);
    let read = |what| {
        move |source| UpgradeError::Read {
            what,
            address: proposal.multisig,
            source: Box::new(source),
        }
    };
    let threshold = multisig
        .threshold()
        .call()
        .await
        .map_err(read("threshold()"))?;
    let multisig_nonce = multisig.nonce().call().await.map_err(read("nonce()"))?;
    let timestamp = TimelockController::new(proposal.timelock, provider)
        .getTimestamp(proposal.timelock_id)
        .call()
        .await
        .map_err(|source| UpgradeError::Read {
            what: "getTimestamp()",
            address: proposal.timelock,
            source: Box::new(source),
        })?;
    // OpenZeppelin's TimelockController: 0 unset, 1 done, else the ready time.
    let timelock = match u64::try_from(timestamp).unwrap_or(u64::MAX) {
        0 => TimelockState::Unscheduled,
        1 => TimelockState::Done,
        ready_at => TimelockState::Scheduled { ready_at },
    };
    let block = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|source| UpgradeError::Rpc {
            what: "eth_getBlockByNumber",
            source,
        })?;
    let now = block.map(|b| b.header.timestamp).unwrap_or_default();
    Ok(Status {
        schedule_signatures: proposal.schedule.signatures.len(),
        execute_signatures: proposal.execute.signatures.len(),
        threshold: u64::try_from(threshold).unwrap_or(u64::MAX),
        multisig_nonce,
        timelock,
        now,
        implementation: implementation_of(provider, proposal.proxy).await?,
    })
}

/// What [`execute`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executed {
    /// The upgrade is scheduled; it may be executed from `ready_at`.
    Scheduled {
        /// The transaction.
        tx: B256,
        /// When the timelock allows the execution, unix seconds.
        ready_at: u64,
    },
    /// The proxy is upgraded.
    Upgraded {
        /// The transaction.
        tx: B256,
    },
}

/// Takes the next step of `proposal` with `provider`'s sender: schedules it, or, once the delay
/// has passed, executes it.
pub async fn execute(
    provider: &DynProvider,
    proposal: &Proposal,
) -> Result<Executed, UpgradeError> {
    let state = status(provider, proposal).await?;
    let (step, proposed) = match state.timelock {
        TimelockState::Done => return Err(UpgradeError::AlreadyDone(proposal.implementation)),
        TimelockState::Unscheduled => ("the schedule", &proposal.schedule),
        TimelockState::Scheduled { ready_at } => {
            if ready_at > state.now {
                return Err(UpgradeError::TooEarly {
                    ready_at,
                    wait: ready_at.saturating_sub(state.now),
                });
            }
            ("the upgrade", &proposal.execute)
        }
    };
    let have = proposed.signatures.len();
    if u64::try_from(have).unwrap_or(u64::MAX) < state.threshold {
        return Err(UpgradeError::ThresholdNotMet {
            have,
            need: state.threshold,
        });
    }
    if state.multisig_nonce != proposed.nonce {
        return Err(UpgradeError::StaleNonce {
            current: state.multisig_nonce,
            signed: proposed.nonce,
        });
    }
    let multisig = SettleMultisig::new(proposal.multisig, provider);
    let receipt = multisig
        .execute(
            proposed.target,
            proposed.value,
            proposed.data.clone(),
            proposed.signatures(),
        )
        .send()
        .await
        .map_err(|source| UpgradeError::Send {
            step,
            source: Box::new(source),
        })?
        .with_timeout(Some(RECEIPT_TIMEOUT))
        .get_receipt()
        .await
        .map_err(|source| UpgradeError::Receipt {
            step,
            source: Box::new(source),
        })?;
    let tx = receipt.transaction_hash;
    if !receipt.status() {
        return Err(UpgradeError::Reverted { step, tx });
    }
    Ok(match state.timelock {
        TimelockState::Unscheduled => {
            let after = status(provider, proposal).await?;
            let ready_at = match after.timelock {
                TimelockState::Scheduled { ready_at } => ready_at,
                _ => 0,
            };
            Executed::Scheduled { tx, ready_at }
        }
        _ => Executed::Upgraded { tx },
    })
}

/// Checks that every variable of the committed layout `old` keeps its slot, offset and type in
/// `new` (both solc `storageLayout` objects). Variables may be added.
pub fn check_layout(
    old: &serde_json::Value,
    old_path: &Path,
    new: &serde_json::Value,
    new_path: &Path,
) -> Result<(), LayoutError> {
    let entries = |layout: &serde_json::Value, path: &Path| {
        layout
            .get("storage")
            .and_then(|s| s.as_array())
            .map(|vars| {
                vars.iter()
                    .map(|v| {
                        let field = |k: &str| match v.get(k) {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        (
                            field("label"),
                            field("slot"),
                            field("offset"),
                            field("type"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .ok_or_else(|| LayoutError::Invalid {
                path: path.to_owned(),
                reason: "no `storage` array",
            })
    };
    let old = entries(old.get("storageLayout").unwrap_or(old), old_path)?;
    let new = entries(new.get("storageLayout").unwrap_or(new), new_path)?;
    let place = |(_, slot, offset, ty): &(String, String, String, String)| {
        format!("slot {slot} offset {offset} type {ty}")
    };
    for var in &old {
        let same_place = new
            .iter()
            .find(|n| n.1 == var.1 && n.2 == var.2)
            .or_else(|| new.iter().find(|n| n.0 == var.0));
        match same_place {
            Some(n) if n.1 == var.1 && n.2 == var.2 && n.3 == var.3 => {}
            Some(n) => {
                return Err(LayoutError::Changed {
                    label: var.0.clone(),
                    old: place(var),
                    new: format!("{} ({})", place(n), n.0),
                });
            }
            None => {
                return Err(LayoutError::Changed {
                    label: var.0.clone(),
                    old: place(var),
                    new: "missing".into(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout(vars: serde_json::Value) -> serde_json::Value {
        json!({ "storageLayout": { "storage": vars, "types": {} } })
    }

    #[test]
    fn utc_formats_unix_seconds() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(253_402_300_800), "unix time 253402300800");
        assert_eq!(
            UpgradeError::TooEarly {
                ready_at: 1_700_000_000,
                wait: 42
            }
            .to_string(),
            "too early: the timelock allows execution at 2023-11-14 22:13:20 UTC, in 42 s"
        );
    }

    #[test]
    fn layouts_may_grow_but_not_move() {
        let old = layout(json!([
            {"label": "a", "slot": "0", "offset": 0, "type": "t_string_storage"},
            {"label": "b", "slot": "1", "offset": 0, "type": "t_string_storage"}
        ]));
        let grown = layout(json!([
            {"label": "a", "slot": "0", "offset": 0, "type": "t_string_storage"},
            {"label": "b", "slot": "1", "offset": 0, "type": "t_string_storage"},
            {"label": "c", "slot": "2", "offset": 0, "type": "t_uint256"}
        ]));
        let p = Path::new("x");
        check_layout(&old, p, &grown, p).expect("compatible");
        let retyped = layout(json!([
            {"label": "a", "slot": "0", "offset": 0, "type": "t_uint256"},
            {"label": "b", "slot": "1", "offset": 0, "type": "t_string_storage"}
        ]));
        let err = check_layout(&old, p, &retyped, p).expect_err("retyped");
        assert_eq!(
            err.to_string(),
            "storage layout changed: `a` was slot 0 offset 0 type t_string_storage and is \
             slot 0 offset 0 type t_uint256 (a) in the new layout; an upgrade must keep existing slots"
        );
        assert!(check_layout(&old, p, &json!({}), p).is_err());
    }
}
