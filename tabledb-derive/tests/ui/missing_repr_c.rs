use tabledb::Table;

#[derive(Table, Clone, Copy)]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
