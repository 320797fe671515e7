//! JSON schemas of procedure parameter types, for validation messages and OpenAPI.

use serde_json::{Value, json};

use crate::ids::RecordId;
use crate::types::FixedStr;

/// A type a procedure parameter can have: deserializable from JSON, with a JSON schema.
///
/// Implemented for integers, floats, `bool`, `String`, `FixedStr<N>`, `RecordId`, `Vec<T>`,
/// `Option<T>` (an optional parameter) and `serde_json::Value`. Implement it for your own
/// `serde::Deserialize` types to use them as parameters.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a procedure parameter",
    label = "not a procedure parameter type",
    note = "parameters are deserialized from JSON: use integers, floats, bool, String, FixedStr<N>, RecordId, Vec<T>, Option<T>, serde_json::Value, or implement tabledb::procedure::ParamType for a serde::Deserialize type"
)]
pub trait ParamType: serde::de::DeserializeOwned {
    /// The JSON schema of accepted values.
    fn json_schema() -> Value;
    /// False when the parameter may be omitted (`Option<T>`).
    const REQUIRED: bool = true;

    /// The value of a parameter from its JSON, or what is wrong with it. By default, what
    /// `serde_json` makes of it; types whose range is narrower than their deserialization
    /// accepts (`f32`, `RecordId`, and `Vec<T>` / `Option<T>` of those) check it here, so that
    /// a call gets what [`json_schema`](Self::json_schema) promises.
    fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ParamType for $t {
            fn json_schema() -> Value {
                json!({ "type": "integer", "minimum": <$t>::MIN, "maximum": <$t>::MAX })
            }
        }
    )*};
}

integer!(i8, i16, i32, i64, u8, u16, u32, u64);

impl ParamType for f32 {
    fn json_schema() -> Value {
        json!({ "type": "number", "format": "float" })
    }

    /// Refuses a number that does not fit an `f32` (serde would make it an infinity); a number
    /// within range is rounded to the nearest `f32`.
    fn from_json(value: Value) -> Result<Self, String> {
        let wide: f64 = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let narrow = wide as f32;
        if narrow.is_infinite() && wide.is_finite() {
            return Err(format!("{wide} is out of range for f32"));
        }
        Ok(narrow)
    }
}

impl ParamType for f64 {
    fn json_schema() -> Value {
        json!({ "type": "number", "format": "double" })
    }
}

impl ParamType for bool {
    fn json_schema() -> Value {
        json!({ "type": "boolean" })
    }
}

impl ParamType for String {
    fn json_schema() -> Value {
        json!({ "type": "string" })
    }
}

impl<const N: usize> ParamType for FixedStr<N> {
    /// The capacity counts bytes of UTF-8, which JSON Schema's `maxLength` (characters) cannot
    /// state: it is given in the description and as `x-max-bytes`, as in record schemas.
    fn json_schema() -> Value {
        json!({
            "type": "string",
            "description": format!("at most {N} bytes of UTF-8 (a character takes 1 to 4)"),
            "x-max-bytes": N,
        })
    }
}

impl ParamType for RecordId {
    fn json_schema() -> Value {
        json!({ "type": "integer", "minimum": 1, "maximum": u64::MAX, "description": "a record id" })
    }

    /// Refuses 0: ids start at 1, and 0 never names a record.
    fn from_json(value: Value) -> Result<Self, String> {
        let id: RecordId = serde_json::from_value(value).map_err(|e| e.to_string())?;
        if id.0 == 0 {
            return Err("record ids start at 1; 0 never names a record".into());
        }
        Ok(id)
    }
}

impl<T: ParamType> ParamType for Vec<T> {
    fn json_schema() -> Value {
        json!({ "type": "array", "items": T::json_schema() })
    }

    /// Each item as `T` reads it, naming the first one that is refused.
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| T::from_json(item).map_err(|e| format!("item {i}: {e}")))
                .collect(),
            other => serde_json::from_value(other).map_err(|e| e.to_string()),
        }
    }
}

impl<T: ParamType> ParamType for Option<T> {
    /// `T`'s schema, also allowing `null` (OpenAPI 3.0's `nullable`).
    fn json_schema() -> Value {
        let mut schema = T::json_schema();
        if let Value::Object(map) = &mut schema {
            map.insert("nullable".into(), Value::Bool(true));
        }
        schema
    }
    const REQUIRED: bool = false;

    /// `null` (or an omitted parameter) is `None`; anything else as `T` reads it.
    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_json(other).map(Some),
        }
    }
}

impl ParamType for Value {
    fn json_schema() -> Value {
        json!({})
    }
}
