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
    fn json_schema() -> Value {
        json!({ "type": "string", "maxLength": N })
    }
}

impl ParamType for RecordId {
    fn json_schema() -> Value {
        json!({ "type": "integer", "minimum": 1, "description": "a record id" })
    }
}

impl<T: ParamType> ParamType for Vec<T> {
    fn json_schema() -> Value {
        json!({ "type": "array", "items": T::json_schema() })
    }
}

impl<T: ParamType> ParamType for Option<T> {
    fn json_schema() -> Value {
        T::json_schema()
    }
    const REQUIRED: bool = false;
}

impl ParamType for Value {
    fn json_schema() -> Value {
        json!({})
    }
}
