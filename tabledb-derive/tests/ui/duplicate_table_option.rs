use tabledb::Table;

// Each option is given once: which of two would apply is not for the reader to guess.
#[derive(Table, Clone, Copy)]
#[repr(C)]
#[table(crate = "::tabledb", name = "players")]
#[table(crate = "::tabledb", name = "people")]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
