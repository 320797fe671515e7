use tabledb::Table;

#[derive(Table)]
#[repr(C)]
struct Player {
    hp: u32,
    items: Vec<u32>,
}

fn main() {}
