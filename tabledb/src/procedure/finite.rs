//! A check that a procedure's result holds only finite numbers. JSON has no NaN or infinity,
//! and `serde_json` writes them as `null`: a result of `f64::NAN` would reach the caller as
//! `null`, indistinguishable from `None`. The check walks the value through serde without
//! writing anything and stops at the first float that is not finite.

use serde::Serialize;
use serde::ser;

/// Why a value cannot be sent as JSON.
#[derive(Debug)]
pub(crate) struct NotJson(String);

impl std::fmt::Display for NotJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotJson {}

impl ser::Error for NotJson {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        NotJson(msg.to_string())
    }
}

/// Fails at the first `f32`/`f64` in `value` that is NaN or infinite.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), NotJson> {
    value.serialize(Check)
}

#[derive(Clone, Copy)]
struct Check;

/// Methods for values that are always JSON.
macro_rules! accept {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Result<(), NotJson> {
            Ok(())
        }
    )*};
}

fn float(v: f64) -> Result<(), NotJson> {
    if v.is_finite() { Ok(()) } else { Err(NotJson(format!("{v} is not a JSON number"))) }
}

impl ser::Serializer for Check {
    type Ok = ();
    type Error = NotJson;
    type SerializeSeq = Check;
    type SerializeTuple = Check;
    type SerializeTupleStruct = Check;
    type SerializeTupleVariant = Check;
    type SerializeMap = Check;
    type SerializeStruct = Check;
    type SerializeStructVariant = Check;

    accept! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128,
    }
    fn serialize_f32(self, v: f32) -> Result<(), NotJson> {
        float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), NotJson> {
        float(v)
    }
    accept! { serialize_char: char, serialize_str: &str, serialize_bytes: &[u8] }
    fn serialize_none(self) -> Result<(), NotJson> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), NotJson> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NotJson> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotJson> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), NotJson> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), NotJson> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), NotJson> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Check, NotJson> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Check, NotJson> {
        Ok(self)
    }
}

/// The compound forms check each element, field, key and value the same way.
macro_rules! check_each {
    ($($trait:ident::$method:ident($($name:ty)?)),* $(,)?) => {$(
        impl ser::$trait for Check {
            type Ok = ();
            type Error = NotJson;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $name,)? v: &T) -> Result<(), NotJson> {
                v.serialize(Check)
            }
            fn end(self) -> Result<(), NotJson> {
                Ok(())
            }
        }
    )*};
}

check_each! {
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
}

impl ser::SerializeMap for Check {
    type Ok = ();
    type Error = NotJson;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), NotJson> {
        k.serialize(Check)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotJson> {
        v.serialize(Check)
    }
    fn end(self) -> Result<(), NotJson> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::check;

    #[test]
    fn finds_non_finite_floats_anywhere() {
        assert!(check(&1.5f64).is_ok());
        assert!(check(&(1u8, "x", Some(2.0f32), vec![1.0f64, 2.0])).is_ok());
        assert!(check(&f64::NAN).is_err());
        assert!(check(&f32::INFINITY).is_err());
        assert!(check(&vec![1.0, f64::NEG_INFINITY]).is_err());
        assert!(check(&Some(Some(f64::NAN))).is_err());
        assert!(check(&BTreeMap::from([("a", (1, f64::NAN))])).is_err());
        let e = check(&[0.0, f64::INFINITY]).unwrap_err().to_string();
        assert!(e.contains("inf"), "{e}");
    }
}
