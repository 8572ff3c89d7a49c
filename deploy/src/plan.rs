//! Where each contract of a deployment lands, computed before anything is sent.
//!
//! Every contract is created with CREATE2 through the deterministic deployment
//! proxy, so its address is `keccak256(0xff ‖ factory ‖ salt ‖
//! keccak256(init code))[12..]`: a function of the salt and the exact init
//! code (the committed artifact's bytecode and the constructor arguments). The
//! same config, deployer and build give the same addresses on every chain.
//!
//! The proxy is initialised with the deployer as its owner and no guardian,
//! so that its address does not depend on anything the config may later
//! change (signers, limits, guardian): the deployer wires it, then hands it to
//! the timelock. It does depend on the deployer and on the implementation's
//! address, hence on the build.

use alloy::{
    primitives::{Address, B256, Bytes, U256, address, b256, keccak256},
    sol_types::{SolCall, SolConstructor},
};
use settle_contracts::{ERC1967Proxy, SettleMultisig, SplitSettlement, TimelockController};

use crate::config::DeployConfig;

/// The deterministic deployment proxy (Arachnid's), at the same address on most EVM chains and
/// pre-deployed by anvil. Its calldata is `salt ‖ init code`; it creates with CREATE2.
pub const CREATE2_FACTORY: Address = address!("0x4e59b44847b379578588920ca78fbf26c0b4956c");

/// keccak256 of the deterministic deployment proxy's runtime code, to tell it from anything else
/// that might sit at its address.
pub const CREATE2_FACTORY_CODE_HASH: B256 =
    b256!("0x2fa86add0aed31f33a762c9d88e807c475bd51d0f52bd0955754b2608f7e4989");

/// The ERC-1967 slot holding a proxy's implementation: `keccak256("eip1967.proxy.implementation") - 1`.
pub fn implementation_slot() -> U256 {
    U256::from_be_bytes(keccak256("eip1967.proxy.implementation").0).wrapping_sub(U256::from(1))
}

/// The contracts of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// `SettleMultisig`.
    Multisig,
    /// OpenZeppelin's `TimelockController`.
    Timelock,
    /// The `SplitSettlement` implementation.
    Implementation,
    /// The `ERC1967Proxy` in front of it.
    Proxy,
}

impl Contract {
    /// The contract's name in the artifacts.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Multisig => "SettleMultisig",
            Self::Timelock => "TimelockController",
            Self::Implementation => "SplitSettlement (implementation)",
            Self::Proxy => "ERC1967Proxy (SplitSettlement proxy)",
        }
    }

    /// The runtime code the committed artifact expects, with immutables zeroed.
    pub fn runtime_code(self) -> &'static Bytes {
        match self {
            Self::Multisig => &SettleMultisig::DEPLOYED_BYTECODE,
            Self::Timelock => &TimelockController::DEPLOYED_BYTECODE,
            Self::Implementation => &SplitSettlement::DEPLOYED_BYTECODE,
            Self::Proxy => &ERC1967Proxy::DEPLOYED_BYTECODE,
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One contract to create: its init code and where CREATE2 puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Which contract.
    pub contract: Contract,
    /// Creation bytecode followed by the ABI-encoded constructor arguments.
    pub init_code: Bytes,
    /// The CREATE2 address.
    pub address: Address,
}

impl Planned {
    fn new(contract: Contract, salt: B256, init_code: Vec<u8>) -> Self {
        let address = CREATE2_FACTORY.create2_from_code(salt, &init_code);
        Self {
            contract,
            init_code: init_code.into(),
            address,
        }
    }

    /// The factory's calldata: `salt ‖ init code`.
    pub fn factory_calldata(&self, salt: B256) -> Bytes {
        [salt.as_slice(), &self.init_code].concat().into()
    }
}

/// The four contracts of a deployment, in the order they are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The CREATE2 salt of every contract.
    pub salt: B256,
    /// Who deploys and first owns the proxy.
    pub deployer: Address,
    /// `SettleMultisig(owners, threshold)`.
    pub multisig: Planned,
    /// `TimelockController(delay, [multisig], [multisig], no admin)`.
    pub timelock: Planned,
    /// `SplitSettlement()`.
    pub implementation: Planned,
    /// `ERC1967Proxy(implementation, initialize(deployer, no guardian))`.
    pub proxy: Planned,
}

impl Plan {
    /// The addresses `config` gives when `deployer` deploys this build.
    pub fn new(config: &DeployConfig, deployer: Address) -> Self {
        let salt = config.salt;
        let gov = &config.governance;
        let multisig = Planned::new(
            Contract::Multisig,
            salt,
            with_args(
                &SettleMultisig::BYTECODE,
                &SettleMultisig::constructorCall {
                    owners: gov.owners.clone(),
                    initialThreshold: U256::from(gov.threshold),
                }
                .abi_encode(),
            ),
        );
        let timelock = Planned::new(
            Contract::Timelock,
            salt,
            with_args(
                &TimelockController::BYTECODE,
                &TimelockController::constructorCall {
                    minDelay: U256::from(gov.min_delay),
                    proposers: vec![multisig.address],
                    executors: vec![multisig.address],
                    admin: Address::ZERO,
                }
                .abi_encode(),
            ),
        );
        let implementation = Planned::new(
            Contract::Implementation,
            salt,
            SplitSettlement::BYTECODE.to_vec(),
        );
        let initialize = SplitSettlement::initializeCall {
            owner_: deployer,
            guardian_: Address::ZERO,
        }
        .abi_encode();
        let proxy = Planned::new(
            Contract::Proxy,
            salt,
            with_args(
                &ERC1967Proxy::BYTECODE,
                &ERC1967Proxy::constructorCall {
                    implementation: implementation.address,
                    _data: initialize.into(),
                }
                .abi_encode(),
            ),
        );
        Self {
            salt,
            deployer,
            multisig,
            timelock,
            implementation,
            proxy,
        }
    }

    /// The contracts in creation order.
    pub fn contracts(&self) -> [&Planned; 4] {
        [
            &self.multisig,
            &self.timelock,
            &self.implementation,
            &self.proxy,
        ]
    }
}

fn with_args(bytecode: &[u8], args: &[u8]) -> Vec<u8> {
    [bytecode, args].concat()
}

/// Whether `code` (read from the chain) is `expected` (an artifact's runtime code) once the
/// immutables are filled in.
///
/// solc leaves each immutable as 32 zero bytes in the artifact's runtime code, and the
/// constructor writes the values there (EIP-712 domain, `address(this)`). So the codes must have
/// the same length and agree everywhere except inside runs of 32 or more zero bytes of the
/// artifact. That the code is there at all already ties it to the init code: a CREATE2 address is
/// a hash of it.
pub fn code_matches(code: &[u8], expected: &[u8]) -> bool {
    if code.len() != expected.len() {
        return false;
    }
    let mut rest = code;
    for run in expected.chunk_by(|a, b| (*a == 0) == (*b == 0)) {
        let Some((here, tail)) = rest.split_at_checked(run.len()) else {
            return false;
        };
        rest = tail;
        let placeholder = run.len() >= 32 && run.first() == Some(&0);
        if !placeholder && here != run {
            return false;
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implementation_slot_is_the_erc1967_constant() {
        assert_eq!(
            B256::from(implementation_slot()),
            b256!("0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc")
        );
    }

    #[test]
    fn code_matching_ignores_only_immutable_placeholders() {
        let mut expected = vec![0x60, 0x80];
        expected.extend([0_u8; 32]);
        expected.extend([0x56, 0x00, 0x5b]);
        let mut filled = expected.clone();
        filled[10] = 0xaa;
        assert!(code_matches(&expected, &expected));
        assert!(code_matches(&filled, &expected));

        let mut short_run = filled.clone();
        short_run[35] = 0x01; // the lone zero after 0x56 is code, not an immutable
        assert!(!code_matches(&short_run, &expected));
        let mut changed = filled.clone();
        changed[0] = 0x61;
        assert!(!code_matches(&changed, &expected));
        assert!(!code_matches(&filled[1..], &expected));
        assert!(!code_matches(&[], &expected));
    }

    #[test]
    fn every_artifact_has_runtime_code() {
        for contract in [
            Contract::Multisig,
            Contract::Timelock,
            Contract::Implementation,
            Contract::Proxy,
        ] {
            assert!(!contract.runtime_code().is_empty(), "{contract}");
        }
    }
}
