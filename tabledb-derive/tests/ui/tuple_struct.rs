use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player(u32, u32);

fn main() {}
