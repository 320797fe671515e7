//! Extractors whose every rejection is an API error: a JSON body (415 for a wrong content type,
//! 413 for a body over the limit, 400 naming what is wrong with the JSON) and path parameters
//! (400 naming the parameter). Serde's Rust type names never reach the client.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the body must be JSON with Content-Type: application/json",
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(format!(
                    "the body is not valid JSON: {}",
                    without_type_names(&e.body_text())
                )),
                JsonRejection::JsonDataError(e) => ApiError::bad_request(without_type_names(&e.body_text())),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is over the size limit",
                    )
                }
                other => ApiError::bad_request(other.body_text()),
            }),
        }
    }
}

/// Replaces the Rust type names serde puts in its messages (`expected struct CreateTable`,
/// `expected struct FieldDef with 2 elements`) with what the client should send.
fn without_type_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) =
        [rest.find("expected struct "), rest.find("expected enum ")].into_iter().flatten().min()
    {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (kind, after) = match after.strip_prefix("expected struct ") {
            Some(a) => ("a JSON object", a),
            None => ("one of the allowed values", &after["expected enum ".len()..]),
        };
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let mut after = &after[name_len..];
        // `with N element(s)`: serde's wording when an array was given for a struct.
        if let Some(w) = after.strip_prefix(" with ") {
            let digits = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
            let w = &w[digits..];
            if digits > 0 {
                after = w.strip_prefix(" elements").or_else(|| w.strip_prefix(" element")).unwrap_or(after);
            }
        }
        out.push_str("expected ");
        out.push_str(kind);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Path parameters whose every rejection is an API error (JSON, 400 naming the parameter),
/// instead of axum's plain-text one.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request(without_type_names(&e.body_text())))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_type_names;

    #[test]
    fn type_names_are_replaced() {
        assert_eq!(
            without_type_names("invalid type: integer `5`, expected struct CreateTable at line 1 column 1"),
            "invalid type: integer `5`, expected a JSON object at line 1 column 1"
        );
        assert_eq!(
            without_type_names("invalid length 0, expected struct FieldDef with 2 elements at line 1"),
            "invalid length 0, expected a JSON object at line 1"
        );
        assert_eq!(
            without_type_names("x: expected enum E, then expected struct A with 1 element, or enum"),
            "x: expected one of the allowed values, then expected a JSON object, or enum"
        );
        assert_eq!(without_type_names("fields[0]: missing field `type`"), "fields[0]: missing field `type`");
    }
}
