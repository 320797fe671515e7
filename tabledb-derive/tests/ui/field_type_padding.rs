use tabledb::FieldType;

#[derive(FieldType, Clone, Copy)]
#[repr(C)]
struct Hit {
    critical: bool,
    damage: f32,
}

fn main() {}
