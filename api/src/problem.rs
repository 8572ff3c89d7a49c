//! RFC 7807 problem details: the only shape an error leaves the API in.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// Media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable, documented error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedBody,
    /// The body has a field the schema does not define.
    UnknownField,
    /// A field has the wrong JSON type, or a required field is missing.
    WrongType,
    /// The body is not sent as `application/json`.
    UnsupportedMediaType,
    /// The body exceeds the size limit.
    BodyTooLarge,
    /// An amount is not a positive decimal integer string of base units, or is too large.
    InvalidAmount,
    /// An address is malformed or not EIP-55 checksummed.
    InvalidAddress,
    /// A split's shares do not sum to the scale, or a share is zero.
    SharesMismatch,
    /// A payee appears twice in one split.
    DuplicatePayee,
    /// A split has more payees than allowed.
    TooManyPayees,
    /// The token (or chain) is not accepted.
    UnknownToken,
    /// A path or query parameter is malformed.
    InvalidParameter,
    /// A URL (a webhook endpoint) is malformed or not `http(s)://`.
    InvalidUrl,
    /// The payment exceeds the integrator's single-payment maximum or rolling 24-hour cap.
    LimitExceeded,
    /// A submission has no `Idempotency-Key` header.
    IdempotencyKeyMissing,
    /// The idempotency key was used before with a different body.
    IdempotencyConflict,
    /// The payment is already in a signed batch and can no longer be cancelled.
    NotCancellable,
    /// No or an unknown API key.
    Unauthenticated,
    /// The key is valid but its role may not do this.
    Forbidden,
    /// The resource does not exist (or is not visible to this key).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Too many requests for this key; retry after the `Retry-After` seconds.
    RateLimited,
    /// A dependency (database, chain, HSM) is not reachable right now.
    Unavailable,
    /// Something failed on our side; details are in our logs, not here.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [Self; 24] = [
        Self::MalformedBody,
        Self::UnknownField,
        Self::WrongType,
        Self::UnsupportedMediaType,
        Self::BodyTooLarge,
        Self::InvalidAmount,
        Self::InvalidAddress,
        Self::SharesMismatch,
        Self::DuplicatePayee,
        Self::TooManyPayees,
        Self::UnknownToken,
        Self::InvalidParameter,
        Self::InvalidUrl,
        Self::LimitExceeded,
        Self::IdempotencyKeyMissing,
        Self::IdempotencyConflict,
        Self::NotCancellable,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The HTTP status this code is always sent with.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MalformedBody => StatusCode::BAD_REQUEST,
            Self::UnknownField => StatusCode::BAD_REQUEST,
            Self::WrongType => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidAmount => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidAddress => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SharesMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::DuplicatePayee => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyPayees => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownToken => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidParameter => StatusCode::BAD_REQUEST,
            Self::InvalidUrl => StatusCode::UNPROCESSABLE_ENTITY,
            Self::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyMissing => StatusCode::BAD_REQUEST,
            Self::IdempotencyConflict => StatusCode::CONFLICT,
            Self::NotCancellable => StatusCode::CONFLICT,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short human title, constant per code.
    pub const fn title(self) -> &'static str {
        match self {
            Self::MalformedBody => "Malformed request body",
            Self::UnknownField => "Unknown field",
            Self::WrongType => "Wrong type",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::BodyTooLarge => "Body too large",
            Self::InvalidAmount => "Invalid amount",
            Self::InvalidAddress => "Invalid address",
            Self::SharesMismatch => "Shares do not sum to the scale",
            Self::DuplicatePayee => "Duplicate payee",
            Self::TooManyPayees => "Too many payees",
            Self::UnknownToken => "Unknown token or chain",
            Self::InvalidParameter => "Invalid parameter",
            Self::InvalidUrl => "Invalid URL",
            Self::LimitExceeded => "Limit exceeded",
            Self::IdempotencyKeyMissing => "Idempotency-Key required",
            Self::IdempotencyConflict => "Idempotency key reused with a different request",
            Self::NotCancellable => "Payment can no longer be cancelled",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Not allowed for this key",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::RateLimited => "Rate limited",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }
}

/// An error as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a detail for the client (what was wrong and how to fix it).
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header of `seconds`.
    #[must_use]
    pub const fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The client-facing detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// An internal failure: `cause` is logged, the client sees a generic detail.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "the request could not be completed; try again later",
        )
    }

    /// A database failure: `unavailable` (retry) when the database cannot be reached, otherwise
    /// `internal`. The cause is logged, never returned.
    pub fn database(cause: &sqlx::Error) -> Self {
        match cause {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %cause, "database unreachable");
                Self::new(
                    ErrorCode::Unavailable,
                    "the database is not reachable right now; retry shortly",
                )
                .retry_after(1)
            }
            other => Self::internal(other),
        }
    }

    /// The stable code.
    pub const fn code(&self) -> ErrorCode {
        self.code
    }
}

/// The problem+json body (RFC 7807) with our stable `code`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Constant per code.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong and how to fix it.
    pub detail: String,
    /// The stable code.
    pub code: ErrorCode,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: ErrorCode,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let code_name = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = ProblemBody {
            kind: format!("https://settle.dev/problems/{code_name}"),
            title: self.code.title(),
            status: status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let mut response = match serde_json::to_vec(&body) {
            Ok(bytes) => (status, bytes).into_response(),
            Err(_) => status.into_response(),
        };
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn render(err: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).expect("json body"),
        )
    }

    #[tokio::test]
    async fn client_mistake_is_problem_json_with_code() {
        let (status, content_type, body) = render(ApiError::new(
            ErrorCode::SharesMismatch,
            "shares sum to 999999",
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(content_type, PROBLEM_JSON);
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://settle.dev/problems/shares_mismatch",
                "title": "Shares do not sum to the scale",
                "status": 422,
                "detail": "shares sum to 999999",
                "code": "shares_mismatch",
            })
        );
    }

    #[tokio::test]
    async fn internal_error_hides_its_cause() {
        let cause = std::io::Error::other("connection to 10.0.0.5:5432 refused");
        let (status, _, body) = render(ApiError::internal(&cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        assert!(
            !body.to_string().contains("10.0.0.5"),
            "leaked cause: {body}"
        );
    }

    #[test]
    fn auth_failures_are_distinct() {
        assert_eq!(
            ErrorCode::Unauthenticated.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(ErrorCode::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorCode::IdempotencyConflict.status(),
            StatusCode::CONFLICT
        );
    }
}
