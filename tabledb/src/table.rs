//! The [`Table`] trait that `#[derive(Table)]` implements, and typed field handles.

use std::marker::PhantomData;

use crate::schema::{SchemaError, TableSchema};
use crate::types::{FieldType, TypeDesc, TypeId, TypeRegistry, ValueError};

/// A field of a derived table, known at compile time.
#[derive(Debug, Clone, Copy)]
pub struct FieldDesc {
    pub name: &'static str,
    pub offset: usize,
    pub type_id: TypeId,
    /// The field type's [`shape`](TypeDesc::shape).
    pub shape: u64,
    pub ty: &'static TypeDesc,
}

/// Why bytes could not be viewed as a record of a derived table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ViewError {
    #[error("expected {expected} bytes, got {got}")]
    Size { expected: usize, got: usize },
    #[error("bytes at address {addr:#x} are not aligned to {align}")]
    Misaligned { addr: usize, align: usize },
    #[error("field `{field}`: {source}")]
    Invalid {
        field: &'static str,
        #[source]
        source: ValueError,
    },
}

/// A record type whose values are stored as fixed-size bytes, implemented by
/// `#[derive(Table)]` on a `#[repr(C)]` struct.
///
/// ```
/// use tabledb::Table;
///
/// #[derive(Table, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Player {
///     x: f32,
///     y: f32,
///     hp: u32,
///     level: u16,
///     alive: bool,
///     team: u8,
/// }
///
/// assert_eq!(<Player as Table>::NAME, "player");
/// assert_eq!(Player::HP.offset(), 8);
/// assert_eq!(Player::HP_OFFSET, 8);
/// let p = Player { x: 1.0, y: 2.0, hp: 100, level: 3, alive: true, team: 1 };
/// let bytes = p.as_bytes();
/// assert_eq!(Player::view(bytes).unwrap(), &p);
/// ```
///
/// # Safety
///
/// An implementor guarantees that `Self` is `#[repr(C)]` with exactly the fields of `FIELDS`,
/// in order, at those offsets, each of a [`FieldType`] whose description is the field's `ty`;
/// that `Self` has no padding; that `RECORD_SIZE == size_of::<Self>()`,
/// `ALIGN == align_of::<Self>()`, `ALIGN <= 64` and `RECORD_SIZE % ALIGN == 0`. Records are
/// read from stored bytes as `&Self` on the strength of these guarantees. `#[derive(Table)]`
/// checks all of them at compile time.
pub unsafe trait Table: Copy + Send + Sync + 'static {
    /// The table name: the struct name in snake_case unless `#[table(name = "...")]`.
    const NAME: &'static str;
    /// The fields, in declaration order.
    const FIELDS: &'static [FieldDesc];
    /// `size_of::<Self>()`.
    const RECORD_SIZE: usize;
    /// `align_of::<Self>()`.
    const ALIGN: usize;
    /// True when some field needs validation (a bool or a string), so not every byte pattern
    /// is a valid record.
    const NEEDS_VALIDATION: bool;

    /// The schema of this table, registering the field types in `types`.
    fn schema(types: &mut TypeRegistry) -> Result<TableSchema, SchemaError> {
        TableSchema::of::<Self>(types)
    }

    /// The record as bytes, without copying.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self` has no padding (an implementor guarantee), so all `RECORD_SIZE` bytes
        // behind `self` are initialized; the slice borrows `self` and cannot outlive it.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), Self::RECORD_SIZE) }
    }

    /// Checks that `bytes` are a valid record of this type: the right length and every field
    /// valid (bools 0 or 1, strings within capacity and UTF-8).
    fn validate(bytes: &[u8]) -> Result<(), ViewError> {
        if bytes.len() != Self::RECORD_SIZE {
            return Err(ViewError::Size { expected: Self::RECORD_SIZE, got: bytes.len() });
        }
        if Self::NEEDS_VALIDATION {
            for f in Self::FIELDS {
                f.ty.validate(&bytes[f.offset..f.offset + f.ty.size])
                    .map_err(|source| ViewError::Invalid { field: f.name, source })?;
            }
        }
        Ok(())
    }

    /// Views `bytes` as a record without copying; the length, the alignment and every field
    /// are checked.
    fn view(bytes: &[u8]) -> Result<&Self, ViewError> {
        let ptr = Self::ptr(bytes)?;
        // SAFETY: `ptr` comes from `Self::ptr`, which checked that `bytes` is exactly one
        // aligned, valid record; the reference borrows `bytes`.
        Ok(unsafe { &*ptr })
    }

    /// A pointer to `bytes` as a record, after the same checks as [`view`](Self::view). The
    /// pointer is valid for as long as `bytes` is.
    fn ptr(bytes: &[u8]) -> Result<*const Self, ViewError> {
        Self::validate(bytes)?;
        let addr = bytes.as_ptr() as usize;
        if !addr.is_multiple_of(Self::ALIGN) {
            return Err(ViewError::Misaligned { addr, align: Self::ALIGN });
        }
        Ok(bytes.as_ptr().cast::<Self>())
    }

    /// Copies `bytes` into a record; the bytes need not be aligned.
    fn read(bytes: &[u8]) -> Result<Self, ViewError> {
        Self::validate(bytes)?;
        // SAFETY: `bytes` holds `RECORD_SIZE` bytes of a valid `Self` (just checked);
        // `read_unaligned` makes no alignment demand.
        Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

/// A typed handle to one field of a derived table, for one-field updates and reads.
///
/// `#[derive(Table)]` emits one per field as an associated constant, named after the field in
/// upper case: `Player::HP` is a `FieldHandle<Player, u32>`.
pub struct FieldHandle<T: Table, F: FieldType> {
    index: usize,
    _types: PhantomData<fn() -> (T, F)>,
}

impl<T: Table, F: FieldType> Clone for FieldHandle<T, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Table, F: FieldType> Copy for FieldHandle<T, F> {}

impl<T: Table, F: FieldType> std::fmt::Debug for FieldHandle<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", T::NAME, self.name())
    }
}

impl<T: Table, F: FieldType> FieldHandle<T, F> {
    /// The handle of field `index`. Evaluated in a constant, a wrong index or type fails the
    /// build.
    pub const fn new(index: usize) -> Self {
        assert!(index < T::FIELDS.len(), "field index out of range");
        assert!(T::FIELDS[index].type_id.0 == F::TYPE_ID.0, "field type does not match");
        // The id names the type; the shape covers its members too (two composites can share
        // a name).
        assert!(T::FIELDS[index].shape == F::SHAPE, "field type does not match");
        assert!(T::FIELDS[index].ty.size == std::mem::size_of::<F>(), "field size does not match");
        assert!(T::FIELDS[index].offset + std::mem::size_of::<F>() <= T::RECORD_SIZE, "field out of bounds");
        FieldHandle { index, _types: PhantomData }
    }

    /// The position of the field in the table.
    pub const fn index(self) -> usize {
        self.index
    }

    /// The byte offset of the field within the record.
    pub const fn offset(self) -> usize {
        T::FIELDS[self.index].offset
    }

    /// The field name.
    pub const fn name(self) -> &'static str {
        T::FIELDS[self.index].name
    }

    /// The field of `record`.
    pub fn get(self, record: &T) -> &F {
        // SAFETY: `new` checked that the field lies within the record and has `F`'s size and
        // type id; the `Table` contract places a field of type `F` at this offset in a
        // `#[repr(C)]` `T`, so the pointer is aligned, in bounds and valid for the borrow.
        unsafe { &*(record as *const T).cast::<u8>().add(self.offset()).cast::<F>() }
    }

    /// The field of `record`, mutably.
    pub fn get_mut(self, record: &mut T) -> &mut F {
        // SAFETY: as in `get`; the exclusive borrow of `record` covers the field.
        unsafe { &mut *(record as *mut T).cast::<u8>().add(self.offset()).cast::<F>() }
    }

    /// The bytes of `value` as this field stores them.
    pub fn value_bytes(value: &F) -> &[u8] {
        // SAFETY: a `FieldType` has no padding and no pointers, so its `size_of` bytes are
        // initialized; the slice borrows `value`.
        unsafe { std::slice::from_raw_parts((value as *const F).cast::<u8>(), std::mem::size_of::<F>()) }
    }
}
