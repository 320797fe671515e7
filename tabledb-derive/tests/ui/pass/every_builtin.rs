//! A table holding one field of every built-in type, ordered so that no padding is needed.

use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Everything {
    a_i64: i64,
    a_u64: u64,
    a_f64: f64,
    a_i32: i32,
    a_u32: u32,
    a_f32: f32,
    a_i16: i16,
    a_u16: u16,
    a_i8: i8,
    a_u8: u8,
    a_bool: bool,
    a_pad: [u8; 5],
}

const _: () = {
    assert!(<Everything as Table>::RECORD_SIZE == 48);
    assert!(<Everything as Table>::ALIGN == 8);
    assert!(Everything::A_F32_OFFSET == 32);
    assert!(Everything::A_BOOL_OFFSET == 42);
    assert!(<Everything as Table>::NEEDS_VALIDATION);
};

fn main() {
    assert_eq!(<Everything as Table>::NAME, "everything");
    assert_eq!(<Everything as Table>::FIELDS.len(), 12);
    assert_eq!(Everything::A_U8.name(), "a_u8");
}
