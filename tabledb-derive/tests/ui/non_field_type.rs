use tabledb::Table;

#[derive(Clone, Copy)]
#[repr(C)]
struct Stats {
    hp: u32,
    mana: u32,
}

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    level: u32,
    stats: Stats,
}

fn main() {}
