use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
enum Player {
    Alive { hp: u32 },
    Dead,
}

fn main() {}
