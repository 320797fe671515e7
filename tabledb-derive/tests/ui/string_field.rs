use tabledb::Table;

#[derive(Table)]
#[repr(C)]
struct Player {
    hp: u32,
    name: String,
}

fn main() {}
