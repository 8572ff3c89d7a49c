//! The REST face of settle.
//!
//! This crate owns the HTTP surface: routes, authentication, request
//! validation and the one error type every handler returns, rendered as
//! RFC 7807 `application/problem+json` with a stable machine-readable `code`.
//! The OpenAPI document is generated from the handlers themselves. The same
//! process serves the web pages under `/ui` ([`web`]), behind the same keys and roles.
//!
//! It must never reach into the relayer's or the indexer's tables: it calls
//! their libraries. It must never answer a client's mistake with a 500, and
//! never put internal details (SQL, RPC errors, key labels) in a response.

pub mod auditors;
pub mod auth;
pub mod batches;
pub mod extract;
mod listing;
pub mod merchants;
pub mod ops;
mod page;
pub mod payments;
pub mod problem;
pub mod ratelimit;
pub mod reconciliation;
pub mod state;
pub mod validate;
pub mod web;
pub mod webhooks;

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request},
    http::HeaderName,
    response::{IntoResponse, Response},
    routing::get,
};
use sqlx::migrate::Migrator;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use auth::{Principal, Role};
pub use problem::{ApiError, ErrorCode};
pub use state::{ApiConfig, AppState};

/// The API's own schema (API keys, webhooks).
pub static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// The header carrying the request id (taken from the client or made here), echoed in the response.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "settle",
        description = "Split-payment settlement: submit payments, follow them to on-chain settlement, read payouts and the evidence behind them. Amounts are decimal strings of integer base units; addresses are EIP-55. Authenticate with `Authorization: Bearer <api key>`.",
    ),
    components(schemas(problem::Problem, problem::ErrorCode, webhooks::Event)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "payments", description = "Submit payments, follow them to settlement, cancel them before they are batched"),
        (name = "batches", description = "Signed batches and their on-chain record"),
        (name = "webhooks", description = "Endpoints told of every payment status change (`payment.status_changed`, see the `Event` schema), signed with `Settle-Signature`"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes of every part, with the OpenAPI document they describe.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::whoami))
        .merge(payments::routes())
        .merge(batches::routes())
        .merge(webhooks::routes())
        .merge(merchants::routes())
        .merge(auditors::routes())
        .merge(reconciliation::routes())
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route; see /docs")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take this method; see /docs",
    )
}

async fn count_responses(response: Response) -> Response {
    ops::count(response.status());
    response
}

/// The whole HTTP service.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi = Arc::new(openapi);
    let docs = ops::docs_page(&openapi);
    let request_id = HeaderName::from_static(REQUEST_ID);
    api.route(
        "/openapi.json",
        get(move || {
            let openapi = Arc::clone(&openapi);
            async move { Json(openapi.as_ref().clone()).into_response() }
        }),
    )
    .route("/docs", get(move || async move { docs.clone() }))
    .merge(web::routes())
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
    .layer(axum::middleware::map_response(count_responses))
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
    }))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
