//! Webhooks: integrators register endpoints and are told when a payment's status changes.
//!
//! Each POST carries `{"type": "payment.status_changed", "payment": {...}}` and a
//! `Settle-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` header, where
//! `secret` is shown once, when the endpoint is registered. Receivers should
//! check the signature and that `t` is recent, and treat events as
//! at-least-once (the event `id` is stable across retries).

mod store;
pub mod worker;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub use worker::{DeliveryConfig, WebhookError, Worker, deliver_once, run, signature};

use crate::{
    auth::Principal,
    extract::{Body, Params, PathParams},
    page::{self, Listing},
    payments::{Payment, PaymentStatus, read_scope, submitting_integrator, time},
    problem::{ApiError, ErrorCode},
    state::AppState,
    validate,
};

/// The header carrying an event's signature.
pub const SIGNATURE_HEADER: &str = "settle-signature";
/// The type of the event sent when a payment's status changes.
pub const EVENT_PAYMENT_STATUS_CHANGED: &str = "payment.status_changed";
/// Most endpoints one integrator may register.
pub const MAX_ENDPOINTS: i64 = 16;

/// The webhook routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(list_deliveries))
}

/// What an endpoint receives.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// The event's id, the same on every retry.
    pub id: Uuid,
    /// `payment.status_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the status changed.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The status before.
    pub previous_status: PaymentStatus,
    /// The payment, with `status` as this change left it.
    pub payment: Payment,
}

/// An endpoint to register.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed: an absolute `http://` or `https://` URL.
    #[schema(example = "https://shop.example.com/settle/events")]
    pub url: String,
}

/// A registered endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Its id.
    pub id: Uuid,
    /// The integrator it belongs to.
    pub integrator: String,
    /// Where events go.
    pub url: String,
    /// When it was registered.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A newly registered endpoint, with its signing secret (shown this once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    /// Its id.
    pub id: Uuid,
    /// The integrator it belongs to.
    pub integrator: String,
    /// Where events go.
    pub url: String,
    /// The HMAC-SHA256 key of `Settle-Signature`. Store it now: it is not shown again.
    pub secret: String,
    /// When it was registered.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Registered endpoints.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<Webhook>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; `next_retry_at` says when it is tried.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; it is not tried again.
    Failed,
}

/// One attempt to deliver.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// What the endpoint answered, if it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed, if it did.
    pub error: Option<String>,
    /// When it was made.
    #[schema(format = DateTime)]
    pub at: String,
}

/// An event's delivery to one endpoint, with its log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The delivery's id.
    pub id: Uuid,
    /// The event's id (the `id` in the body sent).
    pub event_id: Uuid,
    /// The event's type.
    pub event: String,
    /// The payment the event is about.
    pub payment: Uuid,
    /// The payment's status as the event reports it.
    pub payment_status: PaymentStatus,
    /// Where the delivery stands.
    pub status: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// What the endpoint answered last, if it answered.
    pub last_status_code: Option<u16>,
    /// When it is tried next (pending deliveries).
    #[schema(format = DateTime)]
    pub next_retry_at: Option<String>,
    /// When it was delivered.
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// When the event was enqueued for this endpoint.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Every attempt, first first.
    pub log: Vec<DeliveryAttempt>,
}

/// A page of deliveries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Deliveries per page (1 to the server's page size; default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn new_secret() -> String {
    let mut bytes = Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    format!("whsec_{}", alloy::hex::encode(bytes))
}

fn corrupt(what: &str, value: impl std::fmt::Debug) -> ApiError {
    ApiError::internal(&std::io::Error::other(format!(
        "stored {what} is malformed: {value:?}"
    )))
}

/// Registers an endpoint for the calling integrator; the answer carries its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`malformed_body`, `unknown_field`, `wrong_type`"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: not an integrator key"),
        (status = 413, body = crate::problem::Problem, content_type = "application/problem+json", description = "`body_too_large`"),
        (status = 415, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unsupported_media_type`"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_url`; `limit_exceeded` (16 endpoints per integrator)"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Body<NewWebhook>, ApiError>,
) -> Result<Response, ApiError> {
    let integrator = submitting_integrator(&principal)?;
    let Body(body) = body?;
    let url = validate::url("url", &body.url)?;
    let secret = new_secret();
    let endpoint = store::create_endpoint(
        state.pool(),
        integrator,
        url.as_str(),
        &secret,
        MAX_ENDPOINTS,
    )
    .await
    .map_err(|e| ApiError::database(&e))?
    .ok_or_else(|| {
        ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "this integrator already has {MAX_ENDPOINTS} webhook endpoints, the most allowed"
            ),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            id: endpoint.id,
            integrator: endpoint.integrator,
            url: endpoint.url,
            secret,
            created_at: time(&endpoint.created_at),
        }),
    )
        .into_response())
}

/// The caller's endpoints (every integrator's for auditors and admins), without their secrets.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    responses(
        (status = 200, body = WebhookList),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: a merchant key"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<WebhookList>, ApiError> {
    let scope = read_scope(&principal)?;
    let endpoints = store::endpoints(state.pool(), scope_owner(scope))
        .await
        .map_err(|e| ApiError::database(&e))?;
    Ok(Json(WebhookList {
        webhooks: endpoints
            .into_iter()
            .map(|e| Webhook {
                id: e.id,
                integrator: e.integrator,
                url: e.url,
                created_at: time(&e.created_at),
            })
            .collect(),
    }))
}

const fn scope_owner(scope: settle_relayer::query::Scope<'_>) -> Option<&str> {
    match scope {
        settle_relayer::query::Scope::All => None,
        settle_relayer::query::Scope::Integrator(name) => Some(name),
    }
}

/// The delivery log of one endpoint, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id"), DeliveryParams),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "`invalid_parameter`: a malformed id, limit or cursor"),
        (status = 401, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unauthenticated`"),
        (status = 403, body = crate::problem::Problem, content_type = "application/problem+json", description = "`forbidden`: a merchant key"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "`not_found` (also another integrator's endpoint)"),
        (status = 429, body = crate::problem::Problem, content_type = "application/problem+json", description = "`rate_limited`"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "`internal`"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "`unavailable`"),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<PathParams<Uuid>, ApiError>,
    params: Result<Params<DeliveryParams>, ApiError>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let scope = read_scope(&principal)?;
    let PathParams(id) = id?;
    let Params(params) = params?;
    let limit = page::limit(params.limit, state.config().max_page)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| page::decode(Listing::Deliveries, c))
        .transpose()?;
    store::endpoint(state.pool(), scope_owner(scope), id)
        .await
        .map_err(|e| ApiError::database(&e))?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no webhook endpoint {id}")))?;
    let (rows, more) = store::deliveries(state.pool(), id, before, limit)
        .await
        .map_err(|e| ApiError::database(&e))?;
    let next_cursor = if more {
        rows.last()
            .map(|d| page::encode(Listing::Deliveries, d.seq))
    } else {
        None
    };
    let deliveries = rows
        .into_iter()
        .map(|d| {
            let status = match d.status.as_str() {
                "pending" => DeliveryState::Pending,
                "delivered" => DeliveryState::Delivered,
                "failed" => DeliveryState::Failed,
                other => return Err(corrupt("delivery status", other)),
            };
            let payment_status =
                settle_relayer::intake::InstructionStatus::parse(&d.payment_status)
                    .ok_or_else(|| corrupt("payment status", &d.payment_status))?;
            let code = |c: Option<i32>| c.and_then(|c| u16::try_from(c).ok());
            Ok(Delivery {
                id: d.id,
                event_id: d.event,
                event: d.event_type,
                payment: d.payment,
                payment_status: payment_status.into(),
                status,
                attempts: u32::try_from(d.attempts).unwrap_or_default(),
                last_status_code: code(d.last_status_code),
                next_retry_at: d.next_attempt_at.as_ref().map(time),
                delivered_at: d.delivered_at.as_ref().map(time),
                created_at: time(&d.created_at),
                log: d
                    .log
                    .into_iter()
                    .map(|a| DeliveryAttempt {
                        attempt: u32::try_from(a.attempt).unwrap_or_default(),
                        status_code: code(a.status_code),
                        error: a.error,
                        at: time(&a.started_at),
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(DeliveryPage {
        deliveries,
        next_cursor,
    }))
}
