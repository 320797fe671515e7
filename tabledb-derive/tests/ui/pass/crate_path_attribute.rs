//! `#[table(crate = "...")]` and `#[field_type(crate = "...")]` when tabledb is re-exported.

mod reexport {
    pub use tabledb as db;
}

use reexport::db;

#[derive(db::FieldType, Clone, Copy)]
#[repr(C)]
#[field_type(crate = "reexport::db")]
struct Pair {
    a: u16,
    b: u16,
}

#[derive(db::Table, Clone, Copy)]
#[repr(C)]
#[table(crate = "crate::reexport::db")]
struct Thing {
    pair: Pair,
    n: u32,
}

fn main() {
    assert_eq!(<Thing as db::Table>::RECORD_SIZE, 8);
    assert_eq!(Thing::N_OFFSET, 4);
}
