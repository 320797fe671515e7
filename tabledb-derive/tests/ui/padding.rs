use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    alive: bool,
    hp: u32,
}

fn main() {}
