//! Extractors whose every rejection is an API error: a JSON body (415 for a wrong content type,
//! 413 for a body over the limit, 400 naming what is wrong with the JSON) and path parameters
//! (400 naming the parameter). Serde's Rust type names never reach the client.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use serde_path_to_error::Segment;
use tabledb::schema::{SHOWN_NAME_MAX, shown};

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
                JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(capped(format!(
                    "the body is not valid JSON: {}",
                    serde_message(&e).unwrap_or_else(|| shortened(&e.body_text()))
                ))),
                JsonRejection::JsonDataError(e) => ApiError::bad_request(capped(
                    serde_message(&e).unwrap_or_else(|| shortened(&without_type_names(&e.body_text()))),
                )),
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

/// Any JSON value, read like `serde_json::Value` except that an object with the same key twice
/// (`{"hp": 100, "hp": 5}`, at any depth) is refused, naming the key, instead of keeping the
/// last value: which one the client meant is unknown. Costs what reading a `Value` costs (the
/// check is the map insertion itself).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(deserializer).map(|v| v.0)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    let StrictValue(v) = access.next_value()?;
                    slot.insert(v);
                }
                Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format_args!(
                        "the key {} appears twice in one object; give each key once",
                        shown(taken.key())
                    )));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// The most bytes of a message about a refused body. Quoted keys and values are cut short
/// already (see [`shortened`]); this bounds what that cannot see, such as a key holding a
/// backquote or the path to a value nested many levels deep.
const MESSAGE_MAX: usize = 320;

/// `message`, cut to [`MESSAGE_MAX`] bytes (at a character boundary) and followed by its
/// length when longer.
fn capped(message: String) -> String {
    if message.len() <= MESSAGE_MAX {
        return message;
    }
    let end = message.floor_char_boundary(MESSAGE_MAX);
    format!("{}... (a message of {} bytes, cut)", &message[..end], message.len())
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

/// The message of a JSON rejection from serde's own error: where in the body (`fields[0].type`)
/// and what is wrong, each key of the path and each quoted span cut short (see [`shortened`]),
/// and no Rust type names. `None` when the rejection does not carry serde's error.
fn serde_message(rejection: &(dyn std::error::Error + 'static)) -> Option<String> {
    let inner = rejection.source()?.source()?;
    let e = inner.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>()?;
    let message = shortened(&without_type_names(&e.inner().to_string()));
    let segments: Vec<_> = e.path().iter().collect();
    if segments.iter().all(|s| matches!(s, Segment::Unknown)) {
        return Some(message);
    }
    let mut path = String::new();
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if i > 0 {
                    path.push('.');
                }
                if key.len() > SHOWN_NAME_MAX {
                    path.push_str(&shown(key).to_string());
                } else {
                    path.push_str(key);
                }
            }
            Segment::Unknown => {
                if i > 0 {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    Some(format!("{path}: {message}"))
}

/// Cuts short what serde quotes from the request in its messages (`unknown field `...``,
/// `invalid type: string "..."`): a quoted span longer than [`SHOWN_NAME_MAX`] bytes keeps its
/// first bytes and states its length, as `tabledb::schema::shown` does, so that a huge key or value is not
/// echoed back in full.
fn shortened(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open];
        let body = &rest[open + 1..];
        // A `"` span is a Rust string literal: `\"` does not end it.
        let mut close = None;
        let mut escaped = false;
        for (i, b) in body.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if b == b'\\' && quote == b'"' {
                escaped = true;
            } else if b == quote {
                close = Some(i);
                break;
            }
        }
        let Some(close) = close else { break };
        out.push_str(&rest[..open]);
        let span = &body[..close];
        if span.len() > SHOWN_NAME_MAX {
            let end = span.floor_char_boundary(SHOWN_NAME_MAX);
            let quote = char::from(quote);
            out.push_str(&format!("{quote}{}...{quote} ({} bytes)", &span[..end], span.len()));
        } else {
            out.push_str(&rest[open..open + 1 + close + 1]);
        }
        rest = &body[close + 1..];
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
                Err(ApiError::bad_request(shortened(&without_type_names(&e.body_text()))))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{StrictValue, shortened, without_type_names};

    #[test]
    fn strict_values_refuse_repeated_keys_at_any_depth() {
        let read = |text: &str| serde_json::from_str::<StrictValue>(text).map(|v| v.0);
        let v = read(r#"{"a": [1, -2, 0.5, "x", null, true, {"b": {}}], "c": {"d": 1}}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, -2, 0.5, "x", null, true, {"b": {}}], "c": {"d": 1}}));
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["a", "c"], "order is kept");
        for text in
            [r#"{"hp": 100, "hp": 5}"#, r#"{"a": {"hp": 1, "hp": 1}}"#, r#"[{"x": 1}, {"hp": 1, "hp": 2}]"#]
        {
            let e = read(text).unwrap_err().to_string();
            assert!(e.contains("the key `hp` appears twice"), "{text}: {e}");
        }
    }

    #[test]
    fn long_quoted_spans_are_cut_short() {
        let long = "k".repeat(1000);
        assert_eq!(
            shortened(&format!("unknown field `{long}`, expected `fields` at line 1")),
            format!("unknown field `{}...` (1000 bytes), expected `fields` at line 1", "k".repeat(64))
        );
        assert_eq!(
            shortened(&format!("invalid type: string \"{long}\", expected usize")),
            format!("invalid type: string \"{}...\" (1000 bytes), expected usize", "k".repeat(64))
        );
        let msg = "missing field `type`, invalid type: string \"a\\\"b\", expected `x";
        assert_eq!(shortened(msg), msg);
    }

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
