use tabledb::{FieldType, Table};

#[derive(FieldType, Clone, Copy)]
#[repr(C)]
struct Chunk {
    bytes: [u8; 40000],
}

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Blob {
    first: Chunk,
    second: Chunk,
}

fn main() {}
