//! Operations: liveness, readiness, metrics, the OpenAPI document and a page rendering it.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use alloy::providers::Provider;
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    problem::{ApiError, ErrorCode},
    state::AppState,
};

/// Requests answered, by status class, since start.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// 2xx and 3xx.
    pub ok: AtomicU64,
    /// 4xx.
    pub client_errors: AtomicU64,
    /// 5xx.
    pub server_errors: AtomicU64,
}

/// The process-wide counters.
pub static HTTP: HttpCounters = HttpCounters {
    ok: AtomicU64::new(0),
    client_errors: AtomicU64::new(0),
    server_errors: AtomicU64::new(0),
};

/// Counts a response by its status.
pub fn count(status: StatusCode) {
    let counter = if status.is_server_error() {
        &HTTP.server_errors
    } else if status.is_client_error() {
        &HTTP.client_errors
    } else {
        &HTTP.ok
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Liveness of the process.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when answered.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// What each dependency said.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The database answers.
    pub database: String,
    /// The chain answers (latest block number, or the failure).
    pub chain: String,
    /// The HSM answers.
    pub hsm: String,
}

/// The database, the chain RPC and the HSM all answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "a dependency does not answer")
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(state.pool())
        .await
    {
        Ok(_) => Ok("ok".to_owned()),
        Err(e) => Err(format!(
            "unreachable: {}",
            e.to_string().lines().next().unwrap_or_default()
        )),
    };
    let chain = match state
        .rpc()
        .call(
            "eth_blockNumber",
            |p| async move { p.get_block_number().await },
        )
        .await
    {
        Ok(n) => Ok(format!("ok, block {n}")),
        Err(e) => Err(format!("unreachable: {e}")),
    };
    let hsm = match state.hsm() {
        Some(probe) => probe().map(|()| "ok".to_owned()),
        None => Ok("not used by this process".to_owned()),
    };
    let ready = database.is_ok() && chain.is_ok() && hsm.is_ok();
    let flat = |r: Result<String, String>| r.unwrap_or_else(|e| e);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        database: flat(database),
        chain: flat(chain),
        hsm: flat(hsm),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics: the relayer's gauges, the indexer's (when it runs in this process) and
/// this process's request counters.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let config = state.config();
    let snapshot = settle_relayer::metrics::collect(
        state.pool(),
        state.rpc(),
        &config.senders,
        config.low_balance_wei,
        state.signing_stats(),
    )
    .await
    .map_err(|e| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("metrics are not readable now: {e}"),
        )
    })?;
    let mut text = snapshot.render();
    text.push_str(&state.extra_metrics());
    let _ = writeln!(
        text,
        "# HELP settle_api_responses_total Responses by status class.\n# TYPE settle_api_responses_total counter"
    );
    for (class, counter) in [
        ("2xx_3xx", &HTTP.ok),
        ("4xx", &HTTP.client_errors),
        ("5xx", &HTTP.server_errors),
    ] {
        let _ = writeln!(
            text,
            "settle_api_responses_total{{class=\"{class}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Renders the OpenAPI document as one readable page, without scripts from elsewhere.
pub fn docs_page(openapi: &utoipa::openapi::OpenApi) -> Html<String> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>settle API</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}code{background:#f2f2f2;padding:0 .2rem}\
         h2{border-top:1px solid #ccc;padding-top:1rem}.m{font-weight:700;display:inline-block;min-width:4rem}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>{} {}</h1><p>{}</p><p>The machine-readable document is at <a href=\"/openapi.json\">/openapi.json</a>. Errors are <code>application/problem+json</code> with a stable <code>code</code>.</p>",
        escape(&openapi.info.title),
        escape(&openapi.info.version),
        escape(openapi.info.description.as_deref().unwrap_or_default())
    );
    for (path, item) in &openapi.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let _ = write!(
                html,
                "<h2><span class=\"m\">{method}</span> <code>{}</code></h2><p>{}</p>",
                escape(path),
                escape(
                    op.description
                        .as_deref()
                        .or(op.summary.as_deref())
                        .unwrap_or_default()
                )
            );
            if let Some(params) = &op.parameters {
                html.push_str("<ul>");
                for p in params {
                    let _ = write!(
                        html,
                        "<li><code>{}</code> ({}{}): {}</li>",
                        escape(&p.name),
                        match p.parameter_in {
                            utoipa::openapi::path::ParameterIn::Path => "path",
                            utoipa::openapi::path::ParameterIn::Query => "query",
                            utoipa::openapi::path::ParameterIn::Header => "header",
                            utoipa::openapi::path::ParameterIn::Cookie => "cookie",
                        },
                        if matches!(p.required, utoipa::openapi::Required::True) {
                            ", required"
                        } else {
                            ""
                        },
                        escape(p.description.as_deref().unwrap_or_default())
                    );
                }
                html.push_str("</ul>");
            }
            html.push_str("<p>Responses: ");
            let codes: Vec<String> = op.responses.responses.keys().map(|k| escape(k)).collect();
            html.push_str(&codes.join(", "));
            html.push_str("</p>");
        }
    }
    html.push_str("</body></html>");
    Html(html)
}
