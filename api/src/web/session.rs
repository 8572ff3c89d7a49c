//! Browser sessions of the web UI (table `api.web_sessions`, migration 300003).
//!
//! A session token is 256 random bits, shown to the browser once in its cookie; only its SHA-256
//! is stored. A session belongs to the API key that opened it and ends with it: a revoked key's
//! sessions find no principal, a deleted key's rows go with it. Sessions idle for longer than
//! [`IDLE_HOURS`] are refused (and deleted), whatever the browser keeps.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::auth::{Principal, Role};

/// Hours a session may stay unused before it is refused.
pub const IDLE_HOURS: i32 = 12;

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Opens a session for the key `key_id`; answers its token.
pub async fn create(pool: &PgPool, key_id: Uuid) -> Result<String, sqlx::Error> {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    sqlx::query("INSERT INTO api.web_sessions (token_hash, key_id) VALUES ($1, $2)")
        .bind(hash(&token))
        .bind(key_id)
        .execute(pool)
        .await?;
    Ok(token)
}

/// The live key behind `token`, if the session exists, is not idle too long and its key is not
/// revoked; marks the session as used.
pub async fn principal(pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    sqlx::query(
        "DELETE FROM api.web_sessions WHERE last_seen < now() - make_interval(hours => $1)",
    )
    .bind(IDLE_HOURS)
    .execute(pool)
    .await?;
    let row = sqlx::query(
        "UPDATE api.web_sessions s SET last_seen = now()
         FROM api.api_keys k
         WHERE s.token_hash = $1 AND k.id = s.key_id AND k.revoked_at IS NULL
         RETURNING k.id, k.role, k.owner",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let role: String = row.try_get(1)?;
    Ok(Role::parse(&role).map(|role| Principal {
        key_id: row.try_get(0).unwrap_or_default(),
        role,
        owner: row.try_get(2).unwrap_or_default(),
    }))
}

/// Ends the session of `token` (nothing happens if there is none).
pub async fn delete(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api.web_sessions WHERE token_hash = $1")
        .bind(hash(token))
        .execute(pool)
        .await?;
    Ok(())
}
