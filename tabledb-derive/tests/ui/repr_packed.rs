use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C, packed)]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
