//! A JSON body extractor whose every rejection is a problem+json with a stable code.

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, ErrorCode};

/// Like `axum::Json`, but rejections name the problem: `malformed_body`, `unknown_field`,
/// `wrong_type`, `unsupported_media_type` or `body_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

/// The code for a serde message about the body's shape.
pub fn shape_code(message: &str) -> ErrorCode {
    if message.contains("unknown field") {
        ErrorCode::UnknownField
    } else {
        ErrorCode::WrongType
    }
}

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as JSON with `Content-Type: application/json`",
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::new(
                    ErrorCode::MalformedBody,
                    format!("the body is not valid JSON: {}", e.body_text()),
                ),
                JsonRejection::JsonDataError(e) => {
                    let text = e.body_text();
                    ApiError::new(shape_code(&text), text)
                }
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        ErrorCode::BodyTooLarge,
                        "the body is larger than the limit; send fewer payments per request",
                    )
                }
                other => ApiError::new(ErrorCode::MalformedBody, other.body_text()),
            }),
        }
    }
}

/// Like `axum::extract::Query`, but a malformed query string answers `invalid_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidParameter, rejection.body_text()))
    }
}

/// Like `axum::extract::Path`, but a malformed path parameter answers `invalid_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidParameter, rejection.body_text()))
    }
}
