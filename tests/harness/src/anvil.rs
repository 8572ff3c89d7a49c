//! A throw-away anvil chain on a free loopback port.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::{Signer, local::PrivateKeySigner},
    transports::http::reqwest::Url,
};

use crate::{Error, Result, workspace_root};

/// Environment variable that overrides where the anvil binary is.
pub const ANVIL_ENV: &str = "SETTLE_ANVIL";

/// How long anvil may take to print its listening address, in milliseconds.
/// alloy's default (10 s) is tight on a 2-core machine that is also compiling.
const STARTUP_TIMEOUT_MS: u64 = 30_000;

/// A running anvil process, killed when this value is dropped.
///
/// anvil listens on 127.0.0.1 with port 0, so the OS picks a free port and
/// alloy reads the real one back from anvil's `Listening on` line; parallel
/// tests never race for a port.
#[derive(Debug)]
pub struct TestChain {
    instance: AnvilInstance,
    signers: Vec<PrivateKeySigner>,
}

impl TestChain {
    /// Starts anvil with its defaults (chain id 31337, ten funded dev accounts).
    ///
    /// Blocks until anvil reports that it is listening (about 100 ms).
    pub fn start() -> Result<Self> {
        Self::start_with(|anvil| anvil)
    }

    /// Starts anvil after `configure` has adjusted the builder, e.g.
    /// `|a| a.block_time(1)` or `|a| a.chain_id(1337)`.
    pub fn start_with(configure: impl FnOnce(Anvil) -> Anvil) -> Result<Self> {
        let path = anvil_path()?;
        let builder = Anvil::at(&path)
            .host("127.0.0.1")
            .port(0_u16)
            .timeout(STARTUP_TIMEOUT_MS);
        let instance = configure(builder)
            .try_spawn()
            .map_err(|source| Error::AnvilSpawn { path, source })?;
        let chain_id = instance.chain_id();
        let signers = instance
            .keys()
            .iter()
            .map(|key| PrivateKeySigner::from(key.clone()).with_chain_id(Some(chain_id)))
            .collect();
        Ok(Self { instance, signers })
    }

    /// HTTP JSON-RPC endpoint, e.g. `http://127.0.0.1:34567`.
    pub fn endpoint(&self) -> String {
        self.instance.endpoint()
    }

    /// HTTP JSON-RPC endpoint as a URL.
    pub fn endpoint_url(&self) -> Url {
        self.instance.endpoint_url()
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.instance.port()
    }

    /// The chain id anvil reported.
    pub fn chain_id(&self) -> u64 {
        self.instance.chain_id()
    }

    /// The funded dev accounts, each with the chain id set.
    pub fn signers(&self) -> &[PrivateKeySigner] {
        &self.signers
    }

    /// Addresses of the funded dev accounts, in the same order as [`Self::signers`].
    pub fn addresses(&self) -> &[Address] {
        self.instance.addresses()
    }

    /// A wallet holding every dev account; the first one is the default signer.
    pub fn wallet(&self) -> EthereumWallet {
        let mut signers = self.signers.iter().cloned();
        let mut wallet = EthereumWallet::default();
        if let Some(first) = signers.next() {
            wallet.register_default_signer(first);
        }
        for signer in signers {
            wallet.register_signer(signer);
        }
        wallet
    }

    /// An HTTP provider with the recommended fillers and [`Self::wallet`],
    /// so transactions from any dev account are signed locally.
    pub fn provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .wallet(self.wallet())
            .connect_http(self.endpoint_url())
            .erased()
    }

    /// The underlying alloy instance, for anything not wrapped here.
    pub fn instance(&self) -> &AnvilInstance {
        &self.instance
    }
}

/// Finds anvil: `$SETTLE_ANVIL`, else the npm-installed binary under
/// `node_modules`, else `anvil` on `PATH`.
pub fn anvil_path() -> Result<PathBuf> {
    locate(
        std::env::var_os(ANVIL_ENV),
        &bundled_anvil(),
        std::env::var_os("PATH"),
    )
}

/// Where `./scripts/setup` installs anvil (from `@foundry-rs/anvil-linux-amd64`).
fn bundled_anvil() -> PathBuf {
    workspace_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

fn locate(env: Option<OsString>, bundled: &Path, path_var: Option<OsString>) -> Result<PathBuf> {
    if let Some(explicit) = env.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::AnvilEnvInvalid { path })
        };
    }
    if bundled.is_file() {
        return Ok(bundled.to_path_buf());
    }
    path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("anvil"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::AnvilNotFound {
            bundled: bundled.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_that_is_missing_is_an_error_naming_the_variable() {
        let err = locate(
            Some("/nonexistent/anvil".into()),
            Path::new("/nonexistent/bundled"),
            None,
        )
        .expect_err("a missing SETTLE_ANVIL must not fall back");
        assert!(
            matches!(&err, Error::AnvilEnvInvalid { path } if path == Path::new("/nonexistent/anvil"))
        );
        assert!(err.to_string().contains("SETTLE_ANVIL=/nonexistent/anvil"));
    }

    #[test]
    fn nothing_found_names_the_setup_script() {
        let empty = tempfile::tempdir().expect("temp dir");
        let err = locate(
            None,
            Path::new("/nonexistent/bundled"),
            Some(empty.path().as_os_str().to_owned()),
        )
        .expect_err("no anvil anywhere");
        assert!(
            matches!(&err, Error::AnvilNotFound { bundled } if bundled == Path::new("/nonexistent/bundled"))
        );
        assert!(err.to_string().contains("./scripts/setup"));
    }

    #[test]
    fn falls_back_to_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = dir.path().join("anvil");
        std::fs::write(&fake, b"").expect("write fake anvil");
        let found = locate(
            None,
            Path::new("/nonexistent/bundled"),
            Some(dir.path().as_os_str().to_owned()),
        )
        .expect("anvil on PATH");
        assert_eq!(found, fake);
    }
}
