//! Compile-time type descriptions and the [`FieldType`] trait.
//!
//! A [`TypeDesc`] is the `const` form of a [`TypeLayout`](super::TypeLayout): it lives in the
//! constants `#[derive(Table)]` and `#[derive(FieldType)]` emit, and a
//! [`TypeRegistry`](super::TypeRegistry) turns it into a layout at run time.

use super::layout::{ConstHasher, MAX_ARRAY_LEN, Primitive, TypeId};

/// The shape of a type known at compile time.
#[derive(Debug, Clone, Copy)]
pub enum DescKind {
    Primitive(Primitive),
    Str { capacity: usize },
    Array { elem: &'static TypeDesc, len: usize },
    Composite { name: &'static str, members: &'static [MemberDesc] },
}

/// A member of a composite type known at compile time.
#[derive(Debug, Clone, Copy)]
pub struct MemberDesc {
    pub name: &'static str,
    pub offset: usize,
    pub ty: &'static TypeDesc,
}

/// A type known at compile time: its shape, size and alignment.
#[derive(Debug, Clone, Copy)]
pub struct TypeDesc {
    pub kind: DescKind,
    pub size: usize,
    pub align: usize,
}

impl TypeDesc {
    /// The description of a primitive.
    pub const fn primitive(p: Primitive) -> TypeDesc {
        TypeDesc { kind: DescKind::Primitive(p), size: p.size(), align: p.size() }
    }

    /// The id of this type, equal to `TypeId::of_name(&self.name())`.
    pub const fn type_id(&self) -> TypeId {
        self.hash(ConstHasher::new()).finish()
    }

    /// Arrays nested directly in each other at the top of this type (`u8[2][3]`: 2).
    pub const fn array_depth(&self) -> usize {
        match self.kind {
            DescKind::Array { elem, .. } => elem.array_depth() + 1,
            _ => 0,
        }
    }

    /// Composites and arrays nested in this type, itself included (a primitive or string: 0).
    pub const fn nesting_depth(&self) -> usize {
        match self.kind {
            DescKind::Primitive(_) | DescKind::Str { .. } => 0,
            DescKind::Array { elem, .. } => elem.nesting_depth() + 1,
            DescKind::Composite { members, .. } => {
                let (mut deepest, mut i) = (0, 0);
                while i < members.len() {
                    let d = members[i].ty.nesting_depth();
                    if d > deepest {
                        deepest = d;
                    }
                    i += 1;
                }
                deepest + 1
            }
        }
    }

    /// `self`, after checking at compile time the nesting limits the run-time registry
    /// enforces, so that a derived type that compiles also registers. Used by the array impl
    /// and by `#[derive(FieldType)]`.
    #[doc(hidden)]
    pub const fn within_limits(self) -> TypeDesc {
        assert!(
            self.array_depth() <= super::registry::MAX_ARRAY_DEPTH,
            "arrays in a field type nest at most 8 deep"
        );
        assert!(
            self.nesting_depth() <= super::registry::MAX_NESTING_DEPTH,
            "composites and arrays in a field type nest at most 32 deep"
        );
        self
    }

    /// A hash of the whole layout, equal to [`TypeLayout::shape`](super::TypeLayout::shape) of
    /// the same type: unlike the id, it tells apart two types with one name and other members.
    pub const fn shape(&self) -> u64 {
        self.shape_into(ConstHasher::new()).value()
    }

    const fn shape_into(&self, h: ConstHasher) -> ConstHasher {
        let h = h.word(self.size as u64).word(self.align as u64);
        match self.kind {
            DescKind::Primitive(p) => h.word(1).str(p.name()),
            DescKind::Str { capacity } => h.word(2).word(capacity as u64),
            DescKind::Array { elem, len } => elem.shape_into(h.word(3).word(len as u64)),
            DescKind::Composite { name, members } => {
                let mut h = h.word(4).str(name).word(members.len() as u64);
                let mut i = 0;
                while i < members.len() {
                    let m = &members[i];
                    h = m.ty.shape_into(h.str(m.name).word(0).word(m.offset as u64));
                    i += 1;
                }
                h
            }
        }
    }

    const fn hash(&self, h: ConstHasher) -> ConstHasher {
        match self.kind {
            DescKind::Primitive(p) => h.str(p.name()),
            DescKind::Str { capacity } => h.str("string(").decimal(capacity).str(")"),
            DescKind::Array { elem, len } => elem.hash(h).str("[").decimal(len).str("]"),
            DescKind::Composite { name, .. } => h.str(name),
        }
    }

    /// Checks that `bytes` hold a valid value of this type in canonical form.
    pub fn validate(&self, bytes: &[u8]) -> Result<(), super::ValueError> {
        super::codec::validate(self, bytes)
    }

    /// The canonical name: `u32`, `string(32)`, `f32[3]`, `vec3`.
    pub fn name(&self) -> String {
        match self.kind {
            DescKind::Primitive(p) => p.name().to_owned(),
            DescKind::Str { capacity } => format!("string({capacity})"),
            DescKind::Array { elem, len } => format!("{}[{len}]", elem.name()),
            DescKind::Composite { name, .. } => name.to_owned(),
        }
    }
}

/// A type that can be a field of a table: fixed size, no pointers, a known layout.
///
/// Implemented for `i8` ... `u64`, `f32`, `f64`, `bool`, [`FixedStr<N>`](super::FixedStr),
/// arrays `[T; N]` of field types, and `#[repr(C)]` structs that `#[derive(FieldType)]`.
///
/// # Safety
///
/// An implementor guarantees that `size_of::<Self>() == DESC.size`,
/// `align_of::<Self>() == DESC.align`, that `Self` has no padding bytes and is laid out as `DESC`
/// describes, that `Self` holds no pointers, references or interior mutability, and that every
/// byte pattern accepted by the validation of `DESC`'s layout is a valid `Self`. Values are
/// read from record bytes without copying on the strength of these guarantees.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tabledb field type",
    label = "not a field type",
    note = "field types are i8..i64, u8..u64, f32, f64, bool, FixedStr<N>, arrays [T; N] of field types, and #[repr(C)] structs with #[derive(FieldType)]"
)]
pub unsafe trait FieldType: Copy + Send + Sync + 'static {
    /// The description of this type.
    const DESC: TypeDesc;
    /// True when not every byte pattern is a valid value (bools, strings, and types holding
    /// them), so stored bytes must be validated.
    const NEEDS_VALIDATION: bool;
    /// The id of this type.
    const TYPE_ID: TypeId = Self::DESC.type_id();
    /// The shape of this type (see [`TypeDesc::shape`]), computed once at compile time.
    const SHAPE: u64 = Self::DESC.shape();
}

macro_rules! primitive_field_type {
    ($($t:ty => $p:ident, $v:literal);* $(;)?) => {$(
        // SAFETY: a primitive's size and alignment equal `Primitive::size`, it holds no
        // pointers, and validation accepts only valid values (any bits for integers and
        // floats; 0 or 1 for bool).
        unsafe impl FieldType for $t {
            const DESC: TypeDesc = TypeDesc::primitive(Primitive::$p);
            const NEEDS_VALIDATION: bool = $v;
        }
    )*};
}

primitive_field_type! {
    i8 => I8, false; i16 => I16, false; i32 => I32, false; i64 => I64, false;
    u8 => U8, false; u16 => U16, false; u32 => U32, false; u64 => U64, false;
    f32 => F32, false; f64 => F64, false; bool => Bool, true;
}

// SAFETY: an array has no padding between elements, its size is `N * size_of::<T>()`, its
// alignment that of `T`; it is valid when each element is, which array validation checks.
unsafe impl<T: FieldType, const N: usize> FieldType for [T; N] {
    const DESC: TypeDesc = {
        // The run-time registry accepts the same lengths, so a derived table that compiles
        // also registers.
        assert!(N >= 1 && N <= MAX_ARRAY_LEN, "an array field type needs between 1 and 65536 elements");
        TypeDesc {
            kind: DescKind::Array { elem: &T::DESC, len: N },
            size: T::DESC.size * N,
            align: T::DESC.align,
        }
        .within_limits()
    };
    const NEEDS_VALIDATION: bool = T::NEEDS_VALIDATION;
}

// The widths below are what on-disk compatibility rests on; if a platform disagrees, refuse it.
const _: () = {
    assert!(core::mem::size_of::<bool>() == 1);
    assert!(core::mem::align_of::<f64>() == 8);
    assert!(core::mem::align_of::<u64>() == 8);
    assert!(core::mem::align_of::<i64>() == 8);
};
