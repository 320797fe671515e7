use tabledb::Table;

// A raw identifier is the same attribute to the compiler, so it is refused the same way.
#[derive(Table, Clone, Copy)]
#[repr(C)]
#[r#repr(packed)]
struct Player {
    hp: u32,
    level: u32,
}

fn main() {}
