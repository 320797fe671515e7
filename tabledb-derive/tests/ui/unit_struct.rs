use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player;

fn main() {}
