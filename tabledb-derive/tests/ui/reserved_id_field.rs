use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    id: u64,
    hp: u64,
}

fn main() {}
