use tabledb::FieldType;

// The default type name is the snake_case struct name, `bool`: a built-in type's name.
#[derive(FieldType, Clone, Copy)]
#[repr(C)]
struct Bool {
    value: u8,
}

fn main() {}
