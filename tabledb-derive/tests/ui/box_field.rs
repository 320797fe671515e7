use tabledb::Table;

#[derive(Table)]
#[repr(C)]
struct Player {
    hp: u32,
    stats: Box<u32>,
}

fn main() {}
