use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C, align(16))]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
