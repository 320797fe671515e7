//! The type system: layouts of every value a record can hold, and the registry that knows them.
//!
//! Built-in types are `i8`, `i16`, `i32`, `i64`, `u8`, `u16`, `u32`, `u64`, `f32`, `f64`,
//! `bool` (one byte, 0 or 1), and fixed-capacity UTF-8 strings ([`FixedStr<N>`], named
//! `string(N)`). Arrays `T[N]` of any field type and composite types (for example
//! `vec3 = { x: f32, y: f32, z: f32 }`) are built from them, at run time with
//! [`TypeRegistry::register_type`] or at compile time with `#[derive(FieldType)]`.

mod codec;
mod desc;
mod fixed_str;
mod layout;
mod registry;

pub(crate) use codec::check_zero;
pub use codec::{Serializer, ValueError};
pub use desc::{DescKind, FieldType, MemberDesc, TypeDesc};
pub use fixed_str::FixedStr;
pub use layout::{
    DEFAULT_STRING_CAPACITY, MAX_ALIGN, MAX_ARRAY_LEN, MAX_RECORD_SIZE, MAX_STRING_CAPACITY, Member,
    Primitive, TypeId, TypeKind, TypeLayout, align_offset,
};
pub use registry::{MAX_ARRAY_DEPTH, MAX_TYPE_NAME_LEN, MemberDef, TypeDef, TypeError, TypeRegistry};
