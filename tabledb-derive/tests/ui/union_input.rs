use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
union Player {
    hp: u32,
    score: f32,
}

fn main() {}
