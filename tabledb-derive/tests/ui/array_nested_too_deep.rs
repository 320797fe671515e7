use tabledb::Table;

/// Nine arrays deep: the registry takes at most eight.
type Deep = [[[[[[[[[u8; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Cube {
    cells: Deep,
}

fn main() {
    let _ = Cube::FIELDS;
}
