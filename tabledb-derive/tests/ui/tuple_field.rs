use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    position: (f32, f32),
}

fn main() {}
