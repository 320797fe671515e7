use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
#[allow(non_snake_case)]
struct Player {
    hp: u32,
    Level: u32,
}

fn main() {}
