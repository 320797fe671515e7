use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
#[table(name = "../x")]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
