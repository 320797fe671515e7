//! Errors as the API reports them: `{"error": {"code": "...", "message": "..."}}` with a status
//! that says what kind of failure it is. Internal details never reach a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tabledb::ErrorKind;
use tabledb::procedure::ProcError;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

/// Marks a response as an internal error whose detail must only be logged.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// An unexpected failure: the client sees a generic message with the request id, the log
    /// sees `detail`.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn overloaded() -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the server is busy; retry later")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            // The body is written by the request-id layer, which logs the detail.
            let mut r = self.status.into_response();
            r.extensions_mut().insert(InternalDetail(self.message));
            return r;
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<tabledb::Error> for ApiError {
    fn from(e: tabledb::Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Limit => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            err.retry_after = Some(5);
        }
        err
    }
}

impl From<ProcError> for ApiError {
    fn from(e: ProcError) -> ApiError {
        match e {
            ProcError::Db(db) => db.into(),
            ProcError::NotFound(_) => ApiError::not_found("unknown_procedure", e.to_string()),
            ProcError::BadParams { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_parameters", e.to_string())
            }
            ProcError::Failed(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "procedure_failed", m),
            ProcError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ProcError::Panicked { .. } | ProcError::BadResult { .. } => ApiError::internal(e.to_string()),
            ProcError::TimedOut { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timed_out", e.to_string())
            }
            ProcError::Nested { .. } => ApiError::bad_request(e.to_string()),
            ProcError::Overloaded => ApiError::overloaded(),
            ProcError::ShuttingDown => ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "the server is shutting down",
                )
            },
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A procedure's result that is not JSON is a mistake in the program, answered like a
    /// panic (500, the detail only logged), not as the procedure's own error (422).
    #[test]
    fn a_result_that_is_not_json_is_an_internal_error() {
        let e = ApiError::from(ProcError::BadResult { procedure: "p".into(), detail: "NaN".into() });
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code, "internal");
        let failed = ApiError::from(ProcError::Failed("no".into()));
        assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
