//! `settle keys api`: API keys for integrators, merchants, auditors and admins.

use clap::{Args, Subcommand, ValueEnum};
use settle_api::{Role, auth};
use uuid::Uuid;

use super::{AuditArgs, KeysError, connect};

/// A role, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Submits and follows its own payments.
    Integrator,
    /// Sees its own balances and payouts (owner: the merchant's EIP-55 address).
    Merchant,
    /// Sees evidence, reconciliation and exports.
    Auditor,
    /// Everything.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Integrator => Self::Integrator,
            RoleArg::Merchant => Self::Merchant,
            RoleArg::Auditor => Self::Auditor,
            RoleArg::Admin => Self::Admin,
        }
    }
}

/// Options of `settle keys api`.
#[derive(Debug, Clone, Args)]
pub struct ApiKeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ApiKeyCommand,
}

/// The `settle keys api` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Issue a key; its token is printed once and stored only hashed.
    Create(CreateApiKey),
    /// Revoke a key by id.
    Revoke(RevokeApiKey),
}

/// Options of `settle keys api create`.
#[derive(Debug, Clone, Args)]
pub struct CreateApiKey {
    /// The key's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Its owner: the integrator's name, the merchant's EIP-55 address, or a person for auditors and admins.
    #[arg(long)]
    pub owner: String,
    /// The database.
    #[command(flatten)]
    pub database: AuditArgs,
}

/// Options of `settle keys api revoke`.
#[derive(Debug, Clone, Args)]
pub struct RevokeApiKey {
    /// The key's id (printed by `create`).
    #[arg(long)]
    pub id: Uuid,
    /// The database.
    #[command(flatten)]
    pub database: AuditArgs,
}

/// Runs `settle keys api`.
pub async fn run(args: ApiKeyArgs) -> anyhow::Result<()> {
    match args.command {
        ApiKeyCommand::Create(create) => {
            let pool = connect(&create.database.database_url).await?;
            settle_api::MIGRATOR
                .run(&pool)
                .await
                .map_err(KeysError::Migrate)?;
            let key = auth::create_key(&pool, create.role.into(), &create.owner)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} key {} for {:?}",
                Role::from(create.role),
                key.id,
                create.owner
            );
            println!("token (shown once): {}", key.token);
        }
        ApiKeyCommand::Revoke(revoke) => {
            let pool = connect(&revoke.database.database_url).await?;
            if auth::revoke_key(&pool, revoke.id).await? {
                println!("revoked key {}", revoke.id);
            } else {
                anyhow::bail!(
                    "no live API key with id {}; list keys in api.api_keys",
                    revoke.id
                );
            }
        }
    }
    Ok(())
}
