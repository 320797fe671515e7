use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u32,
    alive: bool,
}

fn main() {}
