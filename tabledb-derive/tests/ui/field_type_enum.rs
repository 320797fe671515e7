use tabledb::FieldType;

#[derive(FieldType, Clone, Copy)]
#[repr(C)]
enum Team {
    Red,
    Blue,
}

fn main() {}
