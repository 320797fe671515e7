use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
#[table(rename = "players")]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
