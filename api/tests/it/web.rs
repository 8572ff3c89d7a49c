//! The web UI's sessions and refusals over plain HTTP (the pages themselves are checked in
//! Chromium by `cli/tests/it/browser.rs`): a key opens a session whose token is stored hashed,
//! roles are checked as in the API, a revoked key or a logout ends the session, and posts from
//! other sites are refused.

use reqwest::{StatusCode, header};
use settle_api::{Role, auth};
use sha2::{Digest, Sha256};

use crate::harness::TestApi;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A form post's body (the values here need no escaping but `_` and alphanumerics).
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_text(response: &reqwest::Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Logs in with `key`; answers the session cookie's token.
async fn login(api: &TestApi, key: &str) -> String {
    let response = client()
        .post(format!("{}/ui/login", api.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("key", key), ("next", "")]))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = header_text(&response, header::SET_COOKIE);
    let (token, attributes) = cookie
        .strip_prefix("settle_session=")
        .and_then(|c| c.split_once("; "))
        .expect("a session cookie");
    assert_eq!(attributes, "HttpOnly; SameSite=Strict; Path=/ui");
    token.to_owned()
}

async fn page(api: &TestApi, path: &str, token: &str) -> (StatusCode, String, String) {
    let response = client()
        .get(format!("{}{path}", api.base))
        .header(header::COOKIE, format!("settle_session={token}"))
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let location = header_text(&response, header::LOCATION);
    (status, location, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_key_opens_a_session_that_its_role_limits_and_revocation_ends() {
    let api = TestApi::start().await;
    let merchant = "0x3E00000000000000000000000000000000000000";
    let key = api.key(Role::Merchant, merchant).await;

    // Nothing without a session: the login form, which comes back to the page asked for.
    let bare = client()
        .get(format!("{}/ui/merchant?token=x", api.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(bare.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header_text(&bare, header::LOCATION),
        "/ui/login?next=/ui/merchant%3Ftoken%3Dx"
    );
    assert!(
        header_text(&bare, header::CONTENT_SECURITY_POLICY)
            .starts_with("default-src 'none'; script-src 'self';")
    );

    // A wrong key is refused on the form.
    let wrong = client()
        .post(format!("{}/ui/login", api.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("key", "settle_000000000000_nope")]))
        .send()
        .await
        .expect("answered");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .expect("body")
            .contains("That key is unknown or revoked.")
    );

    // A session: only the token's SHA-256 is stored.
    let token = login(&api, &key).await;
    assert_eq!(token.len(), 64);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api.web_sessions")
        .fetch_all(api.db.pool())
        .await
        .expect("sessions");
    assert_eq!(stored, vec![Sha256::digest(token.as_bytes()).to_vec()]);

    let (status, _, html) = page(&api, "/ui/merchant", &token).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("<code id=\"merchant-address\">{merchant}</code>")));
    // Another merchant's page is not found, the payments are forbidden: as in the API.
    let (status, _, html) = page(
        &api,
        "/ui/merchant?address=0x3e00000000000000000000000000000000000001",
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
    assert!(
        html.contains("404: no merchant 0x3e00000000000000000000000000000000000001 for this key"),
        "{html}"
    );
    let (status, _, html) = page(&api, "/ui/payments", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains(
        "403: this route is for integrator, auditor or admin keys; this key&#39;s role is merchant"
    ), "{html}");
    let (status, _, _) = page(&api, "/ui/no-such-page", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Revoking the key ends its sessions.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT key_id FROM api.web_sessions")
        .fetch_one(api.db.pool())
        .await
        .expect("session");
    assert!(auth::revoke_key(api.db.pool(), id).await.expect("revoked"));
    let (status, location, _) = page(&api, "/ui/merchant", &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/ui/login?next=/ui/merchant");
}

#[tokio::test]
async fn logout_deletes_the_session_and_other_sites_cannot_post() {
    let api = TestApi::start().await;
    let key = api.key(Role::Auditor, "alice").await;
    let token = login(&api, &key).await;

    let cross = client()
        .post(format!("{}/ui/login", api.base))
        .header(header::ORIGIN, "http://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("key", key.as_str())]))
        .send()
        .await
        .expect("answered");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(cross.headers().get(header::SET_COOKIE).is_none());

    let logout = client()
        .post(format!("{}/ui/logout", api.base))
        .header(header::COOKIE, format!("settle_session={token}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header_text(&logout, header::SET_COOKIE),
        "settle_session=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM api.web_sessions")
        .fetch_one(api.db.pool())
        .await
        .expect("count");
    assert_eq!(left, 0);
    let (status, _, _) = page(&api, "/ui/reconciliation", &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}
