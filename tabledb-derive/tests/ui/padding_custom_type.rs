use tabledb::{FieldType, Table};

#[derive(FieldType, Clone, Copy)]
#[repr(C)]
struct Stats {
    hp: u32,
    mana: u32,
}

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    team: u8,
    stats: Stats,
}

fn main() {}
