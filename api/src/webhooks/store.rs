//! The webhook tables (schema `api`): endpoints, events, deliveries and their attempts.

use std::collections::HashMap;

use settle_relayer::query::ChangeCursor;
use sqlx::{
    PgConnection, PgPool, Row,
    types::chrono::{DateTime, Utc},
};
use uuid::Uuid;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) id: Uuid,
    pub(crate) integrator: String,
    pub(crate) url: String,
    pub(crate) created_at: DateTime<Utc>,
}

fn endpoint_row(row: &sqlx::postgres::PgRow) -> Result<Endpoint, sqlx::Error> {
    Ok(Endpoint {
        id: row.try_get(0)?,
        integrator: row.try_get(1)?,
        url: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

/// Registers `url` for `integrator` unless it already has `max` endpoints (then `None`).
pub(crate) async fn create_endpoint(
    pool: &PgPool,
    integrator: &str,
    url: &str,
    secret: &str,
    max: i64,
) -> Result<Option<Endpoint>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Serialises one integrator's registrations so the count below holds.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 300002))")
        .bind(integrator)
        .execute(&mut *tx)
        .await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api.webhook_endpoints WHERE integrator = $1")
            .bind(integrator)
            .fetch_one(&mut *tx)
            .await?;
    if count >= max {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO api.webhook_endpoints (id, integrator, url, secret) VALUES ($1, $2, $3, $4)
         RETURNING id, integrator, url, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(integrator)
    .bind(url)
    .bind(secret)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    endpoint_row(&row).map(Some)
}

/// The endpoints of `integrator` (of everyone when `None`), oldest first.
pub(crate) async fn endpoints(
    pool: &PgPool,
    integrator: Option<&str>,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query(
        "SELECT id, integrator, url, created_at FROM api.webhook_endpoints
         WHERE $1::text IS NULL OR integrator = $1 ORDER BY created_at, id",
    )
    .bind(integrator)
    .fetch_all(pool)
    .await?
    .iter()
    .map(endpoint_row)
    .collect()
}

/// One endpoint, if `integrator` (anyone when `None`) owns it.
pub(crate) async fn endpoint(
    pool: &PgPool,
    integrator: Option<&str>,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query(
        "SELECT id, integrator, url, created_at FROM api.webhook_endpoints
         WHERE id = $1 AND ($2::text IS NULL OR integrator = $2)",
    )
    .bind(id)
    .bind(integrator)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(endpoint_row)
    .transpose()
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttemptRow {
    pub(crate) attempt: i32,
    pub(crate) status_code: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) started_at: DateTime<Utc>,
}

/// A delivery with its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryRow {
    pub(crate) id: Uuid,
    pub(crate) seq: i64,
    pub(crate) event: Uuid,
    pub(crate) event_type: String,
    pub(crate) payment: Uuid,
    pub(crate) payment_status: String,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) last_status_code: Option<i32>,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) log: Vec<AttemptRow>,
}

/// Up to `limit` deliveries to `endpoint`, newest first, before `before_seq`; and whether more follow.
pub(crate) async fn deliveries(
    pool: &PgPool,
    endpoint: Uuid,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<(Vec<DeliveryRow>, bool), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.seq, e.id, e.type, e.payment, e.payment_status, d.status, d.attempts,
                d.last_status_code, d.next_attempt_at, d.delivered_at, d.created_at
         FROM api.webhook_deliveries d JOIN api.webhook_events e ON e.id = d.event
         WHERE d.endpoint = $1 AND ($2::bigint IS NULL OR d.seq < $2)
         ORDER BY d.seq DESC LIMIT $3",
    )
    .bind(endpoint)
    .bind(before_seq)
    .bind(i64::from(limit).saturating_add(1))
    .fetch_all(pool)
    .await?;
    let mut deliveries = rows
        .iter()
        .map(|row| {
            Ok(DeliveryRow {
                id: row.try_get(0)?,
                seq: row.try_get(1)?,
                event: row.try_get(2)?,
                event_type: row.try_get(3)?,
                payment: row.try_get(4)?,
                payment_status: row.try_get(5)?,
                status: row.try_get(6)?,
                attempts: row.try_get(7)?,
                last_status_code: row.try_get(8)?,
                next_attempt_at: row.try_get(9)?,
                delivered_at: row.try_get(10)?,
                created_at: row.try_get(11)?,
                log: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let more = deliveries.len() > limit as usize;
    deliveries.truncate(limit as usize);
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let mut log: HashMap<Uuid, Vec<AttemptRow>> = HashMap::new();
    for row in sqlx::query(
        "SELECT delivery, attempt, status_code, error, started_at FROM api.webhook_attempts
         WHERE delivery = ANY($1) ORDER BY delivery, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?
    {
        log.entry(row.try_get(0)?).or_default().push(AttemptRow {
            attempt: row.try_get(1)?,
            status_code: row.try_get(2)?,
            error: row.try_get(3)?,
            started_at: row.try_get(4)?,
        });
    }
    for delivery in &mut deliveries {
        delivery.log = log.remove(&delivery.id).unwrap_or_default();
    }
    Ok((deliveries, more))
}

/// Locks the worker's position in the relayer's change feed until `tx` ends, and reads it.
pub(crate) async fn lock_feed(tx: &mut PgConnection) -> Result<ChangeCursor, sqlx::Error> {
    let (xid, seq): (i64, i64) =
        sqlx::query_as("SELECT xid, seq FROM api.webhook_feed WHERE singleton FOR UPDATE")
            .fetch_one(tx)
            .await?;
    Ok(ChangeCursor { xid, seq })
}

/// Moves the worker's position in the feed.
pub(crate) async fn save_feed(
    tx: &mut PgConnection,
    cursor: ChangeCursor,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api.webhook_feed SET xid = $1, seq = $2 WHERE singleton")
        .bind(cursor.xid)
        .bind(cursor.seq)
        .execute(tx)
        .await?;
    Ok(())
}

/// The endpoints of each of `integrators` that has any.
pub(crate) async fn endpoints_of(
    tx: &mut PgConnection,
    integrators: &[String],
) -> Result<HashMap<String, Vec<Uuid>>, sqlx::Error> {
    let mut found: HashMap<String, Vec<Uuid>> = HashMap::new();
    for row in sqlx::query(
        "SELECT integrator, id FROM api.webhook_endpoints WHERE integrator = ANY($1) ORDER BY created_at, id",
    )
    .bind(integrators)
    .fetch_all(tx)
    .await?
    {
        found.entry(row.try_get(0)?).or_default().push(row.try_get(1)?);
    }
    Ok(found)
}

/// An event to send, with the endpoints it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewEvent {
    pub(crate) id: Uuid,
    pub(crate) event_type: &'static str,
    pub(crate) integrator: String,
    pub(crate) payment: Uuid,
    pub(crate) payment_status: &'static str,
    pub(crate) body: String,
    pub(crate) endpoints: Vec<Uuid>,
}

/// Stores `events` and one pending delivery per endpoint, due now, with two bulk statements.
pub(crate) async fn enqueue(tx: &mut PgConnection, events: &[NewEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let integrators: Vec<&str> = events.iter().map(|e| e.integrator.as_str()).collect();
    let payments: Vec<Uuid> = events.iter().map(|e| e.payment).collect();
    let statuses: Vec<&str> = events.iter().map(|e| e.payment_status).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO api.webhook_events (id, type, integrator, payment, payment_status, body)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[])",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&integrators)
    .bind(&payments)
    .bind(&statuses)
    .bind(&bodies)
    .execute(&mut *tx)
    .await?;
    let (mut delivery_ids, mut event_ids, mut endpoint_ids) = (Vec::new(), Vec::new(), Vec::new());
    for event in events {
        for endpoint in &event.endpoints {
            delivery_ids.push(Uuid::new_v4());
            event_ids.push(event.id);
            endpoint_ids.push(*endpoint);
        }
    }
    sqlx::query(
        "INSERT INTO api.webhook_deliveries (id, event, endpoint, next_attempt_at)
         SELECT d, e, w, now() FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS t(d, e, w)",
    )
    .bind(&delivery_ids)
    .bind(&event_ids)
    .bind(&endpoint_ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) delivery: Uuid,
    pub(crate) event: Uuid,
    pub(crate) attempt: i32,
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) body: String,
    pub(crate) started_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for one attempt each. A claim counts the attempt and moves
/// the delivery's next attempt `lease_secs` ahead, so a worker that dies mid-attempt leaves it due
/// again later, and two workers never attempt it at once.
pub(crate) async fn claim_due(
    pool: &PgPool,
    limit: u32,
    lease_secs: f64,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query(
        "UPDATE api.webhook_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM (SELECT id FROM api.webhook_deliveries
               WHERE status = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due,
              api.webhook_events e, api.webhook_endpoints w
         WHERE d.id = due.id AND e.id = d.event AND w.id = d.endpoint
         RETURNING d.id, e.id, d.attempts, w.url, w.secret, e.body, now()",
    )
    .bind(i64::from(limit))
    .bind(lease_secs)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(Due {
            delivery: row.try_get(0)?,
            event: row.try_get(1)?,
            attempt: row.try_get(2)?,
            url: row.try_get(3)?,
            secret: row.try_get(4)?,
            body: row.try_get(5)?,
            started_at: row.try_get(6)?,
        })
    })
    .collect()
}

/// What became of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    /// The endpoint answered 2xx.
    Delivered,
    /// Try again after this many seconds.
    RetryAfter(f64),
    /// That was the last attempt.
    GiveUp,
}

/// Logs an attempt and moves its delivery on, unless another claim has overtaken it.
pub(crate) async fn record(
    pool: &PgPool,
    due: &Due,
    status_code: Option<u16>,
    error: Option<&str>,
    next: Next,
) -> Result<(), sqlx::Error> {
    let (status, retry_secs) = match next {
        Next::Delivered => ("delivered", None),
        Next::RetryAfter(secs) => ("pending", Some(secs)),
        Next::GiveUp => ("failed", None),
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO api.webhook_attempts (delivery, attempt, status_code, error, started_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery, attempt) DO NOTHING",
    )
    .bind(due.delivery)
    .bind(due.attempt)
    .bind(status_code.map(i32::from))
    .bind(error)
    .bind(due.started_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE api.webhook_deliveries
         SET status = $3, last_status_code = $4,
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() END,
             next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $5) END
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    )
    .bind(due.delivery)
    .bind(due.attempt)
    .bind(status)
    .bind(status_code.map(i32::from))
    .bind(retry_secs.unwrap_or(0.0))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
