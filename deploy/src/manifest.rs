//! A deployment manifest: where the contracts of one chain live.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a manifest could not be read or written.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("{path}: not a valid deployment manifest: {source}")]
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// The JSON failure.
        source: serde_json::Error,
    },
    /// The manifest belongs to another chain than the one asked for.
    #[error("{path} is for chain {found}, not {expected}; pass the manifest of chain {expected}")]
    WrongChain {
        /// The manifest's path.
        path: PathBuf,
        /// The chain asked for.
        expected: u64,
        /// The chain in the file.
        found: u64,
    },
}

/// One chain's deployment: where its contracts live and who governs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// The chain id.
    pub chain_id: u64,
    /// The SplitSettlement proxy (the address users talk to).
    pub settlement: Address,
    /// The implementation behind the proxy.
    pub implementation: Address,
    /// The timelock that owns the proxy.
    pub timelock: Address,
    /// The multisig that proposes to and executes through the timelock.
    pub multisig: Address,
    /// The multisig's owners.
    pub owners: Vec<Address>,
    /// Owner signatures the multisig requires.
    pub threshold: u64,
    /// The timelock's minimum delay, in seconds.
    pub min_delay: u64,
    /// The CREATE2 salt the contracts were created with.
    pub salt: B256,
    /// The account that deployed and wired the proxy (its address depends on it).
    pub deployer: Address,
    /// The block the proxy was deployed in (the indexer starts there).
    pub deployed_block: u64,
}

impl Manifest {
    /// The manifest's conventional path for `chain_id` under `dir`.
    pub fn path_for(dir: &Path, chain_id: u64) -> PathBuf {
        dir.join(format!("{chain_id}.json"))
    }

    /// Reads the manifest at `path` and checks it is for `chain_id`.
    pub fn read(path: &Path, chain_id: u64) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if manifest.chain_id != chain_id {
            return Err(ManifestError::WrongChain {
                path: path.to_owned(),
                expected: chain_id,
                found: manifest.chain_id,
            });
        }
        Ok(manifest)
    }

    /// [`Self::read`], or `None` when there is no file at `path`.
    pub fn read_if_present(path: &Path, chain_id: u64) -> Result<Option<Self>, ManifestError> {
        match Self::read(path, chain_id) {
            Ok(manifest) => Ok(Some(manifest)),
            Err(ManifestError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the manifest to `path` (pretty JSON, trailing newline), atomically.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| ManifestError::Parse {
                path: path.to_owned(),
                source,
            })?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    fn sample() -> Manifest {
        Manifest {
            chain_id: 31337,
            settlement: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            implementation: address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
            timelock: address!("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"),
            multisig: address!("0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"),
            owners: vec![address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")],
            threshold: 1,
            min_delay: 60,
            salt: B256::repeat_byte(7),
            deployer: address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            deployed_block: 3,
        }
    }

    #[test]
    fn round_trips_and_checks_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Manifest::path_for(dir.path(), 31337);
        sample().write(&path).expect("write");
        assert_eq!(Manifest::read(&path, 31337).expect("read"), sample());
        match Manifest::read(&path, 1) {
            Err(ManifestError::WrongChain {
                expected: 1,
                found: 31337,
                ..
            }) => {}
            other => panic!("expected WrongChain, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Manifest::path_for(dir.path(), 31337);
        assert_eq!(
            Manifest::read_if_present(&path, 31337).expect("no error"),
            None
        );
        sample().write(&path).expect("write");
        assert_eq!(
            Manifest::read_if_present(&path, 31337).expect("read"),
            Some(sample())
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        let mut value = serde_json::to_value(sample()).expect("to json");
        value["surprise"] = serde_json::json!(1);
        std::fs::write(&path, value.to_string()).expect("write");
        assert!(matches!(
            Manifest::read(&path, 31337),
            Err(ManifestError::Parse { .. })
        ));
    }
}
