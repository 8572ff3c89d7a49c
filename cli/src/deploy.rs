//! `settle deploy`: deploy (or complete, or check) the contracts a deployment config describes.
//!
//! The deployer's key comes from an environment variable (a development key, for anvil) or from
//! a PKCS#11 token (PIN from `SETTLE_HSM_PIN`), chosen by flag or else by the config's
//! `[deployer]` table. A key is never a flag value: that would leave it in shell history and the
//! process list. The work is [`settle_deploy::deploy`]; this prints what it did.

use std::{fmt::Write as _, path::PathBuf};

use alloy::signers::local::PrivateKeySigner;
use clap::Args;
use settle_deploy::{
    ConfigError, DeployConfig, DeployError, DeployOptions, KeySource, Outcome, config::is_env_name,
};
use thiserror::Error;

use crate::keys::{DEFAULT_MODULE, Hsm, KeysError, MODULE_ENV, PIN_ENV, TokenArgs};

/// Options of `settle deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the chain to deploy on.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The deployment config, e.g. deploy/config/anvil.toml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Environment variable holding the deployer's hex private key (development chains only).
    #[arg(long, value_name = "VAR", conflicts_with = "deployer_hsm_token")]
    pub deployer_key_env: Option<String>,
    /// Label of the PKCS#11 token holding the deployer key (user PIN from SETTLE_HSM_PIN).
    #[arg(long, value_name = "TOKEN", requires = "deployer_hsm_label")]
    pub deployer_hsm_token: Option<String>,
    /// Label of the deployer's key pair on that token.
    #[arg(long, value_name = "KEY", requires = "deployer_hsm_token")]
    pub deployer_hsm_label: Option<String>,
    /// The PKCS#11 module (shared library), for an HSM deployer key.
    #[arg(long, env = MODULE_ENV, default_value = DEFAULT_MODULE)]
    pub module: PathBuf,
    /// Folder of the deployment manifests (<chain id>.json).
    #[arg(long, value_name = "DIR", default_value = "deploy/deployments")]
    pub manifests: PathBuf,
}

/// Why `settle deploy` stopped.
#[derive(Debug, Error)]
pub enum DeployCommandError {
    /// The config file is unusable.
    #[error("{0}")]
    Config(ConfigError),
    /// Neither a flag nor the config names the deployer key.
    #[error(
        "no deployer key: pass --deployer-key-env VAR or --deployer-hsm-token and --deployer-hsm-label, or set [deployer] key_env or hsm_token and hsm_label in the config"
    )]
    NoKeySource,
    /// `--deployer-key-env` is not a variable name.
    #[error(
        "--deployer-key-env {0:?} is not an environment variable name; pass the variable's name, not the key"
    )]
    BadKeyEnvName(String),
    /// The key's environment variable is not set.
    #[error("${0} is not set; export the deployer's hex private key in it")]
    KeyEnvNotSet(String),
    /// The key's environment variable holds no private key.
    #[error("${0} does not hold a hex private key (64 hex digits, 0x optional)")]
    KeyEnvInvalid(String),
    /// The HSM key could not be opened.
    #[error("{0}")]
    Hsm(KeysError),
    /// The deployment failed or needs the multisig.
    #[error("{0}")]
    Deploy(DeployError),
}

/// Which key deploys: the flags win over the config.
pub fn key_source(
    args: &DeployArgs,
    config: &DeployConfig,
) -> Result<KeySource, DeployCommandError> {
    if let Some(var) = &args.deployer_key_env {
        if !is_env_name(var) {
            return Err(DeployCommandError::BadKeyEnvName(var.clone()));
        }
        return Ok(KeySource::Env(var.clone()));
    }
    if let (Some(token), Some(label)) = (&args.deployer_hsm_token, &args.deployer_hsm_label) {
        return Ok(KeySource::Hsm {
            token: token.clone(),
            label: label.clone(),
        });
    }
    config
        .deployer
        .key
        .clone()
        .ok_or(DeployCommandError::NoKeySource)
}

/// A local signer from the hex key in `value` (the content of `$var`).
fn env_signer(var: &str, value: Option<String>) -> Result<PrivateKeySigner, DeployCommandError> {
    let value = value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| DeployCommandError::KeyEnvNotSet(var.to_owned()))?;
    value
        .trim()
        .parse()
        .map_err(|_| DeployCommandError::KeyEnvInvalid(var.to_owned()))
}

/// What `settle deploy` prints: one line per step, then the manifest.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    for step in &outcome.steps {
        let _ = writeln!(out, "{step}");
    }
    let path = outcome.manifest_path.display();
    let manifest = if outcome.manifest_written {
        format!("manifest {path} written")
    } else {
        format!("manifest {path} unchanged")
    };
    if outcome.nothing_to_do() {
        let _ = writeln!(
            out,
            "nothing to do: chain {} already has this deployment; {manifest}",
            outcome.chain_id
        );
    } else {
        let _ = writeln!(
            out,
            "deployed on chain {} with {} transaction(s); {manifest}",
            outcome.chain_id,
            outcome.transactions()
        );
    }
    out
}

/// Runs `settle deploy`.
pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let config = DeployConfig::load(&args.config).map_err(DeployCommandError::Config)?;
    let options = DeployOptions::new(&args.manifests);
    let source = key_source(&args, &config)?;
    let starting = |from: alloy::primitives::Address| {
        println!(
            "deploying {} on chain {} from {from} ({source})",
            args.config.display(),
            config.chain_id
        );
    };
    let outcome = match &source {
        KeySource::Env(var) => {
            let signer = env_signer(var, std::env::var(var).ok())?;
            starting(signer.address());
            settle_deploy::deploy(&config, &args.rpc, signer, &options).await
        }
        KeySource::Hsm { token, label } => {
            let hsm = Hsm::open(
                &TokenArgs {
                    token: token.clone(),
                    module: args.module.clone(),
                },
                std::env::var(PIN_ENV).ok(),
            )
            .map_err(DeployCommandError::Hsm)?;
            let signer = hsm.signer(label, 1).map_err(DeployCommandError::Hsm)?;
            starting(signer.address());
            settle_deploy::deploy(&config, &args.rpc, signer, &options).await
        }
    }
    .map_err(DeployCommandError::Deploy)?;
    print!("{}", render(&outcome));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_variable_must_be_set_and_hold_a_key() {
        let err = env_signer("K", None).expect_err("unset");
        assert_eq!(
            err.to_string(),
            "$K is not set; export the deployer's hex private key in it"
        );
        let err = env_signer("K", Some("not a key".into())).expect_err("not a key");
        assert_eq!(
            err.to_string(),
            "$K does not hold a hex private key (64 hex digits, 0x optional)"
        );
        // Anvil's account 0: a published development key.
        let signer = env_signer(
            "K",
            Some("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n".into()),
        )
        .expect("key");
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }
}
