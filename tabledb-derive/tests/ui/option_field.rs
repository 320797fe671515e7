use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u32,
    guild: Option<u32>,
}

fn main() {}
