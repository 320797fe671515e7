use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u64,
    name: &'static str,
}

fn main() {}
