//! Conversion of values between their record bytes and JSON, and validation of raw bytes.
//!
//! Every value has one canonical byte form: booleans are 0 or 1, strings are zero after their
//! length, composite padding is zero. Validation enforces it, so two values are equal exactly
//! when their bytes are, which the engine relies on when it compares records.

use serde_json::{Map, Number, Value};

use super::desc::{DescKind, TypeDesc};
use super::layout::{Primitive, TypeKind, TypeLayout};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongJsonType { expected: String, got: &'static str },
    #[error("{value} is out of range for {ty}")]
    OutOfRange { ty: &'static str, value: String },
    #[error("{value} is not an integer")]
    NotAnInteger { value: String },
    #[error("bool must be 0 or 1, got {0}")]
    InvalidBool(u8),
    #[error("string of {len} bytes exceeds the capacity of {capacity} bytes")]
    StringTooLong { len: usize, capacity: usize },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("bytes after the end of a string must be zero")]
    StringTail,
    #[error("padding byte at offset {offset} must be zero")]
    NonZeroPadding { offset: usize },
    #[error("array needs {expected} elements, got {got}")]
    ArrayLength { expected: usize, got: usize },
    #[error("missing member `{0}`")]
    MissingMember(String),
    #[error("unknown member {}", crate::schema::shown(.0))]
    UnknownMember(String),
    #[error("expected {expected} bytes, got {got}")]
    SizeMismatch { expected: usize, got: usize },
    #[error("in `{path}`: {source}")]
    In {
        path: String,
        #[source]
        source: Box<ValueError>,
    },
}

impl ValueError {
    /// Wraps the error with the name of the member or index it occurred in.
    pub fn within(self, path: impl Into<String>) -> ValueError {
        ValueError::In { path: path.into(), source: Box::new(self) }
    }
}

/// Converts a type's values between bytes and JSON.
///
/// The built-in serializer handles every [`TypeKind`]; a custom type may register its own, for
/// example to present a 3-vector as `[x, y, z]` instead of `{"x": .., "y": .., "z": ..}`.
/// Each function receives the layout it serves, so one function can serve many types. A custom
/// `from_json` must write a value that passes [`TypeLayout::validate`], which is structural and
/// cannot be replaced: it is what keeps stored bytes valid for zero-copy `&T` views.
#[derive(Clone, Copy)]
pub struct Serializer {
    pub to_json: fn(&TypeLayout, &[u8]) -> Result<Value, ValueError>,
    pub from_json: fn(&TypeLayout, &Value, &mut [u8]) -> Result<(), ValueError>,
}

impl std::fmt::Debug for Serializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Serializer")
    }
}

impl Serializer {
    /// The serializer of every built-in type and of composites without a custom one.
    pub const DEFAULT: Serializer = Serializer { to_json: default_to_json, from_json: default_from_json };
}

fn check_len(layout: &TypeLayout, len: usize) -> Result<(), ValueError> {
    if len != layout.size {
        return Err(ValueError::SizeMismatch { expected: layout.size, got: len });
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// Reads the length prefix of a fixed-capacity string.
pub(crate) fn str_len(bytes: &[u8]) -> usize {
    u16::from_le_bytes([bytes[0], bytes[1]]) as usize
}

/// The f64 that writes an f32 as JSON: the shortest decimal that reads back as this f32
/// (0.1 rather than 0.10000000149011612), so that a value echoes as it was written. Reading
/// the number back (as an f64, narrowed to f32, as [`primitive_from_json`] does) gives the same
/// f32; should the shortest decimal not, the exact widening is used instead.
fn f32_as_json(x: f32) -> f64 {
    let exact = f64::from(x);
    if !x.is_finite() {
        return exact;
    }
    match x.to_string().parse::<f64>() {
        Ok(short) if (short as f32).to_bits() == x.to_bits() => short,
        _ => exact,
    }
}

fn primitive_to_json(p: Primitive, b: &[u8]) -> Result<Value, ValueError> {
    Ok(match p {
        Primitive::I8 => Value::from(i8::from_le_bytes(arr(b))),
        Primitive::I16 => Value::from(i16::from_le_bytes(arr(b))),
        Primitive::I32 => Value::from(i32::from_le_bytes(arr(b))),
        Primitive::I64 => Value::from(i64::from_le_bytes(arr(b))),
        Primitive::U8 => Value::from(b[0]),
        Primitive::U16 => Value::from(u16::from_le_bytes(arr(b))),
        Primitive::U32 => Value::from(u32::from_le_bytes(arr(b))),
        Primitive::U64 => Value::from(u64::from_le_bytes(arr(b))),
        // JSON has no NaN or infinity; they are shown as null.
        Primitive::F32 => {
            Number::from_f64(f32_as_json(f32::from_le_bytes(arr(b)))).map_or(Value::Null, Value::Number)
        }
        Primitive::F64 => Number::from_f64(f64::from_le_bytes(arr(b))).map_or(Value::Null, Value::Number),
        Primitive::Bool => match b[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => return Err(ValueError::InvalidBool(other)),
        },
    })
}

fn int_from_json(p: Primitive, v: &Value) -> Result<i128, ValueError> {
    let Value::Number(n) = v else {
        return Err(ValueError::WrongJsonType {
            expected: format!("{} (an integer)", p.name()),
            got: json_kind(v),
        });
    };
    let wide: i128 = if let Some(i) = n.as_i64() {
        i128::from(i)
    } else if let Some(u) = n.as_u64() {
        i128::from(u)
    } else {
        // serde_json keeps an integer beyond the i64 and u64 ranges as its nearest f64, so a
        // whole number of magnitude 2^63 or more is out of every integer range, not a fraction.
        const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_finite() && f.fract() == 0.0 && f.abs() >= TWO_POW_63 {
            return Err(ValueError::OutOfRange { ty: p.name(), value: n.to_string() });
        }
        return Err(ValueError::NotAnInteger { value: n.to_string() });
    };
    let (min, max): (i128, i128) = match p {
        Primitive::I8 => (i8::MIN.into(), i8::MAX.into()),
        Primitive::I16 => (i16::MIN.into(), i16::MAX.into()),
        Primitive::I32 => (i32::MIN.into(), i32::MAX.into()),
        Primitive::I64 => (i64::MIN.into(), i64::MAX.into()),
        Primitive::U8 => (0, u8::MAX.into()),
        Primitive::U16 => (0, u16::MAX.into()),
        Primitive::U32 => (0, u32::MAX.into()),
        Primitive::U64 => (0, u64::MAX.into()),
        Primitive::F32 | Primitive::F64 | Primitive::Bool => unreachable!("not an integer type"),
    };
    if wide < min || wide > max {
        return Err(ValueError::OutOfRange { ty: p.name(), value: n.to_string() });
    }
    Ok(wide)
}

fn primitive_from_json(p: Primitive, v: &Value, out: &mut [u8]) -> Result<(), ValueError> {
    match p {
        Primitive::Bool => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_u64() == Some(0) => false,
                Value::Number(n) if n.as_u64() == Some(1) => true,
                Value::Number(n) => return Err(ValueError::OutOfRange { ty: "bool", value: n.to_string() }),
                other => {
                    return Err(ValueError::WrongJsonType { expected: "bool".into(), got: json_kind(other) });
                }
            };
            out[0] = u8::from(b);
        }
        Primitive::F32 | Primitive::F64 => {
            let Value::Number(n) = v else {
                return Err(ValueError::WrongJsonType { expected: p.name().into(), got: json_kind(v) });
            };
            let f =
                n.as_f64().ok_or_else(|| ValueError::OutOfRange { ty: p.name(), value: n.to_string() })?;
            if p == Primitive::F32 {
                let narrow = f as f32;
                if f.is_finite() && !narrow.is_finite() {
                    return Err(ValueError::OutOfRange { ty: "f32", value: n.to_string() });
                }
                out.copy_from_slice(&narrow.to_le_bytes());
            } else {
                out.copy_from_slice(&f.to_le_bytes());
            }
        }
        _ => {
            let w = int_from_json(p, v)?;
            // The range check above makes every cast below exact.
            match p {
                Primitive::I8 => out.copy_from_slice(&(w as i8).to_le_bytes()),
                Primitive::I16 => out.copy_from_slice(&(w as i16).to_le_bytes()),
                Primitive::I32 => out.copy_from_slice(&(w as i32).to_le_bytes()),
                Primitive::I64 => out.copy_from_slice(&(w as i64).to_le_bytes()),
                Primitive::U8 => out.copy_from_slice(&(w as u8).to_le_bytes()),
                Primitive::U16 => out.copy_from_slice(&(w as u16).to_le_bytes()),
                Primitive::U32 => out.copy_from_slice(&(w as u32).to_le_bytes()),
                Primitive::U64 => out.copy_from_slice(&(w as u64).to_le_bytes()),
                _ => unreachable!("handled above"),
            }
        }
    }
    Ok(())
}

/// Decodes a canonical string value; shared by validation and JSON output.
fn decode_str(capacity: usize, b: &[u8]) -> Result<&str, ValueError> {
    let len = str_len(b);
    if len > capacity {
        return Err(ValueError::StringTooLong { len, capacity });
    }
    let body = &b[2..2 + capacity];
    let s = std::str::from_utf8(&body[..len]).map_err(|_| ValueError::InvalidUtf8)?;
    if body[len..].iter().any(|&x| x != 0) {
        return Err(ValueError::StringTail);
    }
    Ok(s)
}

/// Writes `s` as a canonical fixed-capacity string into `out` (`capacity + 2` bytes).
fn encode_str(capacity: usize, s: &str, out: &mut [u8]) -> Result<(), ValueError> {
    let len = s.len();
    if len > capacity {
        return Err(ValueError::StringTooLong { len, capacity });
    }
    out[..2].copy_from_slice(&(len as u16).to_le_bytes());
    out[2..2 + len].copy_from_slice(s.as_bytes());
    out[2 + len..2 + capacity].fill(0);
    Ok(())
}

fn default_to_json(layout: &TypeLayout, b: &[u8]) -> Result<Value, ValueError> {
    check_len(layout, b.len())?;
    match &layout.kind {
        TypeKind::Primitive(p) => primitive_to_json(*p, b),
        TypeKind::Str { capacity } => Ok(Value::String(decode_str(*capacity, b)?.to_owned())),
        TypeKind::Array { elem, len } => {
            let mut items = Vec::with_capacity(*len);
            for (i, chunk) in b.chunks_exact(elem.size).enumerate() {
                items.push(elem.to_json(chunk).map_err(|e| e.within(format!("[{i}]")))?);
            }
            Ok(Value::Array(items))
        }
        TypeKind::Composite { members } => {
            let mut map = Map::with_capacity(members.len());
            for m in members {
                let v = m
                    .layout
                    .to_json(&b[m.offset..m.offset + m.layout.size])
                    .map_err(|e| e.within(m.name.clone()))?;
                map.insert(m.name.clone(), v);
            }
            Ok(Value::Object(map))
        }
    }
}

fn default_from_json(layout: &TypeLayout, v: &Value, out: &mut [u8]) -> Result<(), ValueError> {
    check_len(layout, out.len())?;
    match &layout.kind {
        TypeKind::Primitive(p) => primitive_from_json(*p, v, out),
        TypeKind::Str { capacity } => {
            let Value::String(s) = v else {
                return Err(ValueError::WrongJsonType { expected: "a string".into(), got: json_kind(v) });
            };
            encode_str(*capacity, s, out)
        }
        TypeKind::Array { elem, len } => {
            let Value::Array(items) = v else {
                return Err(ValueError::WrongJsonType {
                    expected: format!("an array of {len}"),
                    got: json_kind(v),
                });
            };
            if items.len() != *len {
                return Err(ValueError::ArrayLength { expected: *len, got: items.len() });
            }
            for (i, (item, chunk)) in items.iter().zip(out.chunks_exact_mut(elem.size)).enumerate() {
                elem.from_json(item, chunk).map_err(|e| e.within(format!("[{i}]")))?;
            }
            Ok(())
        }
        TypeKind::Composite { members } => {
            let Value::Object(map) = v else {
                return Err(ValueError::WrongJsonType {
                    expected: format!("an object ({})", layout.name),
                    got: json_kind(v),
                });
            };
            if let Some(unknown) = map.keys().find(|k| !members.iter().any(|m| &m.name == *k)) {
                return Err(ValueError::UnknownMember(unknown.clone()));
            }
            out.fill(0);
            for m in members {
                let item = map.get(&m.name).ok_or_else(|| ValueError::MissingMember(m.name.clone()))?;
                m.layout
                    .from_json(item, &mut out[m.offset..m.offset + m.layout.size])
                    .map_err(|e| e.within(m.name.clone()))?;
            }
            Ok(())
        }
    }
}

/// The structure validation walks: implemented by run-time layouts and compile-time
/// descriptions, so a record is checked by one set of rules whichever describes it.
pub(crate) trait Shape {
    fn size(&self) -> usize;
    fn shape(&self) -> ShapeKind<'_, Self>;
    /// Member `i` of a composite: name, offset, type.
    fn member(&self, i: usize) -> (&str, usize, &Self);
}

pub(crate) enum ShapeKind<'a, S: ?Sized> {
    Primitive(Primitive),
    Str { capacity: usize },
    Array { elem: &'a S },
    Composite { members: usize },
}

impl Shape for TypeLayout {
    fn size(&self) -> usize {
        self.size
    }
    fn shape(&self) -> ShapeKind<'_, Self> {
        match &self.kind {
            TypeKind::Primitive(p) => ShapeKind::Primitive(*p),
            TypeKind::Str { capacity } => ShapeKind::Str { capacity: *capacity },
            TypeKind::Array { elem, .. } => ShapeKind::Array { elem: &**elem },
            TypeKind::Composite { members } => ShapeKind::Composite { members: members.len() },
        }
    }
    fn member(&self, i: usize) -> (&str, usize, &Self) {
        let TypeKind::Composite { members } = &self.kind else { unreachable!("member of a non-composite") };
        let m = &members[i];
        (&m.name, m.offset, &m.layout)
    }
}

impl Shape for TypeDesc {
    fn size(&self) -> usize {
        self.size
    }
    fn shape(&self) -> ShapeKind<'_, Self> {
        match self.kind {
            DescKind::Primitive(p) => ShapeKind::Primitive(p),
            DescKind::Str { capacity } => ShapeKind::Str { capacity },
            DescKind::Array { elem, .. } => ShapeKind::Array { elem },
            DescKind::Composite { members, .. } => ShapeKind::Composite { members: members.len() },
        }
    }
    fn member(&self, i: usize) -> (&str, usize, &Self) {
        let DescKind::Composite { members, .. } = self.kind else {
            unreachable!("member of a non-composite")
        };
        let m = &members[i];
        (m.name, m.offset, m.ty)
    }
}

/// Checks that `b` holds a valid value of shape `s` in canonical form.
pub(crate) fn validate<S: Shape + ?Sized>(s: &S, b: &[u8]) -> Result<(), ValueError> {
    if b.len() != s.size() {
        return Err(ValueError::SizeMismatch { expected: s.size(), got: b.len() });
    }
    match s.shape() {
        ShapeKind::Primitive(Primitive::Bool) => match b[0] {
            0 | 1 => Ok(()),
            other => Err(ValueError::InvalidBool(other)),
        },
        ShapeKind::Primitive(_) => Ok(()),
        ShapeKind::Str { capacity } => decode_str(capacity, b).map(|_| ()),
        ShapeKind::Array { elem } => {
            if !needs_validation(elem) {
                return Ok(());
            }
            for (i, chunk) in b.chunks_exact(elem.size()).enumerate() {
                validate(elem, chunk).map_err(|e| e.within(format!("[{i}]")))?;
            }
            Ok(())
        }
        ShapeKind::Composite { members } => {
            let mut cursor = 0;
            for i in 0..members {
                let (name, offset, ty) = s.member(i);
                check_zero(&b[cursor..offset], cursor)?;
                validate(ty, &b[offset..offset + ty.size()]).map_err(|e| e.within(name))?;
                cursor = offset + ty.size();
            }
            check_zero(&b[cursor..], cursor)
        }
    }
}

/// False when every byte pattern of the right size is a valid value of shape `s` (integers,
/// floats, and padding-free composites and arrays of them), so validation can be skipped.
pub(crate) fn needs_validation<S: Shape + ?Sized>(s: &S) -> bool {
    match s.shape() {
        ShapeKind::Primitive(p) => p == Primitive::Bool,
        ShapeKind::Str { .. } => true,
        ShapeKind::Array { elem } => needs_validation(elem),
        ShapeKind::Composite { members } => {
            let mut packed = 0;
            for i in 0..members {
                let (_, _, ty) = s.member(i);
                if needs_validation(ty) {
                    return true;
                }
                packed += ty.size();
            }
            packed != s.size()
        }
    }
}

/// Checks that padding bytes are zero; `base` is the offset of `bytes` for the message.
pub(crate) fn check_zero(bytes: &[u8], base: usize) -> Result<(), ValueError> {
    match bytes.iter().position(|&x| x != 0) {
        Some(i) => Err(ValueError::NonZeroPadding { offset: base + i }),
        None => Ok(()),
    }
}
