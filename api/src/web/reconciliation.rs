//! The auditor's pages: reconciliation runs with their findings, and a payment's evidence, which
//! the browser re-checks against a chain node (see `evidence.js`) so that the auditor need not
//! trust this server.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::{Redirect, Response},
};
use serde::Deserialize;
use settle_indexer::reconcile;

use super::{Nav, UiError, UiUser, bad_parameter, encode_query, given, render};
use crate::{
    auditors::{self, Evidence},
    auth::Role,
    problem::ApiError,
    reconciliation::{RunView, unavailable, view},
    state::AppState,
    validate,
};

#[derive(Template)]
#[template(path = "reconciliation.html")]
struct RunsPage {
    nav: Nav,
    runs: Vec<RunView>,
}

/// `?payment_id=` of the evidence lookup form.
#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    payment_id: Option<String>,
}

/// `GET /ui/reconciliation` (with `?payment_id=`, a redirect to that payment's evidence).
pub(crate) async fn runs(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Query(q): Query<RunsQuery>,
) -> Result<Response, UiError> {
    principal
        .require(&[Role::Auditor])
        .map_err(|e| UiError::from(e).with_nav(&principal))?;
    if let Some(id) = given(q.payment_id.as_deref()) {
        return Ok(axum::response::IntoResponse::into_response(Redirect::to(
            &format!("/ui/evidence/{}", encode_query(id)),
        )));
    }
    let runs = reconcile::recent_runs(state.pool(), 50)
        .await
        .map_err(|e| UiError::from(unavailable(&e)).with_nav(&principal))?;
    Ok(render(&RunsPage {
        nav: Nav::new(&principal, "/ui/reconciliation"),
        runs: runs.into_iter().map(view).collect(),
    }))
}

#[derive(Template)]
#[template(path = "evidence.html")]
struct EvidencePage {
    nav: Nav,
    evidence: Evidence,
    /// The evidence as JSON, for the script (escaped into an attribute by the template).
    claims: String,
    /// The node the browser asks by default (the auditor may name another).
    rpc: String,
}

/// `GET /ui/evidence/{payment_id}`.
pub(crate) async fn evidence(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Path(payment_id): Path<String>,
) -> Result<Response, UiError> {
    let result: Result<_, UiError> = async {
        principal.require(&[Role::Auditor])?;
        if !payment_id.starts_with("0x") {
            return Err(bad_parameter(format!(
                "{payment_id:?} is not an on-chain payment id (0x and 64 hex digits)"
            )));
        }
        let id = validate::bytes32("payment_id", &payment_id)?;
        let evidence = auditors::evidence_of(&state, id).await?;
        let claims = serde_json::to_string(&evidence).map_err(|e| ApiError::internal(&e))?;
        Ok((evidence, claims))
    }
    .await;
    let (evidence, claims) = result.map_err(|e| e.with_nav(&principal))?;
    let rpc = state
        .rpc()
        .health()
        .into_iter()
        .next()
        .map(|h| h.url)
        .unwrap_or_default();
    Ok(render(&EvidencePage {
        nav: Nav::new(&principal, "/ui/reconciliation"),
        evidence,
        claims,
        rpc,
    }))
}
