use tabledb::Table;

#[derive(Table)]
struct Player {
    id: u64,
    name: String,
    Level: u32,
    initial: char,
}

fn main() {}
