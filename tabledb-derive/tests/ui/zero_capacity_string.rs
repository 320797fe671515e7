use tabledb::{FixedStr, Table};

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u8,
    name: FixedStr<0>,
}

fn main() {}
