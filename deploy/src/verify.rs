//! Bytecode verification: does the chain run what the pinned sources compile to?
//!
//! [`compile`] builds the shipped compiler job of `scripts/artifacts` (SplitSettlement,
//! SettleMultisig and OpenZeppelin's ERC1967Proxy, compiled together: with via-IR the bytecode
//! depends on the job) with `foundry-compilers`, the settings of `contracts/foundry.toml` and the
//! pinned solcjs shim it names. [`fetch`] reads the proxy's implementation from its ERC-1967 slot
//! (never from a manifest) and the code there with `eth_getCode`; [`OnChain::check`] compares.
//!
//! [`compare_runtime`] is the cheap, pure part: it masks immutables (filled in by the
//! constructor, e.g. UUPS's `address(this)` and EIP-712's cached domain) and ignores CBOR
//! metadata trailers when the build has one. [`committed`] gives the expected code of the committed artifacts
//! (`contracts/artifacts`, which `scripts/artifacts --check` proves equal to the pinned sources'
//! output) without a compiler.
//!
//! Nothing here sends a transaction or holds a key.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    providers::Provider,
};
use foundry_compilers::{
    Graph, Project, ProjectPathsConfig,
    artifacts::{
        BytecodeHash, EvmVersion, Optimizer, Remapping, Settings, SettingsMetadata, Source,
    },
    compilers::CompilationError,
    multi::{MultiCompiler, MultiCompilerParser, MultiCompilerSettings},
    solc::{Solc, SolcCompiler, SolcSettings},
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Manifest, plan::implementation_slot};

/// The contracts `settle audit verify-deployment` checks: the shipped compiler job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Shipped {
    /// The settlement implementation behind the proxy.
    SplitSettlement,
    /// The owners' multisig.
    SettleMultisig,
    /// OpenZeppelin's ERC-1967 proxy that users talk to.
    ERC1967Proxy,
}

impl Shipped {
    /// Every shipped contract, in the order they are reported.
    pub const ALL: [Self; 3] = [
        Self::SplitSettlement,
        Self::ERC1967Proxy,
        Self::SettleMultisig,
    ];

    /// The contract's name in the sources and artifacts.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SplitSettlement => "SplitSettlement",
            Self::SettleMultisig => "SettleMultisig",
            Self::ERC1967Proxy => "ERC1967Proxy",
        }
    }

    /// The committed artifact, embedded at build time (the same file the bindings come from).
    const fn artifact(self) -> &'static str {
        match self {
            Self::SplitSettlement => include_str!("../../contracts/artifacts/SplitSettlement.json"),
            Self::SettleMultisig => include_str!("../../contracts/artifacts/SettleMultisig.json"),
            Self::ERC1967Proxy => include_str!("../../contracts/artifacts/ERC1967Proxy.json"),
        }
    }
}

impl fmt::Display for Shipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sources of the shipped compiler job, relative to the contracts directory. Keep in step
/// with `SHIPPED` in `scripts/artifacts` (a test checks it).
pub const SHIPPED_SOURCES: [&str; 3] = [
    "src/SplitSettlement.sol",
    "src/SettleMultisig.sol",
    "../node_modules/@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol",
];

/// Why verification could not run. A mismatch is not an error: it is a [`Comparison`].
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The RPC URL does not parse.
    #[error("RPC endpoint {0:?} is not a valid URL; use http(s)://host:port")]
    BadUrl(String),
    /// An RPC call failed.
    #[error("RPC call {what} failed: {source}; check the endpoint")]
    Rpc {
        /// What was asked.
        what: &'static str,
        /// The transport's failure.
        source: alloy::transports::TransportError,
    },
    /// The endpoint serves another chain than the manifest's.
    #[error(
        "{path} is for chain {expected} but the RPC endpoint serves chain {served}; point --rpc at chain {expected} or pass the manifest of chain {served}"
    )]
    WrongChain {
        /// The manifest.
        path: PathBuf,
        /// Its chain.
        expected: u64,
        /// The endpoint's chain.
        served: u64,
    },
    /// An address that must hold a contract holds no code.
    #[error(
        "no code at {address} ({what}) on chain {chain_id}; check --rpc and the address (--settlement or the manifest)"
    )]
    NoCode {
        /// The address.
        address: Address,
        /// What should be there.
        what: String,
        /// The chain.
        chain_id: u64,
    },
    /// The proxy's ERC-1967 implementation slot is empty.
    #[error(
        "{proxy} has no implementation in its ERC-1967 slot; pass the SplitSettlement proxy's address"
    )]
    NotAProxy {
        /// The address given as the proxy.
        proxy: Address,
    },
    /// A file of the pinned sources (or the foundry.toml, or the shim) is missing.
    #[error(
        "{path} is missing; run from the repository root (or pass --contracts DIR) and install node_modules with scripts/setup"
    )]
    SourcesMissing {
        /// The missing file or directory.
        path: PathBuf,
    },
    /// `foundry.toml` does not parse or holds a value the compile cannot use.
    #[error("{path}: {reason}; fix contracts/foundry.toml")]
    FoundryToml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The compiler could not be run, or the project could not be set up.
    #[error(
        "compiling the pinned sources with {solc} failed: {source}; check that node and the solc npm package are installed (scripts/setup)"
    )]
    Compiler {
        /// The compiler used.
        solc: PathBuf,
        /// The failure.
        source: Box<foundry_compilers::error::SolcError>,
    },
    /// The compiler reported errors.
    #[error("the pinned sources do not compile ({count} error(s)); first: {first}")]
    CompileErrors {
        /// How many errors.
        count: usize,
        /// The first, as the compiler printed it.
        first: String,
    },
    /// The compiler output lacks a contract.
    #[error("the compiler output has no {0}; check SHIPPED_SOURCES against scripts/artifacts")]
    NotCompiled(Shipped),
    /// A committed artifact does not parse.
    #[error("contracts/artifacts/{contract}.json: not a Foundry artifact: {source}")]
    Artifact {
        /// The contract.
        contract: Shipped,
        /// The JSON failure.
        source: serde_json::Error,
    },
}

/// The runtime code of a build and where its immutables sit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// The deployed bytecode, immutables zeroed as the compiler leaves them.
    pub code: Bytes,
    /// `(start, length)` of each immutable in `code`, in bytes.
    pub immutables: Vec<(usize, usize)>,
}

impl Runtime {
    /// Compares on-chain code with this build; see [`compare_runtime`].
    pub fn compare(&self, onchain: &[u8]) -> Comparison {
        compare_runtime(&self.code, &self.immutables, onchain)
    }
}

/// The expected runtime of `contract` from the committed artifact, with no compiler.
pub fn committed(contract: Shipped) -> Result<Runtime, VerifyError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Artifact {
        deployed_bytecode: Deployed,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Deployed {
        object: Bytes,
        #[serde(default)]
        immutable_references: BTreeMap<String, Vec<Offsets>>,
    }
    #[derive(Deserialize)]
    struct Offsets {
        start: usize,
        length: usize,
    }
    let artifact: Artifact = serde_json::from_str(contract.artifact())
        .map_err(|source| VerifyError::Artifact { contract, source })?;
    let mut immutables: Vec<(usize, usize)> = artifact
        .deployed_bytecode
        .immutable_references
        .values()
        .flatten()
        .map(|o| (o.start, o.length))
        .collect();
    immutables.sort_unstable();
    Ok(Runtime {
        code: artifact.deployed_bytecode.object,
        immutables,
    })
}

/// The outcome of comparing on-chain runtime code with a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Equal, once immutables are masked and metadata trailers ignored.
    Match {
        /// Bytes compared (the build's code without a metadata trailer).
        len: usize,
        /// Immutable bytes masked.
        masked: usize,
    },
    /// They differ.
    Mismatch(Mismatch),
}

impl Comparison {
    /// Whether the code matched.
    pub const fn is_match(&self) -> bool {
        matches!(self, Self::Match { .. })
    }
}

/// Where on-chain code first departs from the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The first differing byte offset (immutables and metadata trailers excluded).
    pub offset: usize,
    /// The build's byte there; `None` past its end.
    pub expected: Option<u8>,
    /// The chain's byte there; `None` past its end.
    pub onchain: Option<u8>,
    /// The build's length, metadata trailer excluded.
    pub expected_len: usize,
    /// The chain's length, metadata trailer excluded.
    pub onchain_len: usize,
    /// The instruction of the build the offset falls in.
    pub context: OpcodeContext,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let byte = |b: Option<u8>| match b {
            Some(b) => format!("0x{b:02x}"),
            None => "(end of code)".to_owned(),
        };
        write!(
            f,
            "first difference at byte offset {} (opcode context: {}): expected {} on-chain {}",
            self.offset,
            self.context,
            byte(self.expected),
            byte(self.onchain)
        )?;
        if self.expected_len != self.onchain_len {
            write!(
                f,
                "; lengths differ: expected {} bytes, on-chain {} bytes",
                self.expected_len, self.onchain_len
            )?;
        }
        Ok(())
    }
}

/// An EVM opcode, shown by its mnemonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Bytes of immediate data that follow it (PUSH1..PUSH32).
    pub const fn immediate_len(self) -> usize {
        match self.0 {
            0x60..=0x7f => self.0.saturating_sub(0x5f) as usize,
            _ => 0,
        }
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x00 => "STOP",
            0x01 => "ADD",
            0x02 => "MUL",
            0x03 => "SUB",
            0x04 => "DIV",
            0x05 => "SDIV",
            0x06 => "MOD",
            0x07 => "SMOD",
            0x08 => "ADDMOD",
            0x09 => "MULMOD",
            0x0a => "EXP",
            0x0b => "SIGNEXTEND",
            0x10 => "LT",
            0x11 => "GT",
            0x12 => "SLT",
            0x13 => "SGT",
            0x14 => "EQ",
            0x15 => "ISZERO",
            0x16 => "AND",
            0x17 => "OR",
            0x18 => "XOR",
            0x19 => "NOT",
            0x1a => "BYTE",
            0x1b => "SHL",
            0x1c => "SHR",
            0x1d => "SAR",
            0x20 => "KECCAK256",
            0x30 => "ADDRESS",
            0x31 => "BALANCE",
            0x32 => "ORIGIN",
            0x33 => "CALLER",
            0x34 => "CALLVALUE",
            0x35 => "CALLDATALOAD",
            0x36 => "CALLDATASIZE",
            0x37 => "CALLDATACOPY",
            0x38 => "CODESIZE",
            0x39 => "CODECOPY",
            0x3a => "GASPRICE",
            0x3b => "EXTCODESIZE",
            0x3c => "EXTCODECOPY",
            0x3d => "RETURNDATASIZE",
            0x3e => "RETURNDATACOPY",
            0x3f => "EXTCODEHASH",
            0x40 => "BLOCKHASH",
            0x41 => "COINBASE",
            0x42 => "TIMESTAMP",
            0x43 => "NUMBER",
            0x44 => "PREVRANDAO",
            0x45 => "GASLIMIT",
            0x46 => "CHAINID",
            0x47 => "SELFBALANCE",
            0x48 => "BASEFEE",
            0x49 => "BLOBHASH",
            0x4a => "BLOBBASEFEE",
            0x50 => "POP",
            0x51 => "MLOAD",
            0x52 => "MSTORE",
            0x53 => "MSTORE8",
            0x54 => "SLOAD",
            0x55 => "SSTORE",
            0x56 => "JUMP",
            0x57 => "JUMPI",
            0x58 => "PC",
            0x59 => "MSIZE",
            0x5a => "GAS",
            0x5b => "JUMPDEST",
            0x5c => "TLOAD",
            0x5d => "TSTORE",
            0x5e => "MCOPY",
            0x5f => "PUSH0",
            0x60..=0x7f => return write!(f, "PUSH{}", self.immediate_len()),
            0x80..=0x8f => return write!(f, "DUP{}", self.0.saturating_sub(0x7f)),
            0x90..=0x9f => return write!(f, "SWAP{}", self.0.saturating_sub(0x8f)),
            0xa0..=0xa4 => return write!(f, "LOG{}", self.0.saturating_sub(0xa0)),
            0xf0 => "CREATE",
            0xf1 => "CALL",
            0xf2 => "CALLCODE",
            0xf3 => "RETURN",
            0xf4 => "DELEGATECALL",
            0xf5 => "CREATE2",
            0xfa => "STATICCALL",
            0xfd => "REVERT",
            0xfe => "INVALID",
            0xff => "SELFDESTRUCT",
            other => return write!(f, "UNKNOWN(0x{other:02x})"),
        };
        f.write_str(name)
    }
}

/// Which instruction of the build a differing offset falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpcodeContext {
    /// The offset is an opcode.
    Opcode {
        /// The build's opcode there.
        opcode: Opcode,
        /// The instruction before it, if any.
        previous: Option<Opcode>,
    },
    /// The offset is in a PUSH's immediate data.
    Immediate {
        /// The PUSH.
        push: Opcode,
        /// The PUSH's offset.
        at: usize,
        /// Which immediate byte (0-based).
        index: usize,
    },
    /// The offset is past the end of the build's code.
    PastEnd,
}

impl fmt::Display for OpcodeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Opcode {
                opcode,
                previous: Some(previous),
            } => write!(f, "{opcode}, after {previous}"),
            Self::Opcode {
                opcode,
                previous: None,
            } => write!(f, "{opcode}, the first instruction"),
            Self::Immediate { push, at, index } => {
                write!(f, "immediate byte {index} of {push} at offset {at}")
            }
            Self::PastEnd => f.write_str("past the end of the expected code"),
        }
    }
}

/// The instruction of `code` that `offset` falls in (walking from the start, PUSH data skipped).
pub fn opcode_context(code: &[u8], offset: usize) -> OpcodeContext {
    if offset >= code.len() {
        return OpcodeContext::PastEnd;
    }
    let mut pc = 0usize;
    let mut previous = None;
    while let Some(&byte) = code.get(pc) {
        let opcode = Opcode(byte);
        if pc == offset {
            return OpcodeContext::Opcode { opcode, previous };
        }
        // pc < offset < code.len(), far below usize::MAX: these cannot overflow.
        let next = pc.saturating_add(1).saturating_add(opcode.immediate_len());
        if offset < next {
            return OpcodeContext::Immediate {
                push: opcode,
                at: pc,
                index: offset.saturating_sub(pc).saturating_sub(1),
            };
        }
        previous = Some(opcode);
        pc = next;
    }
    OpcodeContext::PastEnd
}

/// `code` without a trailing Solidity CBOR metadata section, if it ends with one.
///
/// The trailer is a CBOR map followed by its length as two big-endian bytes; it is recognised by
/// the map header and the `solc` key (or a swarm/IPFS hash key) the compiler always writes.
pub fn strip_metadata(code: &[u8]) -> &[u8] {
    let Some(len_at) = code.len().checked_sub(2) else {
        return code;
    };
    let cbor_len = usize::from(u16::from_be_bytes([
        code[len_at],
        code[len_at.saturating_add(1)],
    ]));
    let Some(start) = len_at.checked_sub(cbor_len) else {
        return code;
    };
    let cbor = &code[start..len_at];
    let is_map = cbor.first().is_some_and(|b| (0xa1..=0xb7).contains(b));
    let has_key = [&b"solc"[..], b"ipfs", b"bzzr0", b"bzzr1", b"experimental"]
        .iter()
        .any(|key| cbor.windows(key.len()).any(|w| w == *key));
    if cbor_len > 0 && is_map && has_key {
        &code[..start]
    } else {
        code
    }
}

/// Compares `onchain` runtime code with a build's `expected` code.
///
/// `immutable_ranges` are `(start, length)` byte ranges of `expected` that the constructor fills
/// in (solc's `immutableReferences`): they are not compared. When the build ends in a CBOR
/// metadata trailer ([`strip_metadata`]), the trailers of both sides are ignored (the metadata
/// hash differs with source paths and comments); a build without one (our profile) takes the
/// on-chain code whole, so nothing can be appended unnoticed. Pure and cheap: fine to call per
/// request.
pub fn compare_runtime(
    expected: &[u8],
    immutable_ranges: &[(usize, usize)],
    onchain: &[u8],
) -> Comparison {
    let stripped = strip_metadata(expected);
    let onchain = if stripped.len() < expected.len() {
        strip_metadata(onchain)
    } else {
        onchain
    };
    let expected = stripped;
    let mut masked = vec![false; expected.len()];
    for &(start, length) in immutable_ranges {
        let end = start.saturating_add(length).min(expected.len());
        if let Some(range) = masked.get_mut(start.min(end)..end) {
            range.fill(true);
        }
    }
    let first = (0..expected.len().max(onchain.len())).find(|&i| {
        let skip = masked.get(i).copied().unwrap_or(false);
        !skip && expected.get(i) != onchain.get(i)
    });
    match first {
        None => Comparison::Match {
            len: expected.len(),
            masked: masked.iter().filter(|m| **m).count(),
        },
        Some(offset) => Comparison::Mismatch(Mismatch {
            offset,
            expected: expected.get(offset).copied(),
            onchain: onchain.get(offset).copied(),
            expected_len: expected.len(),
            onchain_len: onchain.len(),
            context: opcode_context(expected, offset),
        }),
    }
}

/// The compiled shipped job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The compiler's version, as the shim reports it.
    pub solc_version: String,
    /// Each shipped contract's runtime.
    pub contracts: BTreeMap<Shipped, Runtime>,
    /// Whether this came from the cache rather than the compiler.
    #[serde(skip)]
    pub cached: bool,
}

impl Compiled {
    /// The runtime of `contract`.
    pub fn runtime(&self, contract: Shipped) -> Result<&Runtime, VerifyError> {
        self.contracts
            .get(&contract)
            .ok_or(VerifyError::NotCompiled(contract))
    }
}

/// The `[profile.default]` keys of `foundry.toml` that decide the bytecode.
#[derive(Debug, Deserialize)]
struct Profile {
    solc: PathBuf,
    src: PathBuf,
    libs: Vec<PathBuf>,
    optimizer: bool,
    optimizer_runs: usize,
    via_ir: bool,
    evm_version: String,
    bytecode_hash: String,
    cbor_metadata: bool,
    remappings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FoundryToml {
    profile: Profiles,
}

#[derive(Debug, Deserialize)]
struct Profiles {
    default: Profile,
}

fn existing(path: PathBuf) -> Result<PathBuf, VerifyError> {
    std::fs::canonicalize(&path).map_err(|_| VerifyError::SourcesMissing { path })
}

fn read_profile(contracts: &Path) -> Result<Profile, VerifyError> {
    let path = contracts.join("foundry.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| VerifyError::SourcesMissing { path: path.clone() })?;
    let parsed: FoundryToml = toml::from_str(&text).map_err(|e| VerifyError::FoundryToml {
        path: path.clone(),
        reason: e.message().to_owned(),
    })?;
    Ok(parsed.profile.default)
}

/// The solc settings of `foundry.toml`'s default profile.
fn settings(profile: &Profile, path: &Path) -> Result<Settings, VerifyError> {
    let bad = |reason: String| VerifyError::FoundryToml {
        path: path.to_owned(),
        reason,
    };
    let evm_version: EvmVersion = profile
        .evm_version
        .parse()
        .map_err(|e| bad(format!("evm_version: {e}")))?;
    let bytecode_hash: BytecodeHash = profile
        .bytecode_hash
        .parse()
        .map_err(|e| bad(format!("bytecode_hash: {e}")))?;
    Ok(Settings {
        optimizer: Optimizer {
            enabled: Some(profile.optimizer),
            runs: Some(profile.optimizer_runs),
            details: None,
        },
        via_ir: Some(profile.via_ir),
        evm_version: Some(evm_version),
        metadata: Some(SettingsMetadata {
            use_literal_content: None,
            bytecode_hash: Some(bytecode_hash),
            cbor_metadata: Some(profile.cbor_metadata),
        }),
        ..Settings::default()
    })
}

/// A compile's cache key: compiler, settings and every source file of the job.
fn cache_key(
    solc_version: &str,
    shim: &Path,
    settings: &Settings,
    paths: &ProjectPathsConfig<foundry_compilers::multi::MultiCompilerLanguage>,
    files: &[PathBuf],
) -> Result<B256, VerifyError> {
    let compiler_err = |source: foundry_compilers::error::SolcError| VerifyError::Compiler {
        solc: shim.to_owned(),
        source: Box::new(source),
    };
    let sources = Source::read_all_files(files.to_vec())
        .map_err(|e| compiler_err(foundry_compilers::error::SolcError::Io(e)))?;
    let graph =
        Graph::<MultiCompilerParser>::resolve_sources(paths, sources).map_err(compiler_err)?;
    let mut nodes: Vec<(&PathBuf, usize)> = graph.files().iter().map(|(p, i)| (p, *i)).collect();
    nodes.sort();
    let mut material = Vec::new();
    let mut push = |part: &[u8]| {
        material.extend_from_slice(&(part.len() as u64).to_be_bytes());
        material.extend_from_slice(part);
    };
    push(solc_version.as_bytes());
    push(&std::fs::read(shim).unwrap_or_default());
    push(
        serde_json::to_string(settings)
            .unwrap_or_default()
            .as_bytes(),
    );
    for (path, index) in nodes {
        push(path.to_string_lossy().as_bytes());
        push(graph.node(index).content().as_bytes());
    }
    Ok(keccak256(&material))
}

/// Compiles the shipped job from `contracts` (the Foundry project directory) with its
/// `foundry.toml` settings and pinned shim.
///
/// With `cache_dir`, the result is kept there under a key of the compiler, the settings and every
/// source file's content, and reused when all are unchanged (a via-IR compile under solcjs takes
/// tens of seconds). The job is always compiled whole, never incrementally: via-IR bytecode
/// depends on what is compiled together.
pub fn compile(contracts: &Path, cache_dir: Option<&Path>) -> Result<Compiled, VerifyError> {
    let root = existing(contracts.to_owned())?;
    let toml_path = root.join("foundry.toml");
    let profile = read_profile(&root)?;
    let shim = existing(root.join(&profile.solc))?;
    let settings = settings(&profile, &toml_path)?;
    let mut remappings = Vec::new();
    for text in &profile.remappings {
        let remapping: Remapping = text.parse().map_err(|e| VerifyError::FoundryToml {
            path: toml_path.clone(),
            reason: format!("remapping {text:?}: {e}"),
        })?;
        let target = existing(root.join(&remapping.path))?;
        // Keep the trailing slash: solc matches remappings as string prefixes.
        let path = format!("{}/", target.display());
        remappings.push(Remapping { path, ..remapping });
    }
    let libs = profile
        .libs
        .iter()
        .map(|lib| existing(root.join(lib)))
        .collect::<Result<Vec<_>, _>>()?;
    let files = SHIPPED_SOURCES
        .iter()
        .map(|file| existing(root.join(file)))
        .collect::<Result<Vec<_>, _>>()?;
    let paths = ProjectPathsConfig::builder()
        .sources(root.join(&profile.src))
        .libs(libs)
        .remappings(remappings)
        .build_with_root(&root);

    let compiler_err = |source: foundry_compilers::error::SolcError| VerifyError::Compiler {
        solc: shim.clone(),
        source: Box::new(source),
    };
    let solc = Solc::new(&shim).map_err(compiler_err)?;
    let solc_version = solc.version.to_string();
    let key = cache_key(&solc_version, &shim, &settings, &paths, &files)?;
    let cache_file = cache_dir.map(|dir| dir.join(format!("verify-{key}.json")));
    // Concurrent runs (parallel tests) wait for one compile instead of all compiling at once.
    let _lock = cache_dir.and_then(lock_cache);
    if let Some(hit) = cache_file.as_deref().and_then(read_cache) {
        return Ok(hit);
    }

    let project = Project::builder()
        .paths(paths)
        .settings(MultiCompilerSettings {
            solc: SolcSettings {
                settings,
                cli_settings: Default::default(),
            },
            vyper: Default::default(),
        })
        .ephemeral()
        .no_artifacts()
        .offline()
        .build(MultiCompiler::new(Some(SolcCompiler::Specific(solc)), None).map_err(compiler_err)?)
        .map_err(compiler_err)?;
    let output = project.compile_files(files).map_err(compiler_err)?;
    if output.has_compiler_errors() {
        let errors: Vec<String> = output
            .output()
            .errors
            .iter()
            .filter(|e| e.is_error())
            .map(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
            .collect();
        return Err(VerifyError::CompileErrors {
            count: errors.len(),
            first: errors.into_iter().next().unwrap_or_default(),
        });
    }
    let mut contracts = BTreeMap::new();
    for contract in Shipped::ALL {
        let deployed = output
            .find_first(contract.name())
            .and_then(|artifact| artifact.deployed_bytecode.as_ref())
            .ok_or(VerifyError::NotCompiled(contract))?;
        let code = deployed
            .bytecode
            .as_ref()
            .and_then(|b| b.object.as_bytes())
            .cloned()
            .ok_or(VerifyError::NotCompiled(contract))?;
        let mut immutables: Vec<(usize, usize)> = deployed
            .immutable_references
            .values()
            .flatten()
            .map(|o| (o.start as usize, o.length as usize))
            .collect();
        immutables.sort_unstable();
        contracts.insert(contract, Runtime { code, immutables });
    }
    let compiled = Compiled {
        solc_version,
        contracts,
        cached: false,
    };
    if let Some(file) = cache_file {
        write_cache(&file, &compiled);
    }
    Ok(compiled)
}

/// An exclusive lock on `dir`'s lock file, released when dropped; `None` if it cannot be had.
fn lock_cache(dir: &Path) -> Option<std::fs::File> {
    std::fs::create_dir_all(dir).ok()?;
    let file = std::fs::File::create(dir.join("verify.lock")).ok()?;
    file.lock().ok()?;
    Some(file)
}

fn read_cache(file: &Path) -> Option<Compiled> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut compiled: Compiled = serde_json::from_str(&text).ok()?;
    compiled.cached = true;
    Some(compiled)
}

/// Best effort: a cache that cannot be written only costs the next run a compile.
fn write_cache(file: &Path, compiled: &Compiled) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(compiled).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, file)
    };
    if let Err(e) = write() {
        tracing::warn!(file = %file.display(), error = %e, "cannot cache the compiler output");
    }
}

/// What an address is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The implementation the proxy's ERC-1967 slot names.
    Implementation {
        /// The proxy.
        proxy: Address,
    },
    /// The proxy itself.
    Proxy,
    /// The multisig the manifest records.
    Multisig,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Implementation { proxy } => write!(f, "implementation of proxy {proxy}"),
            Self::Proxy => f.write_str("the proxy"),
            Self::Multisig => f.write_str("the manifest's multisig"),
        }
    }
}

/// One contract's verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which build it was compared with.
    pub contract: Shipped,
    /// Where it lives.
    pub address: Address,
    /// What it is.
    pub role: Role,
    /// The result.
    pub comparison: Comparison,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.comparison {
            Comparison::Match { len, masked } => write!(
                f,
                "match: {} at {} ({}), {len} bytes, {masked} immutable bytes masked",
                self.contract, self.address, self.role
            ),
            Comparison::Mismatch(mismatch) => write!(
                f,
                "MISMATCH: {} at {} ({}): {mismatch}",
                self.contract, self.address, self.role
            ),
        }
    }
}

/// What to verify on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The SplitSettlement proxy.
    pub proxy: Address,
    /// The multisig, when a manifest names it.
    pub multisig: Option<Address>,
}

impl Target {
    /// The proxy and multisig a manifest records.
    pub const fn from_manifest(manifest: &Manifest) -> Self {
        Self {
            proxy: manifest.settlement,
            multisig: Some(manifest.multisig),
        }
    }
}

/// The endpoint's chain id.
pub async fn chain_id<P: Provider>(provider: &P) -> Result<u64, VerifyError> {
    provider
        .get_chain_id()
        .await
        .map_err(|source| VerifyError::Rpc {
            what: "eth_chainId",
            source,
        })
}

/// Fails with [`VerifyError::WrongChain`] unless the endpoint serves `manifest`'s chain.
pub async fn check_chain<P: Provider>(
    provider: &P,
    manifest_path: &Path,
    manifest_chain: u64,
) -> Result<(), VerifyError> {
    let served = chain_id(provider).await?;
    if served != manifest_chain {
        return Err(VerifyError::WrongChain {
            path: manifest_path.to_owned(),
            expected: manifest_chain,
            served,
        });
    }
    Ok(())
}

/// The implementation in `proxy`'s ERC-1967 slot.
pub async fn implementation_of<P: Provider>(
    provider: &P,
    proxy: Address,
) -> Result<Address, VerifyError> {
    let word = provider
        .get_storage_at(proxy, implementation_slot())
        .await
        .map_err(|source| VerifyError::Rpc {
            what: "eth_getStorageAt",
            source,
        })?;
    Ok(Address::from_word(B256::from(word)))
}

async fn code<P: Provider>(
    provider: &P,
    address: Address,
    what: String,
    chain_id: u64,
) -> Result<Bytes, VerifyError> {
    let code = provider
        .get_code_at(address)
        .await
        .map_err(|source| VerifyError::Rpc {
            what: "eth_getCode",
            source,
        })?;
    if code.is_empty() {
        return Err(VerifyError::NoCode {
            address,
            what,
            chain_id,
        });
    }
    Ok(code)
}

/// The code a deployment runs, read from the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnChain {
    /// The chain.
    pub chain_id: u64,
    /// The proxy and its code.
    pub proxy: (Address, Bytes),
    /// The implementation in the proxy's ERC-1967 slot, and its code.
    pub implementation: (Address, Bytes),
    /// The multisig and its code, when the target names one.
    pub multisig: Option<(Address, Bytes)>,
}

/// Reads what `target` runs: the proxy's code, the implementation its ERC-1967 slot names (never
/// taken from a manifest) and that code, and the multisig's code if named. Fails when any of them
/// holds no code.
pub async fn fetch<P: Provider>(provider: &P, target: &Target) -> Result<OnChain, VerifyError> {
    let chain_id = chain_id(provider).await?;
    let proxy_code = code(provider, target.proxy, Role::Proxy.to_string(), chain_id).await?;
    let implementation = implementation_of(provider, target.proxy).await?;
    if implementation == Address::ZERO {
        return Err(VerifyError::NotAProxy {
            proxy: target.proxy,
        });
    }
    let role = Role::Implementation {
        proxy: target.proxy,
    };
    let implementation_code = code(provider, implementation, role.to_string(), chain_id).await?;
    let multisig = match target.multisig {
        Some(multisig) => Some((
            multisig,
            code(provider, multisig, Role::Multisig.to_string(), chain_id).await?,
        )),
        None => None,
    };
    Ok(OnChain {
        chain_id,
        proxy: (target.proxy, proxy_code),
        implementation: (implementation, implementation_code),
        multisig,
    })
}

impl OnChain {
    /// Compares each contract with its build in `expected`: SplitSettlement (the
    /// implementation), ERC1967Proxy (the proxy) and, if read, SettleMultisig.
    pub fn check(&self, expected: &Compiled) -> Result<Vec<Check>, VerifyError> {
        let (proxy, proxy_code) = &self.proxy;
        let (implementation, implementation_code) = &self.implementation;
        let mut checks = vec![
            Check {
                contract: Shipped::SplitSettlement,
                address: *implementation,
                role: Role::Implementation { proxy: *proxy },
                comparison: expected
                    .runtime(Shipped::SplitSettlement)?
                    .compare(implementation_code),
            },
            Check {
                contract: Shipped::ERC1967Proxy,
                address: *proxy,
                role: Role::Proxy,
                comparison: expected.runtime(Shipped::ERC1967Proxy)?.compare(proxy_code),
            },
        ];
        if let Some((multisig, multisig_code)) = &self.multisig {
            checks.push(Check {
                contract: Shipped::SettleMultisig,
                address: *multisig,
                role: Role::Multisig,
                comparison: expected
                    .runtime(Shipped::SettleMultisig)?
                    .compare(multisig_code),
            });
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_code_matches_and_counts_masked_bytes() {
        let code = [0x60, 0x01, 0x60, 0x02, 0x01, 0x00];
        assert_eq!(
            compare_runtime(&code, &[], &code),
            Comparison::Match { len: 6, masked: 0 }
        );
        let onchain = [0x60, 0xaa, 0x60, 0x02, 0x01, 0x00];
        assert_eq!(
            compare_runtime(&code, &[(1, 1)], &onchain),
            Comparison::Match { len: 6, masked: 1 }
        );
    }

    #[test]
    fn a_byte_outside_the_immutables_is_the_first_difference() {
        let code = [0x60, 0x01, 0x61, 0, 0, 0x5b, 0x56];
        let onchain = [0x60, 0x01, 0x61, 9, 9, 0x5b, 0x57];
        // Offsets 3 and 4 are an immutable; the JUMP at 6 became a JUMPI.
        let Comparison::Mismatch(m) = compare_runtime(&code, &[(3, 2)], &onchain) else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.offset, 6);
        assert_eq!((m.expected, m.onchain), (Some(0x56), Some(0x57)));
        assert_eq!(
            m.to_string(),
            "first difference at byte offset 6 (opcode context: JUMP, after JUMPDEST): expected 0x56 on-chain 0x57"
        );
        // Unmasked, the immutable's first byte differs first; it sits in a PUSH2's data.
        let Comparison::Mismatch(m) = compare_runtime(&code, &[], &onchain) else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.offset, 3);
        assert_eq!(
            m.context,
            OpcodeContext::Immediate {
                push: Opcode(0x61),
                at: 2,
                index: 0
            }
        );
        assert_eq!(
            m.context.to_string(),
            "immediate byte 0 of PUSH2 at offset 2"
        );
    }

    #[test]
    fn length_differences_name_both_lengths() {
        let code = [0x5f, 0x5f, 0xf3];
        let longer = [0x5f, 0x5f, 0xf3, 0x00];
        let Comparison::Mismatch(m) = compare_runtime(&code, &[], &longer) else {
            panic!("expected a mismatch");
        };
        assert_eq!(
            m.to_string(),
            "first difference at byte offset 3 (opcode context: past the end of the expected code): \
             expected (end of code) on-chain 0x00; lengths differ: expected 3 bytes, on-chain 4 bytes"
        );
        let Comparison::Mismatch(m) = compare_runtime(&longer, &[], &code) else {
            panic!("expected a mismatch");
        };
        assert_eq!((m.offset, m.expected, m.onchain), (3, Some(0), None));
        assert_eq!((m.expected_len, m.onchain_len), (4, 3));
        assert_eq!(
            m.context,
            OpcodeContext::Opcode {
                opcode: Opcode(0),
                previous: Some(Opcode(0xf3))
            }
        );
    }

    #[test]
    fn immutable_ranges_past_the_end_are_clipped() {
        let code = [0x5f, 0x00];
        assert_eq!(
            compare_runtime(&code, &[(1, 32), (usize::MAX, 5)], &[0x5f, 0x01]),
            Comparison::Match { len: 2, masked: 1 }
        );
    }

    #[test]
    fn metadata_trailers_are_ignored() {
        // a2 64 'ipfs' 58 22 <34 bytes> 64 'solc' 43 <3 bytes>, then its length 0x0033.
        let trailer = |hash: u8| {
            let mut cbor = vec![0xa2, 0x64];
            cbor.extend_from_slice(b"ipfs");
            cbor.extend_from_slice(&[0x58, 0x22]);
            cbor.extend_from_slice(&[hash; 34]);
            cbor.push(0x64);
            cbor.extend_from_slice(b"solc");
            cbor.extend_from_slice(&[0x43, 0, 8, 30]);
            let len = u16::try_from(cbor.len()).expect("short");
            cbor.extend_from_slice(&len.to_be_bytes());
            cbor
        };
        let body = [0x60, 0x80, 0x60, 0x40, 0x52, 0xfe];
        let with = |hash| [&body[..], &trailer(hash)].concat();
        assert_eq!(strip_metadata(&with(1)), &body);
        assert_eq!(
            compare_runtime(&with(1), &[], &with(2)),
            Comparison::Match { len: 6, masked: 0 }
        );
        // A build without a trailer (our profile) takes the chain's code whole.
        let Comparison::Mismatch(m) = compare_runtime(&body, &[], &with(2)) else {
            panic!("an appended trailer must not pass");
        };
        assert_eq!((m.offset, m.expected, m.onchain), (6, None, Some(0xa2)));
        assert_eq!((m.expected_len, m.onchain_len), (6, 59));
        // Code that merely ends in two bytes is left alone.
        assert_eq!(
            strip_metadata(&[0x60, 0x00, 0x00, 0x02]),
            &[0x60, 0x00, 0x00, 0x02]
        );
    }

    #[test]
    fn committed_artifacts_carry_their_immutables() {
        let settlement = committed(Shipped::SplitSettlement).expect("artifact");
        // UUPS keeps address(this) (read in two places); EIP-712 caches five values and two
        // short strings.
        assert_eq!(settlement.immutables.len(), 9);
        assert!(settlement.immutables.iter().all(|&(_, len)| len == 32));
        for (start, len) in &settlement.immutables {
            assert!(settlement.code[*start..start + len].iter().all(|b| *b == 0));
        }
        assert!(
            committed(Shipped::ERC1967Proxy)
                .expect("artifact")
                .immutables
                .is_empty()
        );
        assert_eq!(
            committed(Shipped::SettleMultisig)
                .expect("artifact")
                .immutables
                .len(),
            7
        );
    }

    #[test]
    fn shipped_sources_are_the_shipped_job_of_scripts_artifacts() {
        let script = include_str!("../../scripts/artifacts");
        let line = script
            .lines()
            .find(|l| l.starts_with("SHIPPED=("))
            .expect("SHIPPED line");
        assert_eq!(line, format!("SHIPPED=({})", SHIPPED_SOURCES.join(" ")));
    }
}
