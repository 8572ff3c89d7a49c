//! The web UI: server-rendered pages for merchants, integrators, auditors and operators, under
//! `/ui`, behind the same API keys and roles as the REST API.
//!
//! A key is entered once at `/ui/login`; it opens a server-side session (only the SHA-256 of the
//! session token is stored, see [`session`]) whose token travels in an `HttpOnly`,
//! `SameSite=Strict`, `Path=/ui` cookie without `Max-Age`, so it lives as long as the browser
//! session. Every page resolves the session to the key's [`Principal`] and checks its role with
//! the same functions the JSON handlers use: a wrong role is a 403 page, another owner's resource
//! a 404 page. Pages read through the same library calls as the JSON handlers; templates (askama,
//! checked at compile time) escape everything.
//!
//! The only script is `evidence.js`, ours, which re-checks a payment's evidence against a chain
//! node of the auditor's choice from the browser. No external scripts, fonts or styles are loaded;
//! the Content-Security-Policy says so.

mod chart;
mod deployment;
mod merchant;
mod ops;
mod payments;
mod reconciliation;
pub mod session;

use askama::Template;
use axum::{
    Form, Router,
    extract::{FromRequestParts, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;

use crate::{
    auth::{self, Principal, Role},
    problem::{ApiError, ErrorCode},
    state::AppState,
};

/// The session cookie's name.
pub const COOKIE: &str = "settle_session";

const STYLE: &str = include_str!("style.css");
const EVIDENCE_JS: &str = include_str!("evidence.js");

/// What every page's response carries: no caching, no framing, no foreign content.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src http: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI routes, to merge into the service's router (outside `/v1`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/static/style.css", get(style))
        .route("/ui/static/evidence.js", get(evidence_js))
        .route("/ui/merchant", get(merchant::page))
        .route("/ui/merchant/payouts.csv", get(merchant::csv))
        .route("/ui/payments", get(payments::list))
        .route("/ui/payments/{id}", get(payments::detail))
        .route("/ui/reconciliation", get(reconciliation::runs))
        .route("/ui/evidence/{payment_id}", get(reconciliation::evidence))
        .route("/ui/deployment", get(deployment::page))
        .route("/ui/ops", get(ops::page))
        .route("/ui/{*rest}", get(unknown_page))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it, browsers send `Origin: null` on our own form posts.
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
        .into_response()
}

async fn evidence_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        EVIDENCE_JS,
    )
        .into_response()
}

/// One link of the navigation bar.
#[derive(Debug, Clone)]
pub(crate) struct NavLink {
    href: &'static str,
    label: &'static str,
    current: bool,
}

/// The navigation bar and who is signed in, shown on every page.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    role: String,
    owner: String,
    links: Vec<NavLink>,
}

impl Nav {
    /// The links `principal`'s role may open, with `current` marked.
    pub(crate) fn new(principal: &Principal, current: &str) -> Self {
        let all: [(&'static str, &'static str, &[Role]); 6] = [
            (
                "/ui/merchant",
                "Balances and payouts",
                &[Role::Merchant, Role::Auditor],
            ),
            (
                "/ui/payments",
                "Payments",
                &[Role::Integrator, Role::Auditor],
            ),
            ("/ui/reconciliation", "Reconciliation", &[Role::Auditor]),
            ("/ui/deployment", "Deployment", &[Role::Auditor]),
            ("/ui/ops", "Operations", &[]),
            (
                "/ui/",
                "Home",
                &[Role::Integrator, Role::Merchant, Role::Auditor],
            ),
        ];
        Self {
            role: principal.role.to_string(),
            owner: principal.owner.clone(),
            links: all
                .into_iter()
                .filter(|(_, _, roles)| principal.require(roles).is_ok())
                .map(|(href, label, _)| NavLink {
                    href,
                    label,
                    current: href == current,
                })
                .collect(),
        }
    }
}

/// A page that could not be shown: a redirect to the login form, or an error page.
#[derive(Debug)]
pub(crate) enum UiError {
    /// No live session: log in, then come back to `next`.
    Login {
        /// Where to go after logging in.
        next: String,
    },
    /// An error page with the API's status and message.
    Page {
        /// The status.
        status: StatusCode,
        /// The headline.
        title: String,
        /// What went wrong and what to do.
        detail: String,
        /// The navigation, when someone is signed in.
        nav: Option<Nav>,
    },
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::Page {
            status: e.code().status(),
            title: e.code().title().to_owned(),
            detail: e.detail().to_owned(),
            nav: None,
        }
    }
}

impl UiError {
    /// The same error, shown with `principal`'s navigation.
    pub(crate) fn with_nav(self, principal: &Principal) -> Self {
        match self {
            Self::Page {
                status,
                title,
                detail,
                ..
            } => Self::Page {
                status,
                title,
                detail,
                nav: Some(Nav::new(principal, "")),
            },
            login => login,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<Nav>,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::Login { next } => {
                let target = format!("/ui/login?next={}", encode_query(&next));
                Redirect::to(&target).into_response()
            }
            Self::Page {
                status,
                title,
                detail,
                nav,
            } => {
                let page = ErrorPage {
                    nav,
                    title: &title,
                    status: status.as_u16(),
                    detail: &detail,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

/// The rendered page, or a plain 500 if a template fails (it cannot: askama checks them when
/// the crate compiles, and rendering only fails on a `Display` error).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// Percent-encodes `text` for a query string.
pub(crate) fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signed-in key of a page request, from its session cookie.
#[derive(Debug, Clone)]
pub(crate) struct UiUser(pub(crate) Principal);

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/ui/".to_owned(), |p| p.as_str().to_owned());
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(UiError::Login { next });
        };
        let principal = session::principal(state.pool(), &token)
            .await
            .map_err(|e| UiError::from(ApiError::database(&e)))?
            .ok_or(UiError::Login { next })?;
        state.rate_limiter().check(principal.key_id)?;
        Ok(Self(principal))
    }
}

/// Where a role lands after logging in.
const fn landing(role: Role) -> &'static str {
    match role {
        Role::Merchant => "/ui/merchant",
        Role::Integrator => "/ui/payments",
        Role::Auditor => "/ui/reconciliation",
        Role::Admin => "/ui/ops",
    }
}

/// A safe place to go back to: a path under `/ui/` (never another site).
fn local_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.starts_with("/ui/")
            && !n.starts_with("/ui//")
            && !n.contains('\\')
            && !n.starts_with("/ui/login")
    })
    .map(str::to_owned)
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    links: Vec<NavLink>,
}

async fn home(UiUser(principal): UiUser) -> Response {
    let nav = Nav::new(&principal, "/ui/");
    let links = nav
        .links
        .iter()
        .filter(|l| l.href != "/ui/")
        .cloned()
        .collect();
    render(&HomePage { nav, links })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Option<Nav>,
    next: &'a str,
    error: Option<&'a str>,
}

/// `?next=` of the login form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    let next = local_next(query.next.as_deref()).unwrap_or_default();
    render(&LoginPage {
        nav: None,
        next: &next,
        error: None,
    })
}

/// The login form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    next: Option<String>,
}

fn set_cookie(token: &str) -> HeaderValue {
    // No Max-Age or Expires: the browser forgets it when its session ends.
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("settle_session=; Path=/ui; Max-Age=0"))
}

async fn unknown_page() -> UiError {
    not_found("there is no such page; start from /ui/")
}

/// Whether a form post comes from our own pages: a browser names the page's origin in `Origin`,
/// which must be this host (a post from another site could otherwise log a victim in with the
/// attacker's key). Clients that send no `Origin` are not browsers posting across sites.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

fn cross_site() -> Response {
    UiError::from(ApiError::new(
        ErrorCode::Forbidden,
        "this form was posted from another site; open the page here and post it again",
    ))
    .into_response()
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let next = local_next(form.next.as_deref());
    let principal = match auth::authenticate(state.pool(), form.key.trim()).await {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            let page = LoginPage {
                nav: None,
                next: next.as_deref().unwrap_or_default(),
                error: Some("That key is unknown or revoked. Check it and try again."),
            };
            return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
        }
        Err(e) => return UiError::from(ApiError::database(&e)).into_response(),
    };
    if let Err(e) = state.rate_limiter().check(principal.key_id) {
        return UiError::from(e).into_response();
    }
    match session::create(state.pool(), principal.key_id).await {
        Ok(token) => {
            let target = next.unwrap_or_else(|| landing(principal.role).to_owned());
            let mut response = Redirect::to(&target).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&token));
            response
        }
        Err(e) => UiError::from(ApiError::database(&e)).into_response(),
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(e) = session::delete(state.pool(), &token).await
    {
        return UiError::from(ApiError::database(&e)).into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("settle_session=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"),
    );
    response
}

/// A 404 page for something this key may not see or that does not exist.
pub(crate) fn not_found(detail: impl Into<String>) -> UiError {
    ApiError::new(ErrorCode::NotFound, detail).into()
}

/// A 400 page for a malformed form field.
pub(crate) fn bad_parameter(detail: impl Into<String>) -> UiError {
    ApiError::new(ErrorCode::InvalidParameter, detail).into()
}

/// An empty form field is no filter.
pub(crate) fn given(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// Base units with `decimals` decimals, grouped for reading (`1234500000000000000` with 18 is
/// `1.2345`).
pub(crate) fn decimal(units: &str, decimals: usize) -> String {
    let digits = units.trim_start_matches('0');
    if digits.is_empty() {
        return "0".to_owned();
    }
    let padded = format!("{digits:0>width$}", width = decimals.saturating_add(1));
    let split = padded.len().saturating_sub(decimals);
    let (whole, fraction) = padded.split_at(split);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal("0", 18), "0");
        assert_eq!(decimal("1234500000000000000", 18), "1.2345");
        assert_eq!(decimal("1000000000000000000", 18), "1");
        assert_eq!(decimal("7", 18), "0.000000000000000007");
        assert_eq!(decimal("12", 0), "12");
    }

    #[test]
    fn only_local_ui_paths_are_followed_after_login() {
        assert_eq!(
            local_next(Some("/ui/payments?status=settled")).as_deref(),
            Some("/ui/payments?status=settled")
        );
        assert_eq!(local_next(Some("https://evil.example/ui/")), None);
        assert_eq!(local_next(Some("//evil.example")), None);
        assert_eq!(local_next(Some("/ui//evil.example")), None);
        assert_eq!(local_next(Some("/ui/login")), None);
        assert_eq!(local_next(None), None);
    }

    #[test]
    fn posts_from_other_sites_are_refused() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("header"));
            }
            h
        };
        assert!(same_origin(&headers(None)));
        assert!(same_origin(&headers(Some("http://127.0.0.1:8080"))));
        assert!(!same_origin(&headers(Some("http://evil.example"))));
        assert!(!same_origin(&headers(Some("http://127.0.0.1:8081"))));
        assert!(!same_origin(&headers(Some("null"))));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(encode_query("/ui/a?b=c&d"), "/ui/a%3Fb%3Dc%26d");
    }
}
