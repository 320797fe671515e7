use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Blob {
    bytes: [u8; 70000],
}

fn main() {}
