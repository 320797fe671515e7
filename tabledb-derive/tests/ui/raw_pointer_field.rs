use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u64,
    target: *const u64,
}

fn main() {}
