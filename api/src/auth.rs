//! API keys: bearer tokens, stored hashed, each with a role and an owner.
//!
//! A token reads `settle_<prefix>_<secret>`: 12 hex digits that find the row
//! and 48 hex digits of secret (192 random bits) whose SHA-256 is stored. The
//! secret is shown once, when the key is created, and compared in constant
//! time. Missing or unknown keys answer 401 `unauthenticated`; a known key
//! whose role may not do something answers 403 `forbidden`.

use axum::{extract::FromRequestParts, http::request::Parts};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use thiserror::Error;
use uuid::Uuid;

use crate::{
    problem::{ApiError, ErrorCode},
    state::AppState,
};

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits and follows its own payments.
    Integrator,
    /// Sees its own balances and payouts.
    Merchant,
    /// Sees evidence, reconciliation and exports for everything.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Integrator => "integrator",
            Self::Merchant => "merchant",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// The role with this stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Integrator, Self::Merchant, Self::Auditor, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be created.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The owner does not suit the role.
    #[error("{0}")]
    BadOwner(String),
}

/// A newly created key: the token is shown once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's id.
    pub id: Uuid,
    /// The bearer token.
    pub token: String,
}

/// The caller, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id.
    pub key_id: Uuid,
    /// Its role.
    pub role: Role,
    /// Its owner (an integrator's name, a merchant's address, ...).
    pub owner: String,
}

impl Principal {
    /// `Ok` when the caller's role is one of `roles` (admins may do everything).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this route is for {} keys; this key's role is {}",
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    self.role
                ),
            ))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Equal in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a key for `role` and `owner`; a merchant's owner must be an EIP-55 address.
pub async fn create_key(pool: &PgPool, role: Role, owner: &str) -> Result<NewKey, KeyError> {
    if owner.is_empty() {
        return Err(KeyError::BadOwner(
            "the owner is empty; name the integrator, merchant address or person".to_owned(),
        ));
    }
    if role == Role::Merchant && crate::validate::address(owner).is_err() {
        return Err(KeyError::BadOwner(format!(
            "a merchant key's owner is the merchant's EIP-55 address, not {owner:?}"
        )));
    }
    let id = Uuid::new_v4();
    let prefix = hex(&Uuid::new_v4().as_bytes()[..6]);
    let mut secret_bytes = Uuid::new_v4().as_bytes().to_vec();
    secret_bytes.extend_from_slice(&Uuid::new_v4().as_bytes()[..8]);
    let secret = hex(&secret_bytes);
    sqlx::query(
        "INSERT INTO api.api_keys (id, prefix, secret_hash, role, owner) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&prefix)
    .bind(sha256(&secret))
    .bind(role.as_str())
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(NewKey {
        id,
        token: format!("settle_{prefix}_{secret}"),
    })
}

/// Finds the live key for `token`.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    let Some((prefix, secret)) = token
        .strip_prefix("settle_")
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    if prefix.len() != 12 || secret.len() != 48 {
        return Ok(None);
    }
    let Some(row) = sqlx::query(
        "SELECT id, secret_hash, role, owner FROM api.api_keys WHERE prefix = $1 AND revoked_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.try_get(1)?;
    if !constant_time_eq(&stored, &sha256(secret)) {
        return Ok(None);
    }
    let role: String = row.try_get(2)?;
    Ok(Role::parse(&role).map(|role| Principal {
        key_id: row.try_get(0).unwrap_or_default(),
        role,
        owner: row.try_get(3).unwrap_or_default(),
    }))
}

/// Revokes a key; false when there was no live key with this id.
pub async fn revoke_key(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api.api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = |detail: &str| ApiError::new(ErrorCode::Unauthenticated, detail);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("send `Authorization: Bearer <api key>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                unauthenticated("the Authorization header must read `Bearer <api key>`")
            })?;
        let principal = authenticate(state.pool(), token.trim())
            .await
            .map_err(|e| ApiError::internal(&e))?
            .ok_or_else(|| unauthenticated("the API key is unknown or revoked"))?;
        state.rate_limiter().check(principal.key_id)?;
        Ok(principal)
    }
}

/// Who a key is.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The key's role.
    pub role: Role,
    /// The key's owner.
    pub owner: String,
}

/// The role and owner of the calling key.
#[utoipa::path(get, path = "/v1/whoami", tag = "operations", security(("api_key" = [])), responses(
    (status = 200, body = WhoAmI),
    (status = 401, body = crate::problem::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::problem::Problem, content_type = "application/problem+json"),
))]
pub async fn whoami(principal: Principal) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        role: principal.role,
        owner: principal.owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_admins_may_do_everything() {
        for role in [Role::Integrator, Role::Merchant, Role::Auditor, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        let admin = Principal {
            key_id: Uuid::nil(),
            role: Role::Admin,
            owner: "ops".to_owned(),
        };
        assert!(admin.require(&[Role::Merchant]).is_ok());
        let merchant = Principal {
            role: Role::Merchant,
            ..admin
        };
        let err = merchant
            .require(&[Role::Integrator, Role::Auditor])
            .expect_err("forbidden");
        assert_eq!(err.code(), ErrorCode::Forbidden);
        assert_eq!(
            err.detail(),
            "this route is for integrator or auditor keys; this key's role is merchant"
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
