use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u32,
    hp_offset: u32,
}

fn main() {}
